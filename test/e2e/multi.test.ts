/**
 * Two controllers on PostgreSQL in the lab (`lab up --controllers 2 --store postgres`): one
 * lab shared by the cases, run in order. PostgreSQL runs in its own lab host, the controllers in
 * the core's host and in their own; every other agent lists the second controller first, so the
 * agents' reports go to different controllers. Times are printed, never asserted.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControllerClient, parseEndpoints } from '../../src/client/client.js';
import { Lab, type LabUserStatus } from '../../src/lab/lab.js';
import { sleep } from '../../src/sys/time.js';
import { buildOnce, cli, cliOk, newFleetDir, requireLab, secs, waitUntil } from './helpers.js';
import { postgresMissing } from '../../src/sys/postgres.js';

const PREFIX = 'ovfh';
const SERVERS = ['vpn11', 'vpn12', 'vpn21', 'vpn22', 'vpn31', 'vpn32'];
const CONNECTS = Array.from({ length: 20 }, (_, i) => `c${String(i + 1).padStart(2, '0')}`);
const BURST = Array.from({ length: 100 }, (_, i) => `b${String(i + 1).padStart(3, '0')}`);
const runs = requireLab() && !(postgresMissing() && process.env.CI !== 'true');
let dir = '';
let lab: Lab;
/** Both controllers, first preferred: the failover client the CLI uses too. */
let api: ControllerClient;
/** Each controller alone: to ask one that it answers. */
const single: ControllerClient[] = [];
const addresses = new Map<string, { ipv4: string; ipv6: string }>();

const serverDir = (server: string) => join(dir, '.lab', PREFIX, 'servers', server);
const hasCcd = (user: string) => SERVERS.every((s) => existsSync(join(serverDir(s), 'ccd', user)));

interface UserView {
  name: string;
  ipv4: string;
  ipv6: string;
}
interface AuditRow {
  action: string;
  subject: string;
}
interface SessionRow {
  user: string;
  server: string;
  stale: boolean;
}

async function get<T>(client: ControllerClient, path: string): Promise<T> {
  const r = await client.raw('GET', path);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.text}`);
  return JSON.parse(r.text) as T;
}

async function addUser(name: string, client = api): Promise<void> {
  const r = await client.raw('POST', '/v1/users', { name, groups: ['staff'] });
  if (r.status !== 201) throw new Error(`add ${name}: ${r.status} ${r.text}`);
  const u = JSON.parse(r.text) as UserView;
  addresses.set(name, { ipv4: u.ipv4, ipv6: u.ipv6 });
}

async function audit(kind: string): Promise<AuditRow[]> {
  return get<AuditRow[]>(api, `/v1/audit?kind=${kind}&limit=9999`);
}

/** Which controller each agent uses now: its first, or where its last switch went. */
function agentController(server: string, endpoints: string[]): string {
  const i = SERVERS.indexOf(server);
  const first = i % 2 === 1 ? endpoints[1] : endpoints[0];
  const log = join(serverDir(server), 'run', 'agent.log');
  const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
  const switches = [...text.matchAll(/controller \S+ -> (\S+):/g)];
  return switches.at(-1)?.[1] ?? first;
}

/** The controller that leads: its log's last word on leadership says so. */
function leader(): string {
  for (const [component, file] of [
    ['controller', 'controller.log'],
    ['controller2', 'controller2.log'],
  ]) {
    const text = readFileSync(join(dir, '.lab', PREFIX, file), 'utf8');
    const last = [...text.matchAll(/controller: (leading|not leading):/g)].at(-1)?.[1];
    if (last === 'leading') return component;
  }
  throw new Error('no controller leads');
}

/** A user's row of `lab status`, from this process's Lab: polling it costs no CLI start. */
async function statusIn(user: string): Promise<LabUserStatus> {
  const row = (await lab.status()).find((r) => r.user === user);
  if (!row) throw new Error(`${user} not in lab status`);
  return row;
}

/** Pings every address once from a service host, in one lab exec; the addresses that failed. */
async function unreachable(addrs: string[]): Promise<string[]> {
  const script = `for a in ${addrs.join(' ')}; do ping -c1 -W2 $a >/dev/null || echo $a; done`;
  const r = await cli(
    dir,
    ['lab', 'exec', '--prefix', PREFIX, 'intranet', '--', 'sh', '-c', script],
    120_000,
  );
  return r.stdout.split('\n').filter(Boolean);
}

describe.runIf(runs)('two controllers on PostgreSQL in the lab', () => {
  beforeAll(async () => {
    await buildOnce();
    dir = await newFleetDir();
    console.log(
      (
        await cliOk(dir, [
          'lab',
          'up',
          '--prefix',
          PREFIX,
          '--controllers',
          '2',
          '--store',
          'postgres',
        ])
      ).trim(),
    );
    lab = await Lab.openDir(dir, PREFIX);
    const token = readFileSync(join(dir, 'controller.token'), 'utf8').trim();
    const endpoints = parseEndpoints(lab.controllerEndpoints);
    api = new ControllerClient(endpoints, token, 5000);
    for (const e of endpoints) single.push(new ControllerClient(e, token, 5000));
    for (const u of [...CONNECTS, 'mover', 'rev']) await addUser(u);
  }, 300_000);

  afterAll(async () => {
    await lab?.close();
    if (!dir) return;
    await cli(dir, ['lab', 'down', '--prefix', PREFIX]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('kill -9 of the leading controller during 100 changes and 20 connects loses nothing', async () => {
    const acked: string[] = [];
    const refused: string[] = [];
    const queue = [...BURST];
    const burst = async () => {
      for (let name = queue.shift(); name; name = queue.shift()) {
        try {
          await addUser(name);
          acked.push(name);
        } catch (err) {
          // Sent to the controller as it died: it may or may not be done, and said so.
          refused.push(`${name}: ${(err as Error).message}`);
        }
      }
    };
    const victim = leader();
    const t0 = Date.now();
    const killer = (async () => {
      await waitUntil('30 changes acknowledged', () => acked.length >= 30, 60_000, 10);
      await lab.stopComponent(victim, undefined, 'SIGKILL');
      return Date.now();
    })();
    const [killedAt] = await Promise.all([
      killer,
      Promise.all(Array.from({ length: 4 }, burst)),
      lab.connectMany(CONNECTS, 8),
    ]);
    console.log(
      `burst: ${acked.length} acknowledged, ${refused.length} not (${refused.join('; ') || 'none'}); ${victim} killed ${secs(killedAt - t0)} in, burst and connects done ${secs(Date.now() - t0)}`,
    );
    expect(acked.length + refused.length).toBe(BURST.length);
    // Only the changes in flight at the kill may go unanswered.
    expect(refused.length).toBeLessThanOrEqual(4);
    const ms = await waitUntil(
      'every acknowledged change on all six servers',
      () => acked.every(hasCcd),
      30_000,
      50,
    );
    console.log(`every acknowledged user's ccd on all six servers ${secs(ms)} after the burst`);

    // Every acknowledged change is audited once.
    const adds = await audit('user.add');
    for (const name of acked) expect(adds.filter((a) => a.subject === name)).toHaveLength(1);
    // Every session is in the store, once, on one server, reported through either controller.
    await waitUntil(
      'the 20 sessions in the store',
      async () => {
        const sessions = (await get<SessionRow[]>(api, '/v1/sessions')).filter((s) => !s.stale);
        return CONNECTS.every((u) => sessions.filter((s) => s.user === u).length === 1);
      },
      30_000,
      200,
    );
    // Every agent is on the surviving controller, or back on its first.
    expect(await unreachable(CONNECTS.map((u) => addresses.get(u)!.ipv4))).toEqual([]);
    await lab.startComponent(victim, undefined);
  });

  it('a PostgreSQL restart: controllers reconnect by themselves, the data plane is untouched', async () => {
    const watched = CONNECTS.slice(0, 4).map((u) => addresses.get(u)!.ipv4);
    await lab.stopComponent('postgres', undefined, 'SIGTERM');
    const down = Date.now();
    // While it is away: the users keep working, the controllers say 503 (not 500).
    expect(await unreachable(watched)).toEqual([]);
    const r = await single[0].raw('GET', '/v1/users');
    expect(r.status).toBe(503);
    await lab.startComponent('postgres', undefined);
    const up = Date.now();
    for (const [i, c] of single.entries()) {
      const ms = await waitUntil(
        `controller ${i + 1} answers from the store again`,
        async () => (await c.raw('GET', '/v1/users').catch(() => ({ status: 0 }))).status === 200,
        30_000,
        100,
      );
      console.log(
        `controller ${i + 1} serves the store ${secs(ms)} after PostgreSQL is back (down ${secs(up - down)})`,
      );
    }
    expect(await unreachable(watched)).toEqual([]);
    const t0 = Date.now();
    await addUser('after');
    await waitUntil(
      'a change after the restart on all six servers',
      () => hasCcd('after'),
      30_000,
      50,
    );
    console.log(`change after the restart -> all six servers ${secs(Date.now() - t0)}`);
  });

  it('silent move and revoke with the reports going to different controllers', async () => {
    const endpoints = lab.controllerEndpoints;
    // Both controllers back in use: vpn11 reports to the first, vpn12 to the second.
    await waitUntil(
      'vpn11 on controller 1, vpn12 on controller 2',
      () =>
        agentController('vpn11', endpoints) === endpoints[0] &&
        agentController('vpn12', endpoints) === endpoints[1],
      30_000,
      200,
    );
    const mover = addresses.get('mover')!;
    await lab.connect('mover', { server: 'vpn11' });
    await waitUntil(
      'mover via vpn11',
      async () => (await statusIn('mover')).coreVia4.join() === 'vpn11',
      20_000,
    );
    await lab.disconnect('mover', 'SIGKILL');
    const t0 = Date.now();
    await lab.connect('mover', { server: 'vpn12' });
    const connected = Date.now();
    // The figure the README gives for a silent move: the core routes only to the new server.
    await waitUntil(
      'the core routes mover only via vpn12',
      async () => {
        const s = await statusIn('mover');
        return s.coreVia4.join() === 'vpn12' && s.coreVia6.join() === 'vpn12';
      },
      30_000,
      50,
    );
    const routed = Date.now();
    // vpn11 lists the evicted session until OpenVPN's scheduled exit (5 s) and its next status
    // write (1 s): never left on two servers means it goes.
    await waitUntil(
      'vpn11 no longer lists mover',
      () =>
        !(
          lab
            .sessions()
            .get('mover')
            ?.some((x) => x.server === 'vpn11') ?? false
        ),
      30_000,
      100,
    );
    console.log(
      `silent move vpn11 (controller 1) -> vpn12 (controller 2): tunnel ${secs(connected - t0)}, core only via vpn12 ${secs(routed - connected)} after it, vpn11's session gone after ${secs(Date.now() - connected)}`,
    );
    // Decided once, whoever got which report: wait past a few report rounds, then count.
    await sleep(3000);
    const evictions = (await audit('session.evict')).filter((a) => a.subject === 'mover');
    expect(evictions).toHaveLength(1);
    expect(await unreachable([mover.ipv4])).toEqual([]);

    // Revoked through the second controller while the user is on a server reporting to the first.
    await lab.connect('rev', { server: 'vpn21' });
    await waitUntil(
      'rev via vpn21',
      async () => (await statusIn('rev')).coreVia4.join() === 'vpn21',
      20_000,
    );
    const r0 = Date.now();
    const r = await single[1].raw('POST', '/v1/users/rev/revoke');
    expect(r.status).toBe(200);
    await waitUntil(
      'rev out of the core',
      async () => {
        const s = await statusIn('rev');
        return s.coreVia4.length === 0 && s.coreVia6.length === 0;
      },
      30_000,
      50,
    );
    const revRouted = Date.now();
    await waitUntil('rev off every server', () => !lab.sessions().has('rev'), 30_000, 100);
    console.log(
      `revoke through controller 2 of a user on vpn21 (controller 1): routes gone from the core ${secs(revRouted - r0)}, session gone from every server ${secs(Date.now() - r0)}`,
    );
  });
});
