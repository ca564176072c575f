/**
 * The PostgreSQL engine of FleetStore (node-postgres 8: a mature pool, LISTEN/NOTIFY on a
 * dedicated client for the next step, runs on Node 20): a pool, the migrations, the
 * transactions. The SQL itself is in the aggregates (users.ts, certs.ts, …) behind
 * sql-store.ts, the same as SQLite's.
 *
 * Transactions: every write transaction starts by taking one transaction-level advisory lock
 * (pg_advisory_xact_lock), so writers — in this process, in another controller — run one after
 * another, exactly as SQLite's BEGIN IMMEDIATE makes them. Chosen over SERIALIZABLE because
 * each aggregate was written for serial writers and is tested under them on both engines: the
 * address allocator reads every held address and then inserts, which under SERIALIZABLE makes
 * nearly every two concurrent creations conflict (abort, retry) instead of wait. The lock is
 * released at COMMIT, so ids (the audit log's) are committed in the order they were taken. A
 * deadlock (40P01) or serialisation failure (40001) — still possible between a transaction
 * and a lock-free statement — rolls back and runs the callback again, a few times, then gives
 * up with TransactionConflict. Reads that must agree run in one REPEATABLE READ READ ONLY
 * transaction (one snapshot).
 *
 * The connection string comes from the environment or a file, never from argv (visible in ps):
 * see postgresUrlFrom().
 *
 * Connection loss: node-postgres' pool hands each query a live client or opens a new one, so
 * the store reconnects by itself on the next query once PostgreSQL is back; meanwhile queries
 * fail (the controller keeps serving its last bundles). The store logs the loss once, with its
 * reason, and the recovery once (see `health`).
 *
 * Across controllers (pg-session.ts): every committed write transaction sends a NOTIFY
 * (pg_notify in the transaction, so only a commit delivers it) naming the store that wrote and
 * what it changed; each controller's store LISTENs on one dedicated connection, which also
 * holds the leader's advisory lock.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import {
  FleetError,
  InputError,
  StoreTooNew,
  StoreUnavailable,
  TransactionConflict,
} from '../errors.js';
import { MIGRATIONS } from './migrations.js';
import { CHANGES_CHANNEL, PgSession } from './pg-session.js';
import { POSTGRES, type Sql, type SqlParam, postgresDdl } from './sql.js';
import { type ChangeScope, SqlStore } from './sql-store.js';
import type { ChangeFeed, Leadership } from './types.js';

/** pg_advisory_xact_lock keys ("ovpn" and "migr" in ASCII), fixed for every controller. */
const WRITE_LOCK = 0x6f76706e;
const MIGRATION_LOCK = 0x6d696772;
/** Attempts of a write transaction that PostgreSQL aborts with 40001 or 40P01. */
const ATTEMPTS = 5;
const RETRYABLE = new Set(['40001', '40P01']);

/** BIGINT (count(*), ids, byte counters) as a number: exact up to 2^53, far beyond our counts. */
export const TYPES = new pg.TypeOverrides();
TYPES.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

/** `?` placeholders (the aggregates' one dialect) as PostgreSQL's `$1, $2, …`. */
const positional = new Map<string, string>();
export function toPositional(sql: string): string {
  let out = positional.get(sql);
  if (out !== undefined) return out;
  let n = 0;
  let quote: string | undefined;
  out = '';
  for (const c of sql) {
    if (quote) {
      if (c === quote) quote = undefined;
      out += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      out += c;
    } else out += c === '?' ? `$${++n}` : c;
  }
  positional.set(sql, out);
  return out;
}

class PgSql implements Sql {
  readonly dialect = POSTGRES;

  constructor(
    private readonly db: pg.Pool | pg.PoolClient,
    private readonly health?: ConnectionHealth,
  ) {}

  private async query(sql: string, params: SqlParam[]): Promise<pg.QueryResult> {
    // Only the pool's own statements tell the connection's health: a transaction's client
    // was checked out (and so connected) already.
    if (!this.health) return this.db.query({ text: toPositional(sql), values: params });
    return this.health.watch(() => this.db.query({ text: toPositional(sql), values: params }));
  }

  async all<T>(sql: string, params: SqlParam[] = []): Promise<T[]> {
    return (await this.query(sql, params)).rows as T[];
  }

  async get<T>(sql: string, params: SqlParam[] = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  async run(sql: string, params: SqlParam[] = []): Promise<number> {
    return (await this.query(sql, params)).rowCount ?? 0;
  }
}

/**
 * Errors that say the connection, not the statement, failed: the socket (refused, reset, gone),
 * SQLSTATE class 08 (connection exception), 57P01-03 (the server shutting down or starting),
 * 53300 (too many connections), and node-postgres' own "Connection terminated".
 */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^(E[A-Z]+)$/.test(code))
      return [
        'ECONNREFUSED',
        'ECONNRESET',
        'ENOENT',
        'EPIPE',
        'ETIMEDOUT',
        'EHOSTUNREACH',
        'ENETUNREACH',
        'ENOTFOUND',
        'EAI_AGAIN',
      ].includes(code);
    if (code.startsWith('08') || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
  }
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(
    message,
  );
}

/**
 * Where the store is, for messages: user, host, port and database; never the password. A
 * connection string's password is dropped before anything is shown.
 */
export function describeTarget(config: pg.PoolConfig): string {
  let host = config.host;
  let port: string | number | undefined = config.port;
  let database = config.database;
  let user = config.user;
  if (config.connectionString) {
    try {
      const url = new URL(config.connectionString);
      host = decodeURIComponent(url.hostname) || url.searchParams.get('host') || host;
      port = url.port || port;
      database = decodeURIComponent(url.pathname.replace(/^\//, '')) || database;
      user = decodeURIComponent(url.username) || user;
    } catch {
      return 'PostgreSQL (the connection string in OVPN_FLEET_DATABASE_URL is not a URL)';
    }
  }
  return `PostgreSQL ${user ? `${user}@` : ''}${host ?? 'localhost'}${port ? `:${port}` : ''}/${database ?? user ?? ''}`;
}

/** A message of PostgreSQL or node-postgres with any password of the connection string cut. */
function reasonOf(err: unknown, config: pg.PoolConfig): string {
  let text = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  if (!text && err instanceof AggregateError) text = err.errors.map((e) => String(e)).join('; ');
  const code = (err as { code?: unknown } | null)?.code;
  if (!text && typeof code === 'string') text = code;
  try {
    const password = config.connectionString ? new URL(config.connectionString).password : '';
    if (password)
      text = text.split(decodeURIComponent(password)).join('***').split(password).join('***');
  } catch {
    // not a URL: nothing to cut
  }
  if (typeof config.password === 'string' && config.password)
    text = text.split(config.password).join('***');
  return text;
}

/**
 * Says once that the connection to PostgreSQL was lost (with the reason) and once that it came
 * back, however many queries fail or succeed in between.
 */
class ConnectionHealth {
  private down = false;
  /** Losses so far: a query that started before the last one says nothing by succeeding. */
  private losses = 0;

  constructor(
    private readonly target: string,
    private readonly reason: (err: unknown) => string,
    private readonly log: (line: string) => void,
  ) {}

  async watch<T>(fn: () => Promise<T>): Promise<T> {
    const seen = this.losses;
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      this.lost(err);
      // One line for the API (503) and the CLI (69), not node-postgres' stack.
      throw new StoreUnavailable(`${this.target} is unreachable: ${this.reason(err)}`);
    }
    if (seen === this.losses) this.back();
    return result;
  }

  lost(err: unknown): void {
    this.losses++;
    if (this.down) return;
    this.down = true;
    this.log(
      `lost the connection to ${this.target}: ${this.reason(err)}; retrying with each request`,
    );
  }

  back(): void {
    if (!this.down) return;
    this.down = false;
    this.log(`connected to ${this.target} again`);
  }
}

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Where the store is, from the environment, never argv: OVPN_FLEET_DATABASE_URL, or
 * OVPN_FLEET_DATABASE_URL_FILE naming a file that holds it (a secret mounted by systemd's
 * LoadCredential, Kubernetes, …). Undefined when neither is set (SQLite).
 */
export function postgresUrlFrom(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const direct = env.OVPN_FLEET_DATABASE_URL;
  const file = env.OVPN_FLEET_DATABASE_URL_FILE;
  if (direct && file)
    throw new InputError(
      'OVPN_FLEET_DATABASE_URL',
      'and OVPN_FLEET_DATABASE_URL_FILE are both set: set one',
    );
  if (direct) return direct;
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new InputError('OVPN_FLEET_DATABASE_URL_FILE', `cannot read ${file}: ${String(err)}`);
  }
  if (!text) throw new InputError('OVPN_FLEET_DATABASE_URL_FILE', `${file} is empty`);
  return text;
}

export interface PgStoreOptions extends pg.PoolConfig {
  /** Where connection losses and recoveries are told; default: standard error. */
  log?: (line: string) => void;
  /**
   * How often the dedicated connection (change feed, leadership) checks itself, tries for
   * the leader's lock, and reconnects after a loss (default 1000 ms).
   */
  sessionIntervalMs?: number;
}

/** The options node-postgres knows, without ours. */
function connectionConfig(options: PgStoreOptions): pg.PoolConfig {
  const config: PgStoreOptions = { ...options };
  delete config.log;
  delete config.sessionIntervalMs;
  return config;
}

export class PgStore extends SqlStore {
  private readonly pool: pg.Pool;
  protected readonly autoCommit: Sql;
  /** Names this store in its NOTIFYs, so that its own commits do not move its own feed. */
  readonly id = randomUUID();
  readonly target: string;
  private readonly health: ConnectionHealth;
  private session: PgSession | undefined;

  private constructor(private readonly config: PgStoreOptions) {
    super();
    const poolConfig = connectionConfig(config);
    const log = config.log ?? ((line: string) => process.stderr.write(`store: ${line}\n`));
    this.target = describeTarget(config);
    this.health = new ConnectionHealth(this.target, (err) => reasonOf(err, config), log);
    // connectionTimeoutMillis: node-postgres waits forever by default for a host that drops
    // packets; a request must fail instead, and the next one try again.
    this.pool = new pg.Pool({
      max: 10,
      connectionTimeoutMillis: 10_000,
      ...poolConfig,
      types: TYPES,
    });
    // An idle client that loses its server emits 'error' on the pool; unhandled, that would
    // end the process. The next query gets a fresh client (and its own error, if still down).
    this.pool.on('error', (err) => this.health.lost(err));
    this.autoCommit = new PgSql(this.pool, this.health);
  }

  /**
   * Connects, applies the migrations this database lacks, and returns the store. A database
   * that cannot be reached or refuses us is StoreUnavailable: one line naming host and
   * database, never the password.
   */
  static async open(config: PgStoreOptions): Promise<PgStore> {
    const store = new PgStore(config);
    try {
      await store.migrate();
    } catch (err) {
      await store.pool.end().catch(() => undefined);
      if (err instanceof FleetError) throw err;
      throw new StoreUnavailable(`cannot use ${store.target}: ${reasonOf(err, config)}`);
    }
    return store;
  }

  async sizeBytes(): Promise<number> {
    const row = await this.autoCommit.get<{ bytes: number }>(
      'SELECT pg_database_size(current_database()) AS bytes',
    );
    return row?.bytes ?? 0;
  }

  /** The dedicated connection, started by the first who needs it (a controller, not the CLI). */
  private sessionClient(): PgSession {
    this.session ??= new PgSession({
      config: { ...this.pgConfig(), types: TYPES },
      storeId: this.id,
      intervalMs: this.config.sessionIntervalMs ?? 1000,
      health: this.health,
    });
    return this.session;
  }

  private pgConfig(): pg.ClientConfig {
    const rest: pg.PoolConfig = connectionConfig(this.config);
    delete rest.max;
    return { connectionTimeoutMillis: 10_000, ...rest };
  }

  /**
   * Moves when another store (another controller, a CLI process) commits: PostgreSQL's
   * NOTIFY, received on the dedicated connection, with a push for the watcher. This store's own
   * commits do not move it (they carry its id). After the dedicated connection was lost it
   * moves once on reconnecting: what was committed meanwhile was not heard.
   */
  changeFeed(): ChangeFeed {
    const session = this.sessionClient();
    return {
      version: () => session.fleetVersion,
      sessionsVersion: () => session.sessionsVersion,
      onChange: (listener) => session.onChange(listener),
    };
  }

  /** Leads while its dedicated connection holds the leader's advisory lock. */
  leadership(): Leadership {
    const session = this.sessionClient();
    session.wantLeadership();
    return { isLeader: () => session.leader };
  }

  protected override async beforeCommit(sql: Sql, scopes: ReadonlySet<ChangeScope>): Promise<void> {
    const scope = scopes.has('fleet') ? 'fleet' : 'sessions';
    await sql.run(`SELECT pg_notify(?, ? || ' ' || current_schema())`, [
      CHANGES_CHANNEL,
      `${this.id} ${scope}`,
    ]);
  }

  /**
   * Forward-only: schema_migrations lists the migrations applied. Two controllers starting
   * at once take turns on an advisory lock, and the second finds nothing left to do.
   */
  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)`,
      );
      const { rows } = await client.query<{ v: number }>(
        'SELECT coalesce(max(version), 0) AS v FROM schema_migrations',
      );
      const applied = rows[0].v;
      if (applied > MIGRATIONS.length)
        // Another controller, of a newer release, migrated it further.
        throw new StoreTooNew('the PostgreSQL store', applied, MIGRATIONS.length);
      for (let i = applied; i < MIGRATIONS.length; i++) {
        await client.query(postgresDdl(MIGRATIONS[i]));
        await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [
          i + 1,
          new Date().toISOString(),
        ]);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.session?.close();
    await this.pool.end();
  }

  protected async writeTransaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.inTransaction('BEGIN', fn, WRITE_LOCK);
      } catch (err) {
        const code = sqlState(err);
        if (!code || !RETRYABLE.has(code)) throw err;
        if (attempt >= ATTEMPTS)
          throw new TransactionConflict(
            `store: the transaction kept colliding with other writers (${code}) after ${ATTEMPTS} attempts`,
          );
        await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
      }
    }
  }

  protected readTransaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.inTransaction('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY', fn);
  }

  private inTransaction<T>(begin: string, fn: (sql: Sql) => Promise<T>, lock?: number): Promise<T> {
    return this.health.watch(() => this.inClient(begin, fn, lock));
  }

  private async inClient<T>(
    begin: string,
    fn: (sql: Sql) => Promise<T>,
    lock: number | undefined,
  ): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query(begin);
      try {
        if (lock !== undefined) await client.query('SELECT pg_advisory_xact_lock($1)', [lock]);
        const result = await fn(new PgSql(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => (broken = true));
        throw err;
      }
    } finally {
      // A client whose ROLLBACK failed may be mid-transaction: it is closed, not reused.
      client.release(broken);
    }
  }
}
