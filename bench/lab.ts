/**
 * Lab benchmark (issue 5, first version): the same fleet brought up twice in network
 * namespaces — as ovpn-fleet runs it (controller + agents) and as the seed article ran it
 * (`Lab.up({ seed: true })`) — one after the other, driven through the same events, measured
 * on the core router's routing table. Writes bench/results/{report.md,report.json,latency.svg}.
 *
 *   npm run bench:lab [-- --quick | --full]      (root; --quick is the default, < 5 min)
 *
 * Route times come from polling the core's (and site routers') tables with `ip -n NS -j route
 * show` every 20 ms (figures 1–2) or 50 ms (3–4): resolution is one poll interval.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { compilePolicy, type PolicyMember } from '../src/core/policy.js';
import { Lab, listNamespaces } from '../src/lab/lab.js';
import { renderNftables } from '../src/render/nftables.js';
import { serverContexts } from '../src/render/bundle.js';
import { DEFAULT_RENDER_OPTIONS } from '../src/render/types.js';
import { Fleet } from '../src/service/fleet.js';
import { run } from '../src/sys/exec.js';
import { exampleSpec } from '../src/testing.js';
import { existsSync } from 'node:fs';
import {
  type Design,
  type Figure,
  type FirewallRow,
  type Machine,
  type Target,
  renderMarkdown,
  renderSvg,
  summarize,
  seconds,
  targetLine,
} from './lab-report.js';
import { seededRandom } from './measure.js';

const FULL = process.argv.includes('--full');
const MODE = FULL ? 'full' : 'quick';
/** Figures 1–2 and 3 run in batches of BATCH users; figure 4 in CRASH_ROUNDS server crashes. */
const BATCH = 10;
const BATCHES = FULL ? 3 : 1;
const CRASH_ROUNDS = FULL ? 5 : 3;
const CRASH_USERS = 6; // connected through the load balancer; the busier server is killed
const FIREWALL_USERS = [800, 10_000, 100_000];
/** The linear ruleset at 100,000 users is ~500,000 rules: applied only with --full. */
const LINEAR_APPLY_MAX_USERS = FULL ? 100_000 : 10_000;
const RESULTS = join(import.meta.dirname, 'results');
const PREFIXES: Record<Design, string> = { 'ovpn-fleet': 'obf', seed: 'obs' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (line: string) => process.stdout.write(`${line}\n`);
const now = () => performance.now();

// ---------------------------------------------------------------- route tables

type Table = Map<string, string[]>; // destination → next-hop devices

async function dumpTable(ns: string, family: '-4' | '-6'): Promise<Table> {
  const r = await run(['ip', '-n', ns, family, '-j', 'route', 'show'], { allowFailure: true });
  const table: Table = new Map();
  if (r.code !== 0 || !r.stdout.trim()) return table;
  const routes = JSON.parse(r.stdout) as {
    dst: string;
    dev?: string;
    nexthops?: { dev: string }[];
  }[];
  for (const rt of routes)
    table.set(rt.dst, rt.nexthops ? rt.nexthops.map((n) => n.dev) : rt.dev ? [rt.dev] : []);
  return table;
}

interface Snapshot {
  /** When the dump was taken (performance.now(), start of the dump). */
  at: number;
  tables: Map<string, Table>; // `${ns} ${family}` → table
}

/**
 * Polls the tables of the given namespaces in the background; waiters resolve with the time of
 * the first snapshot that satisfies them. One loop serves many concurrent waiters.
 */
class RouteWatch {
  private waiters: {
    test: (s: Snapshot) => boolean;
    resolve: (at: number) => void;
    reject: (e: Error) => void;
    deadline: number;
    what: string;
  }[] = [];
  private running = false;

  constructor(
    private readonly sources: { ns: string; family: '-4' | '-6' }[],
    private readonly everyMs: number,
  ) {}

  async snapshot(): Promise<Snapshot> {
    const at = now();
    const tables = new Map<string, Table>();
    await Promise.all(
      this.sources.map(async (s) =>
        tables.set(`${s.ns} ${s.family}`, await dumpTable(s.ns, s.family)),
      ),
    );
    return { at, tables };
  }

  until(what: string, test: (s: Snapshot) => boolean, timeoutMs: number): Promise<number> {
    const p = new Promise<number>((resolve, reject) =>
      this.waiters.push({ test, resolve, reject, deadline: now() + timeoutMs, what }),
    );
    if (!this.running) void this.loop();
    return p;
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.waiters.length) {
        const started = now();
        const snap = await this.snapshot();
        for (const w of [...this.waiters]) {
          if (w.test(snap)) w.resolve(snap.at);
          else if (snap.at > w.deadline) w.reject(new Error(`timed out waiting for ${w.what}`));
          else continue;
          this.waiters.splice(this.waiters.indexOf(w), 1);
        }
        await sleep(Math.max(0, this.everyMs - (now() - started)));
      }
    } finally {
      this.running = false;
    }
  }
}

/** The servers through which the core reaches `addr` (core → site router → server), from a snapshot. */
function viaServers(lab: Lab, snap: Snapshot, addr: string): string[] {
  const plan = lab.plan;
  const fam = addr.includes(':') ? '-6' : '-4';
  const out = new Set<string>();
  for (const dev of snap.tables.get(`${plan.core} ${fam}`)?.get(addr) ?? []) {
    const link = plan.links.find((l) => l.a.ns === plan.core && l.a.name === dev);
    if (!link) continue;
    for (const dev2 of snap.tables.get(`${link.b.ns} ${fam}`)?.get(addr) ?? []) {
      const l2 = plan.links.find((l) => l.a.ns === link.b.ns && l.a.name === dev2);
      const server = l2 && plan.servers.find((s) => s.ns === l2.b.ns);
      if (server) out.add(server.name);
    }
  }
  return [...out].sort();
}

const coreHas = (lab: Lab, snap: Snapshot, addr: string) =>
  snap.tables.get(`${lab.plan.core} ${addr.includes(':') ? '-6' : '-4'}`)?.has(addr) ?? false;

// ---------------------------------------------------------------- the events

interface UserAddr {
  name: string;
  ipv4: string;
  ipv6: string;
}

class Users {
  private next = 0;
  constructor(private readonly all: UserAddr[]) {}
  take(n: number): UserAddr[] {
    const out = this.all.slice(this.next, this.next + n);
    if (out.length < n) throw new Error('the benchmark ran out of users');
    this.next += n;
    return out;
  }
}

type Samples = Record<string, number[]>;

async function connectDisconnect(
  lab: Lab,
  design: Design,
  users: Users,
  samples: Samples,
): Promise<void> {
  const core = lab.plan.core;
  const watch = new RouteWatch(
    [
      { ns: core, family: '-4' },
      { ns: core, family: '-6' },
    ],
    20,
  );
  const servers = lab.plan.servers.map((s) => s.name);
  for (let b = 0; b < BATCHES; b++) {
    const batch = users.take(BATCH);
    // 1. one at a time, so each connect has the machine to itself
    for (const [i, u] of batch.entries()) {
      const t0 = now();
      const both = design === 'ovpn-fleet';
      const v4 = watch.until(`${u.name} /32 on the core`, (s) => coreHas(lab, s, u.ipv4), 60_000);
      const v46 = both
        ? watch.until(
            `${u.name} /32 and /128 on the core`,
            (s) => coreHas(lab, s, u.ipv4) && coreHas(lab, s, u.ipv6),
            60_000,
          )
        : undefined;
      await lab.connect(u.name, { server: servers[i % servers.length], wait: false });
      (samples.connect4 ??= []).push((await v4) - t0);
      if (v46) (samples.connect46 ??= []).push((await v46) - t0);
    }
    say(`  ${design}: connect → /32 on the core, batch ${b + 1}: ${fmt(samples.connect4)}`);
    // 2. all at once: the seed's withdrawal waits out the server's ping-restart
    await Promise.all(
      batch.map(async (u) => {
        const t0 = now();
        const gone = watch.until(
          `${u.name} /32 gone from the core`,
          (s) => !coreHas(lab, s, u.ipv4),
          90_000,
        );
        await lab.disconnect(u.name, 'SIGTERM');
        (samples.disconnect4 ??= []).push((await gone) - t0);
      }),
    );
    say(`  ${design}: SIGTERM → /32 gone, batch ${b + 1}: ${fmt(samples.disconnect4)}`);
  }
}

/** Pairs of servers in different sites, so the core's next hop tells them apart too. */
function movePairs(lab: Lab): [string, string][] {
  const s = lab.plan.servers;
  return s.map((a, i) => {
    const b = s
      .slice(i + 1)
      .concat(s.slice(0, i))
      .find((x) => x.site !== a.site)!;
    return [a.name, b.name];
  });
}

async function silentMove(lab: Lab, design: Design, users: Users, samples: Samples): Promise<void> {
  const watch = new RouteWatch(
    [lab.plan.core, ...lab.plan.servers.map((s) => s.routerNs)]
      .filter((ns, i, a) => a.indexOf(ns) === i)
      .map((ns) => ({ ns, family: '-4' as const })),
    50,
  );
  const pairs = movePairs(lab);
  for (let b = 0; b < BATCHES; b++) {
    const batch = users
      .take(BATCH)
      .map((u, i) => ({ u, from: pairs[i % pairs.length][0], to: pairs[i % pairs.length][1] }));
    for (const { u, from } of batch) await lab.connect(u.name, { server: from, wait: false });
    await Promise.all(
      batch.map(({ u, from }) =>
        watch.until(
          `${u.name} via ${from}`,
          (s) => viaServers(lab, s, u.ipv4).join() === from,
          60_000,
        ),
      ),
    );
    await Promise.all(
      batch.map(async ({ u, to }) => {
        const t0 = now();
        await lab.disconnect(u.name, 'SIGKILL');
        const onlyNew = watch.until(
          `${u.name} only via ${to}`,
          (s) => viaServers(lab, s, u.ipv4).join() === to,
          120_000,
        );
        await lab.connect(u.name, { server: to, wait: false });
        (samples.silentMove ??= []).push((await onlyNew) - t0);
      }),
    );
    say(
      `  ${design}: silent move → only the new server, batch ${b + 1}: ${fmt(samples.silentMove)}`,
    );
    await Promise.all(batch.map(({ u }) => lab.disconnect(u.name, 'SIGKILL')));
  }
}

async function serverCrash(
  lab: Lab,
  design: Design,
  users: Users,
  samples: Samples,
): Promise<void> {
  const watch = new RouteWatch(
    [lab.plan.core, ...lab.plan.servers.map((s) => s.routerNs)]
      .filter((ns, i, a) => a.indexOf(ns) === i)
      .map((ns) => ({ ns, family: '-4' as const })),
    50,
  );
  for (let round = 0; round < CRASH_ROUNDS; round++) {
    const group = users.take(CRASH_USERS);
    // Full profiles: the first remote is dc1's load balancer, which hashes over its servers.
    for (const u of group) await lab.connect(u.name, { wait: false });
    await Promise.all(
      group.map((u) =>
        watch.until(
          `${u.name} on the core`,
          (s) => viaServers(lab, s, u.ipv4).length === 1,
          60_000,
        ),
      ),
    );
    const snap = await watch.snapshot();
    const on = new Map<string, UserAddr[]>();
    for (const u of group) {
      const [server] = viaServers(lab, snap, u.ipv4);
      on.set(server, [...(on.get(server) ?? []), u]);
    }
    const [victim, victims] = [...on.entries()].sort((a, b) => b[1].length - a[1].length)[0];
    const t0 = now();
    await lab.stopComponent('openvpn', victim, 'SIGKILL');
    await Promise.all(
      victims.map(async (u) => {
        const at = await watch.until(
          `${u.name} via a server other than ${victim}`,
          (s) => {
            const via = viaServers(lab, s, u.ipv4);
            return via.length > 0 && !via.includes(victim);
          },
          150_000,
        );
        (samples.serverCrash ??= []).push(at - t0);
      }),
    );
    say(
      `  ${design}: kill -9 of ${victim}'s OpenVPN (${victims.length} users) → via another, round ${round + 1}: ${fmt(samples.serverCrash)}`,
    );
    await lab.startComponent('openvpn', victim);
    await Promise.all(group.map((u) => lab.disconnect(u.name, 'SIGKILL')));
    // The load balancer's health loop takes the restarted server back within a tick or two.
    await sleep(1500);
  }
}

async function waitAgents(lab: Lab): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (const s of lab.plan.servers) {
    const sock = join(lab.serverDir(s.name), 'run', 'agent.sock');
    while (!existsSync(sock)) {
      if (Date.now() > deadline) throw new Error(`the agent of ${s.name} did not come up`);
      await sleep(200);
    }
  }
}

async function runDesign(fleet: Fleet, design: Design, users: Users): Promise<Samples> {
  const prefix = PREFIXES[design];
  const samples: Samples = {};
  await Lab.down(fleet.dir, prefix);
  try {
    const t0 = Date.now();
    const lab = await Lab.up(fleet, {
      prefix,
      seed: design === 'seed',
      log: (l) => say(`  ${design}: ${l}`),
    });
    if (lab.state.controlPlane) await waitAgents(lab);
    say(`  ${design}: lab "${prefix}" up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await connectDisconnect(lab, design, users, samples);
    await silentMove(lab, design, users, samples);
    await serverCrash(lab, design, users, samples);
  } finally {
    await Lab.down(fleet.dir, prefix, (l) => say(`  ${design}: ${l}`));
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
    if (left.length) throw new Error(`namespaces left behind: ${left.join(', ')}`);
  }
  return samples;
}

// ---------------------------------------------------------------- 9. firewall

function syntheticUsers(count: number): PolicyMember[] {
  const random = seededRandom(20261126);
  const groups = ['staff', 'engineering', 'dba'];
  return Array.from({ length: count }, (_, i) => {
    const n = i + 2;
    return {
      // 10.200.0.0/14 holds 100,000 users; the rendering does not check the pool.
      ipv4: `10.${200 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`,
      ipv6: `fd7a:6ca6:e640:8000::${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}`,
      groups: groups.filter(() => random() < 0.4),
      enabled: true,
    };
  });
}

/** The same policy with one rule per user per allowed network: what set-less rulesets do. */
function linearRuleset(users: PolicyMember[]): { text: string; rules: number } {
  const spec = exampleSpec();
  const lines = [
    'table inet ovpnf_linear',
    'delete table inet ovpnf_linear',
    'table inet ovpnf_linear {',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tiifname "vpn0" ct state established,related accept',
  ];
  let rules = 1;
  for (const u of users)
    for (const rule of spec.policy) {
      if (!u.groups.includes(rule.from)) continue;
      const net = spec.networks.find((n) => n.name === rule.to)!;
      for (const [fam, ip, addr, nets] of [
        [4, 'ip', u.ipv4, net.ipv4],
        [6, 'ip6', u.ipv6, net.ipv6],
      ] as const) {
        if (!nets.length) continue;
        const protos = (rule.proto ?? []).map((p) => (p === 'icmp' && fam === 6 ? 'ipv6-icmp' : p));
        const l4 = protos.length ? ` meta l4proto { ${protos.join(', ')} }` : '';
        const ports = rule.ports ? ` th dport { ${rule.ports.join(', ')} }` : '';
        lines.push(
          `\t\tiifname "vpn0" ${ip} saddr ${addr} ${ip} daddr { ${nets.join(', ')} }${l4}${ports} accept`,
        );
        rules++;
      }
    }
  lines.push('\t\tiifname "vpn0" reject with icmpx type admin-prohibited', '\t}', '}', '');
  return { text: lines.join('\n'), rules: rules + 1 };
}

/** Rules (not set elements) in a rendered ruleset: statement lines inside chain blocks. */
function countRules(text: string): number {
  let inChain = false;
  let n = 0;
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (/^chain \S+ \{$/.test(l)) inChain = true;
    else if (l === '}') inChain = false;
    else if (inChain && l && !l.startsWith('#') && !l.startsWith('type ')) n++;
  }
  return n;
}

async function nftApplyMs(
  ns: string,
  file: string,
  timeoutMs: number,
): Promise<number | undefined> {
  const t0 = now();
  const r = await run(['ip', 'netns', 'exec', ns, 'nft', '-f', file], {
    allowFailure: true,
    timeoutMs,
  });
  if (r.code !== 0) {
    say(`  nft -f ${file}: exit ${r.code}: ${r.stderr.trim().split('\n')[0]}`);
    return undefined;
  }
  return now() - t0;
}

async function firewall(tmp: string): Promise<FirewallRow[]> {
  const spec = exampleSpec();
  const ctx = serverContexts(spec, DEFAULT_RENDER_OPTIONS)[0];
  const ns = `obn-nft-${process.pid}`;
  const rows: FirewallRow[] = [];
  await run(['ip', 'netns', 'add', ns]);
  try {
    for (const count of FIREWALL_USERS) {
      const users = syntheticUsers(count);
      const policy = compilePolicy(spec, users);
      const sets = renderNftables(ctx, policy);
      const setFile = join(tmp, `sets-${count}.nft`);
      writeFileSync(setFile, sets);
      const linear = linearRuleset(users);
      const linearFile = join(tmp, `linear-${count}.nft`);
      writeFileSync(linearFile, linear.text);
      const setApplyMs = await nftApplyMs(ns, setFile, 300_000);
      const row: FirewallRow = {
        users: count,
        setRules: countRules(sets),
        setElements: policy.groupSets.reduce((a, s) => a + s.elements.length, 0),
        ...(setApplyMs !== undefined ? { setApplyMs } : {}),
        linearRules: linear.rules,
      };
      if (count <= LINEAR_APPLY_MAX_USERS) {
        const ms = await nftApplyMs(ns, linearFile, 300_000);
        if (ms === undefined) row.linearNote = 'failed or > 300 s';
        else row.linearApplyMs = ms;
      } else row.linearNote = 'not applied in --quick';
      rows.push(row);
      say(
        `  firewall ${count} users: ours ${row.setRules} rules (${row.setElements} set elements), apply ${seconds(setApplyMs ?? NaN)}; linear ${row.linearRules} rules, apply ${row.linearApplyMs === undefined ? row.linearNote : seconds(row.linearApplyMs)}`,
      );
      rmSync(setFile);
      rmSync(linearFile);
    }
  } finally {
    await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
  return rows;
}

// ---------------------------------------------------------------- report

function firstLine(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n')[0].trim() || 'unknown';
}

/** `vtysh --version` where vtysh knows it; this Debian build does not, zebra does. */
function frrVersion(): string {
  const v = firstLine(['vtysh', '--version']);
  return /unrecognized|invalid|unknown/i.test(v)
    ? firstLine(['/usr/lib/frr/zebra', '--version'])
    : v;
}

function machine(): Machine {
  return {
    nproc: os.cpus().length,
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    openvpn: firstLine(['openvpn', '--version']),
    frr: frrVersion(),
  };
}

function fmt(s: number[] | undefined): string {
  if (!s?.length) return 'no samples';
  const x = summarize(s);
  return `n=${x.n} p50 ${seconds(x.p50)} p95 ${seconds(x.p95)} max ${seconds(x.max)}`;
}

function figures(results: Record<Design, Samples>): Figure[] {
  const both = (key: string) => ({
    'ovpn-fleet': results['ovpn-fleet'][key] ?? [],
    seed: results.seed[key] ?? [],
  });
  return [
    {
      id: 'connect4',
      title: '1. connect → /32 on the core',
      samples: both('connect4'),
      targetP95Ms: 1000,
      note: "from starting the client (`--server`, round-robin over the six servers) to the /32 in the core's table. Measured on the /32 for both designs: the seed's hook adds `::A.B.C.D` as its /128, never the user's real IPv6 address (its IPv6 reachability comes from `redistribute connected` of the whole pool, from every server).",
    },
    {
      id: 'connect46',
      title: '1b. connect → /32 and /128 on the core',
      samples: { 'ovpn-fleet': results['ovpn-fleet'].connect46 ?? [] },
      note: 'ovpn-fleet only (see 1).',
    },
    {
      id: 'disconnect4',
      title: '2. graceful disconnect (SIGTERM) → /32 gone',
      samples: both('disconnect4'),
      note: "the batch's clients are stopped at once. ovpn-fleet's profile has `explicit-exit-notify 1`, the seed's none: the seed's server notices only at its ping-restart.",
    },
    {
      id: 'silentMove',
      title: '3. silent move → core routes only via the new server',
      samples: both('silentMove'),
      targetP95Ms: 2000,
      note: 'client killed (-9), reconnected through a server in another site; from the kill until the core (core → site router → server) routes the /32 only via the new server. Includes the reconnect itself.',
    },
    {
      id: 'serverCrash',
      title: "4. kill -9 of a server's OpenVPN → users via another server",
      samples: both('serverCrash'),
      note: `${CRASH_USERS} users connect with their full profile (dc1's load balancer first); the server holding most of them is killed; one sample per user of that server, until the core routes its /32 via another server.`,
    },
  ];
}

function targets(figs: Figure[], fw: FirewallRow[]): Target[] {
  const out: Target[] = [];
  for (const f of figs.filter((x) => x.targetP95Ms !== undefined)) {
    const s = f.samples['ovpn-fleet'];
    const p95 = s?.length ? summarize(s).p95 : NaN;
    out.push({
      what: `${f.title}: p95 < ${seconds(f.targetP95Ms!)}`,
      met: p95 < f.targetP95Ms!,
      detail: `p95 ${seconds(p95)}`,
    });
  }
  const counts = [...new Set(fw.map((r) => r.setRules))];
  out.push({
    what: 'firewall rule count independent of the user count',
    met: counts.length === 1,
    detail: fw.map((r) => `${r.users}: ${r.setRules}`).join(', '),
  });
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:lab needs root (network namespaces)');
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  say(`ovpn-fleet lab benchmark (${MODE}): ours vs the seed's design, node ${process.version}`);
  const dir = mkdtempSync(join(os.tmpdir(), 'ovf-labbench-'));
  const needed = BATCHES * BATCH * 2 + CRASH_ROUNDS * CRASH_USERS;
  let fleet: Fleet | undefined;
  try {
    fleet = await Fleet.init(dir);
    const created = await fleet.addUsers(
      Array.from({ length: needed }, (_, i) => ({
        name: `b${String(i).padStart(3, '0')}`,
        groups: ['staff'],
      })),
    );
    const all = created.map((u) => ({ name: u.name, ipv4: u.ipv4, ipv6: u.ipv6 }));
    const results = {} as Record<Design, Samples>;
    for (const design of ['ovpn-fleet', 'seed'] as const) {
      say(`${design}:`);
      // Each design gets the same users in the same order.
      results[design] = await runDesign(fleet, design, new Users(all));
    }
    say('9. firewall (rendering only):');
    const fw = await firewall(dir);
    const figs = figures(results);
    const tg = targets(figs, fw);
    const notes = [
      `Route times are polled (\`ip -n NS -j route show\`): every 20 ms for figures 1–2 (core only), every 50 ms for 3–4 (core and site routers); each sample is late by up to one interval.`,
      `Samples per design: figures 1–3 ${BATCHES}×${BATCH}, figure 4 ${CRASH_ROUNDS} server crashes.`,
      'Keepalive 3/10 s and hand-window 10 s (the example fleet) in both designs.',
    ];
    mkdirSync(RESULTS, { recursive: true });
    const durationS = (Date.now() - t0) / 1000;
    const m = machine();
    writeFileSync(
      join(RESULTS, 'report.md'),
      renderMarkdown({
        mode: MODE,
        startedAt,
        durationS,
        machine: m,
        figures: figs,
        firewall: fw,
        targets: tg,
        notes,
      }),
    );
    writeFileSync(
      join(RESULTS, 'report.json'),
      `${JSON.stringify({ mode: MODE, startedAt, durationS, machine: m, figures: figs, firewall: fw, targets: tg }, null, 2)}\n`,
    );
    writeFileSync(join(RESULTS, 'latency.svg'), renderSvg(figs));
    say('');
    for (const f of figs)
      for (const d of ['ovpn-fleet', 'seed'] as const)
        if (f.samples[d]) say(`${f.title.padEnd(60)} ${d.padEnd(10)} ${fmt(f.samples[d])}`);
    for (const t of tg) say(`target ${targetLine(t)}`);
    say(`report: ${join(RESULTS, 'report.md')} (${durationS.toFixed(0)} s)`);
  } finally {
    fleet?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
