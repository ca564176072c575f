/**
 * Several controllers on one PostgreSQL, from the store's side: the change feed across stores
 * (LISTEN/NOTIFY), the leader's advisory lock, and what a store does while PostgreSQL is
 * stopped and started under it. One PostgreSQL for the file; skipped visibly without it,
 * failing under CI=true.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { StoreUnavailable } from '../errors.js';
import { type PostgresServer, postgresMissing, startPostgres } from '../sys/postgres.js';
import { FIXED_NOW, itNeeds } from '../testing.js';
import { PgStore, describeTarget } from './pg.js';
import { POOLS, newUser } from './testing.js';

const missing = postgresMissing();
let server: PostgresServer | undefined;
let admin: pg.Pool | undefined;
let schemas = 0;

beforeAll(async () => {
  if (missing && process.env.CI !== 'true') return;
  server = await startPostgres({ port: 5433 });
  admin = new pg.Pool(server.config());
  admin.on('error', () => undefined);
}, 180_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
}, 60_000);

async function freshSchema(): Promise<string> {
  const name = `session_${++schemas}`;
  await admin!.query(`CREATE SCHEMA ${name}`);
  return name;
}

function open(schema: string, log: string[] = []): Promise<PgStore> {
  return PgStore.open({
    ...server!.config(),
    options: `-c search_path=${schema}`,
    sessionIntervalMs: 100,
    log: (line) => log.push(line),
  });
}

/** Waits until `fn` holds, up to `ms` (a bound on a wait, not an asserted timing). */
async function until(fn: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

itNeeds(
  missing,
  "a write through one controller's store moves the other's feed; its own does not move its own; reports move only the sessions token",
  async () => {
    const schema = await freshSchema();
    const one = await open(schema);
    const two = await open(schema);
    try {
      const feedOne = one.changeFeed();
      const feedTwo = two.changeFeed();
      let pushed = 0;
      const stop = feedTwo.onChange!(() => pushed++);
      // LISTEN is in place once the session has connected: a first write may precede it.
      await until(async () => {
        await one.setSetting('probe', String(Date.now()));
        await new Promise((r) => setTimeout(r, 50));
        return feedTwo.version() !== 0;
      });
      const before = feedTwo.version();
      const ownBefore = feedOne.version();
      await one.createUsers([newUser('ann')], POOLS, FIXED_NOW, 't');
      await until(() => feedTwo.version() !== before, 1000);
      expect(pushed).toBeGreaterThan(0);
      expect(feedOne.version()).toBe(ownBefore);

      // A rolled-back transaction says nothing.
      const settled = feedTwo.version();
      await expect(
        one.transaction(async (tx) => {
          await tx.setSetting('x', '1');
          throw new Error('no');
        }),
      ).rejects.toThrow('no');
      const sessionsBefore = feedTwo.sessionsVersion!();
      await one.recordReport('s1', { at: FIXED_NOW.toISOString(), health: {}, sessions: [] });
      await until(() => feedTwo.sessionsVersion!() !== sessionsBefore, 1000);
      expect(feedTwo.version()).toBe(settled);
      stop();
    } finally {
      await one.close();
      await two.close();
    }
  },
  60_000,
);

itNeeds(
  missing,
  'exactly one of two stores leads; the other takes over when the leader closes',
  async () => {
    const schema = await freshSchema();
    const one = await open(schema);
    const two = await open(schema);
    const a = one.leadership();
    await until(() => a.isLeader());
    const b = two.leadership();
    await new Promise((r) => setTimeout(r, 300));
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    await one.close();
    await until(() => b.isLeader());
    await two.close();
  },
  60_000,
);

itNeeds(
  missing,
  'PostgreSQL stopped and started under running stores: one line each way, requests fail then work again, the feed and the leader come back',
  async () => {
    const schema = await freshSchema();
    const log: string[] = [];
    const one = await open(schema, log);
    const two = await open(schema);
    try {
      const feed = two.changeFeed();
      const lead = [one.leadership(), two.leadership()];
      await until(() => lead.some((l) => l.isLeader()));
      await one.createUsers([newUser('ann')], POOLS, FIXED_NOW, 't');

      await server!.halt();
      await until(() => lead.every((l) => !l.isLeader()));
      for (let i = 0; i < 3; i++) await expect(one.listUsers()).rejects.toThrow();
      expect(log.filter((l) => l.startsWith('lost the connection'))).toHaveLength(1);
      expect(log[0]).toContain(describeTarget(server!.config()));

      await server!.start();
      await until(async () => (await one.listUsers().catch(() => [])).length === 1, 15_000);
      expect(log.filter((l) => l.startsWith('lost the connection'))).toHaveLength(1);
      expect(log.at(-1)).toMatch(/connected to .* again/);
      await until(() => lead.filter((l) => l.isLeader()).length === 1, 15_000);

      // The feed listens again (after its reconnection's own move).
      await until(async () => {
        const v = feed.version();
        await one.setSetting('after', String(Date.now()));
        await new Promise((r) => setTimeout(r, 200));
        return feed.version() !== v;
      }, 15_000);
      const v = feed.version();
      await one.createUsers([newUser('bob')], POOLS, FIXED_NOW, 't');
      await until(() => feed.version() !== v, 1000);
    } finally {
      await one.close();
      await two.close();
    }
  },
  120_000,
);

itNeeds(
  missing,
  'a PostgreSQL that refuses at start: StoreUnavailable, one line naming host and database, no password',
  async () => {
    const url = `postgresql://ovpn:s3cret-pw@localhost:1/fleetdb`;
    const err = await PgStore.open({ connectionString: url, log: () => undefined }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreUnavailable);
    const message = (err as Error).message;
    expect(message).toContain('ovpn@localhost:1/fleetdb');
    expect(message).not.toContain('s3cret');
    expect(message.split('\n')).toHaveLength(1);
    const noDb = await PgStore.open({ ...server!.config('nosuchdb'), log: () => undefined }).catch(
      (e: unknown) => e,
    );
    expect(noDb).toBeInstanceOf(StoreUnavailable);
    expect((noDb as Error).message).toMatch(/nosuchdb.*does not exist/);
  },
  30_000,
);

itNeeds(
  missing,
  'two fleets in two schemas of one database: each has its own leader, and neither hears the other',
  async () => {
    const [x, y] = [await freshSchema(), await freshSchema()];
    const one = await open(x);
    const two = await open(y);
    try {
      const [a, b] = [one.leadership(), two.leadership()];
      await until(() => a.isLeader() && b.isLeader());
      const feed = two.changeFeed();
      await new Promise((r) => setTimeout(r, 300));
      const v = feed.version();
      await one.createUsers([newUser('ann')], POOLS, FIXED_NOW, 't');
      await new Promise((r) => setTimeout(r, 500));
      expect(feed.version()).toBe(v);
    } finally {
      await one.close();
      await two.close();
    }
  },
  60_000,
);
