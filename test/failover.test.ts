/**
 * Two real controllers on one fleet directory and one real agent (on a FakeHost, with the agent's
 * own HTTP link to both): the agent moves to the second controller when the first dies, whether
 * it resets its connections (closed) or falls silent (a host gone: here a proxy that stops
 * forwarding), within 2 s on the agent's clock; its reports go to the second, a change made
 * through the second reaches it, and it returns to the first once that one answers again. The CLI
 * client uses the first controller that answers.
 *
 * The agent's clock is a FakeClock moved in small steps with real waits between them, so that the
 * controllers' real answers arrive before the heartbeat's timeout on the fake clock: the 2 s is
 * measured on the agent's clock, not the machine's.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent/agent.js';
import { type AgentHost, controllerLink } from '../src/agent/host.js';
import { FakeHost } from '../src/agent/testing.js';
import { POLL_WAIT_MS, type ServerView } from '../src/api/index.js';
import {
  ControllerClient,
  ControllerUnreachable,
  type Endpoint,
  controllerSet,
} from '../src/client/client.js';
import type { ControllerSwitch } from '../src/client/failover.js';
import { type Controller, buildController } from '../src/controller/app.js';
import { initFleet, openFleet } from '../src/service/open.js';
import { sleep } from '../src/sys/time.js';

const ADMIN = 'admin-token-for-tests';
const admin = { authorization: `Bearer ${ADMIN}` };

let template: string;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  template = mkdtempSync(join(tmpdir(), 'ovf-failover-template-'));
  const fleet = await initFleet(template);
  await fleet.addUsers([{ name: 'alice' }], { issueCerts: false });
  await fleet.close();
});
afterAll(() => rmSync(template, { recursive: true, force: true }));
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** A fleet directory of its own, and vpn11's agent token. */
async function fleetDir(): Promise<{ dir: string; token: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-failover-'));
  cpSync(template, dir, { recursive: true });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const fleet = await openFleet(dir);
  const token = await fleet.agentToken('vpn11');
  await fleet.close();
  return { dir, token };
}

/** A controller on `dir`, listening on loopback (on `port` when given: one coming back). */
async function controller(dir: string, port = 0): Promise<{ ctl: Controller; port: number }> {
  const ctl = await buildController({
    fleetDir: dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: ADMIN,
    // Long enough that the agent is in a long-poll when its controller dies.
    pollWaitMs: 1000,
    log: () => {},
  });
  let closed = false;
  const closeOnce = ctl.close.bind(ctl);
  const close = async () => {
    if (closed) return;
    closed = true;
    await closeOnce();
  };
  cleanup.push(close);
  await ctl.app.listen({ host: '127.0.0.1', port });
  return {
    ctl: Object.assign(ctl, { close }),
    port: (ctl.app.server.address() as AddressInfo).port,
  };
}

const tcp = (port: number): Endpoint => ({ kind: 'tcp', host: '127.0.0.1', port, tls: false });

/** How many requests of `method` `route` the controller answered with a 2xx (its own metrics). */
async function answered(ctl: Controller, method: string, route: string): Promise<number> {
  const text = (await ctl.app.inject({ url: '/metrics', headers: admin })).body;
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('ovpn_fleet_api_requests_total{')) continue;
    if (!line.includes(`route="${route}"`) || !line.includes(`method="${method}"`)) continue;
    if (/status="2\d\d"/.test(line)) n += Number(line.split(' ').at(-1));
  }
  return n;
}
const reports = (ctl: Controller) => answered(ctl, 'POST', '/v1/agent/report');
const polls = (ctl: Controller) => answered(ctl, 'GET', '/v1/agent/poll');

/**
 * A TCP proxy in front of a controller that can fall silent: frozen, it keeps every connection
 * open and accepts new ones, but forwards nothing either way, as a controller host that vanished
 * from the network would (no reset, no answer).
 */
async function freezableProxy(target: number): Promise<{ port: number; freeze(): void }> {
  let frozen = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => undefined);
    if (frozen) return;
    const upstream = new (client.constructor as typeof Socket)();
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.connect(target, '127.0.0.1');
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (!frozen) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    freeze: () => (frozen = true),
  };
}

/** An agent for vpn11 on a FakeHost whose controller link is the real one, to `endpoints`. */
async function agentOn(endpoints: Endpoint[], token: string) {
  const fake = new FakeHost();
  const set = controllerSet(endpoints, { clock: fake.clock, watch: true });
  const switches: ControllerSwitch[] = [];
  set.onSwitch((s) => switches.push(s));
  const host: AgentHost = {
    run: fake.run,
    signalOpenvpn: (signal) => fake.signalOpenvpn(signal),
    openvpnAlive: () => fake.openvpnAlive(),
    openvpnPid: () => fake.openvpnPid(),
    bundle: fake.bundle,
    clock: fake.clock,
    management: fake.management,
    routes: fake.routes,
    serveHealth: (answer) => fake.serveHealth(answer),
    controller: controllerLink(
      new ControllerClient(set, token, POLL_WAIT_MS + 5000),
      new ControllerClient(set, token, 5000),
    ),
  };
  const lines: string[] = [];
  const agent = new Agent({
    server: 'vpn11',
    bundleDir: '/fake/bundle',
    controller: endpoints.map((e) => `127.0.0.1:${e.kind === 'tcp' ? e.port : 0}`),
    token,
    tunDevice: 'vpn0',
    routeProtocol: 201,
    log: (l) => lines.push(l),
    host,
  });
  fake.management.sessions = [
    {
      user: 'alice',
      realAddress: '198.51.100.3:1194',
      since: new Date(fake.clock.now() - 60_000).toISOString(),
      bytesIn: 1,
      bytesOut: 2,
      clientId: 3,
    },
  ];
  await agent.start();
  cleanup.push(async () => {
    const stopped = agent.stop();
    await fake.clock.advance(60_000);
    await stopped;
  });
  /**
   * Moves the agent's clock by `ms` in 50 ms steps, with a real pause after each: the
   * controllers' answers (real I/O) arrive before a timeout on the fake clock would fire.
   */
  const tick = async (ms: number) => {
    for (let t = 0; t < ms; t += 50) {
      await fake.clock.advance(50);
      await sleep(4);
    }
  };
  /** Ticks until `fn` holds, at most `ms` of the agent's clock; the agent's time it took. */
  const until = async (what: string, fn: () => Promise<boolean> | boolean, ms: number) => {
    const start = fake.clock.now();
    while (!(await fn())) {
      if (fake.clock.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`);
      await tick(50);
    }
    return fake.clock.now() - start;
  };
  return { fake, set, switches, lines, tick, until };
}

async function vpn11(ctl: Controller): Promise<ServerView | undefined> {
  return (await ctl.app.inject({ url: '/v1/servers', headers: admin }))
    .json<ServerView[]>()
    .find((s) => s.name === 'vpn11');
}

/** alice's session.connect entries in the audit log (one per session: no report counted twice). */
async function connects(ctl: Controller): Promise<number> {
  const r = await ctl.app.inject({
    url: '/v1/audit?kind=session.connect&user=alice',
    headers: admin,
  });
  return r.json<unknown[]>().length;
}

// Real controllers and stores: seconds of the machine's time each, more on a busy one (the 2 s
// the tests check are on the agent's fake clock).
describe('agents and clients fail over between controllers', () => {
  it('moves to the second controller within 2 s when the first is closed, and comes back to it', async () => {
    const { dir, token } = await fleetDir();
    const a = await controller(dir);
    const b = await controller(dir);
    const agent = await agentOn([tcp(a.port), tcp(b.port)], token);

    await agent.until(
      'vpn11 up to date through A',
      async () => (await vpn11(a.ctl))?.upToDate === true && (await reports(a.ctl)) > 0,
      30_000,
    );
    expect(agent.set.current).toBe(0);
    const reportsAtB = await reports(b.ctl);
    const pollsAtB = await polls(b.ctl);

    // A dies with the agent's long-poll on it.
    const diedAt = agent.fake.clock.now();
    await a.ctl.close();
    await agent.until('the agent moved to B', () => agent.set.current === 1, 2000);
    expect(agent.switches[0].at - diedAt).toBeLessThanOrEqual(2000);
    // Its long-poll is answered by B (after B's wait, in real time).
    await agent.until('a poll at B', async () => (await polls(b.ctl)) > pollsAtB, 60_000);
    // Its reports go to B now: the next one (a new session) arrives there.
    agent.fake.management.sessions.push({
      user: 'alice',
      realAddress: '203.0.113.9:1194',
      since: new Date(agent.fake.clock.now()).toISOString(),
      bytesIn: 0,
      bytesOut: 0,
      clientId: 4,
    });
    await agent.until(
      'the new session reported to B',
      async () =>
        (await reports(b.ctl)) > reportsAtB &&
        (await b.ctl.app.inject({ url: '/v1/sessions', headers: admin })).body.includes(
          '203.0.113.9',
        ),
      5000,
    );
    // A change made through B reaches the agent: drain vpn11.
    const drained = await b.ctl.app.inject({
      method: 'POST',
      url: '/v1/servers/vpn11/drain',
      headers: admin,
    });
    expect(drained.statusCode).toBe(200);
    await agent.until(
      'the drain applied',
      () => agent.fake.commands.some((c) => c.input?.includes('table inet ovpn_fleet_drain {')),
      5000,
    );

    // A comes back on its address: the agent returns to it after a health check.
    const again = await controller(dir, a.port);
    await agent.until('the agent back on A', () => agent.set.current === 0, 15_000);
    const pollsAtA = await polls(again.ctl);
    await agent.until('a poll at A again', async () => (await polls(again.ctl)) > pollsAtA, 60_000);

    // Each move logged once, with its reason.
    expect(agent.switches.map((s) => `${s.from}->${s.to}`)).toEqual(['0->1', '1->0']);
    const moves = agent.lines.filter((l) => l.startsWith('controller '));
    expect(moves).toHaveLength(2);
    expect(moves[0]).toMatch(
      new RegExp(`^controller 127.0.0.1:${a.port} -> 127.0.0.1:${b.port}: `),
    );
    expect(moves[1]).toBe(
      `controller 127.0.0.1:${b.port} -> 127.0.0.1:${a.port}: it answers again`,
    );
    // Nothing reported twice: each session connected once in the audit log, whoever took it.
    expect(await connects(b.ctl)).toBe(2);
    // The agent's /metrics say where it is and how often it moved.
    const metrics = (await agent.fake.get('/metrics'))?.body ?? '';
    expect(metrics).toMatch(/^ovpn_fleet_agent_controller_index 0$/m);
    expect(metrics).toMatch(/^ovpn_fleet_agent_controller_switches_total 2$/m);
  }, 60_000);

  it('leaves a controller that falls silent within 2 s of its clock', async () => {
    const { dir, token } = await fleetDir();
    const a = await controller(dir);
    const b = await controller(dir);
    const proxy = await freezableProxy(a.port);
    const agent = await agentOn([tcp(proxy.port), tcp(b.port)], token);
    await agent.until(
      'vpn11 up to date through A',
      async () => (await vpn11(a.ctl))?.upToDate === true && (await reports(a.ctl)) > 0,
      30_000,
    );
    expect(agent.set.current).toBe(0);
    const pollsAtB = await polls(b.ctl);

    const silentAt = agent.fake.clock.now();
    proxy.freeze();
    await agent.until('the agent moved to B', () => agent.set.current === 1, 4000);
    await agent.until('a poll at B', async () => (await polls(b.ctl)) > pollsAtB, 60_000);
    expect(agent.switches).toHaveLength(1);
    expect(agent.switches[0].at - silentAt).toBeLessThanOrEqual(2000);
    expect(agent.switches[0].reason).toMatch(/no health answer/);
    // Still silent: the agent stays on B and asks A now and then without moving back.
    await agent.tick(12_000);
    expect(agent.set.current).toBe(1);
    expect(agent.switches).toHaveLength(1);
  }, 60_000);

  it('a starting agent whose first controller never answers uses the second', async () => {
    const { dir, token } = await fleetDir();
    const a = await controller(dir);
    const b = await controller(dir);
    const proxy = await freezableProxy(a.port);
    proxy.freeze();
    const agent = await agentOn([tcp(proxy.port), tcp(b.port)], token);
    const took = await agent.until(
      'vpn11 up to date through B',
      async () => (await vpn11(b.ctl))?.upToDate === true && (await reports(b.ctl)) > 0,
      10_000,
    );
    expect(agent.switches[0]).toMatchObject({ from: 0, to: 1 });
    expect(agent.switches[0].at - (agent.fake.clock.now() - took)).toBeLessThanOrEqual(2000);
  }, 60_000);

  it('the CLI client uses the first controller that answers', async () => {
    const { dir } = await fleetDir();
    const b = await controller(dir);
    // A port nothing listens on: a controller that is down.
    const down = await controller(dir);
    await down.ctl.close();
    const client = new ControllerClient([tcp(down.port), tcp(b.port)], ADMIN);
    const moves: string[] = [];
    client.set.onSwitch((s) => moves.push(`${s.fromName} -> ${s.toName}: ${s.reason}`));
    expect((await client.servers()).map((s) => s.name)).toContain('vpn11');
    expect(client.endpoint).toEqual(tcp(b.port));
    // A POST the first could not have done goes to the next too.
    const fresh = new ControllerClient([tcp(down.port), tcp(b.port)], ADMIN);
    expect((await fresh.drain('vpn11')).name).toBe('vpn11');
    expect(moves).toEqual([`127.0.0.1:${down.port} -> 127.0.0.1:${b.port}: ECONNREFUSED`]);
    // A real answer is not a reason to move: 4xx comes back as it is.
    const wrongToken = new ControllerClient([tcp(b.port), tcp(down.port)], 'not-a-token');
    await expect(wrongToken.servers()).rejects.toMatchObject({ status: 401 });
    expect(wrongToken.set.current).toBe(0);
    // None answers: the last one's reason.
    const none = new ControllerClient([tcp(down.port)], ADMIN);
    await expect(none.servers()).rejects.toBeInstanceOf(ControllerUnreachable);
  }, 60_000);
});
