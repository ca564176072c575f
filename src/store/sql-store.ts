/**
 * FleetStore written once over the Sql seam: each method is one aggregate function (users.ts,
 * certs.ts, …) run on the right connection. An engine (sqlite.ts, pg.ts) supplies three
 * things: auto-commit statements, a write transaction serialised against every other writer,
 * and a read-only transaction that sees one committed state.
 *
 * Which connection a call uses is decided by the async context: a call made from inside a
 * transaction's callback (directly or through any number of awaits) runs on the
 * transaction's connection, so services may keep calling `store.x()` inside
 * `store.transaction(…)` — on SQLite anything else would wait for the transaction it is part
 * of, and on PostgreSQL it would run outside it, on another pooled connection.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as admins from './admins.js';
import * as audit from './audit.js';
import * as certs from './certs.js';
import * as rollouts from './rollouts.js';
import * as sessions from './sessions.js';
import * as settings from './settings.js';
import * as sso from './sso.js';
import * as totp from './totp.js';
import type { Sql } from './sql.js';
import type {
  Admin,
  AdminRole,
  AdminSession,
  AuditEntry,
  AuditFilter,
  CaState,
  CertAttachment,
  CertSummary,
  FleetStore,
  HistoryEntry,
  NewAdmin,
  NewCert,
  NewUser,
  Pools,
  RevocationState,
  RevokedCert,
  RolloutRecord,
  ServerReport,
  SsoClaim,
  SsoSignIn,
  ServerState,
  StoredAuditEntry,
  StoredCert,
  StoredSession,
  StoredTotp,
  User,
  UserPage,
  UserSearch,
  UserStatus,
} from './types.js';
import * as users from './users.js';

/**
 * What a write changes, for other controllers' change feeds: `sessions` (an agent's report:
 * directives may change, bundles cannot) or `fleet` (anything else).
 */
export type ChangeScope = 'sessions' | 'fleet';

/** The transaction the current async context runs in; `open` turns false when it ends. */
interface TxContext {
  readonly sql: Sql;
  open: boolean;
  /** What its writes changed so far. */
  readonly scopes: Set<ChangeScope>;
}

export abstract class SqlStore implements FleetStore {
  private readonly context = new AsyncLocalStorage<TxContext>();

  /** Statements outside any transaction, each committed on its own. */
  protected abstract readonly autoCommit: Sql;
  /** Runs fn in a write transaction serialised against every other writer; commits. */
  protected abstract writeTransaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  /** Runs fn in a read-only transaction: every statement sees the same committed state. */
  protected abstract readTransaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  abstract close(): Promise<void>;
  abstract sizeBytes(): Promise<number>;
  /**
   * Runs inside a write transaction that wrote something, just before COMMIT (PostgreSQL
   * sends its NOTIFY here, so it is delivered only if the transaction commits).
   */
  protected beforeCommit(_sql: Sql, _scopes: ReadonlySet<ChangeScope>): Promise<void> {
    return Promise.resolve();
  }

  private current(): Sql | undefined {
    const tx = this.context.getStore();
    return tx?.open ? tx.sql : undefined;
  }

  transaction<T>(fn: (tx: FleetStore) => Promise<T>): Promise<T> {
    if (this.current()) return fn(this);
    return this.writeTransaction(async (sql) => {
      const tx: TxContext = { sql, open: true, scopes: new Set() };
      try {
        const result = await this.context.run(tx, () => fn(this));
        if (tx.scopes.size) await this.beforeCommit(sql, tx.scopes);
        return result;
      } finally {
        // Work fn started and did not await must not run on a finished transaction.
        tx.open = false;
      }
    });
  }

  /** A write of one or more statements: in the caller's transaction, or in one of its own. */
  private write<T>(fn: (sql: Sql) => Promise<T>, scope: ChangeScope = 'fleet'): Promise<T> {
    const tx = this.context.getStore();
    if (tx?.open) {
      tx.scopes.add(scope);
      return fn(tx.sql);
    }
    return this.transaction(() => this.write(fn, scope));
  }

  /** Reads that must agree with each other: in the caller's transaction, or a read-only one. */
  private read<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.current();
    return sql ? fn(sql) : this.readTransaction(fn);
  }

  /** One statement reading: in the caller's transaction, or on its own. */
  private get sql(): Sql {
    return this.current() ?? this.autoCommit;
  }

  createUsers(list: NewUser[], pools: Pools, now: Date, actor: string): Promise<User[]> {
    return this.write((sql) => users.createUsers(sql, list, pools, now, actor));
  }

  attachCertIfNone(name: string, cert: NewCert, now: Date, actor: string): Promise<CertAttachment> {
    return this.write((sql) => users.attachCertIfNone(sql, name, cert, now, actor));
  }

  usersWithoutCert(): Promise<string[]> {
    return users.usersWithoutCert(this.sql);
  }

  getUser(name: string): Promise<User | undefined> {
    return users.getUser(this.sql, name);
  }

  listUsers(): Promise<User[]> {
    return users.listUsers(this.sql);
  }

  searchUsers(search: UserSearch): Promise<UserPage> {
    return this.read((sql) => users.searchUsers(sql, search));
  }

  setStatus(name: string, status: UserStatus, now: Date, actor: string): Promise<User> {
    return this.write((sql) => users.setStatus(sql, name, status, now, actor));
  }

  setGroups(name: string, groups: string[], now: Date, actor: string): Promise<User> {
    return this.write((sql) => users.setGroups(sql, name, groups, now, actor));
  }

  deleteUser(name: string, now: Date, actor: string): Promise<User> {
    return this.write((sql) => users.deleteUser(sql, name, now, actor));
  }

  addressesHeld(pools: Pools, now: Date): Promise<number> {
    return this.read((sql) => users.addressesHeld(sql, pools, now));
  }

  getCert(serial: string): Promise<StoredCert | undefined> {
    return certs.getCert(this.sql, serial);
  }

  getCa(): Promise<StoredCert | undefined> {
    return certs.getCa(this.sql);
  }

  // Single-statement writes take the write lock too: a transaction that reads, decides and
  // writes (the CRL against the revoked set) must not have a write slip in between on
  // PostgreSQL, where READ COMMITTED statements see each other's commits.
  putCert(cert: StoredCert): Promise<void> {
    return this.write((sql) => certs.putCert(sql, cert));
  }

  setCaState(serial: string, state: CaState): Promise<void> {
    return this.write((sql) => certs.setCaState(sql, serial, state));
  }

  replaceClientCert(
    name: string,
    previous: string,
    cert: NewCert,
    now: Date,
    actor: string,
  ): Promise<CertAttachment> {
    return this.write((sql) => users.replaceClientCert(sql, name, previous, cert, now, actor));
  }

  markCertDelivered(serial: string, at: Date): Promise<void> {
    return this.write((sql) => certs.markCertDelivered(sql, serial, at));
  }

  liveClientCerts(now: Date): Promise<CertSummary[]> {
    return certs.liveClientCerts(this.sql, now);
  }

  clientCertsOf(name: string): Promise<CertSummary[]> {
    return certs.clientCertsOf(this.sql, name);
  }

  listCerts(kind?: StoredCert['kind']): Promise<StoredCert[]> {
    return certs.listCerts(this.sql, kind);
  }

  serverCert(name: string): Promise<StoredCert | undefined> {
    return certs.serverCert(this.sql, name);
  }

  revokeCert(serial: string, at: Date): Promise<void> {
    return this.write((sql) => certs.revokeCert(sql, serial, at));
  }

  revokeClientCerts(name: string, at: Date): Promise<string[]> {
    return this.write((sql) => certs.revokeClientCerts(sql, name, at));
  }

  revokedCerts(): Promise<RevokedCert[]> {
    return certs.revokedCerts(this.sql);
  }

  revocationState(): Promise<RevocationState> {
    return this.read((sql) => certs.revocationState(sql));
  }

  getSetting(key: string): Promise<string | undefined> {
    return settings.getSetting(this.sql, key);
  }

  getTotp(user: string): Promise<StoredTotp | undefined> {
    return this.read((sql) => totp.getTotp(sql, user));
  }

  putTotp(
    user: string,
    sealedSecret: string,
    recoverySha256: readonly string[],
    at: string,
  ): Promise<void> {
    return this.write((sql) => totp.putTotp(sql, user, sealedSecret, recoverySha256, at));
  }

  confirmTotp(user: string, at: string): Promise<boolean> {
    return this.write((sql) => totp.confirmTotp(sql, user, at));
  }

  // A code used changes no bundle: the controller need not rebuild for it.
  useTotpStep(user: string, step: number): Promise<boolean> {
    return this.write((sql) => totp.useTotpStep(sql, user, step), 'sessions');
  }

  useRecoveryCode(user: string, sha256: string, at: string): Promise<boolean> {
    return this.write((sql) => totp.useRecoveryCode(sql, user, sha256, at), 'sessions');
  }

  deleteTotp(user: string): Promise<boolean> {
    return this.write((sql) => totp.deleteTotp(sql, user));
  }

  setSetting(key: string, value: string): Promise<void> {
    return this.write((sql) => settings.setSetting(sql, key, value));
  }

  // Appended under the write lock as well: ids are then committed in id order, so a sink
  // tailing "id > last" (auditSince) never skips an entry that commits after a higher one.
  audit(entry: AuditEntry): Promise<void> {
    return this.write((sql) => audit.insertAudit(sql, entry));
  }

  auditLog(limit: number): Promise<StoredAuditEntry[]> {
    return audit.auditQuery(this.sql, { limit });
  }

  auditQuery(filter: AuditFilter): Promise<StoredAuditEntry[]> {
    return audit.auditQuery(this.sql, filter);
  }

  auditSince(afterId: number, limit: number): Promise<StoredAuditEntry[]> {
    return audit.auditSince(this.sql, afterId, limit);
  }

  auditForSubject(
    subject: string,
    actions: readonly string[],
    limit: number,
  ): Promise<StoredAuditEntry[]> {
    return audit.auditForSubject(this.sql, subject, actions, limit);
  }

  lastAuditId(): Promise<number> {
    return audit.lastAuditId(this.sql);
  }

  pruneAudit(before: Date): Promise<number> {
    return this.write((sql) => audit.pruneAudit(sql, before));
  }

  recordReport(server: string, report: ServerReport): Promise<void> {
    return this.write((sql) => sessions.recordReport(sql, server, report), 'sessions');
  }

  recordHealth(server: string, report: Omit<ServerReport, 'sessions'>): Promise<void> {
    return this.write((sql) => sessions.recordHealth(sql, server, report), 'sessions');
  }

  sessionHistory(user: string, opts: { limit: number; after?: string }): Promise<HistoryEntry[]> {
    return sessions.sessionHistory(this.sql, user, opts);
  }

  pruneHistory(before: Date, keepPerUser: number): Promise<number> {
    return this.write((sql) => sessions.pruneHistory(sql, before, keepPerUser));
  }

  listSessions(server?: string): Promise<StoredSession[]> {
    return sessions.listSessions(this.sql, server);
  }

  listServerStates(): Promise<ServerState[]> {
    return sessions.listServerStates(this.sql);
  }

  setDraining(name: string, draining: boolean, now: Date, actor: string): Promise<ServerState> {
    return this.write((sql) => sessions.setDraining(sql, name, draining, now, actor));
  }

  latestRollout(): Promise<RolloutRecord | undefined> {
    return rollouts.latestRollout(this.sql);
  }

  saveRollout(
    rollout: Omit<RolloutRecord, 'id'> & { id?: number },
    audit: AuditEntry[],
  ): Promise<RolloutRecord> {
    return this.write((sql) => rollouts.saveRollout(sql, rollout, audit));
  }

  restartGenerations(): Promise<Map<string, number>> {
    return rollouts.restartGenerations(this.sql);
  }

  setRestartGeneration(server: string, generation: number): Promise<void> {
    return this.write((sql) => rollouts.setRestartGeneration(sql, server, generation));
  }

  createAdmin(admin: NewAdmin, now: Date, actor: string): Promise<Admin> {
    return this.write((sql) => admins.createAdmin(sql, admin, now, actor));
  }

  getAdmin(name: string): Promise<Admin | undefined> {
    return admins.getAdmin(this.sql, name);
  }

  listAdmins(): Promise<Admin[]> {
    return admins.listAdmins(this.sql);
  }

  deleteAdmin(name: string, now: Date, actor: string): Promise<Admin> {
    return this.write((sql) => admins.deleteAdmin(sql, name, now, actor));
  }

  setAdminRole(name: string, role: AdminRole, now: Date, actor: string): Promise<Admin> {
    return this.write((sql) => admins.setAdminRole(sql, name, role, now, actor));
  }

  setAdminPassword(
    name: string,
    change: { passwordHash: string; mustChangePassword: boolean; keepSession?: string },
    now: Date,
    actor: string,
  ): Promise<Admin> {
    return this.write((sql) => admins.setAdminPassword(sql, name, change, now, actor));
  }

  createAdminSession(session: AdminSession, actor: string): Promise<void> {
    return this.write((sql) => admins.createAdminSession(sql, session, actor));
  }

  getAdminSession(idSha256: string): Promise<{ session: AdminSession; admin: Admin } | undefined> {
    return this.read((sql) => admins.getAdminSession(sql, idSha256));
  }

  // Bookkeeping on every console request, and no decision reads it inside a transaction:
  // one auto-commit statement, without the write lock.
  touchAdminSession(idSha256: string, at: Date): Promise<void> {
    return admins.touchAdminSession(this.sql, idSha256, at);
  }

  endAdminSession(idSha256: string, reason: string, now: Date, actor: string): Promise<boolean> {
    return this.write((sql) => admins.endAdminSession(sql, idSha256, reason, now, actor));
  }

  pruneAdminSessions(idleBefore: Date, createdBefore: Date): Promise<number> {
    return this.write((sql) => admins.pruneAdminSessions(sql, idleBefore, createdBefore));
  }

  createSsoSignIn(signIn: Omit<SsoSignIn, 'started' | 'finishedAt' | 'result'>): Promise<void> {
    return this.write((sql) => sso.createSsoSignIn(sql, signIn));
  }

  getSsoSignIn(id: string): Promise<SsoSignIn | undefined> {
    return sso.getSsoSignIn(this.sql, id);
  }

  ssoSignInOfRequest(requestId: string): Promise<SsoSignIn | undefined> {
    return sso.ssoSignInOfRequest(this.sql, requestId);
  }

  startSsoSignIn(
    id: string,
    started: NonNullable<SsoSignIn['started']>,
    now: Date,
  ): Promise<boolean> {
    return this.write((sql) => sso.startSsoSignIn(sql, id, started, now));
  }

  claimSsoSignIn(state: string, now: Date): Promise<SsoClaim> {
    return this.write((sql) => sso.claimSsoSignIn(sql, state, now));
  }

  finishSsoSignIn(
    id: string,
    result: Record<string, unknown>,
    audit: AuditEntry,
    sessionGroups?: string[],
  ): Promise<void> {
    return this.write((sql) => sso.finishSsoSignIn(sql, id, result, audit, sessionGroups));
  }

  ssoResults(ids: string[]): Promise<Map<string, Record<string, unknown>>> {
    return sso.ssoResults(this.sql, ids);
  }

  pruneSsoSignIns(before: Date): Promise<number> {
    return this.write((sql) => sso.pruneSsoSignIns(sql, before));
  }
}
