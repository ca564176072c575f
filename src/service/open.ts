/**
 * The composition root of the service layer: the only place that knows which store
 * implementation backs a fleet directory. Everything else sees FleetStore, ChangeFeed and
 * Leadership.
 *
 * The engine: SQLite (fleet.db in the directory) unless a PostgreSQL connection string is given
 * by OVPN_FLEET_DATABASE_URL or a file named by OVPN_FLEET_DATABASE_URL_FILE — never argv,
 * where `ps` would show its password. Migrations run at open, on either engine.
 */
import { existsSync } from 'node:fs';
import { Conflict, InputError, NotFound, SpecError } from '../errors.js';
import { EXAMPLE_FLEET_YAML } from '../spec/example.js';
import { parseSpecText } from '../spec/validate.js';
import { loadSpec } from './spec-file.js';
import {
  type BackupResult,
  type CopyReport,
  assertSame,
  backupSqlite,
  compareSqliteWithPostgres,
  copySqliteToPostgres,
} from '../store/copy.js';
import { PgStore, postgresUrlFrom } from '../store/pg.js';
import { SqliteStore } from '../store/sqlite.js';
import type { ChangeFeed, FleetStore, Leadership } from '../store/types.js';
import { writeFileAtomic } from '../sys/files.js';
import { type Clock, actorName, systemClock } from './context.js';
import { Fleet } from './fleet.js';
import { SPEC_FILE_MODE, specPath, storePath } from './layout.js';

export interface OpenFleetOptions {
  clock?: Clock;
  /** Who the audit log names; default: `cli:<login>`. */
  actor?: string;
  /** Create the store when missing (init); otherwise a missing store is NotFound. */
  create?: boolean;
  /** Where a PostgreSQL store tells of lost and regained connections; default: stderr. */
  log?: (line: string) => void;
  /** Where the PostgreSQL connection string is looked for (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/** A fleet, the feed that tells when other processes changed its store, and who leads. */
export interface WatchedFleet {
  fleet: Fleet;
  changes: ChangeFeed;
  leadership: Leadership;
}

type OpenedStore = FleetStore & { changeFeed(): ChangeFeed; leadership(): Leadership };

/** Which engine backs `dir`, for messages: `fleet.db` or PostgreSQL's host and database. */
export function storeEngine(env: NodeJS.ProcessEnv = process.env): 'sqlite' | 'postgres' {
  return postgresUrlFrom(env) ? 'postgres' : 'sqlite';
}

async function openStore(dir: string, opts: OpenFleetOptions): Promise<OpenedStore> {
  const url = postgresUrlFrom(opts.env ?? process.env);
  if (url) return PgStore.open({ connectionString: url, ...(opts.log ? { log: opts.log } : {}) });
  const storeFile = storePath(dir);
  if (!opts.create && !existsSync(storeFile))
    throw new NotFound(`${storeFile} not found: run "ovpn-fleet init" in ${dir}`);
  return new SqliteStore(storeFile);
}

export async function openFleet(dir: string, opts: OpenFleetOptions = {}): Promise<Fleet> {
  return (await openWatchedFleet(dir, opts)).fleet;
}

export async function openWatchedFleet(
  dir: string,
  opts: OpenFleetOptions = {},
): Promise<WatchedFleet> {
  const specFile = specPath(dir);
  if (!existsSync(specFile))
    throw new NotFound(`${specFile} not found: run "ovpn-fleet init --example" or pass --dir`);
  const spec = loadSpec(specFile);
  const store = await openStore(dir, opts);
  const fleet = new Fleet({
    dir,
    spec,
    store,
    clock: opts.clock ?? systemClock,
    actor: opts.actor ?? actorName(),
  });
  // Lazily: a PostgreSQL store opens its dedicated connection only when these are asked for,
  // so a CLI command (which asks for neither) holds no LISTEN and never leads.
  let changes: ChangeFeed | undefined;
  let leadership: Leadership | undefined;
  return {
    fleet,
    get changes() {
      return (changes ??= store.changeFeed());
    },
    get leadership() {
      return (leadership ??= store.leadership());
    },
  };
}

/**
 * Creates fleet.yaml (when given), the store, the CA, the tls-crypt key and server certs. On
 * PostgreSQL the store is the database named by the environment: it must hold no fleet yet.
 */
export async function initFleet(
  dir: string,
  opts: { yaml?: string; clock?: Clock; env?: NodeJS.ProcessEnv } = {},
): Promise<Fleet> {
  const specFile = specPath(dir);
  const yaml = opts.yaml ?? EXAMPLE_FLEET_YAML;
  const postgres = storeEngine(opts.env) === 'postgres';
  if (!postgres && existsSync(storePath(dir)))
    throw new Conflict(`${storePath(dir)} already exists: this directory already holds a fleet`);
  let v;
  if (!existsSync(specFile)) {
    v = parseSpecText(yaml);
    if (!v.spec) throw new SpecError(v.errors, specFile);
  }
  if (postgres) {
    // Checked before fleet.yaml is written: a refused init leaves nothing behind.
    const store = await openStore(dir, { ...opts, create: true });
    try {
      if (await store.getCa())
        throw new Conflict(
          'the PostgreSQL store named by OVPN_FLEET_DATABASE_URL already holds a fleet (it has a CA)',
        );
    } finally {
      await store.close();
    }
  }
  // fleet.yaml holds routing keys and BGP passwords.
  if (v) writeFileAtomic(specFile, yaml, SPEC_FILE_MODE);
  const fleet = await openFleet(dir, {
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    create: true,
  });
  await fleet.ensurePki();
  return fleet;
}

export type { BackupResult, CopyReport, TableCheck } from '../store/copy.js';

function requiredPostgresUrl(env: NodeJS.ProcessEnv): string {
  const url = postgresUrlFrom(env);
  if (!url)
    throw new InputError(
      'OVPN_FLEET_DATABASE_URL',
      'not set: name the PostgreSQL database in OVPN_FLEET_DATABASE_URL or in a file named by OVPN_FLEET_DATABASE_URL_FILE',
    );
  return url;
}

/**
 * Copies the fleet directory's SQLite store (fleet.db) into the empty PostgreSQL database the
 * environment names, and verifies the copy inside its transaction (CopyMismatch: nothing kept),
 * then once more from outside after the commit.
 */
export async function migrateStoreToPostgres(
  dir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CopyReport> {
  const config = { connectionString: requiredPostgresUrl(env), log: () => undefined };
  await copySqliteToPostgres(storePath(dir), config);
  return assertSame(await compareSqliteWithPostgres(storePath(dir), config));
}

/** SQLite's online backup of the fleet directory's store into `dest` (see backupSqlite). */
export function backupStore(
  dir: string,
  dest: string,
  opts: { force?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<BackupResult> {
  if (storeEngine(opts.env) === 'postgres')
    throw new InputError(
      'OVPN_FLEET_DATABASE_URL',
      'this fleet runs on PostgreSQL: back it up with pg_dump (or your replication), not "store backup"',
    );
  return backupSqlite(storePath(dir), dest, { force: opts.force === true });
}
