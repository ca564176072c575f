import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mustParsePrefix } from '../core/ip.js';
import { Conflict, InputError, NotFound, StoreTooNew } from '../errors.js';
import { FIXED_NOW } from '../testing.js';
import { auditForSubjectSql } from './audit.js';
import { MIGRATIONS } from './migrations.js';
import { SqliteStore } from './sqlite.js';
import type { AdminSession, NewUser, Pools, User, UserSearch } from './types.js';

const DAY_MS = 86_400_000;
const POOLS: Pools = {
  ipv4: mustParsePrefix('10.200.0.0/24'),
  ipv6: mustParsePrefix('fd00:200::/120'),
  quarantineDays: 30,
};

let serialCounter = 0;
function newUser(name: string, extra: Partial<NewUser> = {}): NewUser {
  serialCounter++;
  return {
    name,
    groups: ['staff'],
    cert: {
      serial: `${serialCounter.toString(16)}ab`,
      certPem: `cert of ${name}`,
      keyPem: `key of ${name}`,
      notAfter: new Date(FIXED_NOW.getTime() + 365 * DAY_MS),
    },
    ...extra,
  };
}

const days = (n: number) => new Date(FIXED_NOW.getTime() + n * DAY_MS);

describe('SqliteStore on a real file', () => {
  let dir: string;
  let file: string;
  let store: SqliteStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ovf-store-'));
    file = join(dir, 'fleet.db');
    store = new SqliteStore(file);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const add = async (users: NewUser[], now = FIXED_NOW) =>
    await store.createUsers(users, POOLS, now, 'test');

  it('keeps when it first saw a session across reports, and forgets sessions that are gone', async () => {
    const session = (user: string, clientId: number) => ({
      user,
      realAddress: `198.51.100.${clientId}:1194`,
      since: '2030-01-01T10:00:00.000Z',
      bytesIn: 0,
      bytesOut: 0,
      clientId,
    });
    const health = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };
    const at = (s: number) => `2030-01-01T10:00:0${s}.000Z`;
    await store.recordReport('vpn11', { at: at(1), health, sessions: [session('alice', 1)] });
    await store.recordReport('vpn11', {
      at: at(2),
      health,
      sessions: [session('alice', 1), session('bob', 2)],
    });
    const seen = async () =>
      Object.fromEntries((await store.listSessions('vpn11')).map((x) => [x.user, x.firstSeen]));
    expect(await seen()).toEqual({ alice: at(1), bob: at(2) });
    // alice reconnected (new client id): a new session, first seen now
    await store.recordReport('vpn11', {
      at: at(3),
      health,
      sessions: [session('alice', 3), session('bob', 2)],
    });
    expect(await seen()).toEqual({ alice: at(3), bob: at(2) });
  });

  it('applies every migration to a fresh file, once', async () => {
    await store.createUsers([newUser('alice')], POOLS, FIXED_NOW, 'test');
    await store.close();
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      const tables = raw
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((r) => r.name)
        .sort();
      expect(tables).toEqual([
        'admin_sessions',
        'admins',
        'audit',
        'certs',
        'released_addresses',
        'restart_generations',
        'rollouts',
        'servers',
        'session_history',
        'sessions',
        'settings',
        'sqlite_sequence',
        'sso_sign_ins',
        'user_groups',
        'user_totp',
        'user_totp_recovery',
        'users',
      ]);
    } finally {
      raw.close();
    }
    // Re-opening an up-to-date file runs nothing again and keeps the data.
    store = new SqliteStore(file);
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['alice']);
  });

  it('keeps a rollout and its audit entries in one write, and each server its restart generation', async () => {
    const at = FIXED_NOW.toISOString();
    const audit = { at, actor: 'api:admin', action: 'rollout.start', subject: 'rollout' };
    const first = await store.saveRollout(
      {
        strategy: 'rolling',
        status: 'running',
        startedBy: 'api:admin',
        startedAt: at,
        updatedAt: at,
        steps: [{ server: 'vpn11', state: 'waiting' }],
      },
      [audit],
    );
    first.steps[0] = { server: 'vpn11', state: 'failed', since: at, detail: 'routing down' };
    await store.saveRollout({ ...first, status: 'failed', detail: 'stopped at vpn11' }, []);
    await store.close();
    store = new SqliteStore(file);
    expect(await store.latestRollout()).toEqual({
      ...first,
      status: 'failed',
      detail: 'stopped at vpn11',
    });
    expect((await store.auditLog(1))[0]).toMatchObject(audit);
    await expect(store.saveRollout({ ...first, id: 99 }, [])).rejects.toThrow(NotFound);
    expect(await store.restartGenerations()).toEqual(new Map());
    await store.setRestartGeneration('vpn11', 1);
    await store.setRestartGeneration('vpn11', 2);
    expect(await store.restartGenerations()).toEqual(new Map([['vpn11', 2]]));
  });

  it("its change feed moves when another connection commits, not on this connection's own", async () => {
    const feed = store.changeFeed();
    const start = feed.version();
    await add([newUser('alice')]);
    expect(feed.version()).toBe(start);
    const other = new SqliteStore(file);
    try {
      await other.setSetting('touched', 'by another process');
      const moved = feed.version();
      expect(moved).not.toBe(start);
      // Reading does not move it either.
      await other.listUsers();
      expect(feed.version()).toBe(moved);
    } finally {
      await other.close();
    }
  });

  it('keeps the store readable by its owner only (0600), its WAL too', async () => {
    await add([newUser('alice')]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The WAL holds recent writes (private keys among them) until a checkpoint.
    expect(existsSync(`${file}-wal`)).toBe(true);
    expect(statSync(`${file}-wal`).mode & 0o777).toBe(0o600);
  });

  it('gives every user distinct addresses, the same offset in both pools, stable over time', async () => {
    const created = await add(Array.from({ length: 40 }, (_, i) => newUser(`u${i}`)));
    expect(new Set(created.map((u) => u.ipv4)).size).toBe(40);
    expect(new Set(created.map((u) => u.ipv6)).size).toBe(40);
    expect(created[0]).toMatchObject({ ipv4: '10.200.0.2', ipv6: 'fd00:200::2' });
    for (const u of created)
      expect(u.ipv6.split(':').pop()).toBe(Number(u.ipv4.split('.')[3]).toString(16));

    await store.deleteUser('u5', days(1), 'test');
    await add([newUser('late')], days(2));
    await store.close();
    store = new SqliteStore(file);
    for (const u of created.filter((c) => c.name !== 'u5'))
      expect(await store.getUser(u.name)).toMatchObject({ ipv4: u.ipv4, ipv6: u.ipv6 });
    expect((await store.getUser('late'))?.ipv4).toBe('10.200.0.42');
  });

  it('pins a free address inside the pool; the other family follows the same offset', async () => {
    const [u] = await add([newUser('pinned', { ipv4: '10.200.0.77' })]);
    expect(u).toMatchObject({ ipv4: '10.200.0.77', ipv6: 'fd00:200::4d' });
    const [v] = await add([newUser('pinned6', { ipv6: 'fd00:200::0:99' })]);
    expect(v).toMatchObject({ ipv6: 'fd00:200::99', ipv4: '10.200.0.153' });
    await expect(add([newUser('again', { ipv4: '10.200.0.77' })])).rejects.toThrow(Conflict);
  });

  it.each([
    ['ipv4', '10.201.0.5', /outside the pool 10\.200\.0\.0\/24/],
    ['ipv4', 'fd00:200::5', /not an IPv4 address/],
    ['ipv6', 'fd00:201::5', /outside the pool fd00:200::\/120/],
    ['ipv4', '10.200.0.0', /reserved \(network, gateway or broadcast\)/],
    ['ipv4', '10.200.0.1', /reserved/],
    ['ipv4', '10.200.0.255', /reserved/],
    ['ipv6', 'fd00:200::', /reserved/],
    ['ipv6', 'fd00:200::1', /reserved/],
  ] as const)('refuses to pin %s %s', async (family, address, message) => {
    const attempt = () => add([newUser('pinned', { [family]: address })]);
    await expect(attempt()).rejects.toThrow(InputError);
    await expect(attempt()).rejects.toThrow(message);
    expect(await store.listUsers()).toEqual([]);
  });

  it("quarantines a deleted user's addresses until quarantineDays have passed", async () => {
    await add([newUser('a'), newUser('b'), newUser('c')]);
    expect((await store.getUser('a'))?.ipv4).toBe('10.200.0.2');
    await store.deleteUser('a', FIXED_NOW, 'test');
    expect(await store.addressesHeld(POOLS, days(1))).toBe(3);

    const [d] = await add([newUser('d')], days(1));
    expect(d).toMatchObject({ ipv4: '10.200.0.5', ipv6: 'fd00:200::5' });
    await expect(add([newUser('pin4', { ipv4: '10.200.0.2' })], days(29))).rejects.toThrow(
      Conflict,
    );
    await expect(add([newUser('pin6', { ipv6: 'fd00:200::2' })], days(29))).rejects.toThrow(
      Conflict,
    );

    expect(await store.addressesHeld(POOLS, days(30))).toBe(3);
    const [e] = await add([newUser('e')], days(30));
    expect(e).toMatchObject({ ipv4: '10.200.0.2', ipv6: 'fd00:200::2' });
  });

  it('adds a batch all or nothing: one conflicting name inserts no user and no certificate', async () => {
    await add([newUser('taken')]);
    const batch = [newUser('n1'), newUser('n2'), newUser('taken'), newUser('n3')];
    await expect(add(batch)).rejects.toThrow(Conflict);
    expect((await store.listUsers()).map((u) => u.name)).toEqual(['taken']);
    expect(await store.getCert(batch[0].cert!.serial)).toBeUndefined();
    expect((await store.auditLog(10)).filter((e) => e.action === 'user.add')).toHaveLength(1);
    // The addresses n1 and n2 would have had are still free.
    expect((await add([newUser('next')]))[0].ipv4).toBe('10.200.0.3');
  });

  it('prunes audit entries older than the cut-off, and only those, reopening sees the same', async () => {
    const entry = async (at: Date, subject: string) =>
      await store.audit({ at: at.toISOString(), actor: 'test', action: 'test.event', subject });
    await entry(days(-40), 'old');
    await entry(days(-31), 'older-than-cutoff');
    await entry(days(-30), 'at-cutoff');
    await entry(days(-1), 'recent');
    expect(await store.pruneAudit(days(-30))).toBe(2);
    expect(await store.pruneAudit(days(-30))).toBe(0);
    await store.close();
    store = new SqliteStore(file);
    expect((await store.auditLog(10)).map((e) => e.subject)).toEqual(['recent', 'at-cutoff']);
  });

  it('refuses a name twice in one batch, inserting nothing', async () => {
    await expect(add([newUser('twin'), newUser('twin')])).rejects.toThrow(Conflict);
    expect(await store.listUsers()).toEqual([]);
  });
});

describe('SqliteStore: admins and their sessions', () => {
  let dir: string;
  let store: SqliteStore;
  const at = (minutes: number) => new Date(FIXED_NOW.getTime() + minutes * 60_000);
  const session = (id: string, admin: string, minutes = 0): AdminSession => ({
    idSha256: id,
    admin,
    csrfToken: `csrf-${id}`,
    createdAt: at(minutes).toISOString(),
    lastSeenAt: at(minutes).toISOString(),
    address: '192.0.2.9',
  });
  const add = async (name: string, role: 'viewer' | 'operator' | 'admin' = 'viewer') =>
    await store.createAdmin(
      { name, role, passwordHash: `hash-of-${name}`, mustChangePassword: true },
      FIXED_NOW,
      'cli:root',
    );
  const sessionIds = async () => {
    const live: string[] = [];
    for (const id of ['s1', 's2', 's3'])
      if ((await store.getAdminSession(id)) !== undefined) live.push(id);
    return live;
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ovf-store-'));
    store = new SqliteStore(join(dir, 'fleet.db'));
    await add('ann', 'operator');
    await add('bob');
    await store.createAdminSession(session('s1', 'ann'), 'console:ann');
    await store.createAdminSession(session('s2', 'ann'), 'console:ann');
    await store.createAdminSession(session('s3', 'bob'), 'console:bob');
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('adds, lists and refuses a name twice; sessions come back with their admin', async () => {
    expect((await store.listAdmins()).map((a) => [a.name, a.role, a.mustChangePassword])).toEqual([
      ['ann', 'operator', true],
      ['bob', 'viewer', true],
    ]);
    await expect(add('ann')).rejects.toThrow(Conflict);
    expect(await store.getAdminSession('s1')).toMatchObject({
      session: { admin: 'ann', csrfToken: 'csrf-s1', address: '192.0.2.9' },
      admin: { name: 'ann', role: 'operator' },
    });
    expect(await store.getAdminSession('nope')).toBeUndefined();
    await expect(store.createAdminSession(session('s9', 'zed'), 'console:zed')).rejects.toThrow(
      NotFound,
    );
  });

  it('ends every session of an admin whose role changes or who is removed', async () => {
    expect((await store.setAdminRole('ann', 'admin', at(1), 'cli:root')).role).toBe('admin');
    expect(await sessionIds()).toEqual(['s3']);
    expect((await store.deleteAdmin('bob', at(2), 'cli:root')).name).toBe('bob');
    expect(await sessionIds()).toEqual([]);
    expect(await store.getAdmin('bob')).toBeUndefined();
    await expect(store.deleteAdmin('bob', at(2), 'cli:root')).rejects.toThrow(NotFound);
    await expect(store.setAdminRole('bob', 'admin', at(2), 'cli:root')).rejects.toThrow(NotFound);
  });

  it('a new password ends the sessions but the one that changed it', async () => {
    const changed = await store.setAdminPassword(
      'ann',
      { passwordHash: 'new-hash', mustChangePassword: false, keepSession: 's2' },
      at(5),
      'console:ann',
    );
    expect(changed).toMatchObject({ passwordHash: 'new-hash', mustChangePassword: false });
    expect(await store.getAdmin('ann')).toMatchObject({
      passwordHash: 'new-hash',
      mustChangePassword: false,
      passwordChangedAt: at(5).toISOString(),
    });
    expect(await sessionIds()).toEqual(['s2', 's3']);
    await store.setAdminPassword(
      'ann',
      { passwordHash: 'h3', mustChangePassword: true },
      at(6),
      'x',
    );
    expect(await sessionIds()).toEqual(['s3']);
  });

  it('ends one session, touches, and prunes idle or too old ones', async () => {
    expect(await store.endAdminSession('s1', 'logout', at(1), 'console:ann')).toBe(true);
    expect(await store.endAdminSession('s1', 'logout', at(1), 'console:ann')).toBe(false);
    await store.touchAdminSession('s2', at(20));
    expect((await store.getAdminSession('s2'))!.session.lastSeenAt).toBe(at(20).toISOString());
    // s3 idle since 0; s2 seen at 20 but created at 0.
    expect(await store.pruneAdminSessions(at(10), at(-1))).toBe(1);
    expect(await sessionIds()).toEqual(['s2']);
    expect(await store.pruneAdminSessions(at(10), at(1))).toBe(1);
    expect(await sessionIds()).toEqual([]);
  });

  it('audits every change with its actor, and never a hash or a session id', async () => {
    await store.setAdminRole('bob', 'operator', at(1), 'cli:root');
    await store.setAdminPassword(
      'bob',
      { passwordHash: 'h2', mustChangePassword: false },
      at(2),
      'x',
    );
    await store.endAdminSession('s1', 'idle', at(3), 'controller');
    await store.deleteAdmin('ann', at(4), 'cli:root');
    const log = (await store.auditLog(100)).reverse();
    expect(log.map((e) => [e.actor, e.action, e.subject])).toEqual([
      ['cli:root', 'admin.add', 'ann'],
      ['cli:root', 'admin.add', 'bob'],
      ['console:ann', 'admin.login', 'ann'],
      ['console:ann', 'admin.login', 'ann'],
      ['console:bob', 'admin.login', 'bob'],
      ['cli:root', 'admin.role', 'bob'],
      ['x', 'admin.password', 'bob'],
      ['controller', 'admin.logout', 'ann'],
      ['cli:root', 'admin.remove', 'ann'],
    ]);
    expect(log[5].detail).toEqual({ from: 'viewer', to: 'operator', sessionsEnded: 1 });
    expect(log[7].detail).toEqual({ reason: 'idle' });
    expect(log[8].detail).toEqual({ role: 'operator', sessionsEnded: 1 });
    const text = JSON.stringify(log);
    for (const secret of ['hash-of', 'h2', 'csrf-', '"s1"', '"s2"'])
      expect(text).not.toContain(secret);
  });
});

describe('SqliteStore under concurrent writers', () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('four processes adding 25 users each get 100 distinct addresses, no failures', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ovf-store-conc-'));
    const file = join(dir, 'fleet.db');
    await new SqliteStore(file).close();
    const storeUrl = pathToFileURL(resolve(import.meta.dirname, 'sqlite.ts')).href;
    const ipUrl = pathToFileURL(resolve(import.meta.dirname, '../core/ip.ts')).href;
    const writer = join(dir, 'writer.mts');
    writeFileSync(
      writer,
      `
const { SqliteStore } = await import(${JSON.stringify(storeUrl)});
const { mustParsePrefix } = await import(${JSON.stringify(ipUrl)});
const [file, id, startAt] = process.argv.slice(2);
const pools = {
  ipv4: mustParsePrefix('10.200.0.0/24'),
  ipv6: mustParsePrefix('fd00:200::/120'),
  quarantineDays: 30,
};
const store = new SqliteStore(file);
// Start together, so the writers really contend for SQLite's write lock.
while (Date.now() < Number(startAt)) await new Promise((r) => setTimeout(r, 1));
for (let i = 0; i < 25; i++) {
  const name = 'w' + id + '-' + i;
  await store.createUsers(
    [{ name, groups: [], cert: { serial: id + 'f' + i.toString(16), certPem: 'c', keyPem: 'k', notAfter: new Date() } }],
    pools,
    new Date(),
    'writer-' + id,
  );
}
await store.close();
`,
    );
    const startAt = Date.now() + 1500;
    const results = await Promise.all(
      [1, 2, 3, 4].map(
        (id) =>
          new Promise<{ code: number | null; stderr: string }>((done) => {
            const child = spawn(
              process.execPath,
              ['--import', 'tsx', writer, file, String(id), String(startAt)],
              { stdio: ['ignore', 'ignore', 'pipe'], cwd: resolve(import.meta.dirname, '../..') },
            );
            let stderr = '';
            child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
            child.on('close', (code) => done({ code, stderr }));
          }),
      ),
    );
    expect(results).toEqual(Array.from({ length: 4 }, () => ({ code: 0, stderr: '' })));
    const store = new SqliteStore(file);
    try {
      const users = await store.listUsers();
      expect(users).toHaveLength(100);
      expect(new Set(users.map((u) => u.ipv4)).size).toBe(100);
      expect(new Set(users.map((u) => u.ipv6)).size).toBe(100);
    } finally {
      await store.close();
    }
  }, 30_000);
});

describe('SqliteStore: user search and the audit log', () => {
  let dir: string;
  let file: string;
  let store: SqliteStore;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ovf-store-search-'));
    file = join(dir, 'fleet.db');
    store = new SqliteStore(file);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const BIG: Pools = {
    ipv4: mustParsePrefix('10.200.0.0/16'),
    ipv6: mustParsePrefix('fd00:200::/112'),
    quarantineDays: 30,
  };

  /** What a search must answer, computed in JS from the whole list (the slow way). */
  function expected(all: User[], s: UserSearch): { total: number; names: string[] } {
    const q = s.q?.toLowerCase();
    const hit = all.filter(
      (u) =>
        (s.status === undefined || u.status === s.status) &&
        (s.group === undefined || u.groups.includes(s.group)) &&
        (q === undefined ||
          [u.name, u.ipv4, u.ipv6, ...u.groups].some((v) => v.toLowerCase().includes(q))),
    );
    const key = (u: User) =>
      s.sort === 'created' ? u.createdAt : s.sort === 'status' ? u.status : '';
    const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
    hit.sort((a, b) => {
      const c = cmp(key(a), key(b)) || cmp(a.name, b.name);
      return s.descending ? -c : c;
    });
    const start = s.offset ?? 0;
    const page = hit.slice(start, s.limit === undefined ? undefined : start + s.limit);
    return { total: hit.length, names: page.map((u) => u.name) };
  }

  it('searches 10,000 users in SQL: filters, literal wildcards, sorting and pages agree with a scan', async () => {
    const groups = ['staff', 'dba', 'ops', '50%off'];
    // Four batches a day apart, so that sorting by creation time has something to sort.
    for (let batch = 0; batch < 4; batch++) {
      const users: NewUser[] = [];
      for (let i = batch; i < 10_000; i += 4) {
        users.push({
          name: `user${String(i).padStart(5, '0')}`,
          groups: groups.filter((_, g) => (i >> g) % 3 === 0 && g < 3),
        });
      }
      if (batch === 0) {
        users.push({ name: 'x_y', groups: ['50%off'] }, { name: 'Mixed.Case', groups: [] });
      }
      await store.createUsers(users, BIG, days(batch - 10), 'test');
    }
    await store.transaction(async (tx) => {
      for (let i = 0; i < 10_000; i += 7) {
        const name = `user${String(i).padStart(5, '0')}`;
        await tx.setStatus(name, i % 2 ? 'disabled' : 'revoked', FIXED_NOW, 'test');
      }
    });
    const all = await store.listUsers();
    expect(all).toHaveLength(10_002);

    const searches: UserSearch[] = [
      {},
      { limit: 50 },
      { q: 'user0012' },
      { q: 'USER0012', limit: 5, offset: 3 },
      { q: '10.200.1.' },
      { q: 'fd00:200::2a' },
      { q: 'db' },
      // A wildcard character in q is literal: "_" is not "any character", "%" not "anything".
      { q: '_' },
      { q: '%' },
      { q: '50%' },
      { q: 'mixed.case' },
      { status: 'revoked' },
      { status: 'disabled', group: 'ops', sort: 'created', descending: true, limit: 20 },
      { group: 'dba', q: '9', offset: 100, limit: 100 },
      { sort: 'status', limit: 30, offset: 1420 },
      { sort: 'created', descending: true, offset: 9990 },
      { sort: 'name', descending: true, limit: 3 },
      { q: 'nobody-has-this' },
      // past the last match: no rows, the total still counted
      { q: 'user0012', offset: 50, limit: 10 },
    ];
    for (const s of searches) {
      const got = await store.searchUsers(s);
      expect({ total: got.total, names: got.users.map((u) => u.name) }, JSON.stringify(s)).toEqual(
        expected(all, s),
      );
    }
    // The literal-wildcard searches find exactly what holds the character.
    expect((await store.searchUsers({ q: '_' })).users.map((u) => u.name)).toEqual(['x_y']);
    expect((await store.searchUsers({ q: '%' })).users.map((u) => u.name)).toEqual(['x_y']);
    // Paging through the whole list in pages of 500 sees every user once, in order.
    const paged: string[] = [];
    for (let offset = 0; ; offset += 500) {
      const page = await store.searchUsers({ offset, limit: 500, sort: 'created' });
      expect(page.total).toBe(10_002);
      if (page.users.length === 0) break;
      paged.push(...page.users.map((u) => u.name));
    }
    expect(paged).toEqual(expected(all, { sort: 'created' }).names);
    // The rows are whole users: groups and certificate as getUser gives them.
    const one = (await store.searchUsers({ q: 'user00000' })).users[0];
    expect(one).toEqual(await store.getUser('user00000'));
  }, 60_000);

  it('filters the audit log by actor, subject, action or prefix and time, newest first, with a cursor', async () => {
    const at = (minute: number) => new Date(Date.UTC(2030, 0, 1, 10, minute)).toISOString();
    const log = [
      { at: at(0), actor: 'cli:root', action: 'user.add', subject: 'alice' },
      { at: at(1), actor: 'api:admin', action: 'user.disable', subject: 'alice' },
      { at: at(2), actor: 'agent:vpn11', action: 'session.connect', subject: 'alice' },
      { at: at(3), actor: 'agent:vpn11', action: 'session.disconnect', subject: 'bob' },
      { at: at(4), actor: 'api:admin', action: 'server.drain', subject: 'vpn11' },
      { at: at(5), actor: 'agent:vpn12', action: 'session.connect', subject: 'bob' },
      { at: at(6), actor: 'api:admin', action: 'sessionx.other', subject: 'bob' },
    ];
    for (const e of log) await store.audit(e);
    const subjects = async (f: Parameters<SqliteStore['auditQuery']>[0]) =>
      (await store.auditQuery(f)).map((e) => `${e.action}:${e.subject}`);
    expect(await subjects({ limit: 3 })).toEqual([
      'sessionx.other:bob',
      'session.connect:bob',
      'server.drain:vpn11',
    ]);
    expect(await subjects({ limit: 100, actor: 'agent:vpn11' })).toEqual([
      'session.disconnect:bob',
      'session.connect:alice',
    ]);
    // A prefix ending in "." takes that family only, not "sessionx.".
    expect(await subjects({ limit: 100, actionPrefix: 'session.' })).toEqual([
      'session.connect:bob',
      'session.disconnect:bob',
      'session.connect:alice',
    ]);
    expect(await subjects({ limit: 100, action: 'session.connect', subject: 'bob' })).toEqual([
      'session.connect:bob',
    ]);
    // since inclusive, until exclusive
    expect(await subjects({ limit: 100, since: new Date(at(2)), until: new Date(at(4)) })).toEqual([
      'session.disconnect:bob',
      'session.connect:alice',
    ]);
    // Paging with the cursor: each page continues below the last id seen.
    const first = await store.auditQuery({ limit: 4 });
    const second = await store.auditQuery({ limit: 4, before: first.at(-1)!.id });
    expect([...first, ...second].map((e) => e.at)).toEqual(log.map((e) => e.at).reverse());
    expect(await store.auditQuery({ limit: 100, subject: 'carol' })).toEqual([]);
  });

  it("reads a user's sign-ins through the (subject, action, id) index, never scanning the log", async () => {
    await store.audit({
      at: FIXED_NOW.toISOString(),
      actor: 't',
      action: 'auth.totp',
      subject: 'a',
    });
    const raw = new Database(file, { readonly: true });
    try {
      const plan = raw
        .prepare(`EXPLAIN QUERY PLAN ${auditForSubjectSql(3)}`)
        .all('a', 'auth.totp', 5, 'a', 'sso.sign-in', 5, 'a', 'sso.refused', 5, 5) as {
        detail: string;
      }[];
      const steps = plan.map((p) => p.detail);
      expect(
        steps.filter((d) =>
          d.includes('USING INDEX audit_subject_action (subject=? AND action=?)'),
        ),
      ).toHaveLength(3);
      expect(steps.filter((d) => /^SCAN audit\b/.test(d))).toEqual([]);
    } finally {
      raw.close();
    }
  });

  it('tails the log by id, and never hands out an id twice, not even after a prune empties it', async () => {
    expect(await store.lastAuditId()).toBe(0);
    const entry = async (subject: string, at = FIXED_NOW) =>
      await store.audit({ at: at.toISOString(), actor: 'test', action: 'test.event', subject });
    await entry('a', days(-100));
    await entry('b', days(-100));
    await entry('c', days(-100));
    const ids = (await store.auditSince(0, 10)).map((e) => e.id);
    expect((await store.auditSince(0, 10)).map((e) => e.subject)).toEqual(['a', 'b', 'c']);
    expect((await store.auditSince(ids[0], 1)).map((e) => e.subject)).toEqual(['b']);
    expect(await store.lastAuditId()).toBe(ids[2]);
    expect(await store.pruneAudit(days(-30))).toBe(3);
    await entry('d');
    const [d] = await store.auditSince(ids[2], 10);
    expect(d).toMatchObject({ subject: 'd' });
    expect(d.id).toBeGreaterThan(ids[2]);
  });

  it('refuses a store a newer release migrated further, in one line, leaving it untouched', async () => {
    await store.close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    const before = readFileSync(file);
    let err: unknown;
    try {
      store = new SqliteStore(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StoreTooNew);
    expect((err as Error).message).toBe(
      `${file}: store schema ${MIGRATIONS.length + 1} is newer than this ovpn-fleet knows (${MIGRATIONS.length}): it was written by a newer release; run that release or a newer one`,
    );
    expect((err as Error).message).not.toContain('\n');
    expect(readFileSync(file).equals(before)).toBe(true);
    // The store at the version this code knows opens again (afterEach closes it).
    const back = new Database(file);
    back.pragma(`user_version = ${MIGRATIONS.length}`);
    back.close();
    store = new SqliteStore(file);
  });

  it('keeps the audit entries and their ids when migrating a store from before audit ids were kept', async () => {
    await store.close();
    rmSync(file);
    const raw = new Database(file);
    for (let i = 0; i < 3; i++) raw.exec(MIGRATIONS[i]);
    raw.pragma('user_version = 3');
    const insert = raw.prepare(
      'INSERT INTO audit (id, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)',
    );
    insert.run(7, FIXED_NOW.toISOString(), 'cli:root', 'user.add', 'alice', '{"groups":[]}');
    insert.run(9, FIXED_NOW.toISOString(), 'cli:root', 'user.add', 'bob', null);
    raw.close();
    store = new SqliteStore(file);
    expect(await store.auditSince(0, 10)).toEqual([
      {
        id: 7,
        at: FIXED_NOW.toISOString(),
        actor: 'cli:root',
        action: 'user.add',
        subject: 'alice',
        detail: { groups: [] },
      },
      { id: 9, at: FIXED_NOW.toISOString(), actor: 'cli:root', action: 'user.add', subject: 'bob' },
    ]);
    await store.audit({ at: FIXED_NOW.toISOString(), actor: 't', action: 'x', subject: 'carol' });
    expect(await store.lastAuditId()).toBe(10);
  });

  it('migrating a store from before the certificate lifecycle makes its one CA active and the issuer of every certificate', async () => {
    await store.close();
    rmSync(file);
    const raw = new Database(file);
    for (let i = 0; i < 6; i++) raw.exec(MIGRATIONS[i]);
    raw.pragma('user_version = 6');
    const insert = raw.prepare(
      'INSERT INTO certs (serial, kind, subject, not_after, cert_pem, key_pem, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const at = FIXED_NOW.toISOString();
    insert.run('ca1', 'ca', 'acme VPN CA', days(3650).toISOString(), 'C', 'K', null);
    insert.run('51', 'server', 'vpn11', days(825).toISOString(), 'C', 'K', null);
    insert.run('c1', 'client', 'ann', days(365).toISOString(), 'C', 'K', null);
    insert.run('c2', 'client', 'ann', days(365).toISOString(), 'C', 'K', at);
    raw.close();
    store = new SqliteStore(file);
    expect(await store.getCa()).toMatchObject({ serial: 'ca1', caState: 'active' });
    expect((await store.serverCert('vpn11'))?.issuer).toBe('ca1');
    expect(await store.liveClientCerts(FIXED_NOW)).toEqual([
      expect.objectContaining({ serial: 'c1', issuer: 'ca1' }),
    ]);
    expect(await store.revokedCerts()).toEqual([{ serial: 'c2', revokedAt: at, issuer: 'ca1' }]);
  });
});
