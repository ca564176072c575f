/**
 * Moving and keeping a store: a SQLite store with users, groups, certificates, a CRL, sessions
 * and audit copied into a real PostgreSQL (one per file, src/sys/postgres.ts) and verified; a
 * copy changed afterwards is caught; a non-empty target is refused. SQLite's online backup.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { Conflict, CopyMismatch } from '../errors.js';
import { type PostgresServer, postgresMissing, startPostgres } from '../sys/postgres.js';
import { FIXED_NOW, itNeeds } from '../testing.js';
import {
  assertSame,
  backupSqlite,
  compareSqliteWithPostgres,
  copySqliteToPostgres,
} from './copy.js';
import { PgStore } from './pg.js';
import { SqliteStore } from './sqlite.js';
import { POOLS, newUser } from './testing.js';

const missing = postgresMissing();
let server: PostgresServer | undefined;
let admin: pg.Pool | undefined;
let dir: string;

beforeAll(async () => {
  if (missing && process.env.CI !== 'true') return;
  server = await startPostgres({ port: 5434 });
  admin = new pg.Pool(server.config());
  admin.on('error', () => undefined);
}, 180_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
}, 60_000);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ovf-copy-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A SQLite store with something in every aggregate. */
async function filledSqlite(): Promise<{ file: string; store: SqliteStore }> {
  const file = join(dir, 'fleet.db');
  const store = new SqliteStore(file);
  await store.createUsers(
    Array.from({ length: 30 }, (_, i) => newUser(`user${i}`, { groups: ['staff', `g${i % 3}`] })),
    POOLS,
    FIXED_NOW,
    'cli:test',
  );
  await store.deleteUser('user29', FIXED_NOW, 'cli:test');
  const serial = (await store.getUser('user3'))!.certSerial!;
  await store.revokeCert(serial, FIXED_NOW);
  await store.setSetting('crl.number', '7');
  await store.setSetting('crl.pem', '-----BEGIN X509 CRL-----\nabc\n-----END X509 CRL-----\n');
  await store.recordReport('vpn11', {
    at: FIXED_NOW.toISOString(),
    health: { openvpn: true },
    sessions: [
      {
        user: 'user1',
        realAddress: '198.51.100.1:1194',
        since: FIXED_NOW.toISOString(),
        bytesIn: 5_000_000_000,
        bytesOut: 1,
        clientId: 4,
      },
    ],
  });
  await store.audit({
    at: FIXED_NOW.toISOString(),
    actor: 'api:admin',
    action: 'note',
    subject: 'ünïcode "quoted"',
    detail: { n: 1 },
  });
  return { file, store };
}

async function schemaConfig(name: string) {
  await admin!.query(`CREATE SCHEMA ${name}`);
  return { ...server!.config(), options: `-c search_path=${name}`, log: () => undefined };
}

itNeeds(
  missing,
  'copies a SQLite store into an empty PostgreSQL schema, verified; the copy works as a store; a second copy is refused',
  async () => {
    const { file, store } = await filledSqlite();
    const config = await schemaConfig('copy_ok');
    try {
      const report = await copySqliteToPostgres(file, config);
      expect(report.tables.every((t) => t.same)).toBe(true);
      const byTable = new Map(report.tables.map((t) => [t.table, t]));
      for (const t of ['users', 'user_groups', 'certs', 'settings', 'audit', 'sessions'])
        expect(byTable.get(t)?.source.rows).toBeGreaterThan(0);
      expect(byTable.get('users')!.target.rows).toBe(29);

      const copy = await PgStore.open(config);
      try {
        expect(await copy.listUsers()).toEqual(await store.listUsers());
        expect(await copy.revocationState()).toEqual(await store.revocationState());
        expect(await copy.auditLog(100)).toEqual(await store.auditLog(100));
        expect(await copy.listSessions()).toEqual(await store.listSessions());
        // Identities continue above the copied ids.
        const [created] = await copy.createUsers([newUser('after')], POOLS, FIXED_NOW, 't');
        expect(created.name).toBe('after');
        const ids = (await copy.auditLog(200)).map((e) => e.id);
        expect(new Set(ids).size).toBe(ids.length);
        expect(Math.max(...ids)).toBe(ids[0]);
      } finally {
        await copy.close();
      }
      await expect(copySqliteToPostgres(file, config)).rejects.toThrow(Conflict);
      await expect(copySqliteToPostgres(file, config)).rejects.toThrow(/not empty/);
    } finally {
      await store.close();
    }
  },
  120_000,
);

itNeeds(
  missing,
  'a copy changed afterwards differs in count or digest, table by table',
  async () => {
    const { file, store } = await filledSqlite();
    await store.close();
    const config = await schemaConfig('copy_tampered');
    await copySqliteToPostgres(file, config);
    expect(assertSame(await compareSqliteWithPostgres(file, config)).tables.length).toBeGreaterThan(
      5,
    );

    const db = new pg.Client(config);
    await db.connect();
    try {
      await db.query(`SET search_path = copy_tampered`);
      await db.query(`UPDATE users SET status = 'disabled' WHERE name = 'user3'`);
      await db.query(`DELETE FROM audit WHERE action = 'note'`);
    } finally {
      await db.end();
    }
    const report = await compareSqliteWithPostgres(file, config);
    expect(
      report.tables
        .filter((t) => !t.same)
        .map((t) => t.table)
        .sort(),
    ).toEqual(['audit', 'users']);
    const users = report.tables.find((t) => t.table === 'users')!;
    expect(users.source.rows).toBe(users.target.rows);
    expect(users.source.sha256).not.toBe(users.target.sha256);
    expect(() => assertSame(report)).toThrow(CopyMismatch);
    expect(() => assertSame(report)).toThrow(/audit, users|users, audit/);
  },
  120_000,
);

it('backs up a SQLite store online: 0600, opens with the data, refuses to overwrite without force', async () => {
  const { store } = await filledSqlite();
  try {
    const dest = join(dir, 'backup.db');
    const result = await backupSqlite(join(dir, 'fleet.db'), dest);
    expect(result.tables.find((t) => t.table === 'users')?.rows).toBe(29);
    expect(statSync(dest).mode & 0o777).toBe(0o600);
    const copy = new SqliteStore(dest);
    try {
      expect(await copy.listUsers()).toEqual(await store.listUsers());
      expect(await copy.auditLog(100)).toEqual(await store.auditLog(100));
    } finally {
      await copy.close();
    }
    await expect(backupSqlite(join(dir, 'fleet.db'), dest)).rejects.toThrow(/--force/);
    await store.createUsers([newUser('later')], POOLS, FIXED_NOW, 't');
    await backupSqlite(join(dir, 'fleet.db'), dest, { force: true });
    const again = new SqliteStore(dest);
    try {
      expect(await again.getUser('later')).toBeDefined();
    } finally {
      await again.close();
    }
  } finally {
    await store.close();
  }
});
