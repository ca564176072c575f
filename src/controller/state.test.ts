import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentReport, SessionReport } from '../api/index.js';
import { specPath } from '../service/layout.js';
import type { User } from '../store/types.js';
import { ControllerState } from './state.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from './testing.js';

const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };
const WATCH_MS = 200;
const STALE_AFTER_MS = 10_000;
const WAIT_MS = 25_000;
const HOUR_MS = 3_600_000;

let t: ControllerFleet;
let timers: FakeTimers;
let state: ControllerState;
let logged: string[];
let ann: User;

beforeEach(async () => {
  t = await controllerFleet();
  [ann] = await t.fleet.addUsers([{ name: 'ann' }], { issueCerts: false });
  // Timers and clock move together: advancing the timers is time passing.
  timers = new FakeTimers(t.clock);
  logged = [];
  state = new ControllerState(t.fleet, t.changes, t.clock, timers, {
    fleetDir: t.dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'admin-token',
    staleAfterMs: STALE_AFTER_MS,
    log: (line) => logged.push(line),
  });
  await state.refresh();
  await state.start(WATCH_MS);
});
afterEach(async () => {
  await state.close();
  await t.cleanup();
});

/** A session of ann that started `agoS` seconds before now. */
function annSession(agoS: number): SessionReport {
  return {
    user: 'ann',
    realAddress: '198.51.100.7:1194',
    ipv4: ann.ipv4,
    since: new Date(t.clock.now().getTime() - agoS * 1000).toISOString(),
    bytesIn: 1,
    bytesOut: 2,
    clientId: 3,
  };
}

const report = (sessions: SessionReport[], more: Partial<AgentReport> = {}): AgentReport => ({
  sessions,
  health: HEALTHY,
  bundleDigest: 'applied',
  ...more,
});

const directiveOf = (server: string) => state.directives.get(server)!.directive;
const stale = async (server: string) => (await state.server(server)).stale;
const noClient = () => () => {};

describe('ControllerState', () => {
  it('has a directive for every server after the first build', async () => {
    expect([...state.directives.keys()].sort()).toEqual(t.fleet.serverNames().sort());
    expect((await state.servers()).every((s) => s.stale && s.currentDigest !== '')).toBe(true);
  });

  it('evicts the older session of a user, on a server that is not stale', async () => {
    await state.report('vpn11', report([annSession(120)]));
    await state.report('vpn21', report([annSession(5)]));
    expect(directiveOf('vpn11').evict).toEqual([{ user: 'ann', since: annSession(120).since }]);
    expect(directiveOf('vpn21').evict).toEqual([]);
    expect((await t.fleet.store.auditLog(1))[0]).toMatchObject({
      actor: 'controller',
      action: 'session.evict',
      subject: 'ann',
      detail: { server: 'vpn11' },
    });
  });

  it('shows a server whose agent cannot read its sessions stale, and lets them decide nothing', async () => {
    await state.report('vpn11', report([annSession(120)]));
    await state.report('vpn21', report([annSession(5)]));
    const poll = state.polls.wait('vpn11', WAIT_MS, noClient);

    await state.report('vpn21', report([], { sessionsUnknown: true }));
    expect(await stale('vpn21')).toBe(true);
    expect(await stale('vpn11')).toBe(false);
    expect((await state.server('vpn21')).sessions).toBe(1);
    expect((await state.sessions()).map((s) => [s.server, s.stale])).toEqual([
      ['vpn11', false],
      ['vpn21', true],
    ]);
    // The server holding ann's newer session may have lost it: vpn11 keeps ann.
    expect((await poll)?.directive.evict).toEqual([]);
    expect(directiveOf('vpn11').evict).toEqual([]);

    await state.report('vpn21', report([annSession(5)]));
    expect(await stale('vpn21')).toBe(false);
    expect(directiveOf('vpn11').evict).toEqual([{ user: 'ann', since: annSession(120).since }]);
  });

  it('shows a silent server stale after staleAfterMs, and the watcher decides again on its tick', async () => {
    await state.report('vpn11', report([annSession(120)]));
    await state.report('vpn21', report([annSession(5)]));
    expect(directiveOf('vpn11').evict).toHaveLength(1);
    const poll = state.polls.wait('vpn11', WAIT_MS, noClient);

    await timers.advance(STALE_AFTER_MS / 2);
    await state.report('vpn11', report([annSession(125)]));
    await timers.advance(STALE_AFTER_MS / 2 + WATCH_MS);
    expect(await stale('vpn21')).toBe(true);
    expect(await stale('vpn11')).toBe(false);
    expect((await poll)?.directive.evict).toEqual([]);
  });

  it('wakes the waiting poll of a server when it is drained', async () => {
    const before = directiveOf('vpn12');
    const poll = state.polls.wait('vpn12', WAIT_MS, noClient);
    expect((await state.setDraining('vpn12', true, 'api:admin')).draining).toBe(true);
    const next = await poll;
    expect(next?.directive).toMatchObject({
      drain: true,
      bundle: { digest: before.bundle.digest },
    });
    expect(next?.directive.token).not.toBe(before.token);
    expect(directiveOf('vpn11').drain).toBe(false);
  });

  it("rebuilds when another process commits to the store, and wakes the servers' polls", async () => {
    const before = directiveOf('vpn31');
    const poll = state.polls.wait('vpn31', WAIT_MS, noClient);
    await (await t.other()).addUsers([{ name: 'bob' }], { issueCerts: false });
    await timers.advance(WATCH_MS);
    const next = await poll;
    expect(next?.directive.bundle.digest).not.toBe(before.bundle.digest);
    expect(next?.directive.bundle.files.map((f) => f.path)).toContain('ccd/bob');
  });

  it('tells change listeners what moved: sessions, servers (drain, staleness), fleet (a rebuild)', async () => {
    const seen: string[] = [];
    const stop = state.onChange((what) => seen.push(what));
    await state.report('vpn11', report([annSession(5)]));
    expect(seen).toEqual(['sessions']);
    await state.setDraining('vpn12', true, 'api:admin');
    expect(seen).toEqual(['sessions', 'servers']);
    await timers.advance(STALE_AFTER_MS + WATCH_MS);
    expect(seen).toEqual(['sessions', 'servers', 'servers']);
    await (await t.other()).addUsers([{ name: 'bob' }], { issueCerts: false });
    await timers.advance(WATCH_MS);
    await state.refresh();
    expect(seen.at(-1)).toBe('fleet');
    stop();
    await state.report('vpn11', report([]));
    expect(seen.filter((w) => w === 'sessions')).toHaveLength(1);
  });

  it('keeps serving the last good spec while fleet.yaml is broken', async () => {
    const before = directiveOf('vpn11');
    writeFileSync(specPath(t.dir), 'sites: [');
    await timers.advance(WATCH_MS);
    expect(state.specProblem).toBeDefined();
    expect(logged).toEqual([expect.stringMatching(/fleet.yaml is invalid, still serving/)]);
    await timers.advance(WATCH_MS);
    expect(logged).toHaveLength(1);
    expect(directiveOf('vpn11')).toBe(before);
  });

  it('re-issues the CRL on the hourly refresh, with no change anywhere', async () => {
    const crlOf = (files: { path: string; content: string }[]) =>
      files.find((f) => /crl/.test(f.path))?.content;
    const before = directiveOf('vpn22');
    expect(crlOf(before.bundle.files)).toBeDefined();
    const poll = state.polls.wait('vpn22', WAIT_MS, noClient);

    // Half of the CRL's 30 days are gone: the next snapshot renews it.
    t.clock.advance(15 * 86_400_000);
    await timers.advance(WATCH_MS);
    const next = (await poll)?.directive;
    expect(next?.bundle.digest).not.toBe(before.bundle.digest);
    expect(crlOf(next!.bundle.files)).not.toBe(crlOf(before.bundle.files));
    expect((await t.fleet.store.revocationState()).crlNumber).toBe(2);
  });

  it('renews a user certificate and rotates server certificates on the hourly refresh', async () => {
    await t.fleet.issueMissingCerts(['ann']);
    await state.refresh();
    const before = directiveOf('vpn22');
    const serverCrt = (files: { path: string; content: string }[]) =>
      files.find((f) => f.path === 'server.crt')?.content;
    const first = (await t.fleet.getUser('ann')).certSerial;
    // Inside both windows (user 30 days before 365, servers 60 days before 825) after 800 days.
    t.clock.advance(800 * 86_400_000);
    const poll = state.polls.wait('vpn22', WAIT_MS, noClient);
    await timers.advance(WATCH_MS);
    const next = (await poll)?.directive;
    await state.refresh();
    expect((await t.fleet.getUser('ann')).certSerial).not.toBe(first);
    expect(serverCrt(directiveOf('vpn22').bundle.files)).not.toBe(serverCrt(before.bundle.files));
    expect(next?.bundle.digest).not.toBe(before.bundle.digest);
    expect(logged).toContain('pki: renewed 1 user certificates');
    expect(logged.some((l) => l.startsWith('pki: new server certificates: '))).toBe(true);
    const actors = (
      await t.fleet.store.auditQuery({ actionPrefix: 'server.cert.', limit: 100 })
    ).map((e) => e.actor);
    expect(new Set(actors)).toEqual(new Set(['controller']));
  });

  it('prunes the location history with the audit log: ended sessions past retentionDays', async () => {
    const retentionMs = t.fleet.spec.audit.retentionDays * 86_400_000;
    const old = annSession(60);
    await state.report('vpn11', report([old]));
    await state.report('vpn11', report([]));
    const current = { ...annSession(30), clientId: 4 };
    await state.report('vpn12', report([current]));
    const history = async () =>
      (await t.fleet.store.sessionHistory('ann', { limit: 10 })).map((h) => h.server);
    expect(await history()).toEqual(['vpn12', 'vpn11']);
    // Past the retention: the ended session goes at the next hourly prune, the live one stays.
    t.clock.advance(retentionMs + HOUR_MS);
    await state.report('vpn12', report([current]));
    await timers.advance(WATCH_MS);
    expect(await history()).toEqual(['vpn12']);
    expect(logged).toContain('history: removed 1 ended sessions');
  });

  it('prunes audit entries past retentionDays at start and then hourly, not on every tick', async () => {
    const retentionMs = t.fleet.spec.audit.retentionDays * 86_400_000;
    const entry = (subject: string) => ({
      at: new Date(t.clock.now().getTime() - retentionMs - 60_000).toISOString(),
      actor: 'test',
      action: 'test.old',
      subject,
    });
    const subjects = async () => (await t.fleet.store.auditLog(1000)).map((e) => e.subject);

    await t.fleet.store.audit(entry('old at start'));
    const second = new ControllerState(t.fleet, t.changes, t.clock, new FakeTimers(t.clock), {
      fleetDir: t.dir,
      baseDir: (server) => `/etc/ovpn-fleet/${server}`,
      adminToken: 'admin-token',
      log: (line) => logged.push(line),
    });
    await second.start(WATCH_MS);
    await second.close();
    expect(await subjects()).not.toContain('old at start');

    await t.fleet.store.audit(entry('old later'));
    t.clock.advance(HOUR_MS - 2 * WATCH_MS);
    await timers.advance(WATCH_MS);
    expect(await subjects()).toContain('old later');
    await timers.advance(WATCH_MS);
    expect(await subjects()).not.toContain('old later');
    expect(
      logged.filter((l) => /^audit: removed 1 entries older than 400 days/.test(l)),
    ).toHaveLength(2);
  });
});
