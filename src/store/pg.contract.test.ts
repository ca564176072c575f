/**
 * The store contract (testing.ts) on a real PostgreSQL 15 started here from Debian's package
 * (src/sys/postgres.ts), each test in a fresh schema; then two PgStores — two pools, as two
 * controllers would hold — racing on one schema. Without PostgreSQL the tests are skipped
 * visibly; under CI=true they fail.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { offsetOf } from '../core/ipam.js';
import { type PostgresServer, postgresMissing, startPostgres } from '../sys/postgres.js';
import { FIXED_NOW, itNeeds } from '../testing.js';
import { PgStore, postgresUrlFrom, toPositional } from './pg.js';
import { POOLS, newUser, storeContract } from './testing.js';

const missing = postgresMissing();
let server: PostgresServer | undefined;
let admin: pg.Pool | undefined;
let schemas = 0;

beforeAll(async () => {
  if (missing && process.env.CI !== 'true') return;
  server = await startPostgres();
  admin = new pg.Pool(server.config());
  // An idle client's connection ending with the server (57P01 at shutdown) is no test failure.
  admin.on('error', () => undefined);
}, 180_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
}, 60_000);

/** A PgStore on a schema of its own (search_path), migrated by PgStore.open. */
async function schemaStore(schema?: string): Promise<PgStore> {
  const name = schema ?? `contract_${++schemas}`;
  if (!schema) await admin!.query(`CREATE SCHEMA ${name}`);
  return PgStore.open({ ...server!.config(), options: `-c search_path=${name}` });
}

storeContract('PostgreSQL', () => schemaStore(), missing);

it('turns ? into $n outside quoted text, and reads the connection string from env or file', () => {
  expect(toPositional(`SELECT ? WHERE a LIKE ? ESCAPE '\\' AND b = '?' AND "c?" = ?`)).toBe(
    `SELECT $1 WHERE a LIKE $2 ESCAPE '\\' AND b = '?' AND "c?" = $3`,
  );
  expect(postgresUrlFrom({ OVPN_FLEET_DATABASE_URL: 'postgres://x' })).toBe('postgres://x');
  expect(postgresUrlFrom({})).toBeUndefined();
  expect(() =>
    postgresUrlFrom({ OVPN_FLEET_DATABASE_URL: 'a', OVPN_FLEET_DATABASE_URL_FILE: 'b' }),
  ).toThrow(/both set/);
});

itNeeds(
  missing,
  'two stores (two controllers) racing: addresses unique and outside quarantine, serials unique, CRL number monotonic, each user in one of the two states',
  async () => {
    await admin!.query('CREATE SCHEMA race');
    const one = await schemaStore('race');
    const two = await schemaStore('race');
    try {
      // Quarantine: 20 users deleted a day ago; their addresses must not come back.
      await one.createUsers(
        Array.from({ length: 20 }, (_, i) => newUser(`gone${i}`)),
        POOLS,
        FIXED_NOW,
        't',
      );
      for (let i = 0; i < 20; i++) await two.deleteUser(`gone${i}`, FIXED_NOW, 't');
      const quarantined = new Set(
        (await one.auditQuery({ action: 'user.delete', limit: 100 })).map(
          (e) => e.detail?.ipv4 as string,
        ),
      );
      const later = new Date(FIXED_NOW.getTime() + 86_400_000);
      // 200 users, one creation per request, half through each store, all at once.
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 ? one : two).createUsers([newUser(`u${i}`)], POOLS, later, 't'),
        ),
      );
      const users = await one.listUsers();
      expect(users).toHaveLength(200);
      expect(new Set(users.map((u) => u.ipv4)).size).toBe(200);
      expect(new Set(users.map((u) => u.ipv6)).size).toBe(200);
      for (const u of users) {
        expect(quarantined.has(u.ipv4)).toBe(false);
        expect(offsetOf(POOLS.ipv4, u.ipv4)).toBeDefined();
      }
      const serials = users.map((u) => u.certSerial);
      expect(new Set(serials).size).toBe(200);

      // 50 users changed by both at once, status and groups together: one state or the other.
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => [
          one.transaction(async (tx) => {
            await tx.setStatus(`u${i}`, 'disabled', later, 'one');
            await tx.setGroups(`u${i}`, ['one'], later, 'one');
          }),
          two.transaction(async (tx) => {
            await tx.setGroups(`u${i}`, ['two'], later, 'two');
            await tx.setStatus(`u${i}`, 'enabled', later, 'two');
          }),
        ]).flat(),
      );
      for (let i = 0; i < 50; i++) {
        const u = (await two.getUser(`u${i}`))!;
        expect([['disabled', 'one'].join(), ['enabled', 'two'].join()]).toContain(
          [u.status, ...u.groups].join(),
        );
      }

      // Certificates for the same users from both at once: exactly one attached per user.
      await one.createUsers(
        Array.from({ length: 20 }, (_, i) => ({ name: `c${i}`, groups: [] })),
        POOLS,
        later,
        't',
      );
      const attempts = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          [one, two].map((s) => s.attachCertIfNone(`c${i}`, newUser(`c${i}`).cert!, later, 't')),
        ).flat(),
      );
      expect(attempts.filter((a) => a.attached)).toHaveLength(20);

      // CRL writers on both, as ensureCrl does: read, sign outside, write only if unchanged.
      const written: number[] = [];
      const crlWriter = async (store: PgStore) => {
        for (;;) {
          const seen = await store.revocationState();
          const done = await store.transaction(async (tx) => {
            if ((await tx.revocationState()).crlNumber !== seen.crlNumber) return false;
            await tx.setSetting('crl.number', String(seen.crlNumber + 1));
            written.push(seen.crlNumber + 1);
            return true;
          });
          if (done) return;
        }
      };
      await Promise.all(Array.from({ length: 20 }, (_, i) => crlWriter(i % 2 ? one : two)));
      expect(written).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect((await one.revocationState()).crlNumber).toBe(20);
    } finally {
      await one.close();
      await two.close();
    }
  },
  120_000,
);
