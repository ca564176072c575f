/**
 * Rolling restart benchmark (issue 14, part 4): the users' outage while a change that needs
 * OpenVPN restarted (keepalive in server.conf) reaches all six servers of the lab, rolled out
 * one server at a time (drain, restart, health, undrain) against the same kind of change
 * applied by SIGHUP everywhere at once (`rollout.strategy: all-at-once`, the behaviour before
 * rollouts).
 *
 *   npm run bench:rollout [-- --per-server N]     (root; ~5 min with N = 3)
 *
 * Every user is pinged from the intranet host every 100 ms (`ping -D`: the kernel's receive
 * time of each reply). A user's outage is the time without a reply beyond the ping interval,
 * summed over the change; its longest gap is the longest single one. Each user's profile lists
 * its own server first, then the others in the fleet's order, as `lab connect --server` does.
 * Writes bench/results/rollout.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { AuditEntry } from '../src/api/index.js';
import { ControllerClient } from '../src/client/client.js';
import { adminTokenPath } from '../src/controller/auth.js';
import { Lab, listNamespaces } from '../src/lab/lab.js';
import { specPath } from '../src/service/layout.js';
import { initFleet } from '../src/service/open.js';
import { type LineStream, streamLines } from '../src/sys/exec.js';
import { sleep, waitFor } from '../src/sys/time.js';
import { intArg, percentile } from './measure.js';

const PER_SERVER = intArg('--per-server', 3);
const PREFIX = 'obr';
const PING_INTERVAL_S = 0.1;
/** A gap longer than this between two replies counts as outage (beyond the interval). */
const GAP_S = 0.15;
const SETTLE_MS = 8000;
const RESULTS = join(import.meta.dirname, 'results');

const say = (line: string) => process.stdout.write(`${line}\n`);

interface UserAddr {
  name: string;
  ipv4: string;
  server: string;
}

/** Reply times (unix seconds, from `ping -D`) per user, for as long as the pingers run. */
class Pingers {
  readonly replies = new Map<string, number[]>();
  private readonly streams: LineStream[] = [];

  constructor(ns: string, users: UserAddr[]) {
    for (const u of users) {
      const times: number[] = [];
      this.replies.set(u.name, times);
      this.streams.push(
        streamLines(
          ['ping', '-D', '-n', '-i', String(PING_INTERVAL_S), u.ipv4],
          (line) => {
            const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(line);
            if (m) times.push(Number(m[1]));
          },
          (code, stderr) => say(`  ping ${u.name} ended (${code}): ${stderr.trim()}`),
          { netns: ns },
        ),
      );
    }
  }

  stop(): void {
    for (const s of this.streams) s.stop();
  }

  /** Each user's outage between `from` and `to` (unix seconds): total and longest gap. */
  outages(from: number, to: number): UserOutage[] {
    return [...this.replies].map(([user, all]) => {
      const times = [from, ...all.filter((t) => t > from && t < to), to];
      let total = 0;
      let longest = 0;
      const gaps: { at: string; s: number }[] = [];
      for (let i = 1; i < times.length; i++) {
        const gap = times[i] - times[i - 1];
        if (gap <= GAP_S) continue;
        total += gap - PING_INTERVAL_S;
        longest = Math.max(longest, gap - PING_INTERVAL_S);
        gaps.push({ at: new Date(times[i - 1] * 1000).toISOString(), s: gap - PING_INTERVAL_S });
      }
      return { user, total, longest, gaps };
    });
  }
}

interface UserOutage {
  user: string;
  total: number;
  longest: number;
  /** Each gap: when the last reply before it came, and how long it lasted beyond the interval. */
  gaps: { at: string; s: number }[];
}

interface PhaseResult {
  strategy: 'rolling' | 'all-at-once';
  change: Change['name'];
  users: number;
  /** From the change written to fleet.yaml to the rollout's end. */
  rolloutS: number;
  outageS: { p50: number; p95: number; max: number };
  longestGapS: { p50: number; p95: number; max: number };
  /** Per server: from its drain to its restart (rolling only). */
  drainS: number[];
  perUser: (UserOutage & { server: string })[];
  /** The rollout's steps as audited: server, state, when. */
  steps: { server: string; state: unknown; at: string }[];
}

function stats(values: number[]): { p50: number; p95: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), max: s.at(-1) ?? NaN };
}

/**
 * The changes measured: `pushed` changes what the server pushes (keepalive), so each client
 * also closes and reopens its tun when it reconnects ("Pulled options changed on restart");
 * `server-only` changes server.conf alone (hand-window), like a new server certificate.
 */
interface Change {
  name: 'pushed (keepalive)' | 'server-only (hand-window)';
  edit: (text: string) => string;
}

const keepalive = (interval: number, timeout: number): Change => ({
  name: 'pushed (keepalive)',
  edit: (text) =>
    text.replace(
      /^ {2}keepalive: .*$/m,
      `  keepalive: { interval: ${interval}, timeout: ${timeout} }`,
    ),
});

const handWindow = (seconds: number): Change => ({
  name: 'server-only (hand-window)',
  edit: (text) => text.replace(/^ {2}handWindow: .*$/m, `  handWindow: ${seconds}`),
});

function setSpec(dir: string, change: Change, strategy: string): void {
  const file = specPath(dir);
  const text = change.edit(readFileSync(file, 'utf8')).replace(/\nrollout:\n(?: {2}.*\n)*/, '\n');
  writeFileSync(file, `${text}rollout:\n  strategy: ${strategy}\n`);
}

async function allReachable(pingers: Pingers, users: UserAddr[]): Promise<void> {
  // Reachable again: every user answered within the last second.
  await waitFor(
    'every user reachable',
    () => {
      const now = Date.now() / 1000;
      return users.every((u) => (pingers.replies.get(u.name)?.at(-1) ?? 0) > now - 1);
    },
    120_000,
    200,
  );
}

async function phase(
  dir: string,
  admin: ControllerClient,
  pingers: Pingers,
  users: UserAddr[],
  strategy: 'rolling' | 'all-at-once',
  change: Change,
): Promise<PhaseResult> {
  const before = (await admin.rollout()).rollout?.id ?? 0;
  const from = Date.now() / 1000;
  setSpec(dir, change, strategy);
  let id = 0;
  await waitFor(
    `the ${strategy} rollout to end`,
    async () => {
      const r = (await admin.rollout()).rollout;
      if (!r || r.id <= before) return false;
      id = r.id;
      if (r.status === 'running') return false;
      if (r.status !== 'done') throw new Error(`rollout ${r.id} ${r.status}: ${r.detail ?? ''}`);
      return true;
    },
    600_000,
    200,
  );
  const rolloutS = Date.now() / 1000 - from;
  await allReachable(pingers, users);
  await sleep(3000);
  const to = Date.now() / 1000;
  const perUser = pingers.outages(from, to);
  const audit = JSON.parse(
    (await admin.raw('GET', '/v1/audit?kind=rollout.step&limit=1000')).text,
  ) as AuditEntry[];
  const ofThis = audit.filter((e) => e.detail?.rollout === id).reverse();
  const drainS: number[] = [];
  for (const e of ofThis) {
    if (e.detail?.state !== 'restarting') continue;
    const began = ofThis.find((x) => x.subject === e.subject && x.detail?.state === 'draining');
    if (began) drainS.push((Date.parse(e.at) - Date.parse(began.at)) / 1000);
  }
  return {
    strategy,
    change: change.name,
    users: users.length,
    rolloutS,
    outageS: stats(perUser.map((u) => u.total)),
    longestGapS: stats(perUser.map((u) => u.longest)),
    drainS,
    perUser: perUser.map((u) => ({
      ...u,
      server: users.find((x) => x.name === u.user)?.server ?? '',
    })),
    steps: ofThis.map((e) => ({ server: e.subject, state: e.detail?.state, at: e.at })),
  };
}

function line(r: PhaseResult): string {
  const f = (n: number) => n.toFixed(2);
  return `${r.strategy.padEnd(12)} ${r.change.padEnd(26)} users ${r.users}  outage p50 ${f(r.outageS.p50)} s  p95 ${f(r.outageS.p95)} s  max ${f(r.outageS.max)} s  (longest gap max ${f(r.longestGapS.max)} s)  rollout ${f(r.rolloutS)} s`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:rollout needs root (network namespaces)');
  const dir = mkdtempSync(join(os.tmpdir(), 'ovf-rolloutbench-'));
  const fleet = await initFleet(dir);
  try {
    await Lab.down(dir, PREFIX);
    const servers = fleet.serverNames();
    const created = await fleet.addUsers(
      Array.from({ length: servers.length * PER_SERVER }, (_, i) => ({
        name: `r${String(i).padStart(3, '0')}`,
        groups: ['staff'],
      })),
    );
    const users: UserAddr[] = created.map((u, i) => ({
      name: u.name,
      ipv4: u.ipv4,
      server: servers[i % servers.length],
    }));
    const lab = await Lab.up(fleet, { prefix: PREFIX, log: (l) => say(`  ${l}`) });
    const admin = new ControllerClient(
      { kind: 'unix', path: lab.controllerSocket },
      readFileSync(adminTokenPath(dir), 'utf8').trim(),
      30_000,
    );
    await waitFor(
      'every agent reporting',
      async () => (await admin.servers()).every((s) => !s.stale && s.health?.ok),
      60_000,
      250,
    );
    await sleep(SETTLE_MS);
    for (const u of users) {
      const i = servers.indexOf(u.server);
      const rest = servers.filter((s) => s !== u.server);
      const remotes = [u.server, ...rest.slice(i), ...rest.slice(0, i)];
      await lab.connect(u.name, { server: remotes.join(','), wait: false });
    }
    await Promise.all(users.map((u) => lab.waitTunnel(u.name, 120_000)));
    const intranet = lab.plan.hosts.find((h) => h.network === 'intranet');
    if (!intranet) throw new Error('the lab has no intranet host');
    const pingers = new Pingers(intranet.ns, users);
    try {
      await allReachable(pingers, users);
      await sleep(3000);
      say(`${users.length} users on ${servers.length} servers, pinged every ${PING_INTERVAL_S} s`);
      const rolling = await phase(dir, admin, pingers, users, 'rolling', keepalive(4, 12));
      say(line(rolling));
      const serverOnly = await phase(dir, admin, pingers, users, 'rolling', handWindow(12));
      say(line(serverOnly));
      const atOnce = await phase(dir, admin, pingers, users, 'all-at-once', keepalive(5, 15));
      say(line(atOnce));
      const atOnceServerOnly = await phase(
        dir,
        admin,
        pingers,
        users,
        'all-at-once',
        handWindow(14),
      );
      say(line(atOnceServerOnly));
      // "A drain" for a user: the gap it has when the server it is on is drained (its move to
      // its next remote): the longest gap that starts within a second of a drain.
      const drainMove = (r: PhaseResult) => {
        const drains = r.steps.filter((x) => x.state === 'draining').map((x) => Date.parse(x.at));
        const atDrain = r.perUser.flatMap((u) =>
          u.gaps.filter((g) => drains.some((t) => Math.abs(Date.parse(g.at) - t) < 1000)),
        );
        return Math.max(0, ...atDrain.map((g) => g.s));
      };
      const targets = [
        `rolling, server-only change: each user's outage p95 < 1 s: ${serverOnly.outageS.p95.toFixed(2)} s ${serverOnly.outageS.p95 < 1 ? 'met' : 'MISSED'}`,
        `rolling, pushed change: each user's outage p95 < 1 s: ${rolling.outageS.p95.toFixed(2)} s ${rolling.outageS.p95 < 1 ? 'met' : 'MISSED'}`,
        ...[rolling, serverOnly].map(
          (r) =>
            `rolling, ${r.change}: nobody offline longer than a drain (longest single gap ${r.longestGapS.max.toFixed(2)} s, the drain's own move ${drainMove(r).toFixed(2)} s): ${r.longestGapS.max <= drainMove(r) + 0.05 ? 'met' : 'MISSED'}`,
        ),
      ];
      for (const t of targets) say(`target ${t}`);
      mkdirSync(RESULTS, { recursive: true });
      writeFileSync(
        join(RESULTS, 'rollout.json'),
        `${JSON.stringify({ startedAt: new Date().toISOString(), perServer: PER_SERVER, rolling, serverOnly, allAtOnce: atOnce, atOnceServerOnly, targets }, null, 2)}\n`,
      );
      say(`results: ${join(RESULTS, 'rollout.json')}`);
    } finally {
      pingers.stop();
    }
  } finally {
    await Lab.down(dir, PREFIX, (l) => say(`  ${l}`));
    await fleet.close();
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${PREFIX}-`));
    rmSync(dir, { recursive: true, force: true });
    if (left.length) throw new Error(`namespaces left behind: ${left.join(', ')}`);
  }
}

await main();
