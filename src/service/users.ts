/**
 * Users: adding (one by one or by CSV import), status, groups, deletion, and the issuance of
 * their client certificates. Every address comes from the store's allocator; a deleted user's
 * addresses stay in quarantine there.
 */
import { Conflict, InputError, NotFound } from '../errors.js';
import { userNameProblem } from '../core/names.js';
import { serverCommonName } from '../render/types.js';
import type { FleetStore, User, UserPage, UserSearch, UserStatus } from '../store/types.js';
import { type ServiceContext, poolsOf } from './context.js';
import { type UserRequest, parseUserCsv } from './csv.js';
import { SPEC_FILE } from './layout.js';
import type { PkiLifecycle } from './pki-lifecycle.js';

export type AddUserRequest = UserRequest;

/** What a bulk action does to each user it names. */
export type BulkAction = 'enable' | 'disable' | 'revoke' | 'delete';

/** The most users one bulk action may name. */
export const BULK_MAX = 1000;

const BULK_STATUS: Record<Exclude<BulkAction, 'delete'>, UserStatus> = {
  enable: 'enabled',
  disable: 'disabled',
  revoke: 'revoked',
};

export class Users {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly pki: PkiLifecycle,
  ) {}

  /**
   * Adds users in one transaction. With `issueCerts` (the default for `user add`) each gets a
   * client certificate now; a bulk import defers them to the user's first profile (or
   * `pki issue`), because signing costs milliseconds per user and most of an import never
   * needs a profile the same day.
   */
  async add(reqs: AddUserRequest[], opts: { issueCerts?: boolean } = {}): Promise<User[]> {
    const { store } = this.ctx;
    const seen = new Set<string>();
    for (const r of reqs) {
      const problem = this.nameProblem(r.name);
      if (problem) throw new InputError('name', problem);
      if (seen.has(r.name)) throw new InputError('name', `user ${r.name} appears twice`);
      seen.add(r.name);
      this.checkGroups(r.groups ?? []);
      if (await store.getUser(r.name)) throw new Conflict(`user ${r.name} already exists`);
    }
    const now = this.ctx.clock.now();
    // Certificates are made before the transaction: signing inside would hold the write lock.
    const certs =
      opts.issueCerts === false
        ? []
        : await this.pki.issueClientCerts(
            reqs.map((r) => r.name),
            now,
          );
    return store.createUsers(
      reqs.map((r, i) => ({
        name: r.name,
        groups: r.groups ?? [],
        ...(r.ipv4 !== undefined ? { ipv4: r.ipv4 } : {}),
        ...(r.ipv6 !== undefined ? { ipv6: r.ipv6 } : {}),
        ...(certs[i] ? { cert: certs[i] } : {}),
      })),
      poolsOf(this.ctx.spec),
      now,
      this.ctx.actor,
    );
  }

  /**
   * Issues certificates for the given users (default: every enabled user without one). The
   * check that a user still has none is made again inside the write transaction that attaches
   * it, so concurrent callers (two CLI processes, the controller's parallel requests) attach at
   * most one certificate per user; a certificate that lost the race is stored revoked and the
   * CRL re-issued. Within one process issuance is also serialised per user, so the losers are
   * rare and cost no signing. Returns how many certificates were attached.
   */
  async issueMissingCerts(names?: string[]): Promise<number> {
    const { store } = this.ctx;
    const targets = names ?? (await store.usersWithoutCert());
    for (const n of targets) await this.get(n);
    return serialisedPerUser(store, targets, async () => {
      const todo: string[] = [];
      for (const n of targets) {
        const u = await store.getUser(n);
        if (u !== undefined && !u.certSerial && u.status !== 'revoked') todo.push(n);
      }
      if (todo.length === 0) return 0;
      const now = this.ctx.clock.now();
      const certs = await this.pki.issueClientCerts(todo, now);
      const attached = await store.transaction(async (tx) => {
        let n = 0;
        for (const [i, name] of todo.entries())
          if ((await tx.attachCertIfNone(name, certs[i], now, this.ctx.actor)).attached) n++;
        return n;
      });
      if (attached < todo.length) await this.pki.ensureCrl(true);
      return attached;
    });
  }

  /** CSV with a header `name,groups`; groups separated by ";". All rows or none. */
  async importCsv(text: string, file = 'import.csv'): Promise<User[]> {
    const parsed = parseUserCsv(text, file, {
      nameProblem: (name) => this.nameProblem(name),
      groupProblem: (group) => this.groupProblem(group),
    });
    if (parsed.error) throw new InputError(parsed.error.at, parsed.error.message);
    return this.add(parsed.users, { issueCerts: false });
  }

  list(): Promise<User[]> {
    return this.ctx.store.listUsers();
  }

  /** A filtered, sorted page of users (see UserSearch); the store does the work. */
  search(search: UserSearch): Promise<UserPage> {
    return this.ctx.store.searchUsers(search);
  }

  /**
   * One action on many users, all or nothing: every name is checked and every change made in
   * one transaction, so an unknown name or a refused transition (enabling a revoked user)
   * changes nobody. Each user gets its own audit entry. Certificates are revoked in the same
   * transaction and the CRL is signed once for the whole batch. Returns the users as changed
   * (for `delete`: as they were).
   */
  async bulk(action: BulkAction, names: string[]): Promise<User[]> {
    if (names.length === 0) throw new InputError('names', 'is empty: name at least one user');
    if (names.length > BULK_MAX)
      throw new InputError('names', `at most ${BULK_MAX} users at once, got ${names.length}`);
    const seen = new Set<string>();
    for (const [i, name] of names.entries()) {
      const problem = userNameProblem(name);
      if (problem) throw new InputError(`names[${i}]`, problem);
      if (seen.has(name)) throw new InputError(`names[${i}]`, `${name} is listed twice`);
      seen.add(name);
    }
    const { store, actor } = this.ctx;
    const now = this.ctx.clock.now();
    const changed = await store.transaction(async (tx) => {
      const done: User[] = [];
      for (const [i, name] of names.entries()) {
        if (!(await tx.getUser(name))) throw new NotFound(`names[${i}]: no user named ${name}`);
        if (action === 'delete') {
          done.push(await tx.deleteUser(name, now, actor));
          await tx.revokeClientCerts(name, now);
          continue;
        }
        const status = BULK_STATUS[action];
        done.push(await tx.setStatus(name, status, now, actor));
        if (status === 'revoked') await tx.revokeClientCerts(name, now);
      }
      return done;
    });
    if (action === 'revoke' || action === 'delete') await this.pki.ensureCrl(true);
    return changed;
  }

  async get(name: string): Promise<User> {
    const problem = userNameProblem(name);
    if (problem) throw new InputError('name', problem);
    const u = await this.ctx.store.getUser(name);
    if (!u) throw new NotFound(`no user named ${name}`);
    return u;
  }

  async setStatus(name: string, status: UserStatus): Promise<User> {
    await this.get(name);
    const { store, actor } = this.ctx;
    const now = this.ctx.clock.now();
    const user = await store.transaction(async (tx) => {
      const changed = await tx.setStatus(name, status, now, actor);
      if (status === 'revoked') await tx.revokeClientCerts(name, now);
      return changed;
    });
    if (status === 'revoked') await this.pki.ensureCrl(true);
    return user;
  }

  async setGroups(name: string, groups: string[]): Promise<User> {
    await this.get(name);
    this.checkGroups(groups);
    return this.ctx.store.setGroups(name, groups, this.ctx.clock.now(), this.ctx.actor);
  }

  /**
   * Deletes the user, revokes every certificate ever issued under the name (a user added again
   * later under the same name must not be reachable with any of them) and keeps the addresses
   * in quarantine.
   */
  async delete(name: string): Promise<User> {
    await this.get(name);
    const { store, actor } = this.ctx;
    const now = this.ctx.clock.now();
    const user = await store.transaction(async (tx) => {
      const deleted = await tx.deleteUser(name, now, actor);
      await tx.revokeClientCerts(name, now);
      return deleted;
    });
    await this.pki.ensureCrl(true);
    return user;
  }

  /**
   * The general name rules, and no name in the servers' certificate namespace: a client whose
   * CN equals a server's would share its ccd file name and its identity in every log. The
   * whole `<fleet>-server-` prefix is refused, so that a server added later cannot collide.
   */
  nameProblem(name: string): string | undefined {
    const general = userNameProblem(name);
    if (general) return general;
    const prefix = serverCommonName(this.ctx.spec.fleet, '').toLowerCase();
    if (name.toLowerCase().startsWith(prefix))
      return `"${name}" is reserved: names starting with "${prefix}" are server certificate names`;
    return undefined;
  }

  /** Groups are declared in fleet.yaml, where the policy refers to them. */
  private groupProblem(group: string): string | undefined {
    const known = this.ctx.spec.groups.map((g) => g.name);
    if (known.includes(group)) return undefined;
    return `unknown group "${group}" (groups in ${SPEC_FILE}: ${known.join(', ') || 'none'})`;
  }

  private checkGroups(groups: string[]): void {
    for (const g of groups) {
      const problem = this.groupProblem(g);
      if (problem) throw new InputError('group', problem);
    }
  }
}

/**
 * In-process queue of certificate issuance per user, keyed by store so that services sharing
 * one store (a Fleet and its withSpec copies) share it; other processes are kept out by the
 * transaction.
 */
const issuance = new WeakMap<FleetStore, Map<string, Promise<unknown>>>();

async function serialisedPerUser<T>(
  store: FleetStore,
  names: string[],
  fn: () => Promise<T>,
): Promise<T> {
  let queue = issuance.get(store);
  if (!queue) issuance.set(store, (queue = new Map<string, Promise<unknown>>()));
  const ahead = [...new Set(names)].flatMap((n) => queue.get(n) ?? []);
  const run = Promise.allSettled(ahead).then(fn);
  const done = run.catch(() => undefined);
  for (const n of names) queue.set(n, done);
  try {
    return await run;
  } finally {
    for (const n of names) if (queue.get(n) === done) queue.delete(n);
  }
}
