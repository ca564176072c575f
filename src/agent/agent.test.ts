import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from './agent.js';
import { type Directive, POLL_WAIT_MS, type SessionReport } from '../api/index.js';
import { FakeHost, RecordedMetrics } from './testing.js';

let root: string;
let dir: string;
let outside: string;
let lines: string[];
let agent: Agent;

const GOOD = 'a'.repeat(64);
const NEXT = 'b'.repeat(64);

/** A bundle folder holding the last good bundle, and an agent that never started its loops. */
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'agent-test-'));
  dir = join(root, 'bundle');
  outside = join(root, 'outside');
  mkdirSync(join(dir, 'ccd'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'precious'), 'keep me\n');
  writeFileSync(join(dir, 'server.conf'), 'port 1194\n');
  writeFileSync(join(dir, 'ccd', 'alice'), 'push alice\n');
  writeFileSync(join(dir, 'VERSION'), `${GOOD}\n`);
  lines = [];
  agent = new Agent({
    server: 'vpn1',
    bundleDir: dir,
    controller: `unix:${join(root, 'controller.sock')}`,
    token: 'x',
    tunDevice: 'vpn0',
    routeProtocol: 201,
    log: (l) => lines.push(l),
  });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const directive = (files: Directive['bundle']['files']): Directive => ({
  token: 't2',
  bundle: { digest: NEXT, files },
  evict: [],
  drain: false,
});

const unchanged = () => {
  expect(readFileSync(join(dir, 'server.conf'), 'utf8')).toBe('port 1194\n');
  expect(readFileSync(join(dir, 'VERSION'), 'utf8')).toBe(`${GOOD}\n`);
  expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
};

describe('Agent.handle refuses an unsafe directive whole', () => {
  it('a path out of the bundle: nothing written, one line naming it', async () => {
    const d = directive([
      { path: 'server.conf', content: 'port 1195\n', mode: 0o644 },
      { path: '../outside/precious', content: 'pwned\n', mode: 0o644 },
    ]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"../outside/precious"');
    expect(lines[0]).toContain(`last good bundle ${GOOD.slice(0, 12)} kept`);
    // The same directive again is refused again, without another line.
    expect(await agent.handle(d)).toBe(false);
    expect(lines).toHaveLength(1);
  });

  it('an absolute path', async () => {
    const d = directive([{ path: join(outside, 'precious'), content: 'pwned\n', mode: 0o644 }]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(lines[0]).toContain('absolute path');
  });

  it('ccd replaced by a link to a folder outside: nothing written or removed there', async () => {
    rmSync(join(dir, 'ccd'), { recursive: true });
    symlinkSync(outside, join(dir, 'ccd'));
    const d = directive([
      { path: 'server.conf', content: 'port 1195\n', mode: 0o644 },
      { path: 'ccd/bob', content: 'push bob\n', mode: 0o644 },
    ]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(readdirSync(outside)).toEqual(['precious']);
    expect(lines[0]).toMatch(/"ccd".*symlink/);
  });

  it('a dangling link as a folder on the way', async () => {
    symlinkSync(join(root, 'nowhere'), join(dir, 'hooks'));
    const d = directive([{ path: 'hooks/learn-address', content: '#!/bin/sh\n', mode: 0o755 }]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(existsSync(join(root, 'nowhere'))).toBe(false);
    expect(lines[0]).toContain('"hooks" is a symlink');
  });

  it('a directive of the wrong shape', async () => {
    const d = { ...directive([]), evict: 'everyone' } as unknown as Directive;
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(lines[0]).toContain('evict: Invalid input: expected array, received string');
  });
});

describe('Agent controller endpoint', () => {
  it('takes --ca to pin the controller, and refuses it where there is no TLS to pin', () => {
    const options = {
      server: 'vpn1',
      bundleDir: dir,
      token: 'x',
      tunDevice: 'vpn0',
      routeProtocol: 201,
      ca: '-----BEGIN CERTIFICATE-----\n',
    };
    expect(() => new Agent({ ...options, controller: 'https://192.0.2.1:8443' })).not.toThrow();
    expect(() => new Agent({ ...options, controller: `unix:${join(root, 'c.sock')}` })).toThrow(
      /--ca/,
    );
  });
});

// ---------------------------------------------------------------- with the fake host

const TUN = 'vpn0';
const PROTO = 201;

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

/** A bundle admitting `users`; the other files' content can be varied to mark them changed. */
function bundle(
  digest: string,
  users: string[],
  over: { serverConf?: string; nft?: string; frr?: string } = {},
): Directive['bundle'] {
  return {
    digest,
    files: [
      { path: 'server.conf', content: over.serverConf ?? 'port 1194\n', mode: 0o644 },
      { path: 'nftables.nft', content: over.nft ?? 'table inet ovpn_fleet { }\n', mode: 0o644 },
      { path: 'frr.conf', content: over.frr ?? 'router ospf\n', mode: 0o640 },
      ...users.map((u) => ({ path: `ccd/${u}`, content: `# ${u}\n`, mode: 0o644 })),
    ],
  };
}

const directiveOf = (
  b: Directive['bundle'],
  more: Partial<Omit<Directive, 'bundle'>> = {},
): Directive => ({ token: `t-${b.digest}`, bundle: b, evict: [], drain: false, ...more });

describe('Agent on a fake host', () => {
  let host: FakeHost;
  let agent: Agent;
  let log: string[];
  let started = false;
  const alice = session('alice', 1);
  const bob = session('bob', 2);

  beforeEach(() => {
    host = new FakeHost();
    log = [];
    started = false;
    agent = new Agent(agentOptions());
  });

  const agentOptions = () => ({
    server: 'vpn1',
    bundleDir: '/fake/bundle',
    controller: 'unix:/nowhere/controller.sock',
    token: 'x',
    tunDevice: TUN,
    routeProtocol: PROTO,
    log: (l: string) => log.push(l),
    host,
  });

  afterEach(async () => {
    if (!started) return;
    const stopped = agent.stop();
    // Each loop is asleep on the fake clock (the long-poll longest): let them all wake and end.
    await host.clock.advance(POLL_WAIT_MS);
    await stopped;
  });

  const start = async () => {
    started = true;
    await agent.start();
    await host.clock.advance(0);
  };

  /** The host routes of these sessions as the hooks install them. */
  const routesOf = (...sessions: SessionReport[]) =>
    sessions.flatMap((s) => [s.ipv4!, s.ipv6!]).sort();

  it('applies a bundle once: the same digest again writes nothing, runs nothing, signals nothing', async () => {
    expect(await agent.handle(directiveOf(bundle(NEXT, ['alice'])))).toBe(true);
    expect(host.ran('nft -f')).toEqual(['nft -f /fake/bundle/nftables.nft']);
    expect(host.ran('vtysh -f')).toEqual([]);
    expect(host.ran('/usr/lib/frr/frr-reload.py --reload')).toEqual([
      '/usr/lib/frr/frr-reload.py --reload --stdout --log-level warning --rundir /fake/bundle/run /fake/bundle/frr.conf',
    ]);
    expect(host.signals).toEqual(['SIGHUP']);
    expect(host.bundle.readFile('VERSION')).toBe(`${NEXT}\n`);

    host.commands.length = 0;
    host.bundle.writes.length = 0;
    host.signals.length = 0;
    const again = directiveOf(bundle(NEXT, ['alice']), { token: 'another token' });
    expect(await agent.handle(again)).toBe(true);
    expect(host.bundle.writes).toEqual([]);
    expect(host.commands).toEqual([]);
    expect(host.signals).toEqual([]);
    expect(host.controller.lastReport?.bundleDigest).toBe(NEXT);
  });

  it("puts the last good bundle's ruleset back at start when the kernel has none (a reboot)", async () => {
    await agent.handle(directiveOf(bundle(NEXT, ['alice'])));
    host.commands.length = 0;
    // Rebooted: the bundle and VERSION are on disk, the kernel has no table.
    host.answer('nft list table inet ovpn_fleet', { code: 1, stderr: 'No such file\n' });
    agent = new Agent(agentOptions());
    await start();
    expect(host.ran('nft -f')).toEqual(['nft -f /fake/bundle/nftables.nft']);
    expect(log).toContain("no ruleset in the kernel (a reboot?): loading the last good bundle's");
    expect(host.controller.lastReport?.health.ruleset).toBe(true);
  });

  it('loads no ruleset at start when no bundle was ever applied', async () => {
    host.answer('nft list table inet ovpn_fleet', { code: 1, stderr: 'No such file\n' });
    await start();
    expect(host.ran('nft -f')).toEqual([]);
  });

  it('takes directives from the long-poll and asks with the token of the last one it applied', async () => {
    await start();
    expect(host.controller.polls).toEqual(['']);
    host.controller.send(directiveOf(bundle(NEXT, ['alice'])));
    await host.clock.advance(0);
    expect(host.bundle.readFile('VERSION')).toBe(`${NEXT}\n`);
    expect(host.controller.polls).toEqual(['', `t-${NEXT}`]);
    // The long-poll ends empty: asked again with the same token.
    await host.clock.advance(POLL_WAIT_MS);
    expect(host.controller.polls).toEqual(['', `t-${NEXT}`, `t-${NEXT}`]);
  });

  it('a new digest that only adds a user writes its ccd file: no nft, vtysh or signal', async () => {
    await agent.handle(directiveOf(bundle(NEXT, ['alice'])));
    host.commands.length = 0;
    host.signals.length = 0;
    await agent.handle(directiveOf(bundle(GOOD, ['alice', 'bob'])));
    expect(host.bundle.files.has('ccd/bob')).toBe(true);
    expect(host.ran('nft -f')).toEqual([]);
    expect(host.ran('vtysh')).toEqual([]);
    expect(host.ran('/usr/lib/frr/frr-reload.py')).toEqual([]);
    expect(host.signals).toEqual([]);
    expect(host.bundle.readFile('VERSION')).toBe(`${GOOD}\n`);
  });

  describe('FRR reload', () => {
    const FILE = '/fake/bundle/frr.conf';
    const RELOAD = `/usr/lib/frr/frr-reload.py --reload --stdout --log-level warning --rundir /fake/bundle/run`;
    const frrDirective = (frr: string) => directiveOf(bundle(NEXT, [], { frr }));

    it('makes the running config the file: checked, then frr-reload.py, removals included', async () => {
      host.answer('vtysh -c show running-config no-header', { stdout: 'router ospf\n' });
      await agent.handle(frrDirective('router ospf\n ospf router-id 10.0.0.1\n'));
      expect(host.ran('vtysh').concat(host.ran('/usr/lib/frr'))).toEqual([
        `vtysh --dryrun -f ${FILE}`,
        'vtysh -c show running-config no-header',
        `${RELOAD} ${FILE}`,
        `/usr/lib/frr/frr-reload.py --test ${FILE}`,
      ]);
      expect(log).toContain('FRR reloaded: running config is frr.conf');
    });

    it('refuses a file vtysh cannot parse: nothing reaches FRR, one line, counted', async () => {
      const metrics = new RecordedMetrics();
      agent = new Agent({ ...agentOptions(), metrics });
      host.answer(`vtysh --dryrun -f ${FILE}`, {
        code: 2,
        stderr: 'line 2: % Unknown command[41]:  bogus-command 1\n',
      });
      await agent.handle(frrDirective('router ospf\n bogus-command 1\n'));
      expect(host.ran('/usr/lib/frr')).toEqual([]);
      expect(log.filter((l) => l.includes('frr.conf'))).toEqual([
        'frr.conf refused, FRR left as it was: line 2: % Unknown command[41]:  bogus-command 1',
      ]);
      expect(metrics.of('apply failed')).toEqual(['frr']);
    });

    it('puts the running config from before back when a daemon refuses a line half way', async () => {
      const metrics = new RecordedMetrics();
      agent = new Agent({ ...agentOptions(), metrics });
      host.answer('vtysh -c show running-config no-header', { stdout: 'router ospf\n' });
      host.answer(`${RELOAD} ${FILE}`, {
        code: 1,
        stdout: 'Please remove all network commands first.\n',
        stderr:
          'line 2: Failure to communicate[13] to ospfd, line:  ip ospf area 0.0.0.0\n\n' +
          '2026-03-01 12:00:00,000 \x1b[91mWARNING\x1b[0m: frr-reload.py failed due to\n',
      });
      await agent.handle(frrDirective('interface eth1\n ip ospf area 0.0.0.0\n'));
      expect(host.bundle.readFile('run/frr-before-reload.conf')).toBe('router ospf\n');
      expect(host.ran('/usr/lib/frr')).toEqual([
        `${RELOAD} ${FILE}`,
        `${RELOAD} /fake/bundle/run/frr-before-reload.conf`,
      ]);
      expect(log).toContain(
        'frr.conf refused by FRR, its running config restored: ospfd refused "ip ospf area 0.0.0.0": Please remove all network commands first.',
      );
      expect(metrics.of('apply failed')).toEqual(['frr']);
    });
  });

  describe('ruleset confirm window', () => {
    const previous = 'table inet ovpn_fleet {\n\tchain forward { }\n}\n';
    const restore = `table inet ovpn_fleet\ndelete table inet ovpn_fleet\n${previous}`;

    beforeEach(async () => {
      host.answer('nft list table inet ovpn_fleet', { stdout: previous });
      await start();
      await agent.handle(directiveOf(bundle(NEXT, [], { nft: 'table inet ovpn_fleet { new }\n' })));
      expect(host.ran('nft -f /fake/bundle/nftables.nft')).toHaveLength(1);
    });

    it('keeps a ruleset under which routing stays up through the window', async () => {
      await host.clock.advance(6000);
      // Routing dropping after the window is not the ruleset's doing.
      host.routes.routingUp = false;
      await host.clock.advance(2000);
      expect(host.commands.filter((c) => c.argv.join(' ') === 'nft -f -')).toEqual([]);
      expect(host.health()?.body).toContain('"ruleset":true');
    });

    it('restores the previous ruleset when routing drops within the window', async () => {
      await host.clock.advance(2000);
      host.routes.routingUp = false;
      await host.clock.advance(500);
      expect(host.commands.filter((c) => c.argv.join(' ') === 'nft -f -')).toEqual([
        { argv: ['nft', '-f', '-'], input: restore },
      ]);
      expect(log).toContain('new ruleset cut routing off: rolled back to the previous ruleset');
      expect(host.health()?.body).toContain('"ruleset":false');
    });
  });

  it('ends the sessions of users the new bundle no longer admits and withdraws their routes', async () => {
    host.management.sessions = [alice, bob];
    host.routes.hostRoutes.add(alice.ipv4!).add(alice.ipv6!).add(bob.ipv4!).add(bob.ipv6!);
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob'])));
    expect(host.management.kills).toEqual([]);

    await agent.handle(directiveOf(bundle(GOOD, ['alice'])));
    expect(host.bundle.files.has('ccd/bob')).toBe(false);
    expect(host.management.kills).toEqual([{ clientId: bob.clientId, restartToNext: false }]);
    expect(host.ran('ip route del')).toEqual([
      `ip route del ${bob.ipv4} dev ${TUN} proto ${PROTO}`,
      `ip route del ${bob.ipv6} dev ${TUN} proto ${PROTO}`,
    ]);
    expect([...host.routes.hostRoutes].sort()).toEqual(routesOf(alice));
    // OpenVPN still lists bob for its delayed exit; he is gone as far as the controller knows.
    expect(host.controller.lastReport?.sessions.map((s) => s.user)).toEqual(['alice']);
  });

  it('evicts a session that started at or before the newer one elsewhere, and only that', async () => {
    const carol = session('carol', 3, '2026-03-01T11:30:00Z');
    host.management.sessions = [alice, bob, carol];
    host.routes.hostRoutes.add(alice.ipv4!).add(alice.ipv6!);
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob', 'carol'])));

    const evict = [
      { user: 'alice', since: '2026-03-01T11:15:00Z' },
      // carol's session here is the newer one: she stays.
      { user: 'carol', since: '2026-03-01T11:15:00Z' },
    ];
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob', 'carol']), { token: 'e', evict }));
    expect(host.management.kills).toEqual([{ clientId: alice.clientId, restartToNext: false }]);
    expect(host.routes.hostRoutes.size).toBe(0);
    expect(log.some((l) => l.includes("ended alice's session (newer session"))).toBe(true);
    expect(host.controller.lastReport?.sessions.map((s) => s.user)).toEqual(['bob', 'carol']);
  });

  it("ends a session an operator killed, through the evictions' path, and only that one", async () => {
    // alice is back in a newer session (another client id, same second): it must stay.
    const aliceAgain = { ...session('alice', 3), since: alice.since };
    host.management.sessions = [alice, bob, aliceAgain];
    host.routes.hostRoutes.add(alice.ipv4!).add(alice.ipv6!).add(bob.ipv4!);
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob'])));
    const kill = {
      user: 'alice',
      since: alice.since,
      clientId: alice.clientId,
      reason: 'operator' as const,
    };
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob']), { token: 'k', evict: [kill] }));
    expect(host.management.kills).toEqual([{ clientId: alice.clientId, restartToNext: false }]);
    expect(log).toContain("ended alice's session (ended by an operator)");
    expect(host.controller.lastReport?.sessions.map((s) => [s.user, s.clientId])).toEqual([
      ['bob', bob.clientId],
      ['alice', aliceAgain.clientId],
    ]);
    // The same directive again (the controller keeps the entry until the report shows the
    // session gone) kills nothing more.
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob']), { token: 'k2', evict: [kill] }));
    expect(host.management.kills).toHaveLength(1);
  });

  it('reports the host routes it holds: /32 and /128 only, by family, sorted', async () => {
    host.management.sessions = [alice, bob];
    host.routes.hostRoutes
      .add(bob.ipv4!)
      .add(alice.ipv4!)
      .add(alice.ipv6!)
      .add('10.8.9.0/24')
      .add('10.8.9.9/32')
      .add('fd00:8::77/128')
      .add('default')
      .add('fe80::1%vpn0');
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob'])));
    expect(host.controller.lastReport?.routes).toEqual({
      ipv4: ['10.8.0.2', '10.8.0.3', '10.8.9.9'],
      ipv6: ['fd00:8::2', 'fd00:8::77'],
    });
    // A route gone is reported at the next pass, without waiting for the 5 s refresh.
    await start();
    const reports = host.controller.reports.length;
    host.routes.hostRoutes.delete('10.8.9.9/32');
    await host.clock.advance(1000);
    expect(host.controller.reports.length).toBeGreaterThan(reports);
    expect(host.controller.lastReport?.routes?.ipv4).toEqual(['10.8.0.2', '10.8.0.3']);
  });

  it('drains: new clients refused on the OpenVPN port, every client sent to its next remote', async () => {
    host.management.sessions = [alice, bob];
    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob'], { serverConf: 'port 1195\n' })));
    host.routes.hostRoutes.add(alice.ipv4!).add(bob.ipv4!);

    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob']), { token: 'd', drain: true }));
    const drain = host.commands.find((c) => c.argv.join(' ') === 'nft -f -');
    expect(drain?.input).toContain('table inet ovpn_fleet_drain {');
    expect(drain?.input).toContain(`iifname != "${TUN}" meta l4proto { udp, tcp } th dport 1195`);
    expect(host.management.kills).toEqual([
      { clientId: alice.clientId, restartToNext: true },
      { clientId: bob.clientId, restartToNext: true },
    ]);
    expect(host.routes.hostRoutes.size).toBe(0);
    expect(host.controller.lastReport?.health.draining).toBe(true);
    expect(host.controller.lastReport?.health.ok).toBe(false);

    await agent.handle(directiveOf(bundle(NEXT, ['alice', 'bob']), { token: 'u', drain: false }));
    expect(host.ran('nft delete')).toEqual(['nft delete table inet ovpn_fleet_drain']);
    expect(host.controller.lastReport?.health.draining).toBe(false);
  });

  it('withdraws the routes of a client that announced its exit, before OpenVPN lets it go', async () => {
    host.management.sessions = [alice, bob];
    await start();
    expect([...host.routes.hostRoutes].sort()).toEqual(routesOf(alice, bob));

    // OpenVPN keeps alice in status for its 5 s delayed exit; the agent does not wait for it.
    host.management.exiting = [{ commonName: 'alice', realAddress: alice.realAddress }];
    host.management.notify('remote-exit');
    await host.clock.advance(0);
    expect([...host.routes.hostRoutes].sort()).toEqual(routesOf(bob));
    expect(host.controller.lastReport?.sessions.map((s) => s.user)).toEqual(['bob']);
    expect(log).toContain('alice left (exit notification): routes withdrawn');

    await host.clock.advance(3000);
    expect([...host.routes.hostRoutes].sort()).toEqual(routesOf(bob));
    expect(host.controller.lastReport?.sessions.map((s) => s.user)).toEqual(['bob']);
  });

  it('reconciles: a connected user without a route gets one, an orphan goes at its second pass', async () => {
    host.management.sessions = [alice];
    host.routes.hostRoutes.add(bob.ipv4!);
    await agent.reconcile();
    expect([...host.routes.hostRoutes].sort()).toEqual([...routesOf(alice), bob.ipv4!].sort());
    // The orphan may be a client being set up (learn-address runs before status lists it).
    await agent.reconcile();
    expect([...host.routes.hostRoutes].sort()).toEqual(routesOf(alice));
  });

  it('a failed status read keeps the last known sessions and reports them as unknown', async () => {
    host.management.sessions = [alice, bob];
    await start();
    expect(host.controller.lastReport).toMatchObject({ health: { openvpn: true } });
    expect(host.controller.lastReport?.sessionsUnknown).toBeUndefined();
    const reportsBefore = host.controller.reports.length;

    host.management.down = true;
    host.management.connected = false;
    await host.clock.advance(1000);
    const unknown = host.controller.reports.slice(reportsBefore);
    expect(unknown.length).toBeGreaterThan(0);
    for (const r of unknown) {
      expect(r.sessionsUnknown).toBe(true);
      expect(r.sessions.map((s) => s.user)).toEqual(['alice', 'bob']);
      expect(r.health.openvpn).toBe(false);
    }
    // Nobody's routes are touched on a guess.
    await host.clock.advance(10_000);
    expect([...host.routes.hostRoutes].sort()).toEqual(routesOf(alice, bob));
    expect(host.controller.lastReport?.sessionsUnknown).toBe(true);

    // OpenVPN back, bob gone meanwhile: the next report is the truth again.
    host.management.down = false;
    host.management.sessions = [alice];
    await host.clock.advance(1000);
    const back = host.controller.lastReport!;
    expect(back.sessionsUnknown).toBeUndefined();
    expect(back.sessions.map((s) => s.user)).toEqual(['alice']);
    expect(back.health.openvpn).toBe(true);
  });

  it('a status read that fails on a live connection is unknown too, and OpenVPN unhealthy', async () => {
    host.management.sessions = [alice];
    await start();
    host.management.statusFails = true;
    await host.clock.advance(1000);
    expect(host.management.connected).toBe(true);
    expect(host.controller.lastReport).toMatchObject({
      sessionsUnknown: true,
      sessions: [{ user: 'alice' }],
      health: { openvpn: false, ok: false },
    });
    expect(host.health()?.status).toBe(503);
  });
});
