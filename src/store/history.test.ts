/** The location history and the reported host routes, on a real SQLite file. */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from './migrations.js';
import { SqliteStore } from './sqlite.js';
import type { ServerReport } from './types.js';

const health = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };
const at = (minute: number) => new Date(Date.UTC(2030, 0, 1, 10, minute)).toISOString();

type Reported = ServerReport['sessions'][number];

function session(user: string, clientId: number, sinceMinute = 0, bytes = 0): Reported {
  return {
    user,
    realAddress: `198.51.100.${clientId}:1194`,
    ipv4: `10.200.0.${clientId}`,
    ipv6: `fd00:200::${clientId}`,
    since: at(sinceMinute),
    bytesIn: bytes,
    bytesOut: bytes * 2,
    clientId,
  };
}

let dir: string;
let file: string;
let store: SqliteStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ovf-history-'));
  file = join(dir, 'fleet.db');
  store = new SqliteStore(file);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const report = (minute: number, sessions: Reported[], more: Partial<ServerReport> = {}) => ({
  at: at(minute),
  health,
  sessions,
  ...more,
});
const history = async (user: string, limit = 100) =>
  (await store.sessionHistory(user, { limit })).map((h) => [
    h.server,
    h.since,
    h.until ?? null,
    h.reason ?? null,
    h.bytesIn,
  ]);

describe('location history', () => {
  it('opens a row per new session, shows live counters, closes it with the last ones and why', async () => {
    await store.recordReport('vpn11', report(1, [session('alice', 1, 0, 10)]));
    await store.recordReport(
      'vpn11',
      report(2, [session('alice', 1, 0, 50), session('bob', 2, 1, 7)]),
    );
    // Live: the counters of the last report, no end.
    expect(await history('alice')).toEqual([['vpn11', at(0), null, null, 50]]);
    expect((await store.sessionHistory('alice', { limit: 1 }))[0]).toMatchObject({
      realAddress: '198.51.100.1:1194',
      ipv4: '10.200.0.1',
      ipv6: 'fd00:200::1',
      bytesOut: 100,
    });

    // alice moves to vpn21; vpn11 says how her session there ended; bob just goes.
    await store.recordReport('vpn21', report(3, [session('alice', 3, 3, 1)]));
    await store.recordReport(
      'vpn11',
      report(4, [], {
        ended: [{ user: 'alice', since: at(0), clientId: 1, reason: 'eviction', at: at(4) }],
      }),
    );
    expect(await history('alice')).toEqual([
      ['vpn21', at(3), null, null, 1],
      ['vpn11', at(0), at(4), 'eviction', 50],
    ]);
    expect(await history('bob')).toEqual([['vpn11', at(1), at(4), 'disconnect', 7]]);
    expect(await history('alice', 1)).toHaveLength(1);

    // A report that lists the same sessions again writes nothing new.
    await store.recordReport('vpn21', report(5, [session('alice', 3, 3, 2)]));
    expect(await history('alice')).toHaveLength(2);
  });

  it('an end the report names for a session it still lists is ignored; an end may be earlier', async () => {
    await store.recordReport('vpn11', report(1, [session('alice', 1), session('bob', 2)]));
    await store.recordReport(
      'vpn11',
      report(9, [session('alice', 1)], {
        ended: [
          { user: 'alice', since: at(0), clientId: 1, reason: 'killed', at: at(9) },
          { user: 'bob', since: at(0), clientId: 2, reason: 'server-lost', at: at(1) },
        ],
      }),
    );
    expect(await history('alice')).toEqual([['vpn11', at(0), null, null, 0]]);
    expect(await history('bob')).toEqual([['vpn11', at(0), at(1), 'server-lost', 0]]);
  });

  it('a session that comes back after a report missed it is live again', async () => {
    await store.recordReport('vpn11', report(1, [session('alice', 1)]));
    await store.recordReport('vpn11', report(2, []));
    expect(await history('alice')).toEqual([['vpn11', at(0), at(2), 'disconnect', 0]]);
    await store.recordReport('vpn11', report(3, [session('alice', 1)]));
    expect(await history('alice')).toEqual([['vpn11', at(0), null, null, 0]]);
  });

  it('leaves out what ended before `after` (a new user of an old name)', async () => {
    await store.recordReport('vpn11', report(1, [session('alice', 1)]));
    await store.recordReport('vpn11', report(2, []));
    await store.recordReport('vpn11', report(5, [session('alice', 2, 5)]));
    expect(
      (await store.sessionHistory('alice', { limit: 10, after: at(3) })).map((h) => h.since),
    ).toEqual([at(5)]);
    expect(await store.sessionHistory('nobody', { limit: 10 })).toEqual([]);
  });

  it('prunes ended rows older than the cut-off and beyond a per-user count; live rows stay', async () => {
    for (let i = 1; i <= 4; i++) {
      await store.recordReport('vpn11', report(i * 2, [session('alice', i, i * 2)]));
      await store.recordReport('vpn11', report(i * 2 + 1, []));
    }
    await store.recordReport('vpn11', report(20, [session('alice', 9, 20), session('bob', 8, 20)]));
    expect(await history('alice')).toHaveLength(5);
    // Ended at minutes 3, 5, 7, 9: the cut-off at 6 takes two.
    expect(await store.pruneHistory(new Date(at(6)), 1000)).toBe(2);
    expect((await history('alice')).map(([, since]) => since)).toEqual([at(20), at(8), at(6)]);
    // One ended row per user kept: the newest.
    expect(await store.pruneHistory(new Date(at(0)), 1)).toBe(1);
    expect((await history('alice')).map(([, since]) => since)).toEqual([at(20), at(8)]);
    expect(await store.pruneHistory(new Date(at(59)), 0)).toBe(1);
    expect(await history('alice')).toEqual([['vpn11', at(20), null, null, 0]]);
    expect(await history('bob')).toHaveLength(1);
  });

  it('an upgraded store starts the history with the sessions live at the upgrade', async () => {
    await store.close();
    rmSync(file);
    const raw = new Database(file);
    for (const m of MIGRATIONS.slice(0, 3)) raw.exec(m);
    raw.pragma('user_version = 3');
    raw
      .prepare(
        `INSERT INTO sessions (server, user, real_address, since, bytes_in, bytes_out, client_id, reported_at)
         VALUES ('vpn11', 'alice', '198.51.100.1:1194', ?, 5, 6, 1, ?)`,
      )
      .run(at(0), at(1));
    raw.close();
    store = new SqliteStore(file);
    expect(await history('alice')).toEqual([['vpn11', at(0), null, null, 5]]);
    await store.recordReport('vpn11', report(2, []));
    expect(await history('alice')).toEqual([['vpn11', at(0), at(2), 'disconnect', 5]]);
  });
});

describe('reported host routes', () => {
  it("are kept with the server's state, replaced by each report, absent when not reported", async () => {
    const routes = { ipv4: ['10.200.0.1'], ipv6: ['fd00:200::1'] };
    await store.recordReport('vpn11', report(1, [], { routes }));
    await store.recordHealth('vpn12', { at: at(1), health, routes: { ipv4: [], ipv6: [] } });
    const state = async (name: string) =>
      (await store.listServerStates()).find((s) => s.name === name);
    expect((await state('vpn11'))?.routes).toEqual(routes);
    expect((await state('vpn12'))?.routes).toEqual({ ipv4: [], ipv6: [] });
    await store.recordReport('vpn11', report(2, []));
    expect((await state('vpn11'))?.routes).toBeUndefined();
    // The drain flag is kept across reports, routes or not.
    await store.setDraining('vpn11', true, new Date(at(3)), 'test');
    await store.recordReport('vpn11', report(4, [], { routes }));
    expect(await state('vpn11')).toMatchObject({ draining: true, routes });
  });
});
