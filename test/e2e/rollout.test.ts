/**
 * Rolling restarts in the lab: a change that needs OpenVPN restarted (keepalive in server.conf)
 * goes over the six servers one at a time — drain, restart, health, undrain — with real
 * OpenVPN, FRR and nftables, and a rollout stops at a server whose OpenVPN does not come back.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry, RolloutStatusView } from '../../src/api/index.js';
import { ControllerClient } from '../../src/client/client.js';
import { adminTokenPath } from '../../src/controller/auth.js';
import {
  buildOnce,
  cli,
  cliOk,
  labStatus,
  netnsNames,
  newFleetDir,
  ping,
  requireLab,
  secs,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfo';
/** Each user starts on one server; its profile then lists the others in the fleet's order. */
const PLACES: Record<string, string> = {
  ria: 'vpn11',
  rob: 'vpn12',
  rut: 'vpn21',
  rex: 'vpn22',
  rae: 'vpn31',
  roy: 'vpn32',
};
const SERVERS = ['vpn11', 'vpn12', 'vpn21', 'vpn22', 'vpn31', 'vpn32'];
/** The order a rollout visits them: the reverse of the profiles' remotes. */
const ORDER = [...SERVERS].reverse();
const runs = requireLab();
let dir = '';
let admin: ControllerClient;
const users: Record<string, { ipv4: string; ipv6: string }> = {};

const lab = (sub: string, ...args: string[]) =>
  cliOk(dir, ['lab', sub, '--prefix', PREFIX, ...args]);
const serverDir = (server: string) => join(dir, '.lab', PREFIX, 'servers', server);
const specFile = () => join(dir, 'fleet.yaml');
/** The lab's controller, for the CLI's controller commands. */
const controller = () => ['--controller', `unix:${join(dir, '.lab', PREFIX, 'controller.sock')}`];

async function rolloutStatus(): Promise<RolloutStatusView> {
  return admin.rollout();
}

async function auditOf(kind: string): Promise<AuditEntry[]> {
  const r = await admin.raw('GET', `/v1/audit?kind=${encodeURIComponent(kind)}&limit=1000`);
  return (JSON.parse(r.text) as AuditEntry[]).reverse();
}

/** Every user connected where the core routes both its addresses, with its own addresses. */
async function everyoneRouted(): Promise<boolean> {
  const rows = await labStatus(dir, PREFIX);
  return Object.keys(PLACES).every((u) => {
    const s = rows.find((r) => r.user === u);
    return (
      !!s?.server &&
      s.ipv4 === users[u].ipv4 &&
      s.ipv6 === users[u].ipv6 &&
      s.coreVia4.join() === s.server &&
      s.coreVia6.join() === s.server
    );
  });
}

/** Replaces the keepalive line of fleet.yaml's openvpn section (the example has none: adds it). */
function setKeepalive(interval: number, timeout: number): void {
  const text = readFileSync(specFile(), 'utf8').replace(/^ {2}keepalive: .*\n/m, '');
  writeFileSync(
    specFile(),
    text.replace(
      /^openvpn:\n/m,
      `openvpn:\n  keepalive: { interval: ${interval}, timeout: ${timeout} }\n`,
    ),
  );
}

/**
 * Watches the rollout every 100 ms until it is no longer running; returns the most servers
 * seen drained (draining, restarting or checking) at one time.
 */
async function watchRollout(
  timeoutMs: number,
): Promise<{ status: RolloutStatusView; most: number }> {
  let most = 0;
  let status = await rolloutStatus();
  await waitUntil(
    'the rollout to end',
    async () => {
      status = await rolloutStatus();
      const busy = status.rollout?.steps.filter((s) =>
        ['draining', 'restarting', 'checking'].includes(s.state),
      ).length;
      most = Math.max(most, busy ?? 0);
      return !!status.rollout && status.rollout.status !== 'running';
    },
    timeoutMs,
    100,
  );
  return { status, most };
}

describe.runIf(runs)('rolling restarts: one server at a time, stopped by an unhealthy one', () => {
  beforeAll(async () => {
    await buildOnce();
    dir = await newFleetDir();
    // Short enough for a test; a server that has not come back in 25 s stops the rollout.
    writeFileSync(
      specFile(),
      `${readFileSync(specFile(), 'utf8')}rollout:\n  drainSeconds: 15\n  healthSeconds: 25\n`,
    );
    for (const u of Object.keys(PLACES))
      users[u] = JSON.parse(await cliOk(dir, ['user', 'add', u, '-g', 'staff', '--json'])) as {
        ipv4: string;
        ipv6: string;
      };
    console.log((await lab('up')).trim());
    admin = new ControllerClient(
      { kind: 'unix', path: join(dir, '.lab', PREFIX, 'controller.sock') },
      readFileSync(adminTokenPath(dir), 'utf8').trim(),
      10_000,
    );
    await waitUntil(
      'every agent reporting',
      async () => (await admin.servers()).every((s) => !s.stale && s.health?.ok),
      60_000,
      250,
    );
    for (const [u, server] of Object.entries(PLACES)) {
      const rest = SERVERS.filter((s) => s !== server);
      const after = SERVERS.indexOf(server);
      // Its own server, then the others in the fleet's order from there (wrapping around).
      const remotes = [server, ...rest.slice(after), ...rest.slice(0, after)];
      await lab('connect', u, '--server', remotes.join(','));
    }
    await waitUntil('every user routed', everyoneRouted, 60_000, 250);
  }, 600_000);

  afterAll(async () => {
    if (!dir) return;
    console.log((await cliOk(dir, ['lab', 'down', '--prefix', PREFIX])).trim());
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('rolls a keepalive change over every server, one drained at a time, users kept', async () => {
    const t0 = Date.now();
    setKeepalive(4, 12);
    // The controller builds the change and starts the rollout by itself.
    await waitUntil(
      'a rollout started by the controller',
      async () => (await rolloutStatus()).rollout?.startedBy === 'controller',
      20_000,
      100,
    );
    const { status, most } = await watchRollout(300_000);
    console.log(
      `keepalive change rolled over ${SERVERS.length} servers in ${secs(Date.now() - t0)}`,
    );
    expect(status.rollout?.status).toBe('done');
    expect(status.rollout?.steps.map((s) => [s.server, s.state])).toEqual(
      ORDER.map((s) => [s, 'done']),
    );
    expect(most).toBe(1);
    // Every server holds the new keepalive and its OpenVPN restarted once (SIGHUP re-reads it).
    for (const s of SERVERS) {
      expect(readFileSync(join(serverDir(s), 'server.conf'), 'utf8')).toContain('keepalive 4 12');
      const log = readFileSync(join(serverDir(s), 'run', 'openvpn.log'), 'utf8');
      expect(log.match(/SIGHUP\[hard,\] received/g)).toHaveLength(1);
    }
    expect(status.pending).toEqual([]);
    // The audit trail: who started it, and each server's steps, one server after the other.
    const steps = (await auditOf('rollout.step')).map((e) => [e.subject, e.detail?.state]);
    const expected = ORDER.flatMap((s) =>
      ['draining', 'restarting', 'checking', 'done'].map((state) => [s, state]),
    );
    expect(steps).toEqual(expected);
    expect((await auditOf('rollout.start'))[0]).toMatchObject({ actor: 'controller' });
    await waitUntil('every user routed after the rollout', everyoneRouted, 60_000, 250);
    for (const u of Object.keys(PLACES))
      expect(await ping(dir, PREFIX, 'intranet', users[u].ipv4)).toBe(true);
  });

  it('stops at a server whose OpenVPN does not come back and leaves the rest as they were', async () => {
    // No rollout by itself this time: the operator starts it.
    writeFileSync(
      specFile(),
      readFileSync(specFile(), 'utf8').replace('rollout:\n', 'rollout:\n  auto: false\n'),
    );
    setKeepalive(5, 15);
    await waitUntil(
      'every server holding the change',
      async () => (await rolloutStatus()).pending.length === SERVERS.length,
      30_000,
      200,
    );
    // vpn22's OpenVPN refuses its new config: as if that server's OpenVPN did not know an
    // option. The agent does not rewrite a file whose bundle has not changed.
    const victim = 'vpn22';
    const conf = join(serverDir(victim), 'server.conf');
    const good = readFileSync(conf, 'utf8');
    writeFileSync(conf, `${good}no-such-option-in-this-openvpn\n`);
    const before = await labStatus(dir, PREFIX);
    const t0 = Date.now();
    const started = await cli(dir, ['rollout', 'start', ...controller()]);
    console.log(started.stdout.trim(), started.stderr.trim());
    expect(started.code).not.toBe(0);
    console.log(`rollout stopped at ${victim} after ${secs(Date.now() - t0)}`);
    const { rollout, pending } = await rolloutStatus();
    expect(rollout?.status).toBe('failed');
    expect(rollout?.startedBy).toBe('api:admin');
    expect(rollout?.steps.map((s) => [s.server, s.state])).toEqual([
      ['vpn32', 'done'],
      ['vpn31', 'done'],
      ['vpn22', 'failed'],
      ['vpn21', 'waiting'],
      ['vpn12', 'waiting'],
      ['vpn11', 'waiting'],
    ]);
    console.log(`failed step: ${rollout?.steps[2].detail}`);
    // The rest untouched: still waiting for their restart, their users' sessions the same.
    expect(pending.filter((s) => s !== victim)).toEqual(['vpn21', 'vpn12', 'vpn11']);
    const after = await labStatus(dir, PREFIX);
    const untouched = before.filter((r) => ['vpn21', 'vpn12', 'vpn11'].includes(r.server ?? ''));
    expect(untouched.length).toBeGreaterThan(0);
    for (const r of untouched) expect(after.find((a) => a.user === r.user)?.server).toBe(r.server);
    // The failed server stays drained: nobody is sent to it when its OpenVPN comes back.
    const servers = await admin.servers();
    expect(servers.find((s) => s.name === victim)?.health?.draining).toBe(true);
    expect(servers.filter((s) => s.health?.draining).map((s) => s.name)).toEqual([victim]);
    await waitUntil('every user routed while stopped', everyoneRouted, 60_000, 250);

    // The operator fixes the server and resumes: the rollout goes on from it.
    writeFileSync(conf, good);
    await lab('start', 'openvpn', victim);
    await cliOk(dir, ['rollout', 'resume', ...controller()]);
    const { status, most } = await watchRollout(300_000);
    expect(status.rollout?.status).toBe('done');
    expect(most).toBe(1);
    expect(status.pending).toEqual([]);
    // The last server's drain ends with the rollout; its agent says so in its next report.
    await waitUntil(
      'no server draining after the rollout',
      async () => (await admin.servers()).every((s) => !s.health?.draining),
      30_000,
      250,
    );
    await waitUntil('every user routed after the resume', everyoneRouted, 60_000, 250);
  });
});
