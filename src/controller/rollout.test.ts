/**
 * The controller's rollout state machine, driven through ControllerState with the fake clock:
 * agents' reports go in, directives (drain, restart generation) and the stored rollout come out.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentReport, AgentRestart, ServerHealth } from '../api/index.js';
import { Conflict } from '../errors.js';
import { specPath } from '../service/layout.js';
import { rolloutOrder } from './rollout.js';
import { ControllerState } from './state.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from './testing.js';

const HEALTHY: ServerHealth = {
  openvpn: true,
  routing: true,
  ruleset: true,
  draining: false,
  ok: true,
};
const WATCH_MS = 200;

let t: ControllerFleet;
let timers: FakeTimers;
let state: ControllerState;
let order: string[];
/** What each fake agent last reported about restarts. */
let restarts: Map<string, AgentRestart>;

function newState(): ControllerState {
  return new ControllerState(t.fleet, t.changes, t.clock, timers, {
    fleetDir: t.dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'admin-token',
    log: () => undefined,
  });
}

beforeEach(async () => {
  t = await controllerFleet();
  timers = new FakeTimers(t.clock);
  state = newState();
  await state.refresh();
  await state.start(WATCH_MS);
  order = rolloutOrder(t.fleet.spec);
  restarts = new Map(order.map((s) => [s, { generation: 0, pending: false }]));
});
afterEach(async () => {
  await state.close();
  await t.cleanup();
});

const directive = (server: string) => state.directives.get(server)!.directive;
const drained = () => order.filter((s) => directive(s).drain);
const steps = () => state.rolloutStatus().rollout?.steps.map((s) => `${s.server} ${s.state}`);

/** One report of `server`'s agent, up to date with the bundle it is served (a moment later). */
async function report(server: string, more: Partial<AgentReport> = {}): Promise<void> {
  t.clock.advance(10);
  await state.report(server, {
    sessions: [],
    health: HEALTHY,
    bundleDigest: directive(server).bundle.digest,
    restart: restarts.get(server)!,
    ...more,
  });
}

/** Every agent reports (the server in `sick` with that health). */
async function reportAll(sick: Record<string, Partial<ServerHealth>> = {}): Promise<void> {
  for (const s of order) await report(s, { health: { ...HEALTHY, ...sick[s] } });
}

/** `ms` pass with every agent reporting every 5 s, as agents do (`sick` as in reportAll). */
async function passTime(ms: number, sick: Record<string, Partial<ServerHealth>> = {}) {
  for (let left = ms; left > 0; left -= 5000) {
    await timers.advance(Math.min(5000, left));
    await reportAll(sick);
  }
}

/** The agent carries out the generation its directive asks for (OpenVPN restarted). */
function agentRestarts(server: string): void {
  restarts.set(server, { generation: directive(server).restart ?? 0, pending: false });
}

describe('a rolling restart', () => {
  it("visits the servers in the reverse of the profiles' order, one drained at a time", async () => {
    expect(order).toEqual(['vpn32', 'vpn31', 'vpn22', 'vpn21', 'vpn12', 'vpn11']);
    for (const s of order) restarts.set(s, { generation: 0, pending: true });
    await reportAll();
    // Pending changes on every server: the controller started a rollout by itself.
    const rollout = state.rolloutStatus().rollout!;
    expect(rollout).toMatchObject({ startedBy: 'controller', status: 'running' });
    expect(state.rolloutStatus().pending).toEqual(order);
    for (const [i, server] of order.entries()) {
      expect(drained()).toEqual([server]);
      expect(directive(server).restart).toBe(0);
      // Its users left: the generation moves, the drain stays.
      await report(server);
      expect(directive(server).restart).toBe(1);
      expect(drained()).toEqual([server]);
      // The others have not been told to restart.
      expect(order.filter((s) => s !== server && (directive(s).restart ?? 0) > 0)).toEqual(
        order.slice(0, i),
      );
      agentRestarts(server);
      await report(server);
      expect(steps()?.[i]).toBe(`${server} done`);
      await timers.advance(WATCH_MS);
    }
    expect(drained()).toEqual([]);
    expect(state.rolloutStatus()).toMatchObject({ rollout: { status: 'done' }, pending: [] });
    const audit = (await t.fleet.store.auditLog(100))
      .filter((e) => e.action.startsWith('rollout.'))
      .reverse();
    expect(audit[0]).toMatchObject({ action: 'rollout.start', actor: 'controller' });
    expect(audit.filter((e) => e.action === 'rollout.step').map((e) => e.subject)).toEqual(
      order.flatMap((s) => [s, s, s, s]),
    );
    expect(audit.at(-1)).toMatchObject({ action: 'rollout.done' });
  });

  it('drains the next server only once the one before has lifted its drain (its users go there)', async () => {
    for (const s of order) restarts.set(s, { generation: 0, pending: true });
    await reportAll();
    const stillDrained = { health: { ...HEALTHY, draining: true, ok: false } };
    await report('vpn32', stillDrained);
    agentRestarts('vpn32');
    await report('vpn32', stillDrained);
    expect(steps()?.slice(0, 2)).toEqual(['vpn32 done', 'vpn31 waiting']);
    expect(drained()).toEqual([]);
    // vpn32's agent has taken its drain off: vpn31's users can go there now.
    await report('vpn32');
    expect(drained()).toEqual(['vpn31']);
  });

  it('waits for a drained server to empty, at most drainSeconds, then restarts it anyway', async () => {
    const [user] = await t.fleet.addUsers([{ name: 'alice' }], { issueCerts: false });
    await state.refresh();
    await reportAll();
    await state.startRollout('api:admin', { all: true });
    const first = order[0];
    const alice = {
      user: 'alice',
      ipv4: user.ipv4,
      realAddress: '198.51.100.7:1194',
      since: t.clock.now().toISOString(),
      bytesIn: 0,
      bytesOut: 0,
      clientId: 1,
    };
    await report(first, { sessions: [alice] });
    await timers.advance(29_000);
    expect(directive(first).restart).toBe(0);
    await timers.advance(1_500);
    expect(directive(first).restart).toBe(1);
    expect(state.rolloutStatus().rollout?.steps[0].detail).toBe('drain timed out with 1 sessions');
  });

  it('skips servers with nothing to restart, after waiting for their agent to apply the bundle', async () => {
    restarts.set('vpn22', { generation: 0, pending: true });
    await reportAll();
    expect(steps()).toEqual([
      'vpn32 skipped',
      'vpn31 skipped',
      'vpn22 draining',
      'vpn21 waiting',
      'vpn12 waiting',
      'vpn11 waiting',
    ]);
    // vpn21's agent has not applied the current bundle: its "nothing pending" is not trusted yet.
    await report('vpn21', { bundleDigest: 'older' });
    await report('vpn22');
    agentRestarts('vpn22');
    await report('vpn22');
    await timers.advance(WATCH_MS);
    expect(steps()?.[3]).toBe('vpn21 waiting');
    await report('vpn21');
    await timers.advance(WATCH_MS);
    expect(state.rolloutStatus().rollout?.status).toBe('done');
    expect(order.map((s) => directive(s).restart)).toEqual([0, 0, 1, 0, 0, 0]);
  });

  it('stops at a server that does not come back healthy: it stays drained, the rest untouched', async () => {
    for (const s of order) restarts.set(s, { generation: 0, pending: true });
    await reportAll();
    await report('vpn32');
    agentRestarts('vpn32');
    await report('vpn32');
    await report('vpn31');
    agentRestarts('vpn31');
    // OpenVPN did not come back: the agent reports the generation, OpenVPN down.
    const down = { vpn31: { openvpn: false, ok: false } };
    await report('vpn31', { health: { ...HEALTHY, ...down.vpn31 } });
    await passTime(55_000, down);
    expect(state.rolloutStatus().rollout?.status).toBe('running');
    await passTime(5_000, down);
    const { rollout } = state.rolloutStatus();
    expect(rollout).toMatchObject({ status: 'failed' });
    expect(rollout?.detail).toBe(
      'stopped at vpn31: not healthy 60 s after its restart (openvpn down)',
    );
    expect(steps()).toEqual([
      'vpn32 done',
      'vpn31 failed',
      'vpn22 waiting',
      'vpn21 waiting',
      'vpn12 waiting',
      'vpn11 waiting',
    ]);
    expect(drained()).toEqual(['vpn31']);
    expect(order.map((s) => directive(s).restart)).toEqual([1, 1, 0, 0, 0, 0]);
    // Nothing starts while it is failed, by the controller or an operator.
    await passTime(10_000);
    expect(drained()).toEqual(['vpn31']);
    await expect(state.startRollout('api:admin', {})).rejects.toThrow(Conflict);

    // Fixed by hand and resumed: the server is restarted again, then the rollout goes on.
    await state.rolloutCommand('resume', 'api:admin');
    await report('vpn31');
    expect(steps()?.[1]).toBe('vpn31 restarting');
    expect(directive('vpn31').restart).toBe(2);
    agentRestarts('vpn31');
    await report('vpn31');
    expect(steps()?.slice(0, 3)).toEqual(['vpn32 done', 'vpn31 done', 'vpn22 draining']);
    expect(drained()).toEqual(['vpn22']);
  });

  it('stops before a server that is unhealthy at its turn, without draining it', async () => {
    for (const s of order) restarts.set(s, { generation: 0, pending: true });
    await reportAll({ vpn32: { routing: false, ok: false } });
    expect(state.rolloutStatus().rollout?.detail).toBe(
      'stopped at vpn32: unhealthy before its turn (routing down): not touched',
    );
    expect(drained()).toEqual([]);
  });

  it('pauses after the server in progress, resumes, and an abort lifts its drain', async () => {
    for (const s of order) restarts.set(s, { generation: 0, pending: true });
    await reportAll();
    await state.rolloutCommand('pause', 'api:admin');
    await report('vpn32');
    agentRestarts('vpn32');
    await report('vpn32');
    // The server in progress finished; the next one does not start.
    expect(steps()?.slice(0, 2)).toEqual(['vpn32 done', 'vpn31 waiting']);
    expect(drained()).toEqual([]);
    await state.rolloutCommand('resume', 'api:admin');
    expect(drained()).toEqual(['vpn31']);
    expect(steps()?.[1]).toBe('vpn31 draining');
    await state.rolloutCommand('abort', 'api:admin');
    expect(drained()).toEqual([]);
    expect(state.rolloutStatus().rollout?.status).toBe('aborted');
    // Aborted: still pending elsewhere, but not started again by itself.
    await reportAll();
    expect(state.rolloutStatus().rollout?.status).toBe('aborted');
    expect((await t.fleet.store.auditLog(3)).map((e) => [e.action, e.actor])).toContainEqual([
      'rollout.abort',
      'api:admin',
    ]);
  });

  it('goes on where it was after a controller restart', async () => {
    for (const s of order) restarts.set(s, { generation: 0, pending: true });
    await reportAll();
    await report('vpn32');
    expect(directive('vpn32').restart).toBe(1);
    await state.close();
    state = newState();
    await state.refresh();
    // From the store: vpn32 still drained and told to restart, nobody else.
    expect(drained()).toEqual(['vpn32']);
    expect(order.map((s) => directive(s).restart)).toEqual([1, 0, 0, 0, 0, 0]);
    agentRestarts('vpn32');
    await report('vpn32');
    // What vpn31's agent said before the restart is in the store: its turn comes at once.
    expect(drained()).toEqual(['vpn31']);
  });

  it('an all-at-once change raises every generation in the directives that carry it', async () => {
    const file = specPath(t.dir);
    const spec = readFileSync(file, 'utf8');
    writeFileSync(
      file,
      `${spec.replace('keepalive: { interval: 3, timeout: 10 }', 'keepalive: { interval: 4, timeout: 12 }')}rollout:\n  strategy: all-at-once\n`,
    );
    await reportAll();
    const before = new Map(order.map((s) => [s, directive(s).bundle.digest]));
    await timers.advance(WATCH_MS);
    await state.refresh();
    for (const s of order) {
      expect(directive(s).bundle.digest).not.toBe(before.get(s));
      expect(directive(s).restart).toBe(1);
      expect(directive(s).drain).toBe(false);
    }
    for (const s of order) agentRestarts(s);
    await reportAll();
    expect(state.rolloutStatus().rollout).toMatchObject({
      strategy: 'all-at-once',
      status: 'done',
      startedBy: 'controller',
    });
  });
});
