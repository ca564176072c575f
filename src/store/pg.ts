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
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { InputError, StoreTooNew, TransactionConflict } from '../errors.js';
import { MIGRATIONS } from './migrations.js';
import { POSTGRES, type Sql, type SqlParam, postgresDdl } from './sql.js';
import { SqlStore } from './sql-store.js';

/** pg_advisory_xact_lock keys ("ovpn" and "migr" in ASCII), fixed for every controller. */
const WRITE_LOCK = 0x6f76706e;
const MIGRATION_LOCK = 0x6d696772;
/** Attempts of a write transaction that PostgreSQL aborts with 40001 or 40P01. */
const ATTEMPTS = 5;
const RETRYABLE = new Set(['40001', '40P01']);

/** BIGINT (count(*), ids, byte counters) as a number: exact up to 2^53, far beyond our counts. */
const TYPES = new pg.TypeOverrides();
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

  constructor(private readonly db: pg.Pool | pg.PoolClient) {}

  async all<T>(sql: string, params: SqlParam[] = []): Promise<T[]> {
    const r = await this.db.query({ text: toPositional(sql), values: params });
    return r.rows as T[];
  }

  async get<T>(sql: string, params: SqlParam[] = []): Promise<T | undefined> {
    return (await this.all<T>(sql, params))[0];
  }

  async run(sql: string, params: SqlParam[] = []): Promise<number> {
    const r = await this.db.query({ text: toPositional(sql), values: params });
    return r.rowCount ?? 0;
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

export type PgStoreOptions = pg.PoolConfig;

export class PgStore extends SqlStore {
  private readonly pool: pg.Pool;
  protected readonly autoCommit: Sql;

  private constructor(config: PgStoreOptions) {
    super();
    this.pool = new pg.Pool({ max: 10, ...config, types: TYPES });
    // An idle client that loses its server emits 'error' on the pool; unhandled, that would
    // end the process. The next query gets a fresh client (and its own error, if still down).
    this.pool.on('error', () => undefined);
    this.autoCommit = new PgSql(this.pool);
  }

  /** Connects, applies the migrations this database lacks, and returns the store. */
  static async open(config: PgStoreOptions): Promise<PgStore> {
    const store = new PgStore(config);
    try {
      await store.migrate();
    } catch (err) {
      await store.pool.end();
      throw err;
    }
    return store;
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

  private async inTransaction<T>(
    begin: string,
    fn: (sql: Sql) => Promise<T>,
    lock?: number,
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
