/**
 * Admin accounts of the console and the API: names, roles, passwords. Passwords are hashed in
 * passwords.ts; the store keeps only the hash. Changing a role or a password, or removing an
 * account, ends its console sessions (in the store's same transaction).
 */
import { Role } from '../api/index.js';
import { USER_NAME_PATTERN } from '../core/names.js';
import { InputError, NotFound } from '../errors.js';
import type { Admin, AdminRole } from '../store/types.js';
import type { ServiceContext } from './context.js';
import {
  MAX_PASSWORD_LENGTH,
  generatePassword,
  hashPassword,
  passwordProblem,
  verifyPassword,
} from './passwords.js';

/** An account as shown to anyone: everything but the hash. */
export interface AdminView {
  name: string;
  role: AdminRole;
  mustChangePassword: boolean;
  createdAt: string;
  passwordChangedAt: string;
}

export function adminView(a: Admin): AdminView {
  return {
    name: a.name,
    role: a.role,
    mustChangePassword: a.mustChangePassword,
    createdAt: a.createdAt,
    passwordChangedAt: a.passwordChangedAt,
  };
}

/**
 * The user-name rules (admin names end up in audit actors `console:NAME`, log lines and
 * tables): letters, digits, ".", "_", "-", 1-64 characters.
 */
export function adminNameProblem(name: string): string | undefined {
  if (USER_NAME_PATTERN.test(name)) return undefined;
  return `${JSON.stringify(name)} is not a valid admin name: use 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit`;
}

export function parseRole(role: string): AdminRole {
  const r = Role.safeParse(role);
  if (!r.success)
    throw new InputError(
      'role',
      `${JSON.stringify(role)} is not a role: use ${Role.options.join(', ')}`,
    );
  return r.data;
}

/** A password chosen by a person, or a generated one-time one that must be changed. */
export interface PasswordSet {
  admin: AdminView;
  /** Shown once, to whoever made the account; never stored or logged. */
  oneTimePassword?: string;
}

export class Admins {
  constructor(private readonly ctx: ServiceContext) {}

  private checkName(name: string): void {
    const problem = adminNameProblem(name);
    if (problem) throw new InputError('name', problem);
  }

  private static checkNewPassword(password: string, field: string): void {
    const problem = passwordProblem(password);
    if (problem) throw new InputError(field, problem);
  }

  /** Without a password, a generated one-time password, flagged must-change. */
  private async newPassword(
    password: string | undefined,
  ): Promise<{ passwordHash: string; mustChangePassword: boolean; oneTimePassword?: string }> {
    if (password !== undefined) {
      Admins.checkNewPassword(password, 'password');
      return { passwordHash: await hashPassword(password), mustChangePassword: false };
    }
    const oneTimePassword = generatePassword();
    return {
      passwordHash: await hashPassword(oneTimePassword),
      mustChangePassword: true,
      oneTimePassword,
    };
  }

  async add(name: string, role: string, password?: string): Promise<PasswordSet> {
    this.checkName(name);
    const r = parseRole(role);
    const { oneTimePassword, ...hash } = await this.newPassword(password);
    const admin = await this.ctx.store.createAdmin(
      { name, role: r, ...hash },
      this.ctx.clock.now(),
      this.ctx.actor,
    );
    return { admin: adminView(admin), ...(oneTimePassword ? { oneTimePassword } : {}) };
  }

  async list(): Promise<AdminView[]> {
    return (await this.ctx.store.listAdmins()).map(adminView);
  }

  async get(name: string): Promise<AdminView> {
    this.checkName(name);
    const a = await this.ctx.store.getAdmin(name);
    if (!a) throw new NotFound(`no admin named ${name}`);
    return adminView(a);
  }

  async remove(name: string): Promise<AdminView> {
    this.checkName(name);
    return adminView(await this.ctx.store.deleteAdmin(name, this.ctx.clock.now(), this.ctx.actor));
  }

  async setRole(name: string, role: string): Promise<AdminView> {
    this.checkName(name);
    const r = parseRole(role);
    return adminView(
      await this.ctx.store.setAdminRole(name, r, this.ctx.clock.now(), this.ctx.actor),
    );
  }

  /** Sets a password for someone (the CLI); without one, a one-time password. */
  async setPassword(name: string, password?: string): Promise<PasswordSet> {
    await this.get(name);
    const { oneTimePassword, ...hash } = await this.newPassword(password);
    const admin = await this.ctx.store.setAdminPassword(
      name,
      hash,
      this.ctx.clock.now(),
      this.ctx.actor,
    );
    return { admin: adminView(admin), ...(oneTimePassword ? { oneTimePassword } : {}) };
  }

  /**
   * The account when `password` is its password, else undefined. Always runs one full scrypt,
   * also for an unknown (or malformed) name, so that neither the answer nor the time taken
   * tells whether the account exists.
   */
  async authenticate(name: string, password: string): Promise<AdminView | undefined> {
    if (password.length > MAX_PASSWORD_LENGTH)
      throw new InputError('password', `must be at most ${MAX_PASSWORD_LENGTH} characters`);
    const admin = adminNameProblem(name) ? undefined : await this.ctx.store.getAdmin(name);
    const ok = await verifyPassword(password, admin?.passwordHash);
    return admin && ok ? adminView(admin) : undefined;
  }

  /**
   * A signed-in admin changes its own password: undefined when `current` is wrong. Every other
   * session of the admin ends; `keepSession` (the SHA-256 of the session asking) stays.
   */
  async changeOwnPassword(
    name: string,
    current: string,
    next: string,
    keepSession?: string,
  ): Promise<AdminView | undefined> {
    Admins.checkNewPassword(next, 'next');
    if (next.normalize('NFC') === current.normalize('NFC'))
      throw new InputError('next', 'must differ from the current password');
    if (!(await this.authenticate(name, current))) return undefined;
    const passwordHash = await hashPassword(next);
    const admin = await this.ctx.store.setAdminPassword(
      name,
      {
        passwordHash,
        mustChangePassword: false,
        ...(keepSession !== undefined ? { keepSession } : {}),
      },
      this.ctx.clock.now(),
      this.ctx.actor,
    );
    return adminView(admin);
  }
}
