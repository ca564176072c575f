/**
 * What the agent counts, on the fake host: its decisions through a recorder, and the Prometheus
 * text its health socket serves at /metrics.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Directive, POLL_WAIT_MS, type SessionReport } from '../api/index.js';
import { sample, samples } from '../sys/testing.js';
import { Agent, type AgentOptions } from './agent.js';
import { RouteArrivals } from './metrics.js';
import { FakeHost, RecordedMetrics } from './testing.js';

const TUN = 'vpn0';
const GOOD = 'a'.repeat(64);
const NEXT = 'b'.repeat(64);

function session(user: string, clientId: number, since = '2026-03-01T11:00:00Z'): SessionReport {
  return {
    user,
    clientId,
    since,
    realAddress: `198.51.100.${clientId}:5000${clientId}`,
    ipv4: `10.8.0.${clientId + 1}`,
    ipv6: `fd00:8::${clientId + 1}`,
    bytesIn: 0,
    bytesOut: 0,
  };
}

function directive(
  digest: string,
  users: string[],
  more: Partial<Omit<Directive, 'bundle'>> & { nft?: string } = {},
): Directive {
  const { nft, ...rest } = more;
  return {
    token: `t-${digest}`,
    bundle: {
      digest,
      files: [
        { path: 'server.conf', content: 'port 1194\n', mode: 0o644 },
        { path: 'nftables.nft', content: nft ?? 'table inet ovpn_fleet { }\n', mode: 0o644 },
        { path: 'frr.conf', content: 'router ospf\n', mode: 0o640 },
        ...users.map((u) => ({ path: `ccd/${u}`, content: `# ${u}\n`, mode: 0o644 })),
      ],
    },
    evict: [],
    drain: false,
    ...rest,
  };
}

const alice = session('alice', 1);
const bob = session('bob', 2);
const running: { agent: Agent; host: FakeHost }[] = [];

afterEach(async () => {
  for (const { agent, host } of running.splice(0)) {
    const stopped = agent.stop();
    await host.clock.advance(POLL_WAIT_MS);
    await stopped;
  }
});

function agentOn(more: Partial<AgentOptions> = {}) {
  const host = new FakeHost();
  const recorded = new RecordedMetrics();
  const agent = new Agent({
    server: 'vpn1',
    bundleDir: '/fake/bundle',
    controller: 'unix:/nowhere/controller.sock',
    token: 'x',
    tunDevice: TUN,
    routeProtocol: 201,
    log: () => {},
    host,
    metrics: recorded,
    ...more,
  });
  const start = async () => {
    running.push({ agent, host });
    await agent.start();
    await host.clock.advance(0);
  };
  return { host, agent, recorded, start };
}

describe('the agent counts how sessions end', () => {
  it('eviction, disallowed, drain: the reason of each session it ends', async () => {
    const { host, agent, recorded } = agentOn();
    host.management.sessions = [alice, bob, session('carol', 3)];
    await agent.handle(directive(NEXT, ['alice', 'bob', 'carol']));
    expect(recorded.of('disconnected')).toEqual([]);

    await agent.handle(
      directive(NEXT, ['alice', 'bob', 'carol'], {
        token: 'e',
        evict: [{ user: 'alice', since: '2026-03-01T11:15:00Z' }],
      }),
    );
    expect(recorded.of('disconnected')).toEqual(['eviction']);

    await agent.handle(directive(GOOD, ['alice', 'carol']));
    expect(recorded.of('disconnected')).toEqual(['eviction', 'disallowed']);

    // OpenVPN still lists alice and bob for their delayed exit: ended once, counted once.
    await agent.handle(directive(GOOD, ['alice', 'carol'], { token: 'd', drain: true }));
    expect(recorded.of('disconnected')).toEqual(['eviction', 'disallowed', 'drain']);
  });

  it('a client that said goodbye, and one that left without a word', async () => {
    const { host, recorded, start } = agentOn();
    host.management.sessions = [alice, bob];
    await start();
    host.management.exiting = [{ commonName: 'alice', realAddress: alice.realAddress }];
    host.management.notify('remote-exit');
    await host.clock.advance(0);
    expect(recorded.of('disconnected')).toEqual(['client']);

    // alice's delayed exit ends; bob times out: only bob is news.
    host.management.sessions = [];
    await host.clock.advance(1000);
    expect(recorded.of('disconnected')).toEqual(['client', 'vanished']);
    await host.clock.advance(3000);
    expect(recorded.of('disconnected')).toEqual(['client', 'vanished']);
  });

  it('counts each ESTABLISHED as a connect', async () => {
    const { host, recorded, start } = agentOn();
    await start();
    host.management.notify('client-established', 7, 'dan', {});
    host.management.notify('client-established', 8, 'eve', {});
    await host.clock.advance(0);
    expect(recorded.events.filter((e) => e === 'connected')).toHaveLength(2);
  });
});

describe('time from ESTABLISHED to the host routes', () => {
  const env = { ifconfig_pool_remote_ip: '10.8.0.9', ifconfig_pool_remote_ip6: 'fd00:8::9' };

  it('runs until both routes are in the table', async () => {
    const { host, recorded, start } = agentOn();
    await start();
    host.management.notify('client-established', 8, 'carol', env);
    await host.clock.advance(30);
    host.routes.learn('10.8.0.9');
    await host.clock.advance(20);
    expect(recorded.routeSeconds).toEqual([]);
    host.routes.learn('fd00:8::9');
    expect(recorded.routeSeconds).toEqual([0.05]);
    // Measured once per client.
    host.routes.learn('10.8.0.10');
    expect(recorded.routeSeconds).toEqual([0.05]);
  });

  it('is zero when the hooks were faster than the notification', async () => {
    const { host, recorded, start } = agentOn();
    await start();
    host.routes.learn('10.8.0.9');
    host.routes.learn('fd00:8::9');
    host.management.notify('client-established', 8, 'carol', env);
    expect(recorded.routeSeconds).toEqual([0]);
  });

  it('takes the addresses from status when the notification had none', async () => {
    const { host, recorded, start } = agentOn();
    await start();
    const carol = session('carol', 3);
    host.management.sessions = [carol];
    host.management.notify('client-established', carol.clientId, 'carol', {});
    await host.clock.advance(0);
    // The reconcile pass adds the missing routes; the time is when they showed.
    await host.clock.advance(2000);
    expect(recorded.routeSeconds).toHaveLength(1);
    expect(recorded.of('route added')).toEqual([carol.ipv4, carol.ipv6]);
  });

  it('forgets a client whose routes never come', () => {
    let now = 0;
    const seen: number[] = [];
    const arrivals = new RouteArrivals(
      () => now,
      (s) => seen.push(s),
      30_000,
    );
    arrivals.established(1, env);
    now = 31_000;
    arrivals.check(() => []);
    expect(arrivals.waiting).toBe(0);
    expect(seen).toEqual([]);
  });
});

describe('the agent counts failed applies and rollbacks', () => {
  it('a refused directive, a ruleset nft refuses, a failed FRR reload', async () => {
    const { host, agent, recorded } = agentOn();
    const unsafe = directive(NEXT, []);
    unsafe.bundle.files.push({ path: '../etc/passwd', content: 'x', mode: 0o644 });
    expect(await agent.handle(unsafe)).toBe(false);
    expect(recorded.of('apply failed')).toEqual(['refused']);

    host.answer('nft -f /fake/bundle/nftables.nft', { code: 1, stderr: 'Error: syntax\n' });
    host.answer('vtysh --dryrun -f /fake/bundle/frr.conf', {
      code: 2,
      stderr: 'line 1: % Unknown command[4]: bogus\n',
    });
    expect(await agent.handle(directive(NEXT, []))).toBe(true);
    expect(recorded.of('apply failed')).toEqual(['refused', 'ruleset', 'frr']);
    expect(recorded.of('bundle')).toEqual([NEXT.slice(0, 12)]);
  });

  it('a ruleset rolled back when routing drops in the confirm window', async () => {
    const { host, agent, recorded, start } = agentOn();
    await start();
    await agent.handle(directive(NEXT, [], { nft: 'table inet ovpn_fleet { new }\n' }));
    host.routes.routingUp = false;
    await host.clock.advance(500);
    expect(recorded.events).toContain('ruleset rolled back');
  });
});

describe('GET /metrics on the health socket', () => {
  it('serves the agent registry: sessions, bundle, reachability, mismatches', async () => {
    const { host, agent, start } = agentOn({ metrics: undefined });
    host.management.sessions = [alice, bob];
    host.routes.hostRoutes.add(alice.ipv4!).add(alice.ipv6!).add(bob.ipv4!);
    await start();
    const scrape = async () => {
      const r = await host.get('/metrics');
      expect(r?.status).toBe(200);
      expect(r?.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
      return r!.body;
    };
    let text = await scrape();
    expect(sample(text, 'ovpn_fleet_agent_sessions')).toBe(2);
    // No bundle on disk yet: no digest series.
    expect(samples(text).filter((s) => s.name === 'ovpn_fleet_agent_bundle_info')).toEqual([]);
    expect(sample(text, 'ovpn_fleet_agent_controller_reachable')).toBe(0);
    expect(sample(text, 'ovpn_fleet_agent_last_poll_success_age_seconds')).toBe(Infinity);
    // Reconcile at start: bob's IPv6 route was missing.
    expect(
      sample(text, 'ovpn_fleet_agent_route_mismatches_total', { action: 'added', family: 'ipv6' }),
    ).toBe(1);

    await agent.handle(directive(NEXT, ['alice', 'bob']));
    await agent.handle(directive(GOOD, ['alice', 'bob']));
    await host.clock.advance(POLL_WAIT_MS);
    await host.clock.advance(3000);
    text = await scrape();
    const info = samples(text).filter((s) => s.name === 'ovpn_fleet_agent_bundle_info');
    expect(info).toEqual([
      { name: 'ovpn_fleet_agent_bundle_info', labels: { digest: GOOD.slice(0, 12) }, value: 1 },
    ]);
    expect(sample(text, 'ovpn_fleet_agent_bundle_applied_timestamp_seconds')).toBe(
      Date.parse('2026-03-01T12:00:00Z') / 1000,
    );
    expect(sample(text, 'ovpn_fleet_agent_controller_reachable')).toBe(1);
    expect(sample(text, 'ovpn_fleet_agent_last_poll_success_age_seconds')).toBe(3);
    // Nothing names a user.
    expect(text).not.toMatch(/alice|bob/);

    host.controller.poll = () => Promise.reject(new Error('connect ECONNREFUSED'));
    await host.clock.advance(POLL_WAIT_MS);
    text = await scrape();
    expect(sample(text, 'ovpn_fleet_agent_controller_reachable')).toBe(0);
  });

  it('with a metrics token, /metrics needs it and /health does not', async () => {
    const { host, start } = agentOn({ metrics: undefined, metricsToken: 'scrape-me' });
    await start();
    expect((await host.get('/metrics'))?.status).toBe(401);
    expect((await host.get('/metrics', 'Bearer nope'))?.status).toBe(401);
    const ok = await host.get('/metrics', 'Bearer scrape-me');
    expect(ok?.status).toBe(200);
    expect(ok?.body).toContain('# TYPE ovpn_fleet_agent_connects_total counter');
    expect(host.health()?.body).toContain('"server":"vpn1"');
  });
});
