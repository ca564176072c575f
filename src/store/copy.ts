/**
 * Moving and keeping a store: a SQLite store copied into an empty PostgreSQL database (or
 * schema), verified table by table, and SQLite's online backup.
 *
 * The copy reads SQLite in one read transaction (WAL: one committed state, even with a
 * controller still writing) and writes PostgreSQL in one transaction that first takes the
 * stores' write lock, checks that every table is empty, inserts every row with its ids, moves
 * each identity sequence past the highest id, and then — still inside the transaction —
 * counts and digests every table on both sides. Any difference rolls everything back: the
 * target is left as empty as it was found.
 *
 * A digest is the SHA-256 of a table's rows, each as the JSON array of its values in column
 * order (integers as numbers, text as text, NULL as null), sorted by that text: the same on
 * both engines whatever their collations and row order. Every table is counted and digested,
 * which covers users, groups, certificates, the CRL's settings and the audit log.
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, renameSync, rmSync } from 'node:fs';
import pg from 'pg';
import { Conflict, CopyMismatch, NotFound } from '../errors.js';
import { PgStore, type PgStoreOptions, TYPES, describeTarget } from './pg.js';

/** The advisory lock every PostgreSQL writer takes (pg.ts WRITE_LOCK). */
const WRITE_LOCK = 0x6f76706e;
/** Rows per INSERT statement (PostgreSQL takes at most 65535 parameters per statement). */
const BATCH = 200;

export interface TableDigest {
  rows: number;
  sha256: string;
}

export interface TableCheck {
  table: string;
  source: TableDigest;
  target: TableDigest;
  same: boolean;
}

export interface CopyReport {
  target: string;
  tables: TableCheck[];
}

type Row = Record<string, unknown>;

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** One value as the digest sees it: the same on both engines. */
function canonical(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  if (typeof value === 'bigint') return Number(value);
  if (Buffer.isBuffer(value)) return { hex: value.toString('hex') };
  return value;
}

export function digestRows(columns: readonly string[], rows: readonly Row[]): TableDigest {
  const lines = rows.map((r) => JSON.stringify(columns.map((c) => canonical(r[c])))).sort();
  const h = createHash('sha256');
  for (const line of lines) h.update(`${line}\n`);
  return { rows: rows.length, sha256: h.digest('hex') };
}

interface SqliteTable {
  name: string;
  columns: string[];
}

/** The store's tables in creation order (every REFERENCES target before its referrer). */
function sqliteTables(db: Database.Database): SqliteTable[] {
  const names = db
    .prepare(
      `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid`,
    )
    .pluck()
    .all() as string[];
  return names.map((name) => ({
    name,
    columns: (db.prepare(`PRAGMA table_info(${quote(name)})`).all() as { name: string }[]).map(
      (c) => c.name,
    ),
  }));
}

function openSqlite(file: string): Database.Database {
  if (!existsSync(file)) throw new NotFound(`${file} not found: there is no SQLite store to copy`);
  return new Database(file, { readonly: true, fileMustExist: true });
}

async function pgTableNames(client: pg.ClientBase): Promise<Set<string>> {
  const { rows } = await client.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
  );
  return new Set(rows.map((r) => r.table_name));
}

async function pgDigest(client: pg.ClientBase, table: SqliteTable): Promise<TableDigest> {
  const { rows } = await client.query<Row>(
    `SELECT ${table.columns.map(quote).join(', ')} FROM ${quote(table.name)}`,
  );
  return digestRows(table.columns, rows);
}

function compare(
  tables: readonly SqliteTable[],
  source: Map<string, TableDigest>,
  target: Map<string, TableDigest>,
): TableCheck[] {
  return tables.map((t) => {
    const s = source.get(t.name)!;
    const d = target.get(t.name) ?? { rows: 0, sha256: '' };
    return {
      table: t.name,
      source: s,
      target: d,
      same: s.rows === d.rows && s.sha256 === d.sha256,
    };
  });
}

function mismatch(report: CopyReport, committed: boolean): CopyMismatch {
  const differ = report.tables.filter((t) => !t.same).map((t) => t.table);
  return Object.assign(
    new CopyMismatch(
      `the PostgreSQL copy differs from the SQLite store in ${differ.join(', ')}${committed ? '' : ': nothing was committed'}`,
    ),
    { report },
  );
}

/**
 * Copies the SQLite store `file` into the PostgreSQL database `config` names (migrated first
 * to the same schema version; Conflict unless every table there is empty), verifies, commits.
 * CopyMismatch (carrying the report) when the two sides differ: nothing is committed then.
 */
export async function copySqliteToPostgres(
  file: string,
  config: PgStoreOptions,
): Promise<CopyReport> {
  const db = openSqlite(file);
  try {
    // The target's schema: PgStore's migrations, exactly as a controller would make it.
    await (await PgStore.open(config)).close();
    const client = new pg.Client({ ...connectionOf(config), types: TYPES });
    await client.connect();
    try {
      db.exec('BEGIN');
      await client.query('BEGIN');
      try {
        const report = await copyInTransaction(db, client, describeTarget(config));
        if (report.tables.some((t) => !t.same)) throw mismatch(report, false);
        await client.query('COMMIT');
        return report;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        db.exec('COMMIT');
      }
    } finally {
      await client.end();
    }
  } finally {
    db.close();
  }
}

async function copyInTransaction(
  db: Database.Database,
  client: pg.ClientBase,
  target: string,
): Promise<CopyReport> {
  // Writers of every controller on this database wait until the copy commits.
  await client.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
  const tables = sqliteTables(db);
  const present = await pgTableNames(client);
  const missing = tables.filter((t) => !present.has(t.name)).map((t) => t.name);
  if (missing.length)
    throw new Conflict(
      `${target} has no table ${missing.join(', ')}: not an ovpn-fleet schema of this release`,
    );
  for (const t of tables) {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*) AS n FROM ${quote(t.name)}`,
    );
    if (rows[0].n > 0)
      throw new Conflict(
        `${target} is not empty (${t.name} has ${rows[0].n} rows): the copy goes only into an empty database or schema`,
      );
  }
  const source = new Map<string, TableDigest>();
  for (const t of tables) {
    const rows = db
      .prepare(`SELECT ${t.columns.map(quote).join(', ')} FROM ${quote(t.name)}`)
      .all() as Row[];
    source.set(t.name, digestRows(t.columns, rows));
    for (let i = 0; i < rows.length; i += BATCH) {
      const batch = rows.slice(i, i + BATCH);
      const values: unknown[] = [];
      const tuples = batch.map((r) => {
        const marks = t.columns.map((c) => {
          values.push(canonical(r[c]));
          return `$${values.length}`;
        });
        return `(${marks.join(', ')})`;
      });
      await client.query(
        `INSERT INTO ${quote(t.name)} (${t.columns.map(quote).join(', ')}) VALUES ${tuples.join(', ')}`,
        values,
      );
    }
  }
  // Ids were inserted as they were: each identity must hand out the next one above them.
  const { rows: identities } = await client.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND is_identity = 'YES'`,
  );
  for (const { table_name: t, column_name: c } of identities)
    await client.query(
      `SELECT setval(pg_get_serial_sequence($1, $2), coalesce(max(${quote(c)}), 0) + 1, false) FROM ${quote(t)}`,
      [quote(t), c],
    );
  const copied = new Map<string, TableDigest>();
  for (const t of tables) copied.set(t.name, await pgDigest(client, t));
  return { target, tables: compare(tables, source, copied) };
}

/**
 * Compares a SQLite store with a PostgreSQL one, table by table (counts and digests), without
 * changing either: after a copy, or to check one later.
 */
export async function compareSqliteWithPostgres(
  file: string,
  config: PgStoreOptions,
): Promise<CopyReport> {
  const db = openSqlite(file);
  const client = new pg.Client({ ...connectionOf(config), types: TYPES });
  try {
    await client.connect();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    db.exec('BEGIN');
    const tables = sqliteTables(db);
    const source = new Map<string, TableDigest>();
    for (const t of tables)
      source.set(
        t.name,
        digestRows(
          t.columns,
          db
            .prepare(`SELECT ${t.columns.map(quote).join(', ')} FROM ${quote(t.name)}`)
            .all() as Row[],
        ),
      );
    db.exec('COMMIT');
    const present = await pgTableNames(client);
    const target = new Map<string, TableDigest>();
    for (const t of tables) if (present.has(t.name)) target.set(t.name, await pgDigest(client, t));
    await client.query('COMMIT');
    return { target: describeTarget(config), tables: compare(tables, source, target) };
  } finally {
    await client.end().catch(() => undefined);
    db.close();
  }
}

/** Throws CopyMismatch (carrying the report) when any table differs. */
export function assertSame(report: CopyReport): CopyReport {
  if (report.tables.some((t) => !t.same)) throw mismatch(report, true);
  return report;
}

function connectionOf(config: PgStoreOptions): pg.ClientConfig {
  const c: PgStoreOptions = { ...config };
  delete c.log;
  delete c.sessionIntervalMs;
  delete c.max;
  return { connectionTimeoutMillis: 10_000, ...c };
}

export interface BackupResult {
  file: string;
  tables: { table: string; rows: number }[];
}

/**
 * SQLite's online backup (better-sqlite3's db.backup: the backup API, a consistent copy while
 * the controller keeps writing) into `dest`: written to a temp name 0600 (the store holds
 * private keys) and renamed, so `dest` is never half-written. Conflict when `dest` exists,
 * unless `force`. The copy is then opened and checked (quick_check) and its tables counted.
 */
export async function backupSqlite(
  file: string,
  dest: string,
  opts: { force?: boolean } = {},
): Promise<BackupResult> {
  if (existsSync(dest) && !opts.force)
    throw new Conflict(`${dest} exists: pass --force to replace it`);
  const db = openSqlite(file);
  const tmp = `${dest}.tmp-${process.pid}`;
  try {
    rmSync(tmp, { force: true });
    closeSync(openSync(tmp, 'wx', 0o600));
    await db.backup(tmp);
    const copy = new Database(tmp, { readonly: true, fileMustExist: true });
    let tables: { table: string; rows: number }[];
    try {
      const check = copy.pragma('quick_check', { simple: true });
      if (check !== 'ok')
        throw new CopyMismatch(`the backup of ${file} fails quick_check: ${String(check)}`);
      tables = sqliteTables(copy).map((t) => ({
        table: t.name,
        rows: copy
          .prepare(`SELECT count(*) FROM ${quote(t.name)}`)
          .pluck()
          .get() as number,
      }));
    } finally {
      copy.close();
    }
    renameSync(tmp, dest);
    return { file: dest, tables };
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    db.close();
  }
}
