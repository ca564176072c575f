/**
 * SQLite implementation of FleetStore: the only file with SQL in it.
 * Writes run in BEGIN IMMEDIATE transactions so that concurrent `user add` processes are
 * serialised by SQLite's write lock (busy_timeout waits) and never pick the same address;
 * the UNIQUE constraints are the last line of defence.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, openSync } from 'node:fs';
import { Conflict, InputError, NotFound, StoreTooNew } from '../errors.js';
import { OffsetAllocator, checkPinnable, offsetOf } from '../core/ipam.js';
import { sessionId } from '../api/index.js';
import { MIGRATIONS } from './migrations.js';
import type {
  Admin,
  AdminRole,
  AdminSession,
  AuditEntry,
  AuditFilter,
  CaState,
  CertAttachment,
  CertSummary,
  ChangeFeed,
  FleetStore,
  HistoryEntry,
  HostRoutes,
  NewAdmin,
  NewCert,
  NewUser,
  Pools,
  RevocationState,
  RevokedCert,
  RolloutRecord,
  ServerReport,
  ServerState,
  SessionEndReason,
  StoredCert,
  StoredAuditEntry,
  StoredSession,
  User,
  UserPage,
  UserSearch,
  UserSort,
  UserStatus,
} from './types.js';

interface UserRow {
  id: number;
  name: string;
  ipv4: string;
  ipv6: string;
  status: UserStatus;
  cert_serial: string | null;
  created_at: string;
  groups: string | null;
  not_after: string | null;
}

interface CertRow {
  serial: string;
  kind: StoredCert['kind'];
  subject: string;
  not_after: string;
  cert_pem: string;
  key_pem: string;
  revoked_at: string | null;
  issuer: string | null;
  issued_at: string | null;
  delivered_at: string | null;
  ca_state: CaState | null;
}

/** The columns of a CertSummary: everything but the PEMs. */
const CERT_SUMMARY =
  'serial, kind, subject, not_after, revoked_at, issuer, issued_at, delivered_at, ca_state';

/** A new client certificate's issuer: the one given, else the active CA. */
const ISSUER_OR_ACTIVE = `coalesce(?, (SELECT serial FROM certs WHERE kind = 'ca' AND ca_state = 'active' LIMIT 1))`;

const USER_SELECT = `
  SELECT u.id, u.name, u.ipv4, u.ipv6, u.status, u.cert_serial, u.created_at, c.not_after,
         (SELECT group_concat(group_name, ',') FROM (SELECT group_name FROM user_groups g WHERE g.user_id = u.id ORDER BY group_name)) AS groups
  FROM users u LEFT JOIN certs c ON c.serial = u.cert_serial`;

interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  detail: string | null;
}

const AUDIT_COLUMNS = 'id, at, actor, action, subject, detail';

function toAudit(r: AuditRow): StoredAuditEntry {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    ...(r.detail ? { detail: JSON.parse(r.detail) as Record<string, unknown> } : {}),
  };
}

/** ORDER BY of a user search; the name breaks ties so that pages never overlap or skip. */
function userOrder(sort: UserSort, descending: boolean): string {
  const dir = descending ? 'DESC' : 'ASC';
  const first = { name: [], created: ['u.created_at'], status: ['u.status'] }[sort];
  return [...first, 'u.name'].map((c) => `${c} ${dir}`).join(', ');
}

/** A LIKE pattern matching `text` literally anywhere: its own `%`, `_` and `\` are escaped. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

interface SessionRow {
  server: string;
  user: string;
  real_address: string;
  ipv4: string | null;
  ipv6: string | null;
  since: string;
  bytes_in: number;
  bytes_out: number;
  client_id: number;
  reported_at: string;
  first_seen: string | null;
}

interface RolloutRow {
  id: number;
  strategy: RolloutRecord['strategy'];
  status: RolloutRecord['status'];
  started_by: string;
  started_at: string;
  updated_at: string;
  steps: string;
  detail: string | null;
}

function toRollout(r: RolloutRow): RolloutRecord {
  return {
    id: r.id,
    strategy: r.strategy,
    status: r.status,
    startedBy: r.started_by,
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    steps: JSON.parse(r.steps) as RolloutRecord['steps'],
    ...(r.detail !== null ? { detail: r.detail } : {}),
  };
}

interface ServerRow {
  name: string;
  draining: number;
  health: string | null;
  bundle_digest: string | null;
  reported_at: string | null;
  routes: string | null;
}

interface HistoryRow {
  user: string;
  server: string;
  real_address: string;
  ipv4: string | null;
  ipv6: string | null;
  since: string;
  until: string | null;
  bytes_in: number;
  bytes_out: number;
  reason: SessionEndReason | null;
}

function toHistoryEntry(r: HistoryRow): HistoryEntry {
  return {
    user: r.user,
    server: r.server,
    realAddress: r.real_address,
    ...(r.ipv4 ? { ipv4: r.ipv4 } : {}),
    ...(r.ipv6 ? { ipv6: r.ipv6 } : {}),
    since: r.since,
    ...(r.until ? { until: r.until } : {}),
    bytesIn: r.bytes_in,
    bytesOut: r.bytes_out,
    ...(r.reason ? { reason: r.reason } : {}),
  };
}

interface AdminRow {
  name: string;
  role: AdminRole;
  password_hash: string;
  must_change_password: number;
  created_at: string;
  password_changed_at: string;
}

interface AdminSessionRow {
  id_sha256: string;
  admin: string;
  csrf_token: string;
  created_at: string;
  last_seen_at: string;
  address: string | null;
}

function toAdmin(r: AdminRow): Admin {
  return {
    name: r.name,
    role: r.role,
    passwordHash: r.password_hash,
    mustChangePassword: r.must_change_password !== 0,
    createdAt: r.created_at,
    passwordChangedAt: r.password_changed_at,
  };
}

function toAdminSession(r: AdminSessionRow): AdminSession {
  return {
    idSha256: r.id_sha256,
    admin: r.admin,
    csrfToken: r.csrf_token,
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    ...(r.address !== null ? { address: r.address } : {}),
  };
}

function toSession(r: SessionRow): StoredSession {
  return {
    server: r.server,
    user: r.user,
    realAddress: r.real_address,
    ...(r.ipv4 ? { ipv4: r.ipv4 } : {}),
    ...(r.ipv6 ? { ipv6: r.ipv6 } : {}),
    since: r.since,
    bytesIn: r.bytes_in,
    bytesOut: r.bytes_out,
    clientId: r.client_id,
    reportedAt: r.reported_at,
    firstSeen: r.first_seen ?? r.reported_at,
  };
}

function toServerState(r: ServerRow): ServerState {
  return {
    name: r.name,
    draining: r.draining !== 0,
    ...(r.health ? { health: JSON.parse(r.health) as Record<string, unknown> } : {}),
    ...(r.bundle_digest ? { bundleDigest: r.bundle_digest } : {}),
    ...(r.reported_at ? { reportedAt: r.reported_at } : {}),
    ...(r.routes ? { routes: JSON.parse(r.routes) as HostRoutes } : {}),
  };
}

function toUser(r: UserRow): User {
  return {
    name: r.name,
    ipv4: r.ipv4,
    ipv6: r.ipv6,
    groups: r.groups ? r.groups.split(',') : [],
    status: r.status,
    createdAt: r.created_at,
    ...(r.cert_serial ? { certSerial: r.cert_serial } : {}),
    ...(r.not_after ? { certNotAfter: r.not_after } : {}),
  };
}

function toSummary(r: Omit<CertRow, 'cert_pem' | 'key_pem'>): CertSummary {
  return {
    serial: r.serial,
    kind: r.kind,
    subject: r.subject,
    notAfter: r.not_after,
    ...(r.revoked_at ? { revokedAt: r.revoked_at } : {}),
    ...(r.issuer ? { issuer: r.issuer } : {}),
    ...(r.issued_at ? { issuedAt: r.issued_at } : {}),
    ...(r.delivered_at ? { deliveredAt: r.delivered_at } : {}),
    ...(r.ca_state ? { caState: r.ca_state } : {}),
  };
}

function toCert(r: CertRow): StoredCert {
  return { ...toSummary(r), certPem: r.cert_pem, keyPem: r.key_pem };
}

export class SqliteStore implements FleetStore {
  private readonly db: Database.Database;

  constructor(file: string) {
    const fresh = file !== ':memory:' && !existsSync(file);
    // The store holds private keys: create it 0600 before SQLite opens it, so it is never
    // readable by others, not even for a moment.
    if (fresh) closeSync(openSync(file, 'wx', 0o600));
    this.db = new Database(file);
    this.refuseNewerSchema(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  /**
   * Migrations only run forward: a store a newer release has migrated further is left exactly as
   * it is (closed before any pragma writes to it), and the caller gets one line saying why.
   */
  private refuseNewerSchema(file: string): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version <= MIGRATIONS.length) return;
    this.db.close();
    throw new StoreTooNew(file, version, MIGRATIONS.length);
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

  createUsers(users: NewUser[], pools: Pools, now: Date, actor: string): User[] {
    return this.transaction(() => {
      const at = now.toISOString();
      this.purgeQuarantine(pools, now);
      const taken4 = new Set<bigint>();
      const taken6 = new Set<bigint>();
      const held = this.db
        .prepare<[], { a: string }>(
          'SELECT ipv4 AS a FROM users UNION ALL SELECT ipv6 FROM users UNION ALL SELECT address FROM released_addresses',
        )
        .all();
      for (const { a } of held) {
        const o4 = offsetOf(pools.ipv4, a);
        if (o4 !== undefined) taken4.add(o4);
        const o6 = offsetOf(pools.ipv6, a);
        if (o6 !== undefined) taken6.add(o6);
      }
      const allocator = new OffsetAllocator(pools.ipv4, pools.ipv6, taken4, taken6);
      const exists = this.db.prepare<[string], { id: number }>(
        'SELECT id FROM users WHERE name = ?',
      );
      const insertCert = this.db.prepare(
        `INSERT INTO certs (serial, kind, subject, not_after, cert_pem, key_pem, issuer, issued_at) VALUES (?, 'client', ?, ?, ?, ?, ${ISSUER_OR_ACTIVE}, ?)`,
      );
      const insertUser = this.db.prepare(
        `INSERT INTO users (name, ipv4, ipv6, status, cert_serial, created_at, updated_at) VALUES (?, ?, ?, 'enabled', ?, ?, ?)`,
      );
      const insertGroup = this.db.prepare(
        'INSERT INTO user_groups (user_id, group_name) VALUES (?, ?)',
      );
      const insertAudit = this.db.prepare(
        'INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)',
      );
      const created: User[] = [];
      for (const u of users) {
        if (exists.get(u.name)) throw new Conflict(`user ${u.name} already exists`);
        const pinned: { ipv4?: string; ipv6?: string } = {};
        for (const family of ['ipv4', 'ipv6'] as const) {
          const want = u[family];
          if (want === undefined) continue;
          const check = checkPinnable(pools[family], want);
          if (!check.ok) throw new InputError(family, check.reason);
          const taken = family === 'ipv4' ? taken4 : taken6;
          if (taken.has(offsetOf(pools[family], check.address)!)) {
            throw new Conflict(`${family} ${check.address} is already assigned or quarantined`);
          }
          pinned[family] = check.address;
        }
        const addr = allocator.next(pinned);
        if (!addr)
          throw new Conflict(
            `the user pools are full (${pools.ipv4.length}/${pools.ipv6.length}): cannot add ${u.name}`,
          );
        if (u.cert) {
          insertCert.run(
            u.cert.serial,
            u.name,
            u.cert.notAfter.toISOString(),
            u.cert.certPem,
            u.cert.keyPem,
            u.cert.issuer ?? null,
            at,
          );
        }
        const { lastInsertRowid } = insertUser.run(
          u.name,
          addr.ipv4,
          addr.ipv6,
          u.cert?.serial ?? null,
          at,
          at,
        );
        for (const g of [...new Set(u.groups)]) insertGroup.run(lastInsertRowid, g);
        insertAudit.run(
          at,
          actor,
          'user.add',
          u.name,
          JSON.stringify({ ...addr, groups: u.groups }),
        );
        created.push({
          name: u.name,
          ...addr,
          groups: [...new Set(u.groups)].sort(),
          status: 'enabled',
          createdAt: at,
          ...(u.cert
            ? { certSerial: u.cert.serial, certNotAfter: u.cert.notAfter.toISOString() }
            : {}),
        });
      }
      return created;
    });
  }

  attachCertIfNone(name: string, cert: NewCert, now: Date, actor: string): CertAttachment {
    return this.transaction(() => {
      const u = this.getUser(name);
      const at = now.toISOString();
      const attach = u !== undefined && u.certSerial === undefined && u.status !== 'revoked';
      this.insertClientCert(name, cert, at, !attach);
      if (!attach) {
        this.audit({
          at,
          actor,
          action: 'cert.discard',
          subject: name,
          detail: {
            serial: cert.serial,
            reason: u ? 'user already has a certificate' : 'no such user',
          },
        });
        return u ? { attached: false, user: u } : { attached: false };
      }
      this.db
        .prepare('UPDATE users SET cert_serial = ?, updated_at = ? WHERE name = ?')
        .run(cert.serial, at, name);
      this.audit({
        at,
        actor,
        action: 'user.cert',
        subject: name,
        detail: { serial: cert.serial },
      });
      return {
        attached: true,
        user: { ...u, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() },
      };
    });
  }

  private insertClientCert(name: string, cert: NewCert, at: string, revoked: boolean): void {
    this.db
      .prepare(
        `INSERT INTO certs (serial, kind, subject, not_after, cert_pem, key_pem, revoked_at, issuer, issued_at) VALUES (?, 'client', ?, ?, ?, ?, ?, ${ISSUER_OR_ACTIVE}, ?)`,
      )
      .run(
        cert.serial,
        name,
        cert.notAfter.toISOString(),
        cert.certPem,
        cert.keyPem,
        revoked ? at : null,
        cert.issuer ?? null,
        at,
      );
  }

  replaceClientCert(
    name: string,
    previous: string,
    cert: NewCert,
    now: Date,
    actor: string,
  ): CertAttachment {
    return this.transaction(() => {
      const u = this.getUser(name);
      const at = now.toISOString();
      const attach = u !== undefined && u.certSerial === previous && u.status !== 'revoked';
      this.insertClientCert(name, cert, at, !attach);
      if (!attach) {
        this.audit({
          at,
          actor,
          action: 'cert.discard',
          subject: name,
          detail: {
            serial: cert.serial,
            reason: !u
              ? 'no such user'
              : u.status === 'revoked'
                ? 'user is revoked'
                : 'the certificate was renewed meanwhile',
          },
        });
        return u ? { attached: false, user: u } : { attached: false };
      }
      this.db
        .prepare('UPDATE users SET cert_serial = ?, updated_at = ? WHERE name = ?')
        .run(cert.serial, at, name);
      this.audit({
        at,
        actor,
        action: 'user.cert.renew',
        subject: name,
        detail: {
          serial: cert.serial,
          previous,
          notAfter: cert.notAfter.toISOString(),
          ...(cert.issuer ? { issuer: cert.issuer } : {}),
        },
      });
      return {
        attached: true,
        user: { ...u, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() },
      };
    });
  }

  markCertDelivered(serial: string, at: Date): void {
    this.db
      .prepare('UPDATE certs SET delivered_at = coalesce(delivered_at, ?) WHERE serial = ?')
      .run(at.toISOString(), serial);
  }

  liveClientCerts(now: Date): CertSummary[] {
    return this.db
      .prepare<[string], Omit<CertRow, 'cert_pem' | 'key_pem'>>(
        `SELECT ${CERT_SUMMARY} FROM certs WHERE kind = 'client' AND revoked_at IS NULL AND not_after > ? ORDER BY subject, not_after`,
      )
      .all(now.toISOString())
      .map(toSummary);
  }

  clientCertsOf(name: string): CertSummary[] {
    return this.db
      .prepare<[string], Omit<CertRow, 'cert_pem' | 'key_pem'>>(
        `SELECT ${CERT_SUMMARY} FROM certs WHERE kind = 'client' AND subject = ? ORDER BY coalesce(issued_at, ''), not_after`,
      )
      .all(name)
      .map(toSummary);
  }

  usersWithoutCert(): string[] {
    return this.db
      .prepare<[], { name: string }>(
        `SELECT name FROM users WHERE cert_serial IS NULL AND status = 'enabled' ORDER BY name`,
      )
      .all()
      .map((r) => r.name);
  }

  private purgeQuarantine(pools: Pools, now: Date): void {
    const cutoff = new Date(now.getTime() - pools.quarantineDays * 86_400_000).toISOString();
    this.db.prepare('DELETE FROM released_addresses WHERE released_at <= ?').run(cutoff);
  }

  getUser(name: string): User | undefined {
    const row = this.db.prepare<[string], UserRow>(`${USER_SELECT} WHERE u.name = ?`).get(name);
    return row && toUser(row);
  }

  private mustGetUser(name: string): User {
    const u = this.getUser(name);
    if (!u) throw new NotFound(`no user named ${name}`);
    return u;
  }

  listUsers(): User[] {
    return this.db.prepare<[], UserRow>(`${USER_SELECT} ORDER BY u.name`).all().map(toUser);
  }

  searchUsers(search: UserSearch): UserPage {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (search.status !== undefined) {
      where.push('u.status = ?');
      args.push(search.status);
    }
    if (search.group !== undefined) {
      where.push('u.id IN (SELECT user_id FROM user_groups WHERE group_name = ?)');
      args.push(search.group);
    }
    if (search.q) {
      // A substring can use no B-tree index: this scans the users (~10 ms at 10,000). The
      // status and group conditions above are indexed and narrow the scan first. The groups
      // are matched by one uncorrelated subquery (evaluated once) rather than a lookup per
      // user, which measured about twice as slow.
      const like = containsPattern(search.q);
      where.push(
        `(u.name LIKE ? ESCAPE '\\' OR u.ipv4 LIKE ? ESCAPE '\\' OR u.ipv6 LIKE ? ESCAPE '\\'
          OR u.id IN (SELECT user_id FROM user_groups WHERE group_name LIKE ? ESCAPE '\\'))`,
      );
      args.push(like, like, like, like);
    }
    const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const order = userOrder(search.sort ?? 'name', search.descending ?? false);
    const limit = search.limit ?? -1;
    const offset = search.offset ?? 0;
    const count = () =>
      this.db
        .prepare<typeof args, { n: number }>(`SELECT count(*) AS n FROM users u ${filter}`)
        .get(...args)!.n;
    // One read transaction: the count and the page see the same users.
    return this.db
      .transaction(() => {
        let total: number;
        let ids: number[];
        if (!filter) {
          // Unfiltered: the page walks an index and stops; counting is cheap on its own.
          total = count();
          ids = this.db
            .prepare<[number, number], { id: number }>(
              `SELECT u.id FROM users u ORDER BY ${order} LIMIT ? OFFSET ?`,
            )
            .all(limit, offset)
            .map((r) => r.id);
        } else {
          // Filtered: one scan yields the page and, through the window, the number of matches.
          const rows = this.db
            .prepare<(string | number)[], { id: number; total: number }>(
              `SELECT u.id, count(*) OVER () AS total FROM users u ${filter} ORDER BY ${order} LIMIT ? OFFSET ?`,
            )
            .all(...args, limit, offset);
          ids = rows.map((r) => r.id);
          total = rows[0]?.total ?? (offset > 0 ? count() : 0);
        }
        // Then the full rows (groups, certificate) of the page alone, in the page's order.
        const byId = new Map(
          this.db
            .prepare<[string], UserRow>(
              `${USER_SELECT} WHERE u.id IN (SELECT value FROM json_each(?))`,
            )
            .all(JSON.stringify(ids))
            .map((r) => [r.id, toUser(r)]),
        );
        return { total, users: ids.map((id) => byId.get(id)!) };
      })
      .deferred();
  }

  setStatus(name: string, status: UserStatus, now: Date, actor: string): User {
    return this.transaction(() => {
      const u = this.mustGetUser(name);
      if (u.status === 'revoked' && status !== 'revoked') {
        throw new Conflict(
          `user ${name} is revoked: delete and add the user again to issue a new certificate`,
        );
      }
      const at = now.toISOString();
      this.db
        .prepare('UPDATE users SET status = ?, updated_at = ? WHERE name = ?')
        .run(status, at, name);
      this.audit({
        at,
        actor,
        action: `user.${status === 'enabled' ? 'enable' : status === 'disabled' ? 'disable' : 'revoke'}`,
        subject: name,
      });
      return { ...u, status };
    });
  }

  setGroups(name: string, groups: string[], now: Date, actor: string): User {
    return this.transaction(() => {
      const u = this.mustGetUser(name);
      const id = this.db
        .prepare<[string], { id: number }>('SELECT id FROM users WHERE name = ?')
        .get(name)!.id;
      this.db.prepare('DELETE FROM user_groups WHERE user_id = ?').run(id);
      const ins = this.db.prepare('INSERT INTO user_groups (user_id, group_name) VALUES (?, ?)');
      const unique = [...new Set(groups)].sort();
      for (const g of unique) ins.run(id, g);
      this.audit({
        at: now.toISOString(),
        actor,
        action: 'user.groups',
        subject: name,
        detail: { groups: unique },
      });
      return { ...u, groups: unique };
    });
  }

  deleteUser(name: string, now: Date, actor: string): User {
    return this.transaction(() => {
      const u = this.mustGetUser(name);
      const at = now.toISOString();
      const release = this.db.prepare(
        'INSERT OR REPLACE INTO released_addresses (address, user_name, released_at) VALUES (?, ?, ?)',
      );
      release.run(u.ipv4, name, at);
      release.run(u.ipv6, name, at);
      this.db.prepare('DELETE FROM users WHERE name = ?').run(name);
      this.audit({
        at,
        actor,
        action: 'user.delete',
        subject: name,
        detail: { ipv4: u.ipv4, ipv6: u.ipv6 },
      });
      return u;
    });
  }

  addressesHeld(pools: Pools, now: Date): number {
    const cutoff = new Date(now.getTime() - pools.quarantineDays * 86_400_000).toISOString();
    const users = this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM users').get()!.n;
    // A user holds one address per family; quarantine rows are per address, so halve them.
    const released = this.db
      .prepare<[string], { n: number }>(
        'SELECT count(*) AS n FROM released_addresses WHERE released_at > ?',
      )
      .get(cutoff)!.n;
    return users + Math.ceil(released / 2);
  }

  getCert(serial: string): StoredCert | undefined {
    const r = this.db
      .prepare<[string], CertRow>('SELECT * FROM certs WHERE serial = ?')
      .get(serial);
    return r && toCert(r);
  }

  getCa(): StoredCert | undefined {
    const r = this.db
      .prepare<[], CertRow>(
        `SELECT * FROM certs WHERE kind = 'ca' AND ca_state = 'active' ORDER BY not_after DESC LIMIT 1`,
      )
      .get();
    return r && toCert(r);
  }

  putCert(cert: StoredCert): void {
    this.db
      .prepare(
        'INSERT INTO certs (serial, kind, subject, not_after, cert_pem, key_pem, revoked_at, issuer, issued_at, delivered_at, ca_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        cert.serial,
        cert.kind,
        cert.subject,
        cert.notAfter,
        cert.certPem,
        cert.keyPem,
        cert.revokedAt ?? null,
        cert.issuer ?? null,
        cert.issuedAt ?? null,
        cert.deliveredAt ?? null,
        cert.caState ?? (cert.kind === 'ca' ? 'active' : null),
      );
  }

  setCaState(serial: string, state: CaState): void {
    const { changes } = this.db
      .prepare(`UPDATE certs SET ca_state = ? WHERE serial = ? AND kind = 'ca'`)
      .run(state, serial);
    if (!changes) throw new NotFound(`no CA with serial ${serial}`);
  }

  listCerts(kind?: StoredCert['kind']): StoredCert[] {
    const rows = kind
      ? this.db
          .prepare<[string], CertRow>('SELECT * FROM certs WHERE kind = ? ORDER BY subject')
          .all(kind)
      : this.db.prepare<[], CertRow>('SELECT * FROM certs ORDER BY kind, subject').all();
    return rows.map(toCert);
  }

  serverCert(name: string): StoredCert | undefined {
    const r = this.db
      .prepare<[string], CertRow>(
        // The newest signed is current: a renewal capped by its CA's notAfter expires no later.
        `SELECT * FROM certs WHERE kind = 'server' AND subject = ? AND revoked_at IS NULL ORDER BY coalesce(issued_at, '') DESC, not_after DESC LIMIT 1`,
      )
      .get(name);
    return r && toCert(r);
  }

  revokeCert(serial: string, at: Date): void {
    this.db
      .prepare('UPDATE certs SET revoked_at = coalesce(revoked_at, ?) WHERE serial = ?')
      .run(at.toISOString(), serial);
  }

  revokeClientCerts(name: string, at: Date): string[] {
    return this.transaction(() => {
      const serials = this.db
        .prepare<[string], { serial: string }>(
          `SELECT serial FROM certs WHERE kind = 'client' AND subject = ? AND revoked_at IS NULL ORDER BY serial`,
        )
        .all(name)
        .map((r) => r.serial);
      this.db
        .prepare(
          `UPDATE certs SET revoked_at = ? WHERE kind = 'client' AND subject = ? AND revoked_at IS NULL`,
        )
        .run(at.toISOString(), name);
      return serials;
    });
  }

  revokedCerts(): RevokedCert[] {
    return this.db
      .prepare<[], RevokedCert>(
        'SELECT serial, revoked_at AS revokedAt, issuer FROM certs WHERE revoked_at IS NOT NULL ORDER BY serial',
      )
      .all()
      .map((r) => (r.issuer ? r : { serial: r.serial, revokedAt: r.revokedAt }));
  }

  revocationState(): RevocationState {
    // One read transaction: in WAL mode it sees a single committed state of all three.
    return this.db
      .transaction(() => {
        const crlPem = this.getSetting('crl.pem');
        return {
          ...(crlPem !== undefined ? { crlPem } : {}),
          crlNumber: Number(this.getSetting('crl.number') ?? '0'),
          revoked: this.revokedCerts(),
        };
      })
      .deferred();
  }

  getSetting(key: string): string | undefined {
    return this.db
      .prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?')
      .get(key)?.value;
  }

  setSetting(key: string, value: string): void {
    this.db
      .prepare(
        'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  audit(entry: AuditEntry): void {
    this.db
      .prepare('INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)')
      .run(
        entry.at,
        entry.actor,
        entry.action,
        entry.subject,
        entry.detail ? JSON.stringify(entry.detail) : null,
      );
  }

  auditLog(limit: number): StoredAuditEntry[] {
    return this.auditQuery({ limit });
  }

  auditQuery(f: AuditFilter): StoredAuditEntry[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (cond: string, value: string | number) => {
      where.push(cond);
      args.push(value);
    };
    if (f.actor !== undefined) add('actor = ?', f.actor);
    if (f.subject !== undefined) add('subject = ?', f.subject);
    if (f.action !== undefined) add('action = ?', f.action);
    if (f.actionPrefix) {
      // A range instead of LIKE: it uses the index, and a prefix has no wildcard to escape.
      // The upper bound is the prefix with its last character moved up by one.
      const p = f.actionPrefix;
      add('action >= ?', p);
      add('action < ?', p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1));
    }
    // `at` is always written by toISOString(): string order is time order.
    if (f.since) add('at >= ?', f.since.toISOString());
    if (f.until) add('at < ?', f.until.toISOString());
    if (f.before !== undefined) add('id < ?', f.before);
    const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
    return this.db
      .prepare<(string | number)[], AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM audit ${filter} ORDER BY id DESC LIMIT ?`,
      )
      .all(...args, f.limit)
      .map(toAudit);
  }

  auditSince(afterId: number, limit: number): StoredAuditEntry[] {
    return this.db
      .prepare<[number, number], AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM audit WHERE id > ? ORDER BY id LIMIT ?`,
      )
      .all(afterId, limit)
      .map(toAudit);
  }

  lastAuditId(): number {
    return (
      this.db.prepare<[], { id: number | null }>('SELECT max(id) AS id FROM audit').get()!.id ?? 0
    );
  }

  pruneAudit(before: Date): number {
    // `at` is always written by toISOString(), so string order is time order.
    return this.db.prepare('DELETE FROM audit WHERE at < ?').run(before.toISOString()).changes;
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
    this.transaction(() => {
      const previous = new Map(
        this.db
          .prepare<[string], SessionRow>('SELECT * FROM sessions WHERE server = ?')
          .all(server)
          .map((r) => [sessionId({ user: r.user, since: r.since, clientId: r.client_id }), r]),
      );
      this.db.prepare('DELETE FROM sessions WHERE server = ?').run(server);
      const insert = this.db.prepare(
        `INSERT OR REPLACE INTO sessions (server, user, real_address, ipv4, ipv6, since, bytes_in, bytes_out, client_id, reported_at, first_seen)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      // A session seen before has its history row open already; a new one opens its row (or
      // opens it again, if it comes back after a report that missed it).
      const open = this.db.prepare(
        `INSERT INTO session_history (user, server, real_address, ipv4, ipv6, since, client_id)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (server, user, since, client_id) DO UPDATE SET until = NULL, reason = NULL`,
      );
      const live = new Set<string>();
      for (const s of report.sessions) {
        const id = sessionId(s);
        live.add(id);
        const before = previous.get(id);
        insert.run(
          server,
          s.user,
          s.realAddress,
          s.ipv4 ?? null,
          s.ipv6 ?? null,
          s.since,
          s.bytesIn,
          s.bytesOut,
          s.clientId,
          report.at,
          before ? (before.first_seen ?? before.reported_at) : report.at,
        );
        if (!before)
          open.run(
            s.user,
            server,
            s.realAddress,
            s.ipv4 ?? null,
            s.ipv6 ?? null,
            s.since,
            s.clientId,
          );
      }
      const ends = new Map((report.ended ?? []).map((e) => [sessionId(e), e]));
      const close = this.db.prepare(
        `UPDATE session_history SET until = ?, reason = ?, bytes_in = ?, bytes_out = ?
         WHERE server = ? AND user = ? AND since = ? AND client_id = ? AND until IS NULL`,
      );
      for (const [id, r] of previous) {
        if (live.has(id)) continue;
        const end = ends.get(id);
        close.run(
          end?.at ?? report.at,
          end?.reason ?? 'disconnect',
          r.bytes_in,
          r.bytes_out,
          server,
          r.user,
          r.since,
          r.client_id,
        );
      }
      this.recordHealth(server, report);
    });
  }

  recordHealth(server: string, report: Omit<ServerReport, 'sessions'>): void {
    this.db
      .prepare(
        `INSERT INTO servers (name, draining, health, bundle_digest, reported_at, routes) VALUES (?, 0, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET health = excluded.health, bundle_digest = excluded.bundle_digest,
           reported_at = excluded.reported_at, routes = excluded.routes`,
      )
      .run(
        server,
        JSON.stringify(report.health),
        report.bundleDigest ?? null,
        report.at,
        report.routes
          ? JSON.stringify({ ipv4: report.routes.ipv4, ipv6: report.routes.ipv6 })
          : null,
      );
  }

  sessionHistory(user: string, opts: { limit: number; after?: string }): HistoryEntry[] {
    // A live row shows the live session's counters; an ended one those it was last seen with.
    return this.db
      .prepare<[string, string | null, string | null, number], HistoryRow>(
        `SELECT h.user, h.server, h.real_address, h.ipv4, h.ipv6, h.since, h.until, h.reason,
                coalesce(s.bytes_in, h.bytes_in) AS bytes_in, coalesce(s.bytes_out, h.bytes_out) AS bytes_out
         FROM session_history h
         LEFT JOIN sessions s ON h.until IS NULL AND s.server = h.server AND s.user = h.user AND s.since = h.since
         WHERE h.user = ? AND (? IS NULL OR h.until IS NULL OR h.until >= ?)
         ORDER BY h.since DESC, h.id DESC LIMIT ?`,
      )
      .all(user, opts.after ?? null, opts.after ?? null, opts.limit)
      .map(toHistoryEntry);
  }

  pruneHistory(before: Date, keepPerUser: number): number {
    return this.transaction(() => {
      // `until` is always written by toISOString(), so string order is time order.
      const old = this.db
        .prepare('DELETE FROM session_history WHERE until IS NOT NULL AND until < ?')
        .run(before.toISOString()).changes;
      const beyond = this.db
        .prepare(
          `DELETE FROM session_history WHERE id IN (
             SELECT id FROM (
               SELECT id, row_number() OVER (PARTITION BY user ORDER BY since DESC, id DESC) AS n
               FROM session_history WHERE until IS NOT NULL)
             WHERE n > ?)`,
        )
        .run(keepPerUser).changes;
      return old + beyond;
    });
  }

  listSessions(server?: string): StoredSession[] {
    const order = 'ORDER BY server, user, since';
    const rows = server
      ? this.db
          .prepare<[string], SessionRow>(`SELECT * FROM sessions WHERE server = ? ${order}`)
          .all(server)
      : this.db.prepare<[], SessionRow>(`SELECT * FROM sessions ${order}`).all();
    return rows.map(toSession);
  }

  listServerStates(): ServerState[] {
    return this.db
      .prepare<[], ServerRow>('SELECT * FROM servers ORDER BY name')
      .all()
      .map(toServerState);
  }

  setDraining(name: string, draining: boolean, now: Date, actor: string): ServerState {
    return this.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO servers (name, draining) VALUES (?, ?)
           ON CONFLICT(name) DO UPDATE SET draining = excluded.draining`,
        )
        .run(name, draining ? 1 : 0);
      this.audit({
        at: now.toISOString(),
        actor,
        action: draining ? 'server.drain' : 'server.undrain',
        subject: name,
      });
      return toServerState(
        this.db.prepare<[string], ServerRow>('SELECT * FROM servers WHERE name = ?').get(name)!,
      );
    });
  }

  latestRollout(): RolloutRecord | undefined {
    const row = this.db
      .prepare<[], RolloutRow>('SELECT * FROM rollouts ORDER BY id DESC LIMIT 1')
      .get();
    return row ? toRollout(row) : undefined;
  }

  saveRollout(
    rollout: Omit<RolloutRecord, 'id'> & { id?: number },
    audit: AuditEntry[],
  ): RolloutRecord {
    return this.transaction(() => {
      const values = [
        rollout.strategy,
        rollout.status,
        rollout.startedBy,
        rollout.startedAt,
        rollout.updatedAt,
        JSON.stringify(rollout.steps),
        rollout.detail ?? null,
      ];
      let id = rollout.id;
      if (id === undefined) {
        id = Number(
          this.db
            .prepare(
              `INSERT INTO rollouts (strategy, status, started_by, started_at, updated_at, steps, detail)
               VALUES (?, ?, ?, ?, ?, ?, ?)`,
            )
            .run(...values).lastInsertRowid,
        );
      } else {
        const changed = this.db
          .prepare(
            `UPDATE rollouts SET strategy = ?, status = ?, started_by = ?, started_at = ?,
               updated_at = ?, steps = ?, detail = ? WHERE id = ?`,
          )
          .run(...values, id).changes;
        if (!changed) throw new NotFound(`no rollout ${id}`);
      }
      for (const e of audit) this.audit(e);
      return toRollout(
        this.db.prepare<[number], RolloutRow>('SELECT * FROM rollouts WHERE id = ?').get(id)!,
      );
    });
  }

  restartGenerations(): Map<string, number> {
    const rows = this.db
      .prepare<[], { server: string; generation: number }>('SELECT * FROM restart_generations')
      .all();
    return new Map(rows.map((r) => [r.server, r.generation]));
  }

  setRestartGeneration(server: string, generation: number): void {
    this.db
      .prepare(
        `INSERT INTO restart_generations (server, generation) VALUES (?, ?)
         ON CONFLICT(server) DO UPDATE SET generation = excluded.generation`,
      )
      .run(server, generation);
  }

  createAdmin(admin: NewAdmin, now: Date, actor: string): Admin {
    return this.transaction(() => {
      if (this.getAdmin(admin.name)) throw new Conflict(`admin ${admin.name} already exists`);
      const at = now.toISOString();
      this.db
        .prepare(
          `INSERT INTO admins (name, role, password_hash, must_change_password, created_at, updated_at, password_changed_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          admin.name,
          admin.role,
          admin.passwordHash,
          admin.mustChangePassword ? 1 : 0,
          at,
          at,
          at,
        );
      this.audit({
        at,
        actor,
        action: 'admin.add',
        subject: admin.name,
        detail: { role: admin.role, mustChangePassword: admin.mustChangePassword },
      });
      return this.getAdmin(admin.name)!;
    });
  }

  getAdmin(name: string): Admin | undefined {
    const r = this.db.prepare<[string], AdminRow>('SELECT * FROM admins WHERE name = ?').get(name);
    return r && toAdmin(r);
  }

  private mustGetAdmin(name: string): Admin {
    const a = this.getAdmin(name);
    if (!a) throw new NotFound(`no admin named ${name}`);
    return a;
  }

  listAdmins(): Admin[] {
    return this.db.prepare<[], AdminRow>('SELECT * FROM admins ORDER BY name').all().map(toAdmin);
  }

  /** Ends every session of `name` but `keep`; returns how many ended. */
  private endSessionsOf(name: string, keep?: string): number {
    return this.db
      .prepare('DELETE FROM admin_sessions WHERE admin = ? AND id_sha256 IS NOT ?')
      .run(name, keep ?? null).changes;
  }

  deleteAdmin(name: string, now: Date, actor: string): Admin {
    return this.transaction(() => {
      const admin = this.mustGetAdmin(name);
      const sessionsEnded = this.endSessionsOf(name);
      this.db.prepare('DELETE FROM admins WHERE name = ?').run(name);
      this.audit({
        at: now.toISOString(),
        actor,
        action: 'admin.remove',
        subject: name,
        detail: { role: admin.role, sessionsEnded },
      });
      return admin;
    });
  }

  setAdminRole(name: string, role: AdminRole, now: Date, actor: string): Admin {
    return this.transaction(() => {
      const before = this.mustGetAdmin(name);
      const at = now.toISOString();
      this.db
        .prepare('UPDATE admins SET role = ?, updated_at = ? WHERE name = ?')
        .run(role, at, name);
      const sessionsEnded = this.endSessionsOf(name);
      this.audit({
        at,
        actor,
        action: 'admin.role',
        subject: name,
        detail: { from: before.role, to: role, sessionsEnded },
      });
      return { ...before, role };
    });
  }

  setAdminPassword(
    name: string,
    change: { passwordHash: string; mustChangePassword: boolean; keepSession?: string },
    now: Date,
    actor: string,
  ): Admin {
    return this.transaction(() => {
      const before = this.mustGetAdmin(name);
      const at = now.toISOString();
      this.db
        .prepare(
          'UPDATE admins SET password_hash = ?, must_change_password = ?, updated_at = ?, password_changed_at = ? WHERE name = ?',
        )
        .run(change.passwordHash, change.mustChangePassword ? 1 : 0, at, at, name);
      const sessionsEnded = this.endSessionsOf(name, change.keepSession);
      this.audit({
        at,
        actor,
        action: 'admin.password',
        subject: name,
        detail: { mustChangePassword: change.mustChangePassword, sessionsEnded },
      });
      return {
        ...before,
        passwordHash: change.passwordHash,
        mustChangePassword: change.mustChangePassword,
        passwordChangedAt: at,
      };
    });
  }

  createAdminSession(session: AdminSession, actor: string): void {
    this.transaction(() => {
      // Checked in the same transaction: an admin removed a moment ago gets no new session.
      this.mustGetAdmin(session.admin);
      this.db
        .prepare(
          `INSERT INTO admin_sessions (id_sha256, admin, csrf_token, created_at, last_seen_at, address)
           VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .run(
          session.idSha256,
          session.admin,
          session.csrfToken,
          session.createdAt,
          session.lastSeenAt,
          session.address ?? null,
        );
      this.audit({
        at: session.createdAt,
        actor,
        action: 'admin.login',
        subject: session.admin,
        ...(session.address !== undefined ? { detail: { address: session.address } } : {}),
      });
    });
  }

  getAdminSession(idSha256: string): { session: AdminSession; admin: Admin } | undefined {
    // One read transaction: the session and its admin as of one instant.
    return this.db
      .transaction(() => {
        const r = this.db
          .prepare<[string], AdminSessionRow>('SELECT * FROM admin_sessions WHERE id_sha256 = ?')
          .get(idSha256);
        if (!r) return undefined;
        const admin = this.getAdmin(r.admin);
        return admin && { session: toAdminSession(r), admin };
      })
      .deferred();
  }

  touchAdminSession(idSha256: string, at: Date): void {
    this.db
      .prepare('UPDATE admin_sessions SET last_seen_at = ? WHERE id_sha256 = ?')
      .run(at.toISOString(), idSha256);
  }

  endAdminSession(idSha256: string, reason: string, now: Date, actor: string): boolean {
    return this.transaction(() => {
      const r = this.db
        .prepare<[string], AdminSessionRow>('SELECT * FROM admin_sessions WHERE id_sha256 = ?')
        .get(idSha256);
      if (!r) return false;
      this.db.prepare('DELETE FROM admin_sessions WHERE id_sha256 = ?').run(idSha256);
      this.audit({
        at: now.toISOString(),
        actor,
        action: 'admin.logout',
        subject: r.admin,
        detail: { reason },
      });
      return true;
    });
  }

  pruneAdminSessions(idleBefore: Date, createdBefore: Date): number {
    // Timestamps are all written by toISOString(), so string order is time order.
    return this.db
      .prepare('DELETE FROM admin_sessions WHERE last_seen_at < ? OR created_at < ?')
      .run(idleBefore.toISOString(), createdBefore.toISOString()).changes;
  }
}
