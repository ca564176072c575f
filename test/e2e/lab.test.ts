/**
 * The example fleet (3 sites, 6 servers, OSPF, two load balancers) running for real: what a
 * user of the cluster would notice, checked against real OpenVPN, FRR and nftables.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addLeakBait,
  buildOnce,
  coreRoutes,
  cli,
  cliOk,
  labStatus,
  netnsNames,
  newFleetDir,
  ping,
  requireLab,
  secs,
  statusOf,
  tcp,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfe';
const SERVERS = ['vpn11', 'vpn12', 'vpn21', 'vpn22', 'vpn31', 'vpn32'];
const INTRANET = { v4: '10.20.0.10', v6: 'fd00:20::10' };
const DATABASES = { v4: '10.30.0.10', v6: 'fd00:30::10' };

const runs = requireLab();
let dir = '';

interface Addr {
  ipv4: string;
  ipv6: string;
}
const users: Record<string, Addr> = {};

async function addUser(name: string, groups: string[]): Promise<void> {
  const u = JSON.parse(
    await cliOk(dir, ['user', 'add', name, ...groups.flatMap((g) => ['-g', g]), '--json']),
  ) as Addr;
  users[name] = u;
}

describe.runIf(runs)('lab: the example fleet running for real', () => {
  beforeAll(async () => {
    await buildOnce();
    dir = await newFleetDir();
    await addUser('alice', ['staff']);
    await addUser('bob', ['dba']);
    await addUser('carol', []);
    await addUser('dave', ['engineering']);
    await addUser('mallory', ['staff']);
    await addUser('eve', ['staff']);
    for (let i = 0; i < 10; i++) await addUser(`lb${i}`, ['staff']);
    const out = await cliOk(dir, ['lab', 'up', '--prefix', PREFIX]);
    console.log(out.trim());
  }, 600_000);

  afterAll(async () => {
    if (!dir) return;
    const state = join(dir, '.lab', PREFIX, 'state.json');
    const pids = (() => {
      try {
        return (
          JSON.parse(readFileSync(state, 'utf8')) as { processes: { pid: number }[] }
        ).processes.map((p) => p.pid);
      } catch {
        return [];
      }
    })();
    console.log((await cliOk(dir, ['lab', 'down', '--prefix', PREFIX])).trim());
    // Nothing left behind: no namespace of ours, none of the processes we started.
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
    const alive = pids.filter((pid) => {
      try {
        return !readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].startsWith('Z');
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('gives a user the same IPv4 and IPv6 on each of the six servers in turn', async () => {
    for (const server of SERVERS) {
      await cliOk(dir, ['lab', 'connect', 'alice', '--server', server, '--prefix', PREFIX]);
      const ms = await waitUntil(
        `alice on ${server} known to the core`,
        async () => {
          const s = await statusOf(dir, PREFIX, 'alice');
          return (
            s.server === server && s.coreVia4.join() === server && s.coreVia6.join() === server
          );
        },
        20_000,
      );
      const s = await statusOf(dir, PREFIX, 'alice');
      expect([s.ipv4, s.ipv6]).toEqual([users.alice.ipv4, users.alice.ipv6]);
      console.log(
        `alice on ${server}: ${s.ipv4} ${s.ipv6}, core routes via ${server} after ${secs(ms)}`,
      );
    }
  });

  it('announces the user on connect, reaches them from a service host, withdraws on disconnect', async () => {
    await cliOk(dir, ['lab', 'connect', 'dave', '--server', 'vpn21', '--prefix', PREFIX]);
    const known = await waitUntil(
      'core has dave /32 and /128 via vpn21',
      async () => {
        const s = await statusOf(dir, PREFIX, 'dave');
        return s.coreVia4.join() === 'vpn21' && s.coreVia6.join() === 'vpn21';
      },
      20_000,
    );
    console.log(`connect -> core has both host routes: ${secs(known)} after the tunnel came up`);
    expect(await ping(dir, PREFIX, 'intranet', users.dave.ipv4)).toBe(true);
    expect(await ping(dir, PREFIX, 'intranet', users.dave.ipv6)).toBe(true);
    const t0 = Date.now();
    await cliOk(dir, ['lab', 'disconnect', 'dave', '--prefix', PREFIX]);
    // The client has exited; OpenVPN keeps its session 5 s more (delayed exit) and runs
    // client-disconnect only then. The agent acted on the exit notification: vpn21 still lists
    // dave, but no longer has his routes.
    const statusFile = join(dir, '.lab', PREFIX, 'servers', 'vpn21', 'run', 'status.log');
    expect(readFileSync(statusFile, 'utf8')).toMatch(/^CLIENT_LIST\tdave\t/m);
    const kernel = await cliOk(dir, [
      'lab',
      'exec',
      'vpn21',
      '--prefix',
      PREFIX,
      '--',
      'ip',
      'route',
      'show',
      'dev',
      'vpn0',
      'proto',
      '201',
    ]);
    expect(kernel).not.toContain(users.dave.ipv4);
    const gone = await waitUntil(
      "both of dave's routes gone from the core",
      async () => {
        const s = await statusOf(dir, PREFIX, 'dave');
        return s.coreVia4.length === 0 && s.coreVia6.length === 0;
      },
      30_000,
      200,
    );
    console.log(
      `disconnect -> both routes gone from the core: ${secs(Date.now() - t0)} (poll ${secs(gone)})`,
    );
    expect(await ping(dir, PREFIX, 'intranet', users.dave.ipv4)).toBe(false);
  });

  it('moves the routes with the user to another server', async () => {
    await cliOk(dir, ['lab', 'connect', 'eve', '--server', 'vpn11', '--prefix', PREFIX]);
    await waitUntil(
      'eve via vpn11',
      async () => (await statusOf(dir, PREFIX, 'eve')).coreVia4.join() === 'vpn11',
      20_000,
    );
    const t0 = Date.now();
    await cliOk(dir, ['lab', 'connect', 'eve', '--server', 'vpn32', '--prefix', PREFIX]);
    await waitUntil(
      'eve via vpn32 only, both families',
      async () => {
        const s = await statusOf(dir, PREFIX, 'eve');
        return s.coreVia4.join() === 'vpn32' && s.coreVia6.join() === 'vpn32';
      },
      30_000,
      200,
    );
    console.log(`move vpn11 -> vpn32: core routes follow in ${secs(Date.now() - t0)}`);
    expect(await ping(dir, PREFIX, 'intranet', users.eve.ipv4)).toBe(true);
    expect(await ping(dir, PREFIX, 'intranet', users.eve.ipv6)).toBe(true);
    const trace = await cliOk(dir, [
      'lab',
      'exec',
      '--prefix',
      PREFIX,
      'dc3',
      '--',
      'ip',
      'route',
      'get',
      users.eve.ipv4,
    ]);
    expect(trace).toContain('10.255.3.6'); // vpn32's backbone address
  });

  it("announces nothing but connected users' host routes to the core", async () => {
    await addLeakBait(dir, PREFIX, 'vpn31');
    const connected = (await labStatus(dir, PREFIX)).filter((s) => s.client === 'running');
    const hosts4 = new Set(connected.map((s) => s.ipv4));
    const hosts6 = new Set(connected.map((s) => s.ipv6));
    const routes = (fam: '-4' | '-6') => coreRoutes(dir, PREFIX, fam, 'ospf');
    const v4 = await routes('-4');
    const v6 = await routes('-6');
    const fromPool4 = v4.filter((d) => d.startsWith('10.200.'));
    const fromPool6 = v6.filter((d) => d.startsWith('fd7a:6ca6:e640:8000:'));
    expect(fromPool4.length).toBeGreaterThan(0);
    expect(fromPool4.every((d) => hosts4.has(d))).toBe(true);
    expect(fromPool6.every((d) => hosts6.has(d))).toBe(true);
    // Besides users, only the datacenter's own backbone links: no public prefix, no pool, no static.
    const other = v4.filter((d) => !d.startsWith('10.200.'));
    expect(other.every((d) => d.startsWith('10.255.'))).toBe(true);
    // (The lab gives backbone links ULAs fd00:255:SITE:SERVER::/64; OSPFv3 carries those links.)
    const other6 = v6.filter((d) => !d.startsWith('fd7a:6ca6:e640:8000:'));
    expect(other6.every((d) => d.startsWith('fd00:255:') && d.endsWith('::/64'))).toBe(true);
    expect(fromPool6.length).toBeGreaterThan(0);
  });

  it('lets a group reach exactly what its rules allow, and a user in no group nothing', async () => {
    await cliOk(dir, ['lab', 'connect', 'alice', '--server', 'vpn12', '--prefix', PREFIX]); // staff
    await cliOk(dir, ['lab', 'connect', 'bob', '--server', 'vpn22', '--prefix', PREFIX]); // dba
    await cliOk(dir, ['lab', 'connect', 'carol', '--server', 'vpn31', '--prefix', PREFIX]); // no group
    // staff: intranet tcp 80/443 and ping; nothing on the databases
    expect(await tcp(dir, PREFIX, 'alice', INTRANET.v4, 80)).toBe(true);
    expect(await tcp(dir, PREFIX, 'alice', INTRANET.v6, 443)).toBe(true);
    expect(await ping(dir, PREFIX, 'alice', INTRANET.v4)).toBe(true);
    expect(await tcp(dir, PREFIX, 'alice', INTRANET.v4, 5432)).toBe(false);
    expect(await tcp(dir, PREFIX, 'alice', DATABASES.v4, 5432)).toBe(false);
    expect(await ping(dir, PREFIX, 'alice', DATABASES.v6)).toBe(false);
    // dba: databases tcp 5432 (both families) and ping; not the intranet
    expect(await tcp(dir, PREFIX, 'bob', DATABASES.v4, 5432)).toBe(true);
    expect(await tcp(dir, PREFIX, 'bob', DATABASES.v6, 5432)).toBe(true);
    expect(await ping(dir, PREFIX, 'bob', DATABASES.v4)).toBe(true);
    expect(await tcp(dir, PREFIX, 'bob', INTRANET.v4, 80)).toBe(false);
    // no group: nothing behind the servers
    expect(await tcp(dir, PREFIX, 'carol', INTRANET.v4, 80)).toBe(false);
    expect(await ping(dir, PREFIX, 'carol', INTRANET.v4)).toBe(false);
    expect(await tcp(dir, PREFIX, 'carol', DATABASES.v6, 5432)).toBe(false);
    // …while the connection itself works: the service host reaches carol.
    expect(await ping(dir, PREFIX, 'intranet', users.carol.ipv4)).toBe(true);
  });

  it('refuses a disabled user on every server and a revoked one whatever they dial', async () => {
    await cliOk(dir, ['user', 'disable', 'carol']);
    await cliOk(dir, ['lab', 'disconnect', 'carol', '--prefix', PREFIX]);
    await cliOk(dir, ['user', 'revoke', 'mallory']);
    await cliOk(dir, ['lab', 'sync', '--prefix', PREFIX]);
    for (const server of SERVERS) {
      const r = await cli(
        dir,
        ['lab', 'connect', 'carol', '--server', server, '--prefix', PREFIX],
        60_000,
      );
      expect(r.code, `carol on ${server}`).not.toBe(0);
      expect(r.stderr).toMatch(/AUTH_FAILED/);
    }
    for (const server of ['vpn11', 'vpn21', 'vpn31']) {
      const r = await cli(
        dir,
        ['lab', 'connect', 'mallory', '--server', server, '--prefix', PREFIX],
        60_000,
      );
      expect(r.code, `mallory on ${server}`).not.toBe(0);
      expect(r.stderr).toContain('the server refused its certificate (revoked)');
      const log = await cliOk(dir, ['lab', 'logs', '--prefix', PREFIX, server]);
      expect(log).toMatch(/certificate revoked: CN=mallory/);
      await cli(dir, ['lab', 'disconnect', 'mallory', '--prefix', PREFIX]);
    }
    // A valid user still gets in.
    await cliOk(dir, ['lab', 'connect', 'alice', '--server', 'vpn21', '--prefix', PREFIX]);
    await waitUntil(
      'alice via vpn21',
      async () => (await statusOf(dir, PREFIX, 'alice')).coreVia4.join() === 'vpn21',
      20_000,
    );
  });

  it('spreads clients over a load-balanced site and brings them back when a server dies', async () => {
    const lbUsers = Object.keys(users).filter((u) => u.startsWith('lb'));
    for (const u of lbUsers) await cliOk(dir, ['lab', 'connect', u, '--prefix', PREFIX]); // full profile: dc1's LB first
    // The core learns a route ~50 ms after the tunnel is up; which server holds the session
    // comes from OpenVPN's status file, rewritten once a second. Wait for both.
    await waitUntil(
      'every lb client on a server and known to the core',
      async () =>
        (await labStatus(dir, PREFIX))
          .filter((s) => lbUsers.includes(s.user))
          .every((s) => s.server !== undefined && s.coreKnows),
      30_000,
    );
    const before = (await labStatus(dir, PREFIX)).filter((s) => lbUsers.includes(s.user));
    const servers = new Set(before.map((s) => s.server));
    console.log(
      `via the dc1 load balancer: ${before.map((s) => `${s.user}@${s.server}`).join(' ')}`,
    );
    expect([...servers].sort()).toEqual(['vpn11', 'vpn12']);
    const victims = before.filter((s) => s.server === 'vpn11').map((s) => s.user);
    const t0 = Date.now();
    await cliOk(dir, [
      'lab',
      'stop',
      'openvpn',
      'vpn11',
      '--signal',
      'SIGKILL',
      '--prefix',
      PREFIX,
    ]);
    await waitUntil(
      "vpn11's users back through other servers and reachable",
      async () => {
        const now = (await labStatus(dir, PREFIX)).filter((s) => victims.includes(s.user));
        return now.every(
          (s) =>
            s.server &&
            s.server !== 'vpn11' &&
            s.coreVia4.length === 1 &&
            s.coreVia4[0] !== 'vpn11',
        );
      },
      90_000,
      250,
    );
    const back = Date.now() - t0;
    for (const u of victims) expect(await ping(dir, PREFIX, 'intranet', users[u].ipv4)).toBe(true);
    console.log(
      `kill -9 of vpn11's OpenVPN: ${victims.length} users back via ${[...new Set((await labStatus(dir, PREFIX)).filter((s) => victims.includes(s.user)).map((s) => s.server))].join(',')} in ${secs(back)}`,
    );
    await cliOk(dir, ['lab', 'start', 'openvpn', 'vpn11', '--prefix', PREFIX]);
  });

  it('keeps a broken fleet.yaml from reaching the lab: one clear line, nothing half-written', async () => {
    const spec = join(dir, 'fleet.yaml');
    const good = readFileSync(spec, 'utf8');
    writeFileSync(spec, good.replace('address: 198.51.100.12', 'address: 10.200.0.9'));
    const r = await cli(dir, ['lab', 'sync', '--prefix', PREFIX]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'sites[0].servers[1].address: 10.200.0.9 is inside the user pool 10.200.0.0/16',
    );
    writeFileSync(spec, good);
  });
});
