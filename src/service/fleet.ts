/**
 * The fleet's application services behind one facade. Each aggregate has its own service
 * (users.ts, pki-lifecycle.ts, bundles.ts, spec-edits.ts, secrets.ts; csv.ts parses imports);
 * Fleet wires them over one context and keeps the API the CLI, the controller and the lab
 * call, so they need not know how the services are cut. It owns no process or network I/O
 * and no store implementation: open.ts composes a Fleet with its store.
 */
import type { Bundle, PinnedSnapshot } from '../render/bundle.js';
import type { RenderOptions } from '../render/types.js';
import type { FleetSpec } from '../spec/schema.js';
import type { Validation } from '../spec/validate.js';
import type {
  FleetStore,
  HistoryEntry,
  Pools,
  User,
  UserPage,
  UserSearch,
  UserStatus,
} from '../store/types.js';
import { Admins } from './admins.js';
import { Bundles } from './bundles.js';
import { type ServiceContext, poolsOf, serverNamesOf } from './context.js';
import { specPath } from './layout.js';
import {
  type MaintenanceReport,
  PkiLifecycle,
  type PkiStatusRow,
  type UserCertificate,
} from './pki-lifecycle.js';
import { Secrets } from './secrets.js';
import { Totp } from './totp.js';
import { SpecEdits } from './spec-edits.js';
import { type AddUserRequest, type BulkAction, Users } from './users.js';

export { type Clock, actorName, systemClock } from './context.js';
export { SPEC_FILE, SPEC_FILE_MODE, STORE_FILE } from './layout.js';
export {
  type MaintenanceReport,
  type PkiStatusRow,
  type UserCertificate,
  VALIDITY,
} from './pki-lifecycle.js';
export { type AddUserRequest, BULK_MAX, type BulkAction } from './users.js';

export class Fleet {
  readonly secrets: Secrets;
  readonly totp: Totp;
  readonly pki: PkiLifecycle;
  readonly users: Users;
  readonly specEdits: SpecEdits;
  readonly admins: Admins;
  /** Bundles and profiles: what the fleet hands to servers and users. */
  readonly output: Bundles;

  constructor(private readonly ctx: ServiceContext) {
    this.secrets = new Secrets(ctx);
    this.totp = new Totp(ctx);
    this.pki = new PkiLifecycle(ctx, this.secrets);
    this.users = new Users(ctx, this.pki);
    this.specEdits = new SpecEdits(ctx);
    this.admins = new Admins(ctx);
    this.output = new Bundles(ctx, this.pki, this.secrets, this.users);
  }

  static specPath(dir: string): string {
    return specPath(dir);
  }

  get dir(): string {
    return this.ctx.dir;
  }

  get spec(): FleetSpec {
    return this.ctx.spec;
  }

  get store(): FleetStore {
    return this.ctx.store;
  }

  close(): Promise<void> {
    return this.ctx.store.close();
  }

  /** The same store, clock and actor with another (already validated) spec: a reloaded fleet.yaml. */
  withSpec(spec: FleetSpec): Fleet {
    return new Fleet({ ...this.ctx, spec });
  }

  /**
   * The same fleet acting for `actor` (what the audit log records): the controller's routes
   * act for whoever called them. Services hold no state of their own, so this is cheap.
   */
  as(actor: string): Fleet {
    return actor === this.ctx.actor ? this : new Fleet({ ...this.ctx, actor });
  }

  pools(): Pools {
    return poolsOf(this.ctx.spec);
  }

  /** Every server of fleet.yaml, in file order. */
  serverNames(): string[] {
    return serverNamesOf(this.ctx.spec);
  }

  validate(): Promise<Validation> {
    return this.specEdits.validate();
  }

  addGroup(name: string, description?: string): Promise<void> {
    return this.specEdits.addGroup(name, description);
  }

  listGroups(): Promise<{ name: string; description?: string; members: number }[]> {
    return this.specEdits.listGroups();
  }

  ensurePki(): Promise<void> {
    return this.pki.ensure();
  }

  ensureCrl(force = false): Promise<string> {
    return this.pki.ensureCrl(force);
  }

  pkiStatus(): Promise<PkiStatusRow[]> {
    return this.pki.status();
  }

  /** One lifecycle step: CA rollover/switch/retire when due, renewals, rotations, CRLs. */
  maintainPki(): Promise<MaintenanceReport> {
    return this.pki.maintain();
  }

  /** Renews the named users' certificates if inside their window (all of them with `force`). */
  async renewUserCerts(names: string[], force = false): Promise<string[]> {
    for (const n of names) await this.users.get(n);
    return this.pki.renewClients({ names, force });
  }

  /** The user's current certificate: expiry, renewal, whether a new profile waits. */
  async userCertificate(name: string): Promise<UserCertificate | undefined> {
    return this.pki.userCertificate(await this.users.get(name));
  }

  addUsers(reqs: AddUserRequest[], opts: { issueCerts?: boolean } = {}): Promise<User[]> {
    return this.users.add(reqs, opts);
  }

  issueMissingCerts(names?: string[]): Promise<number> {
    return this.users.issueMissingCerts(names);
  }

  importCsv(text: string, file?: string): Promise<User[]> {
    return this.users.importCsv(text, file);
  }

  listUsers(): Promise<User[]> {
    return this.users.list();
  }

  searchUsers(search: UserSearch): Promise<UserPage> {
    return this.users.search(search);
  }

  bulkUsers(action: BulkAction, names: string[]): Promise<User[]> {
    return this.users.bulk(action, names);
  }

  getUser(name: string): Promise<User> {
    return this.users.get(name);
  }

  /**
   * The sessions the user had and has, newest first (the location history). Only those that
   * ended since the user was created: a name used again does not inherit the old one's.
   */
  async userHistory(name: string, limit: number): Promise<HistoryEntry[]> {
    const user = await this.users.get(name);
    return this.ctx.store.sessionHistory(name, { limit, after: user.createdAt });
  }

  setStatus(name: string, status: UserStatus): Promise<User> {
    return this.users.setStatus(name, status);
  }

  setGroups(name: string, groups: string[]): Promise<User> {
    return this.users.setGroups(name, groups);
  }

  deleteUser(name: string): Promise<User> {
    return this.users.delete(name);
  }

  managementPassword(server: string): Promise<string> {
    return this.secrets.managementPassword(server);
  }

  agentToken(server: string): Promise<string> {
    return this.secrets.agentToken(server);
  }

  snapshot(): Promise<PinnedSnapshot> {
    return this.output.snapshot();
  }

  bundlesFor(
    baseDir: (server: string) => string,
    options: Partial<Omit<RenderOptions, 'baseDir'>> = {},
  ): Promise<Bundle[]> {
    return this.output.bundlesFor(baseDir, options);
  }

  bundles(options: Partial<RenderOptions> = {}): Promise<Bundle[]> {
    return this.output.bundles(options);
  }

  bundle(server: string, options: Partial<RenderOptions> = {}): Promise<Bundle> {
    return this.output.bundle(server, options);
  }

  profile(name: string, opts: { anyStatus?: boolean; audit?: boolean } = {}): Promise<string> {
    return this.output.profile(name, opts);
  }
}
