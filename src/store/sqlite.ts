/**
 * The SQLite engine of FleetStore (better-sqlite3; embedded, the default): the connection,
 * the migrations and the transactions. The SQL itself is in the aggregates (users.ts,
 * certs.ts, …) behind sql-store.ts.
 *
 * Writes run in BEGIN IMMEDIATE transactions so that concurrent `user add` processes are
 * serialised by SQLite's write lock (busy_timeout waits) and never pick the same address;
 * the UNIQUE constraints are the last line of defence. better-sqlite3 is synchronous and this
 * process has one connection: while a transaction's callback awaits, any other statement on
 * the connection would land inside that transaction (and see its uncommitted rows). So one
 * in-process lock orders everything: a transaction holds it from BEGIN to COMMIT, and each
 * statement outside a transaction waits for it — uncontended, it runs at once.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { StoreTooNew } from '../errors.js';
import { MIGRATIONS } from './migrations.js';
import { SQLITE, type Sql, type SqlParam } from './sql.js';
import { SqlStore } from './sql-store.js';
import type { ChangeFeed, Leadership } from './types.js';

export { containsPattern } from './users.js';

/** First come, first served; `run` holds it for fn's whole (async) life. */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  private held = false;

  get busy(): boolean {
    return this.held;
  }

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(async () => {
      this.held = true;
      try {
        return await fn();
      } finally {
        this.held = false;
      }
    });
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** better-sqlite3 behind the Sql seam, with each statement prepared once. */
class SqliteSql implements Sql {
  readonly dialect = SQLITE;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  prepare(sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) this.statements.set(sql, (stmt = this.db.prepare(sql)));
    return stmt;
  }

  getNow<T>(sql: string, params: SqlParam[] = []): T | undefined {
    return this.prepare(sql).get(...params) as T | undefined;
  }

  get<T>(sql: string, params: SqlParam[] = []): Promise<T | undefined> {
    return Promise.resolve(this.getNow<T>(sql, params));
  }

  all<T>(sql: string, params: SqlParam[] = []): Promise<T[]> {
    return Promise.resolve(this.prepare(sql).all(...params) as T[]);
  }

  run(sql: string, params: SqlParam[] = []): Promise<number> {
    const stmt = this.prepare(sql);
    // A statement with RETURNING is a reader: better-sqlite3 runs it with all().
    return Promise.resolve(stmt.reader ? stmt.all(...params).length : stmt.run(...params).changes);
  }
}

/** Statements outside transactions: each waits until no transaction holds the connection. */
class QueuedSql implements Sql {
  readonly dialect = SQLITE;

  constructor(
    private readonly direct: SqliteSql,
    private readonly lock: Lock,
  ) {}

  private when<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.busy ? this.lock.run(fn) : fn();
  }

  get<T>(sql: string, params?: SqlParam[]): Promise<T | undefined> {
    return this.when(() => this.direct.get<T>(sql, params));
  }

  all<T>(sql: string, params?: SqlParam[]): Promise<T[]> {
    return this.when(() => this.direct.all<T>(sql, params));
  }

  run(sql: string, params?: SqlParam[]): Promise<number> {
    return this.when(() => this.direct.run(sql, params));
  }
}

export class SqliteStore extends SqlStore {
  private readonly db: Database.Database;
  private readonly direct: SqliteSql;
  private readonly lock = new Lock();
  protected readonly autoCommit: Sql;

  constructor(private readonly file: string) {
    super();
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
    this.direct = new SqliteSql(this.db);
    this.autoCommit = new QueuedSql(this.direct, this.lock);
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

  /** Forward-only: PRAGMA user_version holds how many of MIGRATIONS are applied. */
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

  async close(): Promise<void> {
    await this.lock.run(() => this.db.close());
  }

  sizeBytes(): Promise<number> {
    let total = 0;
    if (this.file !== ':memory:')
      for (const path of [this.file, `${this.file}-wal`]) {
        try {
          total += statSync(path).size;
        } catch {
          // No WAL right after a checkpoint: nothing to add.
        }
      }
    return Promise.resolve(total);
  }

  protected writeTransaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.inTransaction('BEGIN IMMEDIATE', fn);
  }

  /** In WAL mode a deferred transaction reads one committed state until it ends. */
  protected readTransaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.inTransaction('BEGIN DEFERRED', fn);
  }

  private inTransaction<T>(begin: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
    return this.lock.run(async () => {
      this.db.exec(begin);
      try {
        const result = await fn(this.direct);
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
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

  /** One controller per SQLite file: it always leads. */
  leadership(): Leadership {
    return { isLeader: () => true };
  }
}
