/**
 * The repository interface: the one contract of both engines, SQLite (sqlite.ts, embedded,
 * the default) and PostgreSQL (pg.ts). The services see only this; the engine is picked in
 * one place (src/service/open.ts). Everything is asynchronous because PostgreSQL answers over
 * the network; every write is atomic on its own, and several writes are made atomic together
 * with transaction(). contract.ts is the one test suite both engines pass.
 */
import type { Prefix } from '../core/ip.js';

export type UserStatus = 'enabled' | 'disabled' | 'revoked';

export interface User {
  name: string;
  ipv4: string;
  ipv6: string;
  groups: string[];
  status: UserStatus;
  createdAt: string;
  /** Serial of the current client certificate (lower-case hex). */
  certSerial?: string;
  certNotAfter?: string;
  /**
   * The groups the user's last successful SSO sign-in gave (ours, after auth.sso.groupMap;
   * possibly none) and when; absent before the first. Which groups count is decided by
   * core/session-groups.ts (effectiveGroups), not here: `groups` stay the spec's.
   */
  sessionGroups?: SessionGroups;
}

/** What one SSO sign-in said about a user's groups. */
export interface SessionGroups {
  groups: string[];
  /** When the sign-in finished (ISO 8601). */
  at: string;
}

export interface NewUser {
  name: string;
  groups: string[];
  ipv4?: string;
  ipv6?: string;
  /** Absent for bulk imports: the certificate is issued with the user's first profile. */
  cert?: NewCert;
}

export interface NewCert {
  serial: string;
  certPem: string;
  keyPem: string;
  notAfter: Date;
  /** Serial of the CA that signed it (absent: the active CA). */
  issuer?: string;
}

/**
 * A CA's place in a rollover: `next` is trusted but signs nothing yet, `active` signs, `retiring`
 * is still trusted for the certificates it signed, `retired` is trusted nowhere.
 */
export type CaState = 'next' | 'active' | 'retiring' | 'retired';

export interface StoredCert {
  serial: string;
  kind: 'ca' | 'server' | 'client';
  subject: string;
  notAfter: string;
  certPem: string;
  keyPem: string;
  revokedAt?: string;
  /** Serial of the signing CA; absent for a CA. */
  issuer?: string;
  /** When it was signed (absent for certificates from before migration 7). */
  issuedAt?: string;
  /** When a profile first carried it (client certificates). */
  deliveredAt?: string;
  /** CAs only. */
  caState?: CaState;
}

/** A certificate without its PEMs: what lifecycle decisions and views need. */
export type CertSummary = Omit<StoredCert, 'certPem' | 'keyPem'>;

export interface CertAttachment {
  attached: boolean;
  /** The user after the attempt; absent when no user has the name. */
  user?: User;
}

export interface RevokedCert {
  serial: string;
  revokedAt: string;
  /** Serial of the CA whose CRL lists it. */
  issuer?: string;
}

export interface RevocationState {
  crlPem?: string;
  /** Number of the current CRL; 0 before the first. */
  crlNumber: number;
  /** Ordered by serial. */
  revoked: RevokedCert[];
}

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  subject: string;
  detail?: Record<string, unknown>;
}

/** An audit entry as stored: its id orders entries and is never reused. */
export interface StoredAuditEntry extends AuditEntry {
  id: number;
}

/**
 * Which audit entries to read, newest first. Every field narrows; `since` is inclusive,
 * `until` exclusive; `before` is a cursor: only entries with a smaller id.
 */
export interface AuditFilter {
  actor?: string;
  subject?: string;
  /** The exact action (`user.revoke`). */
  action?: string;
  /** Actions starting with this (`session.`). */
  actionPrefix?: string;
  since?: Date;
  until?: Date;
  before?: number;
  limit: number;
}

export type UserSort = 'name' | 'created' | 'status';

/** A page of users, searched and sorted by the store (the console's Users page). */
export interface UserSearch {
  /**
   * A substring of the name, either address or a group, matched literally (`%` and `_` are no
   * wildcards) and ignoring ASCII case.
   */
  q?: string;
  status?: UserStatus;
  /** Members of this group only. */
  group?: string;
  offset?: number;
  /** At most this many; absent: all that match. */
  limit?: number;
  /** Default `name`; ties are broken by name, so pages never overlap. */
  sort?: UserSort;
  descending?: boolean;
}

export interface UserPage {
  /** How many users match, whatever the offset and limit. */
  total: number;
  users: User[];
}

export interface Pools {
  ipv4: Prefix;
  ipv6: Prefix;
  quarantineDays: number;
}

/** Who may do what (the same three roles as the wire contract's `Role`). */
export type AdminRole = 'viewer' | 'operator' | 'admin';

/** An admin account of the console and the API, as stored. */
export interface Admin {
  name: string;
  role: AdminRole;
  /** The self-describing KDF string (see src/service/passwords.ts); never the password. */
  passwordHash: string;
  /** A one-time password was set: the next sign-in may only change it. */
  mustChangePassword: boolean;
  createdAt: string;
  passwordChangedAt: string;
}

export interface NewAdmin {
  name: string;
  role: AdminRole;
  passwordHash: string;
  mustChangePassword: boolean;
}

/** A signed-in console session. The cookie's value itself is never stored, only its SHA-256. */
export interface AdminSession {
  /** Lower-case hex SHA-256 of the session id the browser holds. */
  idSha256: string;
  admin: string;
  csrfToken: string;
  createdAt: string;
  lastSeenAt: string;
  /** The client address that signed in (for the audit log and the console). */
  address?: string;
}

/**
 * A web sign-in (SSO at connect) in progress or finished: see src/controller/connect-auth/oidc.ts.
 * Secrets of the authorization request (state, nonce, PKCE verifier) live here only until it ends.
 */
export interface SsoSignIn {
  /** The random id of its start URL (`/sso/start/<id>`). */
  id: string;
  /** The id of the agent's request (WebSignInRequest.id), echoed in the result. */
  requestId: string;
  user: string;
  server: string;
  /** The VPN client's address as the server saw it. */
  remote: string;
  createdAt: string;
  expiresAt: string;
  /** Set when a browser opened the start URL (each opening replaces them). */
  started?: {
    at: string;
    state: string;
    nonce: string;
    codeVerifier: string;
    browserSha256: string;
  };
  finishedAt?: string;
  /** The outcome (WebSignInResult), once finished. */
  result?: Record<string, unknown>;
}

/** What finishing a sign-in by its callback's state found. */
export type SsoClaim =
  | { claimed: SsoSignIn }
  | { problem: 'unknown' }
  | { problem: 'finished' | 'expired'; signIn: SsoSignIn };

/** What renderers need from the store: a consistent view taken at one instant. */
export interface Snapshot {
  users: User[];
  ca: StoredCert;
  servers: Map<string, StoredCert>;
  crlPem: string;
  tlsCryptKey: string;
}

/** One live VPN session as last reported by the server's agent. */
export interface StoredSession {
  server: string;
  user: string;
  realAddress: string;
  ipv4?: string;
  ipv6?: string;
  since: string;
  bytesIn: number;
  bytesOut: number;
  clientId: number;
  reportedAt: string;
  /** When the controller first saw this session in a report (orders sessions of equal since). */
  firstSeen: string;
}

/** What the controller knows about one VPN server. */
/** What an agent last said about OpenVPN restarts (the wire's AgentRestart, src/api/rollout.ts). */
export interface RestartReport {
  generation: number;
  pending: boolean;
}

export interface ServerState {
  name: string;
  draining: boolean;
  /**
   * What its agent's last report said about restarts: null when it said nothing (an agent older
   * than rollouts); absent when no report has come since the store keeps it.
   */
  restart?: RestartReport | null;
  /** The health object of the last report (JSON). */
  health?: Record<string, unknown>;
  /** Digest of the bundle the agent says it has applied. */
  bundleDigest?: string;
  reportedAt?: string;
  /** The host routes its agent last reported; absent when its agent reports none. */
  routes?: HostRoutes;
}

/** /32 and /128 destinations, without a prefix length. */
export interface HostRoutes {
  ipv4: string[];
  ipv6: string[];
}

/** Why a session ended: see SessionEndReason in src/api/history.ts for each one's meaning. */
export type SessionEndReason =
  'disconnect' | 'eviction' | 'revoke' | 'disable' | 'delete' | 'drain' | 'killed' | 'server-lost';

/** How one session that a report no longer lists ended. */
export interface SessionEnd {
  user: string;
  since: string;
  clientId: number;
  reason: SessionEndReason;
  /** When it ended (ISO 8601). */
  at: string;
}

/** One session a user had (or has: `until` absent), in the location history. */
export interface HistoryEntry {
  user: string;
  server: string;
  realAddress: string;
  ipv4?: string;
  ipv6?: string;
  since: string;
  until?: string;
  /** The last reported counters (the live session's while it lasts). */
  bytesIn: number;
  bytesOut: number;
  reason?: SessionEndReason;
}

/** One agent report: the server's whole session list replaces the previous one. */
export interface ServerReport {
  at: string;
  health: Record<string, unknown>;
  /** What the agent says about restarts; absent: an agent older than rollouts. */
  restart?: RestartReport;
  bundleDigest?: string;
  sessions: Omit<StoredSession, 'server' | 'reportedAt' | 'firstSeen'>[];
  /** The host routes the server holds; absent: unknown (an agent that does not say). */
  routes?: HostRoutes;
  /**
   * How sessions the previous report listed and this one does not ended; one not named here
   * ended by `disconnect` at `at`.
   */
  ended?: SessionEnd[];
}

/**
 * Tells whether other writers (a CLI process, another controller) committed since the last
 * look. Separate from FleetStore because each backend detects change its own way (SQLite's
 * data_version, PostgreSQL's LISTEN/NOTIFY) and only the controller's watcher needs it.
 */
/** One server's part of a rollout (see RolloutStep in src/api/rollout.ts). */
export interface RolloutStepRecord {
  server: string;
  state: 'waiting' | 'draining' | 'restarting' | 'checking' | 'done' | 'skipped' | 'failed';
  since?: string;
  generation?: number;
  detail?: string;
  /** Restart it even without a pending change (`rollout start --all`). */
  force?: boolean;
}

/** A rolling restart of OpenVPN across the servers, as stored (see src/controller/rollout.ts). */
export interface RolloutRecord {
  id: number;
  strategy: 'rolling' | 'all-at-once';
  status: 'running' | 'paused' | 'failed' | 'done' | 'aborted';
  startedBy: string;
  startedAt: string;
  updatedAt: string;
  steps: RolloutStepRecord[];
  detail?: string;
}

export interface ChangeFeed {
  /**
   * An opaque token, compared only for equality: it moves when another writer commits; the
   * caller's own commits through the same store need not move it (neither engine's does).
   */
  version(): string | number;
  /**
   * Where the engine can tell them apart: a token that moves when another writer committed only
   * agents' reports (sessions, health: directives may change, bundles cannot), while version()
   * then stays. Absent: every change moves version().
   */
  sessionsVersion?(): string | number;
  /**
   * A push, where the engine has one (PostgreSQL's LISTEN): `listener` is called soon after a
   * token moves, so the watcher need not wait for its next poll. Returns the function that
   * stops it. Absent (SQLite): poll version().
   */
  onChange?(listener: () => void): () => void;
}

/**
 * Which of several controllers on one store takes the decisions that must be taken once
 * (auditing an eviction, advancing a rollout, the hourly PKI step, pruning): PostgreSQL's
 * session advisory lock, held by one controller's dedicated connection and lost with it;
 * SQLite's one controller always leads. Every controller still computes and serves the same
 * directives from the same store state.
 */
export interface Leadership {
  /** Whether this store leads now; it may change at any moment (a lost connection). */
  isLeader(): boolean;
}

/** A user's TOTP enrolment as stored (the secret sealed; see service/totp.ts). */
export interface StoredTotp {
  user: string;
  sealedSecret: string;
  createdAt: string;
  /** When the first code confirmed it; until then no connect asks for it. */
  confirmedAt?: string;
  /** The last time step accepted: a code is good once. */
  lastStep: number;
  recoveryCodesLeft: number;
}

export interface FleetStore {
  /** Waits for what is running, then closes the connection (or the pool). */
  close(): Promise<void>;
  /**
   * What the store takes on its disk: SQLite's file and its write-ahead log (recent commits
   * until a checkpoint), PostgreSQL's database as pg_database_size counts it.
   */
  sizeBytes(): Promise<number>;
  /** Adds users in one transaction; addresses come from the pools unless pinned. All or nothing. */
  createUsers(users: NewUser[], pools: Pools, now: Date, actor: string): Promise<User[]>;
  getUser(name: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  /** A filtered, sorted page of users; the filtering runs in the store, not in the caller. */
  searchUsers(search: UserSearch): Promise<UserPage>;
  setStatus(name: string, status: UserStatus, now: Date, actor: string): Promise<User>;
  setGroups(name: string, groups: string[], now: Date, actor: string): Promise<User>;
  /**
   * Stores a freshly signed client certificate of `name` and makes it the user's current one
   * only if the user exists, is not revoked and still has no certificate, all in one write
   * transaction. Otherwise (a concurrent request attached one first, the user is gone or
   * revoked) the certificate is stored already revoked: it was never handed out, and every
   * certificate ever signed stays in the store and so in the CRL.
   */
  attachCertIfNone(name: string, cert: NewCert, now: Date, actor: string): Promise<CertAttachment>;
  /** Users without a certificate yet. */
  usersWithoutCert(): Promise<string[]>;
  /** Removes the user; their addresses stay quarantined. Returns the certificate serial to revoke. */
  deleteUser(name: string, now: Date, actor: string): Promise<User>;
  /** Count of addresses held by users or in quarantine (for the pool-size rule). */
  addressesHeld(pools: Pools, now: Date): Promise<number>;

  getCert(serial: string): Promise<StoredCert | undefined>;
  /** The active CA: the one that signs new client certificates. */
  getCa(): Promise<StoredCert | undefined>;
  putCert(cert: StoredCert): Promise<void>;
  /** Moves a CA to another rollover state (the caller audits, in its transaction). */
  setCaState(serial: string, state: CaState): Promise<void>;
  /**
   * Renewal: stores `cert` for `name` and makes it the current one only if the user exists, is
   * not revoked and still has `previous` as the current certificate, in one write transaction;
   * the previous one stays valid until it expires. Otherwise (another renewal got there first,
   * the user was revoked or deleted) it is stored revoked, like attachCertIfNone's loser.
   * Audited `user.cert.renew` or `cert.discard`.
   */
  replaceClientCert(
    name: string,
    previous: string,
    cert: NewCert,
    now: Date,
    actor: string,
  ): Promise<CertAttachment>;
  /** Records the first time a profile carried the certificate; later calls keep that time. */
  markCertDelivered(serial: string, at: Date): Promise<void>;
  /** Client certificates neither revoked nor expired at `now`, by subject then notAfter. */
  liveClientCerts(now: Date): Promise<CertSummary[]>;
  /** Every client certificate ever issued under the name, oldest first. */
  clientCertsOf(name: string): Promise<CertSummary[]>;
  listCerts(kind?: StoredCert['kind']): Promise<StoredCert[]>;
  serverCert(name: string): Promise<StoredCert | undefined>;
  revokeCert(serial: string, at: Date): Promise<void>;
  /**
   * Revokes every client certificate ever issued to the name (current, orphaned by a lost
   * race, or of a deleted user of the same name); returns the serials newly revoked.
   */
  revokeClientCerts(name: string, at: Date): Promise<string[]>;
  revokedCerts(): Promise<RevokedCert[]>;
  /** The current CRL, its number and the revoked certificates, read at one instant. */
  revocationState(): Promise<RevocationState>;

  getTotp(user: string): Promise<StoredTotp | undefined>;
  /** Replaces the user's TOTP enrolment (unconfirmed) and recovery codes (their SHA-256). */
  putTotp(
    user: string,
    sealedSecret: string,
    recoverySha256: readonly string[],
    at: string,
  ): Promise<void>;
  confirmTotp(user: string, at: string): Promise<boolean>;
  /** Takes a time step if it is later than the last one taken (false: used already). */
  useTotpStep(user: string, step: number): Promise<boolean>;
  /** Uses an unused recovery code once (false: no such unused code). */
  useRecoveryCode(user: string, sha256: string, at: string): Promise<boolean>;
  deleteTotp(user: string): Promise<boolean>;
  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;
  /**
   * Runs fn in one write transaction and returns what fn returned, committed; when fn throws,
   * nothing of it is kept. Write transactions are serialised against every other writer of the
   * store (this process, another process, another controller): SQLite's BEGIN IMMEDIATE, a
   * PostgreSQL transaction that first takes the store's advisory write lock. So a check made
   * inside fn still holds when fn writes.
   *
   * Inside fn, `tx` and this store are the same: every call made from fn's async context
   * joins the transaction, and a nested transaction() joins it too (no savepoint: an error
   * anywhere aborts the whole). Keep fn short and free of other I/O (sign certificates
   * before, not inside): the write lock is held until fn settles. fn may be run again when
   * PostgreSQL reports a deadlock or a serialisation failure, so it must have no effect
   * outside the store; after a few attempts the store gives up with TransactionConflict.
   */
  transaction<T>(fn: (tx: FleetStore) => Promise<T>): Promise<T>;

  audit(entry: AuditEntry): Promise<void>;
  /** The newest entries first. */
  auditLog(limit: number): Promise<StoredAuditEntry[]>;
  /** Entries matching `filter`, newest first. */
  auditQuery(filter: AuditFilter): Promise<StoredAuditEntry[]>;
  /** Entries with an id above `afterId`, oldest first: for tailing the log (audit sinks). */
  auditSince(afterId: number, limit: number): Promise<StoredAuditEntry[]>;
  /**
   * The newest `limit` entries about `subject` with one of `actions` (at most 16), newest
   * first; bounded by actions × limit rows read, however long the subject's history (a user's
   * sign-ins among all their connects, for the console's location history).
   */
  auditForSubject(
    subject: string,
    actions: readonly string[],
    limit: number,
  ): Promise<StoredAuditEntry[]>;
  /** The id of the newest entry, 0 when there is none. */
  lastAuditId(): Promise<number>;
  /** Deletes audit entries recorded before `before` (a retention limit); returns how many. */
  pruneAudit(before: Date): Promise<number>;

  /**
   * Replaces every session of `server` and records its report, in one transaction: the location
   * history gains a row for each new session and closes the row of each session gone.
   */
  recordReport(server: string, report: ServerReport): Promise<void>;
  /**
   * Records a report's health and applied bundle but leaves the server's sessions as they are:
   * for an agent that could not read its sessions.
   */
  recordHealth(server: string, report: Omit<ServerReport, 'sessions'>): Promise<void>;
  /** Sessions of every server (or one), ordered by server, user, since. */
  listSessions(server?: string): Promise<StoredSession[]>;
  listServerStates(): Promise<ServerState[]>;
  /**
   * The sessions `user` had and has, newest first; only those that ended at or after `after`
   * (or are live), when given: a name reused by a new user does not inherit the old history.
   */
  sessionHistory(user: string, opts: { limit: number; after?: string }): Promise<HistoryEntry[]>;
  /**
   * Deletes history rows of sessions that ended before `before`, and beyond the newest
   * `keepPerUser` ended rows of each user; live rows stay. Returns how many went.
   */
  pruneHistory(before: Date, keepPerUser: number): Promise<number>;
  setDraining(name: string, draining: boolean, now: Date, actor: string): Promise<ServerState>;

  /** The newest rollout, or undefined before the first. */
  latestRollout(): Promise<RolloutRecord | undefined>;
  /**
   * Writes a rollout (a new one when `id` is absent) and its audit entries in one transaction;
   * returns it as stored.
   */
  saveRollout(
    rollout: Omit<RolloutRecord, 'id'> & { id?: number },
    audit: AuditEntry[],
  ): Promise<RolloutRecord>;
  /** Every server's restart generation (absent: 0). */
  restartGenerations(): Promise<Map<string, number>>;
  setRestartGeneration(server: string, generation: number): Promise<void>;

  /** Adds an admin account (Conflict when the name is taken); audited `admin.add`. */
  createAdmin(admin: NewAdmin, now: Date, actor: string): Promise<Admin>;
  getAdmin(name: string): Promise<Admin | undefined>;
  /** Ordered by name. */
  listAdmins(): Promise<Admin[]>;
  /** Removes the account and ends its sessions (NotFound when absent); audited `admin.remove`. */
  deleteAdmin(name: string, now: Date, actor: string): Promise<Admin>;
  /** Changes the role and ends the admin's sessions; audited `admin.role`. */
  setAdminRole(name: string, role: AdminRole, now: Date, actor: string): Promise<Admin>;
  /**
   * Replaces the password hash and ends the admin's sessions, except `keepSession` (the
   * SHA-256 of the session that changed its own password); audited `admin.password`.
   */
  setAdminPassword(
    name: string,
    change: { passwordHash: string; mustChangePassword: boolean; keepSession?: string },
    now: Date,
    actor: string,
  ): Promise<Admin>;
  /** Stores a new session of an existing admin (NotFound when removed meanwhile); audited `admin.login`. */
  createAdminSession(session: AdminSession, actor: string): Promise<void>;
  /** The session and its admin, or undefined. */
  getAdminSession(idSha256: string): Promise<{ session: AdminSession; admin: Admin } | undefined>;
  /** Records activity (not audited: bookkeeping, not a change anyone made). */
  touchAdminSession(idSha256: string, at: Date): Promise<void>;
  /**
   * Ends one session; true when it existed. Audited `admin.logout` with `reason` (logout, idle,
   * expired).
   */
  endAdminSession(idSha256: string, reason: string, now: Date, actor: string): Promise<boolean>;
  /**
   * Deletes sessions idle since before `idleBefore` or created before `createdBefore`; returns
   * how many. Not audited one by one: nobody ended them, they lapsed.
   */
  pruneAdminSessions(idleBefore: Date, createdBefore: Date): Promise<number>;

  /** Stores a new web sign-in (not audited: nothing happened yet). */
  createSsoSignIn(signIn: Omit<SsoSignIn, 'started' | 'finishedAt' | 'result'>): Promise<void>;
  getSsoSignIn(id: string): Promise<SsoSignIn | undefined>;
  /** The sign-in opened for an agent's request id (SignIns' id), for a controller taking it over. */
  ssoSignInOfRequest(requestId: string): Promise<SsoSignIn | undefined>;
  /**
   * Records the authorization request a browser was sent with, replacing an earlier one (the
   * start URL opened again); false when the sign-in is unknown, finished or expired at `now`.
   */
  startSsoSignIn(
    id: string,
    started: NonNullable<SsoSignIn['started']>,
    now: Date,
  ): Promise<boolean>;
  /**
   * Marks the sign-in whose authorization request had `state` as finished, at most once
   * whatever the number of controllers: the callback that gets `claimed` completes it; a replay
   * finds it `finished`; one past its expiry is marked finished and reported `expired`.
   */
  claimSsoSignIn(state: string, now: Date): Promise<SsoClaim>;
  /**
   * Stores the outcome of a claimed sign-in, forgets its secrets, and audits it, atomically.
   * `sessionGroups` (a successful sign-in's groups, ours after the map) become the sign-in's
   * user's `sessionGroups`, at the audit entry's time, in the same transaction.
   */
  finishSsoSignIn(
    id: string,
    result: Record<string, unknown>,
    audit: AuditEntry,
    sessionGroups?: string[],
  ): Promise<void>;
  /** Outcomes of those of `ids` that have finished. */
  ssoResults(ids: string[]): Promise<Map<string, Record<string, unknown>>>;
  /** Deletes sign-ins created before `before`; returns how many. */
  pruneSsoSignIns(before: Date): Promise<number>;
}
