/**
 * Console and /metrics benchmark: the server time of the operator's console pages and of a
 * Prometheus scrape, with N users and S live sessions spread over the example fleet's six
 * servers, through fastify's inject (routing, auth, the store, rendering, serialisation; no
 * sockets, no browser). What a browser adds on top (network, parsing, layout, the one script)
 * is not measured here: "first render" below means the server's share of it.
 *
 * The sessions arrive as the agents send them: one `POST /v1/agent/report` per server with that
 * server's agent token, each session carrying the user's own addresses (the controller refuses
 * sessions whose addresses are not the store's, see src/controller/reports.ts).
 *
 *   npm run bench:console [-- --users N] [-- --sessions N] [-- --runs N]
 *
 * Prints a table and writes the same lines to bench/results/console.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentReport, ServerView, SessionReport } from '../src/api/index.js';
import { type Controller, type ControllerOptions, buildController } from '../src/controller/app.js';
import { initFleet } from '../src/service/open.js';
import { intArg, percentile, seededRandom } from './measure.js';

const USERS = intArg('--users', 10_000);
const SESSIONS = intArg('--sessions', 1_000);
const RUNS = intArg('--runs', 100);
/** Runs before the measured ones: the JIT, SQLite's page cache, the metrics' cached figures. */
const WARMUP = 10;
const ADMIN = 'bench';
const RESULTS = join(import.meta.dirname, 'results', 'console.md');

interface Figure {
  what: string;
  url: string;
  /** Target for p95 in ms. */
  targetMs: number;
  /** Which controller answers: the default one or the one with per-user metrics. */
  perUser?: boolean;
  /** What the answer must hold: a wrong answer would make a fast figure meaningless. */
  check?: (body: string) => string | undefined;
}

/** The sessions page lists every session: one table row each, besides the header row. */
function allSessionRows(body: string): string | undefined {
  const rows = body.split('<tr').length - 2;
  return rows === SESSIONS ? undefined : `${rows} session rows, not ${SESSIONS}`;
}

const FIGURES: Figure[] = [
  { what: `GET /console (overview)`, url: '/console', targetMs: 300 },
  {
    what: `GET /console/sessions`,
    url: '/console/sessions',
    targetMs: 300,
    check: allSessionRows,
  },
  { what: 'GET /console/users?q=ser04', url: '/console/users?q=ser04', targetMs: 100 },
  { what: 'GET /console/users?q=10.200.1', url: '/console/users?q=10.200.1', targetMs: 100 },
  { what: 'GET /v1/users?q=ser04&limit=50', url: '/v1/users?q=ser04&limit=50', targetMs: 100 },
  {
    what: 'GET /v1/users?q=10.200.1&limit=50',
    url: '/v1/users?q=10.200.1&limit=50',
    targetMs: 100,
  },
  { what: 'GET /metrics', url: '/metrics', targetMs: 50 },
  { what: 'GET /metrics (perUser: true)', url: '/metrics', targetMs: 50, perUser: true },
];

function csvOf(count: number, groups: string[]): string {
  const random = seededRandom(20260313);
  const lines = ['name,groups'];
  for (let i = 0; i < count; i++) {
    const mine = groups.filter(() => random() < 0.4);
    lines.push(`user${String(i).padStart(5, '0')},${mine.join(';')}`);
  }
  return `${lines.join('\n')}\n`;
}

interface Seed {
  servers: string[];
  tokens: Map<string, string>;
  /** Per server: the sessions its agent reports. */
  sessions: Map<string, SessionReport[]>;
}

/** Imports the users, disables one in ten of the first 10,000 and picks who is online where. */
async function seed(dir: string): Promise<Seed> {
  const fleet = await initFleet(dir);
  try {
    await fleet.importCsv(
      csvOf(
        USERS,
        fleet.spec.groups.map((g) => g.name),
      ),
      'bench.csv',
    );
    const users = await fleet.listUsers();
    await fleet.bulkUsers(
      'disable',
      users
        .map((u) => u.name)
        .filter((_, i) => i % 10 === 0)
        .slice(0, 1000),
    );
    const enabled = (await fleet.listUsers()).filter((u) => u.status === 'enabled');
    if (enabled.length < SESSIONS)
      throw new Error(`--sessions ${SESSIONS}: only ${enabled.length} enabled users`);
    const servers = fleet.serverNames();
    const tokens = new Map<string, string>();
    for (const s of servers) tokens.set(s, await fleet.agentToken(s));
    const sessions = new Map<string, SessionReport[]>(servers.map((s) => [s, []]));
    const random = seededRandom(7);
    // Sessions that started within the last hour, one user per session (a user online on two
    // servers at once would be evicted from one).
    const now = Date.now();
    for (let i = 0; i < SESSIONS; i++) {
      const u = enabled[Math.floor((i * enabled.length) / SESSIONS)];
      const server = servers[i % servers.length];
      sessions.get(server)!.push({
        user: u.name,
        realAddress: `198.51.100.${1 + (i % 250)}:${1024 + i}`,
        ipv4: u.ipv4,
        ipv6: u.ipv6,
        since: new Date(now - Math.floor(random() * 3_600_000))
          .toISOString()
          .replace(/\.\d+Z$/, 'Z'),
        bytesIn: Math.floor(random() * 1e9),
        bytesOut: Math.floor(random() * 1e9),
        clientId: i,
      });
    }
    return { servers, tokens, sessions };
  } finally {
    await fleet.close();
  }
}

async function start(dir: string, extra: Partial<ControllerOptions>): Promise<Controller> {
  return buildController({
    fleetDir: dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: ADMIN,
    // Not measured: no other process writes, so the watcher has nothing to do.
    watchIntervalMs: 3_600_000,
    // A run at full size takes minutes: no server may turn stale while it lasts.
    staleAfterMs: 3_600_000,
    log: () => {},
    ...extra,
  });
}

async function get(ctl: Controller, url: string): Promise<{ status: number; body: string }> {
  const r = await ctl.app.inject({ url, headers: { authorization: `Bearer ${ADMIN}` } });
  return { status: r.statusCode, body: r.body };
}

/** Every server's agent reports its sessions and a healthy, up-to-date state. */
async function feed(ctl: Controller, s: Seed): Promise<void> {
  const views = await get(ctl, '/v1/servers');
  if (views.status !== 200) throw new Error(`/v1/servers: HTTP ${views.status} ${views.body}`);
  const digest = new Map(
    (JSON.parse(views.body) as ServerView[]).map((v) => [v.name, v.currentDigest]),
  );
  for (const server of s.servers) {
    const report: AgentReport = {
      bundleDigest: digest.get(server)!,
      sessions: s.sessions.get(server)!,
      health: { openvpn: true, routing: true, ruleset: true, draining: false, ok: true },
    };
    const r = await ctl.app.inject({
      method: 'POST',
      url: '/v1/agent/report',
      headers: { authorization: `Bearer ${s.tokens.get(server)!}` },
      payload: report,
    });
    if (r.statusCode !== 204)
      throw new Error(`report of ${server}: HTTP ${r.statusCode} ${r.body}`);
  }
  const live = await get(ctl, '/v1/sessions');
  const count = (JSON.parse(live.body) as unknown[]).length;
  if (count !== SESSIONS)
    throw new Error(`the controller took ${count} of ${SESSIONS} reported sessions`);
}

interface Row {
  what: string;
  first: number;
  p50: number;
  p95: number;
  max: number;
  bytes: number;
  targetMs: number;
}

async function run(ctl: Controller, f: Figure): Promise<Row> {
  const ms: number[] = [];
  let first = NaN;
  let bytes = 0;
  for (let i = 0; i < RUNS + WARMUP; i++) {
    const begin = performance.now();
    const r = await get(ctl, f.url);
    const took = performance.now() - begin;
    if (r.status !== 200) throw new Error(`${f.url}: HTTP ${r.status} ${r.body.slice(0, 200)}`);
    if (i === 0) {
      first = took;
      const problem = f.check?.(r.body);
      if (problem) throw new Error(`${f.url}: ${problem}`);
    }
    bytes = Buffer.byteLength(r.body);
    if (i >= WARMUP) ms.push(took);
  }
  ms.sort((a, b) => a - b);
  return {
    what: f.what,
    first,
    p50: percentile(ms, 50),
    p95: percentile(ms, 95),
    max: ms[ms.length - 1],
    bytes,
    targetMs: f.targetMs,
  };
}

function size(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / 1024 / 1024).toFixed(2)} MiB`
    : `${(bytes / 1024).toFixed(1)} KiB`;
}

function table(rows: Row[]): string[] {
  const ms = (n: number) => n.toFixed(2);
  return [
    '| figure | p50 ms | p95 ms | max ms | first ms | answer | target (p95) | |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.what} | ${ms(r.p50)} | ${ms(r.p95)} | ${ms(r.max)} | ${ms(r.first)} | ${size(r.bytes)} | < ${r.targetMs} ms | ${r.p95 < r.targetMs ? 'ok' : 'over'} |`,
    ),
  ];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-bench-console-'));
  try {
    const s = await seed(dir);
    const rows: Row[] = [];
    for (const perUser of [false, true]) {
      const figures = FIGURES.filter((f) => Boolean(f.perUser) === perUser);
      const ctl = await start(dir, perUser ? { metrics: { perUser: true } } : {});
      try {
        await feed(ctl, s);
        for (const f of figures) rows.push(await run(ctl, f));
      } finally {
        await ctl.close();
      }
    }
    const lines = [
      `# ovpn-fleet console and /metrics, server time`,
      '',
      `${USERS} users, ${SESSIONS} live sessions over ${s.servers.length} servers, ` +
        `${RUNS} runs per figure after ${WARMUP} warm-up runs (first ms: the very first request), ` +
        `admin bearer token, fastify inject (no sockets, no browser: the server's share of a page's first render only); node ${process.version}, ` +
        `written ${new Date().toISOString()}.`,
      '',
      ...table(rows),
      '',
    ];
    process.stdout.write(`${lines.join('\n')}`);
    writeFileSync(RESULTS, `${lines.join('\n')}`);
    process.stdout.write(`written to ${RESULTS}\n`);
    process.exitCode = rows.every((r) => r.p95 < r.targetMs) ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
