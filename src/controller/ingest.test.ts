import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentReport, SessionReport } from '../api/index.js';
import type { User } from '../store/types.js';
import { type IngestOptions, ReportIngest } from './ingest.js';
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
afterEach(() => t.cleanup());

const ingest = (opts: IngestOptions = {}) =>
  new ReportIngest(
    t.fleet.store,
    (name) => {
      const u = t.fleet.store.getUser(name);
      return u && knownUser(u);
    },
    t.clock,
    (l) => logged.push(l),
    opts,
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
function sessionAudit(): string[][] {
  return t.fleet.store
    .auditLog(1000)
    .filter((e) => /^(session|audit)\./.test(e.action))
    .reverse()
    .map((e) => [e.actor, e.action, e.subject]);
}

const usersOn = (server: string) => t.fleet.store.listSessions(server).map((s) => s.user);

describe('ReportIngest', () => {
  it('records the sessions and audits connects, moves and disconnects', () => {
    const ingest1 = ingest();
    const annOn11 = session('ann', 120);
    ingest1.record('vpn11', report([annOn11]));
    expect(usersOn('vpn11')).toEqual(['ann']);
    ingest1.record('vpn11', report([annOn11]));
    ingest1.record('vpn21', report([session('ann', 5)]));
    ingest1.record('vpn11', report([]));
    expect(usersOn('vpn11')).toEqual([]);
    expect(usersOn('vpn21')).toEqual(['ann']);
    expect(sessionAudit()).toEqual([
      ['agent:vpn11', 'session.connect', 'ann'],
      ['agent:vpn21', 'session.connect', 'ann'],
      ['agent:vpn21', 'session.move', 'ann'],
      ['agent:vpn11', 'session.disconnect', 'ann'],
    ]);
    const move = t.fleet.store.auditLog(1000).find((e) => e.action === 'session.move');
    expect(move?.detail).toMatchObject({ from: 'vpn11', to: 'vpn21' });
  });

  it('tells a move from a connect after a restart, from the sessions in the store', () => {
    ingest().record('vpn11', report([session('ann', 120)]));
    ingest().record('vpn12', report([session('ann', 5)]));
    expect(sessionAudit().map(([, action]) => action)).toEqual([
      'session.connect',
      'session.connect',
      'session.move',
    ]);
  });

  it('leaves out sessions that cannot be real, and logs them once a minute per server', () => {
    const ingest1 = ingest();
    const future = {
      ...session('bob'),
      since: new Date(t.clock.now().getTime() + 120_000).toISOString(),
    };
    const notHers = { ...session('cid'), ipv4: users.get('ann')!.ipv4 };
    const refused = [session('mallory'), future, notHers];
    ingest1.record('vpn11', report([session('ann'), ...refused]));
    ingest1.record('vpn11', report([session('ann'), ...refused]));
    expect(usersOn('vpn11')).toEqual(['ann']);
    expect(sessionAudit()).toEqual([['agent:vpn11', 'session.connect', 'ann']]);
    expect(logged).toEqual([
      expect.stringMatching(/vpn11: 3 session\(s\) refused.*mallory.*no such user/),
    ]);

    t.clock.advance(60_000);
    ingest1.record('vpn11', report([session('ann'), ...refused]));
    expect(logged).toHaveLength(2);
  });

  it('refuses sessions of a disabled user', async () => {
    await t.fleet.setStatus('dan', 'disabled');
    ingest().record('vpn11', report([session('dan')]));
    expect(usersOn('vpn11')).toEqual([]);
    expect(logged).toEqual([expect.stringMatching(/user is not enabled/)]);
  });

  it('keeps the sessions of a server whose agent cannot read them, until it can again', () => {
    const ingest1 = ingest();
    const ann = session('ann');
    ingest1.record('vpn11', report([ann, session('bob', 30, 2)]));
    const before = t.fleet.store.listSessions('vpn11');

    const down = { ...HEALTHY, openvpn: false, ok: false };
    ingest1.record('vpn11', report([], { sessionsUnknown: true, health: down }));
    ingest1.record('vpn11', report([], { sessionsUnknown: true, health: down }));
    expect(t.fleet.store.listSessions('vpn11')).toEqual(before);
    expect([...ingest1.unknown]).toEqual(['vpn11']);
    expect(sessionAudit().map(([, action]) => action)).toEqual([
      'session.connect',
      'session.connect',
    ]);
    expect(logged).toEqual([expect.stringMatching(/vpn11: its agent cannot read/)]);
    // The sessions are no news, the health is: OpenVPN down shows.
    const state = t.fleet.store.listServerStates().find((s) => s.name === 'vpn11');
    expect(state?.health).toEqual(down);

    ingest1.record('vpn11', report([ann]));
    expect(ingest1.unknown.size).toBe(0);
    expect(usersOn('vpn11')).toEqual(['ann']);
    expect(sessionAudit().at(-1)).toEqual(['agent:vpn11', 'session.disconnect', 'bob']);
  });

  it("limits one server's audit entries and says how many it left out once there is room", () => {
    const ingest1 = ingest({ auditBurst: 2, auditPerSecond: 1 });
    const all = ['ann', 'bob', 'cid', 'dan'].map((u, i) => session(u, 60, i + 1));
    ingest1.record('vpn11', report(all));
    expect(usersOn('vpn11')).toEqual(['ann', 'bob', 'cid', 'dan']);
    expect(sessionAudit()).toHaveLength(2);

    // Another server has its own budget.
    ingest1.record('vpn21', report([session('ann', 1)]));
    expect(sessionAudit()).toHaveLength(4);

    t.clock.advance(1000);
    ingest1.record('vpn11', report(all));
    const suppressed = t.fleet.store.auditLog(1).at(0);
    expect(suppressed).toMatchObject({
      actor: 'controller',
      action: 'audit.suppressed',
      subject: 'vpn11',
      detail: { entries: 2 },
    });
    ingest1.record('vpn11', report(all));
    expect(sessionAudit().filter(([, a]) => a === 'audit.suppressed')).toHaveLength(1);
  });
});
