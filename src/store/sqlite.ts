/**
 * SQLite implementation of FleetStore: the connection, the migrations and the transactions.
 * The SQL of each aggregate lives in its own module (users.ts, certs.ts, sessions.ts,
 * audit.ts, admins.ts, settings.ts), written against the Sql seam (sql.ts).
 * Writes run in BEGIN IMMEDIATE transactions so that concurrent `user add` processes are
 * serialised by SQLite's write lock (busy_timeout waits) and never pick the same address;
 * the UNIQUE constraints are the last line of defence.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, openSync } from 'node:fs';
import * as admins from './admins.js';
import * as audit from './audit.js';
import * as certs from './certs.js';
import { MIGRATIONS } from './migrations.js';
import * as sessions from './sessions.js';
import * as settings from './settings.js';
import type { Sql, SqlParam } from './sql.js';
import type {
  Admin,
  AdminRole,
  AdminSession,
  AuditEntry,
  AuditFilter,
  CertAttachment,
  ChangeFeed,
  FleetStore,
  HistoryEntry,
  NewAdmin,
  NewCert,
  NewUser,
  Pools,
  RevocationState,
  RevokedCert,
  ServerReport,
  ServerState,
  StoredCert,
  StoredAuditEntry,
  StoredSession,
  User,
  UserPage,
  UserSearch,
  UserStatus,
} from './types.js';
import * as users from './users.js';

export { containsPattern } from './users.js';

/** better-sqlite3 behind the Sql seam, with each statement prepared once. */
class SqliteSql implements Sql {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  private prepare(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) this.statements.set(sql, (stmt = this.db.prepare(sql)));
    return stmt;
  }

  get<T>(sql: string, params: SqlParam[] = []): T | undefined {
    return this.prepare(sql).get(...params) as T | undefined;
  }

  all<T>(sql: string, params: SqlParam[] = []): T[] {
    return this.prepare(sql).all(...params) as T[];
  }

  run(sql: string, params: SqlParam[] = []): number {
    return this.prepare(sql).run(...params).changes;
  }
}

export class SqliteStore implements FleetStore {
  private readonly db: Database.Database;
  private readonly sql: Sql;

  constructor(file: string) {
    const fresh = file !== ':memory:' && !existsSync(file);
    // The store holds private keys: create it 0600 before SQLite opens it, so it is never
    // readable by others, not even for a moment.
    if (fresh) closeSync(openSync(file, 'wx', 0o600));
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    this.sql = new SqliteSql(this.db);
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let i = version; i < MIGRATIONS.length; i++) {
      this.db
        .transaction(() => {
          this.db.exec(MIGRATIONS[i]);
          this.db.pragma(`user_version = ${i + 1}`);
        })
        .immediate();
    }
  }

  close(): void {
    this.db.close();
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  /** One read transaction: every statement of fn sees the same committed state (WAL). */
  private read<T>(fn: () => T): T {
    return this.db.transaction(fn).deferred();
  }

  createUsers(list: NewUser[], pools: Pools, now: Date, actor: string): User[] {
    return this.transaction(() => users.createUsers(this.sql, list, pools, now, actor));
  }

  attachCertIfNone(name: string, cert: NewCert, now: Date, actor: string): CertAttachment {
    return this.transaction(() => users.attachCertIfNone(this.sql, name, cert, now, actor));
  }

  usersWithoutCert(): string[] {
    return users.usersWithoutCert(this.sql);
  }

  getUser(name: string): User | undefined {
    return users.getUser(this.sql, name);
  }

  listUsers(): User[] {
    return users.listUsers(this.sql);
  }

  searchUsers(search: UserSearch): UserPage {
    return this.read(() => users.searchUsers(this.sql, search));
  }

  setStatus(name: string, status: UserStatus, now: Date, actor: string): User {
    return this.transaction(() => users.setStatus(this.sql, name, status, now, actor));
  }

  setGroups(name: string, groups: string[], now: Date, actor: string): User {
    return this.transaction(() => users.setGroups(this.sql, name, groups, now, actor));
  }

  deleteUser(name: string, now: Date, actor: string): User {
    return this.transaction(() => users.deleteUser(this.sql, name, now, actor));
  }

  addressesHeld(pools: Pools, now: Date): number {
    return users.addressesHeld(this.sql, pools, now);
  }

  getCert(serial: string): StoredCert | undefined {
    return certs.getCert(this.sql, serial);
  }

  getCa(): StoredCert | undefined {
    return certs.getCa(this.sql);
  }

  putCert(cert: StoredCert): void {
    certs.putCert(this.sql, cert);
  }

  listCerts(kind?: StoredCert['kind']): StoredCert[] {
    return certs.listCerts(this.sql, kind);
  }

  serverCert(name: string): StoredCert | undefined {
    return certs.serverCert(this.sql, name);
  }

  revokeCert(serial: string, at: Date): void {
    certs.revokeCert(this.sql, serial, at);
  }

  revokeClientCerts(name: string, at: Date): string[] {
    return this.transaction(() => certs.revokeClientCerts(this.sql, name, at));
  }

  revokedCerts(): RevokedCert[] {
    return certs.revokedCerts(this.sql);
  }

  revocationState(): RevocationState {
    return this.read(() => certs.revocationState(this.sql));
  }

  getSetting(key: string): string | undefined {
    return settings.getSetting(this.sql, key);
  }

  setSetting(key: string, value: string): void {
    settings.setSetting(this.sql, key, value);
  }

  audit(entry: AuditEntry): void {
    audit.insertAudit(this.sql, entry);
  }

  auditLog(limit: number): StoredAuditEntry[] {
    return audit.auditQuery(this.sql, { limit });
  }

  auditQuery(filter: AuditFilter): StoredAuditEntry[] {
    return audit.auditQuery(this.sql, filter);
  }

  auditSince(afterId: number, limit: number): StoredAuditEntry[] {
    return audit.auditSince(this.sql, afterId, limit);
  }

  lastAuditId(): number {
    return audit.lastAuditId(this.sql);
  }

  pruneAudit(before: Date): number {
    return audit.pruneAudit(this.sql, before);
  }

  /**
   * SQLite's PRAGMA data_version: changes whenever another connection (a CLI process) commits
   * to the file; this connection's own commits do not move it.
   */
  dataVersion(): number {
    return this.db.pragma('data_version', { simple: true }) as number;
  }

  changeFeed(): ChangeFeed {
    return { version: () => this.dataVersion() };
  }

  recordReport(server: string, report: ServerReport): void {
    this.transaction(() => sessions.recordReport(this.sql, server, report));
  }

  recordHealth(server: string, report: Omit<ServerReport, 'sessions'>): void {
    sessions.recordHealth(this.sql, server, report);
  }

  sessionHistory(user: string, opts: { limit: number; after?: string }): HistoryEntry[] {
    return sessions.sessionHistory(this.sql, user, opts);
  }

  pruneHistory(before: Date, keepPerUser: number): number {
    return this.transaction(() => sessions.pruneHistory(this.sql, before, keepPerUser));
  }

  listSessions(server?: string): StoredSession[] {
    return sessions.listSessions(this.sql, server);
  }

  listServerStates(): ServerState[] {
    return sessions.listServerStates(this.sql);
  }

  setDraining(name: string, draining: boolean, now: Date, actor: string): ServerState {
    return this.transaction(() => sessions.setDraining(this.sql, name, draining, now, actor));
  }

  createAdmin(admin: NewAdmin, now: Date, actor: string): Admin {
    return this.transaction(() => admins.createAdmin(this.sql, admin, now, actor));
  }

  getAdmin(name: string): Admin | undefined {
    return admins.getAdmin(this.sql, name);
  }

  listAdmins(): Admin[] {
    return admins.listAdmins(this.sql);
  }

  deleteAdmin(name: string, now: Date, actor: string): Admin {
    return this.transaction(() => admins.deleteAdmin(this.sql, name, now, actor));
  }

  setAdminRole(name: string, role: AdminRole, now: Date, actor: string): Admin {
    return this.transaction(() => admins.setAdminRole(this.sql, name, role, now, actor));
  }

  setAdminPassword(
    name: string,
    change: { passwordHash: string; mustChangePassword: boolean; keepSession?: string },
    now: Date,
    actor: string,
  ): Admin {
    return this.transaction(() => admins.setAdminPassword(this.sql, name, change, now, actor));
  }

  createAdminSession(session: AdminSession, actor: string): void {
    this.transaction(() => admins.createAdminSession(this.sql, session, actor));
  }

  getAdminSession(idSha256: string): { session: AdminSession; admin: Admin } | undefined {
    return this.read(() => admins.getAdminSession(this.sql, idSha256));
  }

  touchAdminSession(idSha256: string, at: Date): void {
    admins.touchAdminSession(this.sql, idSha256, at);
  }

  endAdminSession(idSha256: string, reason: string, now: Date, actor: string): boolean {
    return this.transaction(() => admins.endAdminSession(this.sql, idSha256, reason, now, actor));
  }

  pruneAdminSessions(idleBefore: Date, createdBefore: Date): number {
    return admins.pruneAdminSessions(this.sql, idleBefore, createdBefore);
  }
}
