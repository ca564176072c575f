import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentReport, SessionReport } from '../api/index.js';
import type { User } from '../store/types.js';
import { type IngestOptions, ReportIngest, type ServerAsks } from './ingest.js';
import { knownUser } from './reports.js';
import { type ControllerFleet, controllerFleet } from './testing.js';

const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };

let t: ControllerFleet;
let users: Map<string, User>;
let logged: string[];

beforeEach(async () => {
  t = await controllerFleet();
  const added = await t.fleet.addUsers(
    ['ann', 'bob', 'cid', 'dan'].map((name) => ({ name })),
    { issueCerts: false },
  );
  users = new Map(added.map((u) => [u.name, u]));
  logged = [];
});
afterEach(async () => await t.cleanup());

const ingest = (opts: IngestOptions = {}, asked?: (server: string) => ServerAsks | undefined) =>
  new ReportIngest(
    t.fleet.store,
    async (name) => {
      const u = await t.fleet.store.getUser(name);
      return u && knownUser(u);
    },
    t.clock,
    (l) => logged.push(l),
    opts,
    asked,
  );

/** A session of `user` that started `agoS` seconds before the clock's now. */
function session(user: string, agoS = 60, clientId = 1): SessionReport {
  const u = users.get(user);
  return {
    user,
    realAddress: `198.51.100.${clientId}:1194`,
    ...(u ? { ipv4: u.ipv4, ipv6: u.ipv6 } : {}),
    since: new Date(t.clock.now().getTime() - agoS * 1000).toISOString(),
    bytesIn: 10,
    bytesOut: 20,
    clientId,
  };
}

const report = (sessions: SessionReport[], more: Partial<AgentReport> = {}): AgentReport => ({
  sessions,
  health: HEALTHY,
  bundleDigest: 'applied',
  ...more,
});

/** The session and suppression entries, oldest first, as [actor, action, subject]. */
async function sessionAudit(): Promise<string[][]> {
  return (await t.fleet.store.auditLog(1000))
    .filter((e) => /^(session|audit)\./.test(e.action))
    .reverse()
    .map((e) => [e.actor, e.action, e.subject]);
}

const usersOn = async (server: string) =>
  (await t.fleet.store.listSessions(server)).map((s) => s.user);

describe('ReportIngest', () => {
  it('records the sessions and audits connects, moves and disconnects', async () => {
    const ingest1 = ingest();
    const annOn11 = session('ann', 120);
    await ingest1.record('vpn11', report([annOn11]));
    expect(await usersOn('vpn11')).toEqual(['ann']);
    await ingest1.record('vpn11', report([annOn11]));
    await ingest1.record('vpn21', report([session('ann', 5)]));
    await ingest1.record('vpn11', report([]));
    expect(await usersOn('vpn11')).toEqual([]);
    expect(await usersOn('vpn21')).toEqual(['ann']);
    expect(await sessionAudit()).toEqual([
      ['agent:vpn11', 'session.connect', 'ann'],
      ['agent:vpn21', 'session.connect', 'ann'],
      ['agent:vpn21', 'session.move', 'ann'],
      ['agent:vpn11', 'session.disconnect', 'ann'],
    ]);
    const move = (await t.fleet.store.auditLog(1000)).find((e) => e.action === 'session.move');
    expect(move?.detail).toMatchObject({ from: 'vpn11', to: 'vpn21' });
  });

  it('tells a move from a connect after a restart, from the sessions in the store', async () => {
    await ingest().record('vpn11', report([session('ann', 120)]));
    await ingest().record('vpn12', report([session('ann', 5)]));
    expect((await sessionAudit()).map(([, action]) => action)).toEqual([
      'session.connect',
      'session.connect',
      'session.move',
    ]);
  });

  it('leaves out sessions that cannot be real, and logs them once a minute per server', async () => {
    const ingest1 = ingest();
    const future = {
      ...session('bob'),
      since: new Date(t.clock.now().getTime() + 120_000).toISOString(),
    };
    const notHers = { ...session('cid'), ipv4: users.get('ann')!.ipv4 };
    const refused = [session('mallory'), future, notHers];
    await ingest1.record('vpn11', report([session('ann'), ...refused]));
    await ingest1.record('vpn11', report([session('ann'), ...refused]));
    expect(await usersOn('vpn11')).toEqual(['ann']);
    expect(await sessionAudit()).toEqual([['agent:vpn11', 'session.connect', 'ann']]);
    expect(logged).toEqual([
      expect.stringMatching(/vpn11: 3 session\(s\) refused.*mallory.*no such user/),
    ]);

    t.clock.advance(60_000);
    await ingest1.record('vpn11', report([session('ann'), ...refused]));
    expect(logged).toHaveLength(2);
  });

  it('refuses sessions of a disabled user', async () => {
    await t.fleet.setStatus('dan', 'disabled');
    await ingest().record('vpn11', report([session('dan')]));
    expect(await usersOn('vpn11')).toEqual([]);
    expect(logged).toEqual([expect.stringMatching(/user is not enabled/)]);
  });

  it('keeps the sessions of a server whose agent cannot read them, until it can again', async () => {
    const ingest1 = ingest();
    const ann = session('ann');
    await ingest1.record('vpn11', report([ann, session('bob', 30, 2)]));
    const before = await t.fleet.store.listSessions('vpn11');

    const down = { ...HEALTHY, openvpn: false, ok: false };
    await ingest1.record('vpn11', report([], { sessionsUnknown: true, health: down }));
    await ingest1.record('vpn11', report([], { sessionsUnknown: true, health: down }));
    expect(await t.fleet.store.listSessions('vpn11')).toEqual(before);
    expect([...ingest1.unknown]).toEqual(['vpn11']);
    expect((await sessionAudit()).map(([, action]) => action)).toEqual([
      'session.connect',
      'session.connect',
    ]);
    expect(logged).toEqual([expect.stringMatching(/vpn11: its agent cannot read/)]);
    // The sessions are no news, the health is: OpenVPN down shows.
    const state = (await t.fleet.store.listServerStates()).find((s) => s.name === 'vpn11');
    expect(state?.health).toEqual(down);

    await ingest1.record('vpn11', report([ann]));
    expect(ingest1.unknown.size).toBe(0);
    expect(await usersOn('vpn11')).toEqual(['ann']);
    expect((await sessionAudit()).at(-1)).toEqual(['agent:vpn11', 'session.disconnect', 'bob']);
  });

  it("limits one server's audit entries and says how many it left out once there is room", async () => {
    const ingest1 = ingest({ auditBurst: 2, auditPerSecond: 1 });
    const all = ['ann', 'bob', 'cid', 'dan'].map((u, i) => session(u, 60, i + 1));
    await ingest1.record('vpn11', report(all));
    expect(await usersOn('vpn11')).toEqual(['ann', 'bob', 'cid', 'dan']);
    expect(await sessionAudit()).toHaveLength(2);

    // Another server has its own budget.
    await ingest1.record('vpn21', report([session('ann', 1)]));
    expect(await sessionAudit()).toHaveLength(4);

    t.clock.advance(1000);
    await ingest1.record('vpn11', report(all));
    const suppressed = (await t.fleet.store.auditLog(1)).at(0);
    expect(suppressed).toMatchObject({
      actor: 'controller',
      action: 'audit.suppressed',
      subject: 'vpn11',
      detail: { entries: 2 },
    });
    await ingest1.record('vpn11', report(all));
    expect((await sessionAudit()).filter(([, a]) => a === 'audit.suppressed')).toHaveLength(1);
  });
});

describe('ReportIngest and the location history', () => {
  /** ann's history as [server, until, reason], newest first. */
  const historyOf = async (user: string) =>
    (await t.fleet.store.sessionHistory(user, { limit: 100 })).map((h) => [
      h.server,
      h.until ?? null,
      h.reason ?? null,
    ]);
  const nowIso = () => t.clock.now().toISOString();

  it('a session the client ended: disconnect, at the report that shows it gone, audited so', async () => {
    const i = ingest();
    await i.record('vpn11', report([session('ann')]));
    expect(await historyOf('ann')).toEqual([['vpn11', null, null]]);
    t.clock.advance(2000);
    await i.record('vpn11', report([]));
    expect(await historyOf('ann')).toEqual([['vpn11', nowIso(), 'disconnect']]);
    const audit = (await t.fleet.store.auditLog(10)).find((e) => e.action === 'session.disconnect');
    expect(audit?.detail).toMatchObject({ server: 'vpn11', reason: 'disconnect' });
  });

  it("what the controller asked for names the reason: an operator's kill, an eviction", async () => {
    const ann = session('ann', 60, 1);
    const bob = session('bob', 60, 2);
    const cid = session('cid', 60, 3);
    const asks: ServerAsks = {
      evict: [
        { user: 'ann', since: ann.since, clientId: 1, reason: 'operator' },
        { user: 'bob', since: bob.since },
        // Another session of cid (another client id) was killed: not this one.
        { user: 'cid', since: cid.since, clientId: 9, reason: 'operator' },
      ],
      drain: false,
    };
    const i = ingest({}, (server) => (server === 'vpn11' ? asks : undefined));
    await i.record('vpn11', report([ann, bob, cid]));
    await i.record('vpn11', report([]));
    expect(await historyOf('ann')).toEqual([['vpn11', nowIso(), 'killed']]);
    expect(await historyOf('bob')).toEqual([['vpn11', nowIso(), 'eviction']]);
    expect(await historyOf('cid')).toEqual([['vpn11', nowIso(), 'disconnect']]);
  });

  it("the user's status cut it: revoke, disable, delete", async () => {
    const i = ingest();
    await i.record(
      'vpn11',
      report(['ann', 'bob', 'cid', 'dan'].map((u, n) => session(u, 60, n + 1))),
    );
    await t.fleet.setStatus('ann', 'revoked');
    await t.fleet.setStatus('bob', 'disabled');
    await t.fleet.deleteUser('cid');
    // The agent has not ended them yet: the controller stops admitting them at once.
    await i.record(
      'vpn11',
      report(['ann', 'bob', 'cid', 'dan'].map((u, n) => session(u, 60, n + 1))),
    );
    expect(await usersOn('vpn11')).toEqual(['dan']);
    expect(await historyOf('ann')).toEqual([['vpn11', nowIso(), 'revoke']]);
    expect(await historyOf('bob')).toEqual([['vpn11', nowIso(), 'disable']]);
    expect(await historyOf('cid')).toEqual([['vpn11', nowIso(), 'delete']]);
    expect(await historyOf('dan')).toEqual([['vpn11', null, null]]);
  });

  it('gone while its server drains: drain (the flag, or the agent saying so)', async () => {
    const i = ingest({}, (server) => (server === 'vpn11' ? { evict: [], drain: true } : undefined));
    await i.record('vpn11', report([session('ann')]));
    await i.record('vpn11', report([]));
    await i.record('vpn12', report([session('bob')]));
    await i.record('vpn12', report([], { health: { ...HEALTHY, draining: true, ok: false } }));
    expect(await historyOf('ann')).toEqual([['vpn11', nowIso(), 'drain']]);
    expect(await historyOf('bob')).toEqual([['vpn12', nowIso(), 'drain']]);
  });

  it('gone while nobody watched: server-lost, until it was last seen', async () => {
    const i = ingest({ staleAfterMs: 10_000 });
    const ann = session('ann', 60, 1);
    await i.record('vpn11', report([ann, session('bob', 60, 2)]));
    // Within the stale limit a missing session is an ordinary disconnect.
    t.clock.advance(10_000);
    await i.record('vpn11', report([ann]));
    expect(await historyOf('bob')).toEqual([['vpn11', nowIso(), 'disconnect']]);
    const annSeen = nowIso();
    // Silent for longer: ann went at some point after she was last seen.
    t.clock.advance(10_001);
    await i.record('vpn11', report([]));
    expect(await historyOf('ann')).toEqual([['vpn11', annSeen, 'server-lost']]);

    // An agent that could not read its sessions, then can again without cid's.
    const cid = session('cid');
    await i.record('vpn12', report([cid]));
    const cidSeen = nowIso();
    t.clock.advance(1000);
    await i.record('vpn12', report([], { sessionsUnknown: true }));
    t.clock.advance(1000);
    await i.record('vpn12', report([]));
    expect(await historyOf('cid')).toEqual([['vpn12', cidSeen, 'server-lost']]);
  });

  it("keeps each server's reported routes, also when its sessions could not be read", async () => {
    const i = ingest();
    const routes = { ipv4: [users.get('ann')!.ipv4], ipv6: [] };
    await i.record('vpn11', report([], { routes }));
    const state = async () =>
      (await t.fleet.store.listServerStates()).find((s) => s.name === 'vpn11');
    expect((await state())?.routes).toEqual(routes);
    await i.record('vpn11', report([], { sessionsUnknown: true, routes: { ipv4: [], ipv6: [] } }));
    expect((await state())?.routes).toEqual({ ipv4: [], ipv6: [] });
  });
});
