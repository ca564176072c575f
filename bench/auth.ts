/**
 * Connect-time authentication benchmark (issue 16, parts 4 and 5), on one lab of two servers in
 * two sites (vpn11 in dc1, vpn21 in dc2, so the core's next hop tells them apart):
 *
 * - connect (client start → /32 on the core, from `ip monitor route`, as bench/lab.ts figure 1)
 *   of certificate-only users with the fleet's `auth` off and with it on (management-client-auth:
 *   every connect is held until the agent answers; the TOTP group is one these users are not
 *   in), in the same run, interleaved in blocks ABBA-wise so the machine's noise hits both alike;
 * - failover (kill -9 of the server's OpenVPN; each client dials its server first and the other
 *   second, as figure 4b) and drain (`POST /v1/servers/NAME/drain`, figure 5) of users who signed
 *   in with TOTP (the client answers the CR_TEXT challenge once, then reconnects with its
 *   auth-gen-token) against certificate-only users, in the same rounds; certificate-only users
 *   also with `auth` off (today's figure). Second challenges are counted: there must be none;
 * - the agent's own answer time to each held key (its log: src/agent/answer-timing.ts).
 *
 * Turning `auth` on or off is a server.conf change that a SIGHUP does not carry out (OpenVPN keeps
 * its management settings from its first start: manage.c man_settings_init fills them only
 * while `!ms->defined`, and the management object lives until exit, openvpn.c
 * close_management). The agent therefore restarts OpenVPN fully for it during the rollout
 * (agent.ts); the first two toggles are probed right after the rollout, to check that the
 * change is in force there, and the benchmark then restarts both servers' OpenVPN once more
 * (stop, start) so every period starts from a fresh process either way.
 *
 *   npm run bench:auth [-- --connects N --block B --users K --rounds R]
 *   (root; defaults 24 connects per state in blocks of 6, 5 users per class and round,
 *   1 crash and 1 drain round per period: ~8 min)
 *
 * Writes bench/results/auth.json and auth.md; leaves no namespace or process behind.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { type Socket, createConnection } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { type TOTP, URI } from 'otpauth';
import { parseDocument } from 'yaml';
import { ANSWER_LINE } from '../src/agent/answer-timing.js';
import { ControllerClient } from '../src/client/client.js';
import { adminTokenPath } from '../src/controller/auth.js';
import { Lab, listNamespaces } from '../src/lab/lab.js';
import type { Fleet } from '../src/service/fleet.js';
import { specPath } from '../src/service/layout.js';
import { initFleet } from '../src/service/open.js';
import { EXAMPLE_FLEET_YAML } from '../src/spec/example.js';
import { parseSpecText } from '../src/spec/validate.js';
import { writeFileAtomic } from '../src/sys/files.js';
import { type LineStream, streamLines } from '../src/sys/exec.js';
import { sleep, waitFor } from '../src/sys/time.js';
import { fmt, seconds, summarize } from './lab-report.js';
import { machine } from './machine.js';
import { intArg } from './measure.js';
import { coreHas, routerWatch, type RouteWatch, viaServers, withCoreWatch } from './route-watch.js';

const CONNECTS = intArg('--connects', 24);
const BLOCK = intArg('--block', 6);
const ROUND_USERS = intArg('--users', 5);
const ROUNDS = intArg('--rounds', 1);
/**
 * A directory for the failover rounds' client and server logs, the connects and the agents'
 * logs (what a slow sample did); the servers' logs get microsecond time stamps until the first
 * toggle. A diagnosis aid: leave it out for figures.
 */
const KEEP_LOGS = process.argv.includes('--keep-logs')
  ? process.argv[process.argv.indexOf('--keep-logs') + 1]
  : undefined;
const PREFIX = 'ovfk';
const SETTLE_MS = 8000;
/** After a restart of both OpenVPNs: FRR and the agents see the new tun and sessions. */
const RESTART_SETTLE_MS = 3000;
const TARGET_RATIO = 1.2;
const SLOW_MS = 500;
/** Why a connect with `auth` on can take a second more: read in OpenVPN 2.6.14's source. */
const WAKEUP_NOTE =
  "The slow connects are not slow answers (next line). Where the second goes, seen with `--keep-logs` (microsecond time stamps in the servers' logs): the server logs `Peer Connection Initiated` for the client, the agent's `client-auth-nt` arrives 0.3–2 ms later, and the server next touches that client (ccd, client-connect, learn-address, PUSH_REPLY) 1.0–1.1 s after that, when the client's instance timer fires (the client's own PUSH_REQUEST, 'already 1s delayed' in forward.c, comes then too). `client-auth-nt` only marks the key authenticated: OpenVPN 2.6.14's multi.c management_client_auth schedules no wakeup for the client (management_client_pending_auth does: reschedule_multi_process + multi_schedule_context_wakeup). So a connect is quick only when the answer lands while the last packets of the handshake are still to be processed; in the lab (no round trip) the handshake ends 1–7 ms after OpenVPN asks, about when the answer arrives. Over a real network the handshake ends at least one round trip later, so a sub-millisecond answer should usually come first; beyond that the agent cannot shorten the wait (no management command wakes a client without side effects). The fix belongs in OpenVPN: those two calls in management_client_auth on success.";
const RESULTS = join(import.meta.dirname, 'results');
const SERVERS = ['vpn11', 'vpn21'];

const say = (line: string) => process.stdout.write(`${line}\n`);
const now = () => performance.now();

type AuthState = 'off' | 'on';

interface UserAddr {
  name: string;
  ipv4: string;
  /** otpauth:// URI of a TOTP user's enrolment. */
  totpUri?: string;
}

/** The example fleet cut down to two servers in two sites, with or without `auth`. */
function fleetYaml(auth: AuthState): string {
  const doc = parseDocument(EXAMPLE_FLEET_YAML);
  doc.set(
    'sites',
    doc.createNode([
      {
        name: 'dc1',
        servers: [
          {
            name: 'vpn11',
            address: '198.51.100.11',
            backbone: '10.255.1.2/30',
            routerId: '10.255.1.2',
          },
        ],
      },
      {
        name: 'dc2',
        servers: [
          {
            name: 'vpn21',
            address: '203.0.113.11',
            backbone: '10.255.2.2/30',
            routerId: '10.255.2.2',
          },
        ],
      },
    ]),
  );
  if (auth === 'on')
    doc.set('auth', doc.createNode({ totp: { groups: ['dba'] }, token: { lifetime: '1h' } }));
  // Nobody is connected while auth is turned on or off: no need to roll server by server.
  doc.set('rollout', doc.createNode({ strategy: 'all-at-once' }));
  return doc.toString();
}

class Pool {
  private next = 0;
  constructor(
    private readonly all: UserAddr[],
    private readonly what: string,
  ) {}
  take(n: number): UserAddr[] {
    const out = this.all.slice(this.next, this.next + n);
    if (out.length < n) throw new Error(`the benchmark ran out of ${this.what}`);
    this.next += n;
    return out;
  }
}

/**
 * A TOTP user's real OpenVPN client with a management interface, as OpenVPN GUI runs it: it
 * announces IV_SSO crtext and answers each CR_TEXT challenge with the current code. The lab
 * starts it (namespace, profile, pid); the management lines are added to the profile the lab
 * wrote, right before it starts the client (connect's onStart).
 */
class TotpClient {
  private asked = 0;
  private conn?: Socket;

  private constructor(
    readonly user: UserAddr,
    private readonly dir: string,
  ) {}

  static async start(lab: Lab, user: UserAddr, remotes: string[]): Promise<TotpClient> {
    const sock = (dir: string) => join(dir, 'mgmt.sock');
    let dir = '';
    await lab.connect(user.name, {
      server: remotes.join(','),
      wait: false,
      onStart: () => {
        dir = lab.clientFor(user.name)!.dir;
        rmSync(sock(dir), { force: true });
        const profile = join(dir, 'profile.ovpn');
        writeFileAtomic(
          profile,
          // Held until our management client is attached: a CR_TEXT sent before would be lost.
          `${readFileSync(profile, 'utf8')}setenv IV_SSO crtext\nmanagement ${sock(dir)} unix\nmanagement-hold\n`,
          0o600,
        );
      },
    });
    const client = new TotpClient(user, dir);
    await waitFor(`${user.name}'s management socket`, () => existsSync(sock(dir)), 10_000, 20);
    client.attach(sock(dir));
    return client;
  }

  private attach(path: string): void {
    const totp = URI.parse(this.user.totpUri!) as TOTP;
    const conn = createConnection(path);
    this.conn = conn;
    conn.setEncoding('utf8');
    let buf = '';
    conn.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        // Released once, and not held again: a reconnect must not wait for this process.
        if (line.startsWith('>HOLD:')) conn.write('hold off\nhold release\n');
        if (line.startsWith('>INFOMSG:CR_TEXT:')) {
          this.asked++;
          conn.write(`cr-response ${Buffer.from(totp.generate()).toString('base64')}\n`);
        }
      }
    });
    conn.on('error', () => undefined);
  }

  /** How many times the server asked for a code. */
  get challenges(): number {
    return this.asked;
  }

  /** Tunnels this client has brought up (its first, then one per reconnect). */
  get tunnels(): number {
    const log = join(this.dir, 'openvpn.log');
    if (!existsSync(log)) return 0;
    return readFileSync(log, 'utf8').match(/Initialization Sequence Completed/g)?.length ?? 0;
  }

  close(): void {
    this.conn?.destroy();
  }
}

interface Window {
  kind: 'connect' | 'place' | 'crash' | 'drain' | 'probe';
  auth: AuthState;
  from: number;
  to: number;
}

interface Probe {
  /** What the rollout's SIGHUP was meant to change. */
  toggle: string;
  user: string;
  /** The user got a tunnel (its /32 reached the core) within the probe's time. */
  connected: boolean;
  /** The agent answered a held key for the probe: management-client-auth was in force. */
  heldByAgent: boolean;
  clientSaid: string;
  serverSaid: string;
}

interface Run {
  lab: Lab;
  fleet: Fleet;
  admin: ControllerClient;
  auth: AuthState;
  windows: Window[];
  probes: Probe[];
  /** Rounds of failover so far: the victim alternates. */
  rounds: number;
}

// ---------------------------------------------------------------- auth on and off

async function agentsHealthy(admin: ControllerClient): Promise<void> {
  await waitFor(
    'every agent reporting a healthy server',
    async () => (await admin.servers()).every((s) => !s.stale && s.health?.ok),
    90_000,
    250,
  );
}

const answerLines = (lab: Lab) =>
  SERVERS.flatMap((s) => {
    const f = join(lab.serverDir(s), 'run', 'agent.log');
    return (existsSync(f) ? readFileSync(f, 'utf8').split('\n') : []).map((line) => ({
      server: s,
      at: Date.parse(line.slice(0, 24)),
      m: ANSWER_LINE.exec(line),
    }));
  }).filter((x) => x.m && Number.isFinite(x.at));

/**
 * Turns `auth` on or off: fleet.yaml → the controller's rollout (the agents' full restart) →
 * both OpenVPNs restarted again. `probe`: before that, one user connects to see what the
 * rollout alone did.
 */
async function setAuth(r: Run, auth: AuthState, probeUser?: UserAddr): Promise<void> {
  const t0 = Date.now();
  const before = (await r.admin.rollout()).rollout?.id ?? 0;
  const text = fleetYaml(auth);
  const v = parseSpecText(text);
  if (!v.spec) throw new Error(`bench fleet.yaml refused: ${JSON.stringify(v.errors)}`);
  writeFileAtomic(specPath(r.fleet.dir), text, 0o600);
  // The bench's own fleet makes the profiles: with auth they carry the user's name.
  r.fleet = r.fleet.withSpec(v.spec);
  r.lab = Lab.open(r.fleet, PREFIX);
  r.auth = auth;
  const conf = (s: string) => readFileSync(join(r.lab.serverDir(s), 'server.conf'), 'utf8');
  await waitFor(
    `server.conf with auth ${auth} on every server`,
    () => SERVERS.every((s) => conf(s).includes('management-client-auth') === (auth === 'on')),
    60_000,
    100,
  );
  await waitFor(
    'the rollout of the auth change to end',
    async () => {
      const ro = (await r.admin.rollout()).rollout;
      if (!ro || ro.id <= before || ro.status === 'running') return false;
      if (ro.status !== 'done')
        throw new Error(`rollout ${ro.id} ${ro.status}: ${ro.detail ?? ''}`);
      return true;
    },
    120_000,
    200,
  );
  await agentsHealthy(r.admin);
  if (probeUser)
    r.probes.push(await probe(r, probeUser, `auth ${auth === 'on' ? 'off → on' : 'on → off'}`));
  for (const s of SERVERS) {
    await r.lab.stopComponent('openvpn', s, 'SIGTERM');
    await r.lab.startComponent('openvpn', s);
  }
  await agentsHealthy(r.admin);
  await sleep(RESTART_SETTLE_MS);
  say(`  auth ${auth}: rollout + OpenVPN restarts in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** One user with a plain client (no management interface) connects to vpn11; what happened. */
async function probe(r: Run, u: UserAddr, toggle: string): Promise<Probe> {
  const from = Date.now();
  let connected = false;
  await withCoreWatch(r.lab, async (watch) => {
    const on = watch.until(`${u.name} on the core`, (s) => coreHas(r.lab, s, u.ipv4), 15_000);
    await r.lab.connect(u.name, { server: SERVERS[0], wait: false });
    connected = await on.then(
      () => true,
      () => false,
    );
  });
  const { dir, address } = r.lab.clientFor(u.name)!;
  const log = join(dir, 'openvpn.log');
  const said = existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => /AUTH|TLS|rror|refused|Initialization Sequence Completed/.test(l))
        .slice(-2)
        .map((l) => l.slice(20))
        .join(' / ') || 'nothing to the point'
    : 'no log';
  // What the server said about this user's connect (why it was refused, if it was).
  const serverSaid = SERVERS.flatMap((s) => {
    const f = join(r.lab.serverDir(s), 'run', 'openvpn.log');
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n') : [];
  })
    .filter(
      (l) =>
        // OpenVPN's own time stamps, to the second, in UTC here.
        Date.parse(`${l.slice(0, 10)}T${l.slice(11, 19)}Z`) >= Math.floor(from / 1000) * 1000 &&
        l.includes(`${address.split('/')[0]}:`) &&
        /error|AUTH|Username|password|rejected|fail|deferred/i.test(l),
    )
    .slice(-3)
    .map((l) => l.slice(20))
    .join(' / ');
  await r.lab.forget(u.name);
  const to = Date.now();
  r.windows.push({ kind: 'probe', auth: r.auth, from, to });
  const heldByAgent = answerLines(r.lab).some((x) => x.at >= from && x.at <= to);
  const p = { toggle, user: u.name, connected, heldByAgent, clientSaid: said, serverSaid };
  say(
    `  probe after the rollout alone (${toggle}): ${u.name} ${connected ? 'connected' : 'did not connect'}, ${heldByAgent ? 'held by the agent' : 'not held'} (client: ${said}; server: ${serverSaid || 'nothing about it'})`,
  );
  return p;
}

// ---------------------------------------------------------------- part 5: connect

/** Certificate-only users connect one at a time (servers alternating), then all leave. */
/** One connect: when its client started (wall clock), where, and how long until the /32. */
interface ConnectSample {
  startedAt: number;
  server: string;
  auth: AuthState;
  ms: number;
}

async function connectBlock(
  r: Run,
  users: UserAddr[],
  out: number[],
  log: ConnectSample[],
): Promise<void> {
  const from = Date.now();
  const lab = r.lab;
  await withCoreWatch(lab, async (watch) => {
    for (const [i, u] of users.entries()) {
      let t0 = now();
      let startedAt = Date.now();
      const server = SERVERS[i % SERVERS.length];
      const v4 = watch.until(`${u.name} /32 on the core`, (s) => coreHas(lab, s, u.ipv4), 60_000);
      await lab.connect(u.name, {
        server,
        wait: false,
        onStart: () => {
          t0 = now();
          startedAt = Date.now();
        },
      });
      const ms = (await v4) - t0;
      out.push(ms);
      log.push({ startedAt, server, auth: r.auth, ms });
    }
    await Promise.all(
      users.map(async (u) => {
        const gone = watch.until(`${u.name} gone`, (s) => !coreHas(lab, s, u.ipv4), 60_000);
        await lab.disconnect(u.name, 'SIGTERM');
        await gone;
      }),
    );
  });
  await Promise.all(users.map((u) => lab.forget(u.name)));
  r.windows.push({ kind: 'connect', auth: r.auth, from, to: Date.now() });
}

// ---------------------------------------------------------------- part 4: failover and drain

function hostOf(lab: Lab, network: string): string {
  const h = lab.plan.hosts.find((x) => x.network === network);
  if (!h?.ipv4) throw new Error(`the lab has no ${network} host`);
  return h.ipv4;
}

type Samples = Record<string, number[]>;

/**
 * One round: ROUND_USERS certificate-only users and (auth on) as many TOTP users dial the victim
 * first and the other server second; the TOTP users sign in (one code each); the victim is hit;
 * each user gives one sample: until the core routes its /32 via the other server.
 */
async function failoverRound(
  r: Run,
  kind: 'crash' | 'drain',
  certPool: Pool,
  totpPool: Pool,
  samples: Samples,
  totpCounts: { users: number; challenges: number; second: number; reconnected: number },
): Promise<void> {
  const lab = r.lab;
  const victim = SERVERS[r.rounds % SERVERS.length];
  const other = SERVERS[(r.rounds + 1) % SERVERS.length];
  r.rounds++;
  const watch: RouteWatch = routerWatch(lab);
  const cert = certPool.take(ROUND_USERS);
  const totp = r.auth === 'on' ? totpPool.take(ROUND_USERS) : [];
  const placeFrom = Date.now();
  for (const u of cert) await lab.connect(u.name, { server: `${victim},${other}`, wait: false });
  const clients: TotpClient[] = [];
  for (const u of totp) clients.push(await TotpClient.start(lab, u, [victim, other]));
  let pingers: LineStream[] = [];
  try {
    await Promise.all(
      [...cert, ...totp].map((u) =>
        watch.until(
          `${u.name} via ${victim}`,
          (s) => viaServers(lab, s, u.ipv4).join() === victim,
          60_000,
        ),
      ),
    );
    await waitFor(
      'every TOTP client asked once',
      () => clients.every((c) => c.challenges === 1),
      10_000,
      50,
    );
    r.windows.push({ kind: 'place', auth: r.auth, from: placeFrom, to: Date.now() });
    // Every client pings a service host of its group's network every 200 ms from 1 s before the
    // hit: each heard its server right before it (an idle client last heard a keepalive up to
    // 3 s earlier, and the TOTP users, placed last, later than the others: their ping-restart
    // would fire later for that alone).
    pingers = [...cert, ...totp].map((u) =>
      streamLines(
        ['ping', '-q', '-i', '0.2', hostOf(lab, u.totpUri ? 'databases' : 'intranet')],
        () => undefined,
        () => undefined,
        { netns: lab.clientFor(u.name)!.ns },
      ),
    );
    await sleep(1000);
    const from = Date.now();
    const t0 = now();
    const hitting =
      kind === 'crash' ? lab.stopComponent('openvpn', victim, 'SIGKILL') : r.admin.drain(victim);
    const key = (u: UserAddr) =>
      `${kind}${u.totpUri ? 'Totp' : r.auth === 'on' ? 'CertAuthOn' : 'CertAuthOff'}`;
    await Promise.all(
      [...cert, ...totp].map(async (u) => {
        const at = await watch.until(
          `${u.name} via a server other than ${victim}`,
          (s) => {
            const via = viaServers(lab, s, u.ipv4);
            return via.length > 0 && !via.includes(victim);
          },
          150_000,
        );
        (samples[key(u)] ??= []).push(at - t0);
      }),
    );
    await hitting;
    for (const p of pingers) p.stop();
    // The tunnel is up again on the other server (the route alone comes with the connect).
    await waitFor(
      'every TOTP client reconnected',
      () => clients.every((c) => c.tunnels >= 2),
      30_000,
      100,
    );
    r.windows.push({ kind, auth: r.auth, from, to: Date.now() });
    totpCounts.users += clients.length;
    totpCounts.reconnected += clients.filter((c) => c.tunnels >= 2).length;
    totpCounts.challenges += clients.reduce((a, c) => a + c.challenges, 0);
    totpCounts.second += clients.reduce((a, c) => a + Math.max(0, c.challenges - 1), 0);
    const line = (k: string) => (samples[k] ? `${k} ${fmt(samples[k])}` : '');
    say(
      `  auth ${r.auth}, ${kind} of ${victim} (${cert.length} certificate-only${totp.length ? `, ${totp.length} TOTP` : ''} users): ${[`${kind}CertAuthOff`, `${kind}CertAuthOn`, `${kind}Totp`].map(line).filter(Boolean).join('; ')}; second challenges so far ${totpCounts.second}`,
    );
  } finally {
    for (const c of clients) c.close();
    for (const p of pingers) p.stop();
  }
  if (KEEP_LOGS) {
    mkdirSync(KEEP_LOGS, { recursive: true });
    for (const u of [...cert, ...totp]) {
      const log = join(lab.clientFor(u.name)?.dir ?? '', 'openvpn.log');
      if (existsSync(log)) copyFileSync(log, join(KEEP_LOGS, `${r.rounds}-${kind}-${u.name}.log`));
    }
    for (const s of SERVERS) {
      const log = join(lab.serverDir(s), 'run', 'openvpn.log');
      if (existsSync(log)) copyFileSync(log, join(KEEP_LOGS, `${r.rounds}-${kind}-${s}.log`));
    }
  }
  if (kind === 'crash') await lab.startComponent('openvpn', victim);
  else await r.admin.undrain(victim);
  await Promise.all([...cert, ...totp].map((u) => lab.forget(u.name)));
  await agentsHealthy(r.admin);
  await sleep(1500);
}

// ---------------------------------------------------------------- report

interface Ratio {
  p50: number;
  p95: number;
  max: number;
}

function uptime(): string {
  const r = spawnSync('uptime', [], { encoding: 'utf8' });
  return (
    r.stdout.trim() ||
    `load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(', ')}`
  );
}

/** The agents' answer times (ms) in windows of one kind and auth state, by answer command. */
function answerTimes(lab: Lab, windows: Window[], kind: Window['kind'], auth: AuthState) {
  const ws = windows.filter((w) => w.kind === kind && w.auth === auth);
  const out: Record<string, number[]> = {};
  for (const { at, m } of answerLines(lab))
    if (ws.some((w) => at >= w.from - 5 && at <= w.to + 5)) (out[m![4]] ??= []).push(Number(m![5]));
  return out;
}

function pairList(pairs: { answerMs: number }[]): string {
  const a = pairs.map((p) => p.answerMs).filter(Number.isFinite);
  if (!a.length) return 'none';
  const x = summarize(a);
  return `${a.length}: answered in p50 ${x.p50.toFixed(2)}, max ${x.max.toFixed(2)}`;
}

function markdown(result: {
  startedAt: string;
  durationS: number;
  load: { before: string; after: string };
  machine: ReturnType<typeof machine>;
  connect: Record<AuthState, number[]>;
  ratio: Ratio;
  met: boolean;
  slow: Record<AuthState, number>;
  pairs: { ms: number; answerMs: number }[];
  failover: Samples;
  totp: { users: number; challenges: number; second: number; reconnected: number };
  answers: Record<string, Record<string, number[]>>;
  probes: Probe[];
}): string {
  const row = (what: string, s: number[] | undefined) => {
    if (!s?.length) return `| ${what} | 0 | – | – | – |`;
    const x = summarize(s);
    return `| ${what} | ${x.n} | ${seconds(x.p50)} | ${seconds(x.p95)} | ${seconds(x.max)} |`;
  };
  const m = result.machine;
  const f = result.failover;
  const lines = [
    '# Connect-time authentication: connect, failover and drain with `auth` (issue 16)',
    '',
    `Run ${result.startedAt}, ${result.durationS.toFixed(0)} s; one lab (prefix ${PREFIX}) of two servers, vpn11 (dc1) and vpn21 (dc2).`,
    `Machine: ${m.nproc} CPUs (${m.cpu}), Linux ${m.kernel}, Node ${m.node}; ${m.openvpn.split(' ').slice(0, 2).join(' ')}; ${m.frr}.  `,
    `Load before: \`${result.load.before}\`  `,
    `Load after: \`${result.load.after}\``,
    '',
    '| figure | n | p50 | p95 | max |',
    '|---|---:|---:|---:|---:|',
    row('connect → /32 on the core, certificate-only, `auth` off', result.connect.off),
    row('connect → /32 on the core, certificate-only, `auth` on', result.connect.on),
    row('kill -9 → via the other server, certificate-only, `auth` off', f.crashCertAuthOff),
    row('kill -9 → via the other server, certificate-only, `auth` on', f.crashCertAuthOn),
    row('kill -9 → via the other server, TOTP user (token)', f.crashTotp),
    row('drain → via the other server, certificate-only, `auth` off', f.drainCertAuthOff),
    row('drain → via the other server, certificate-only, `auth` on', f.drainCertAuthOn),
    row('drain → via the other server, TOTP user (token)', f.drainTotp),
    ...Object.entries(result.answers).flatMap(([where, byCommand]) =>
      Object.entries(byCommand).map(([cmd, s]) => row(`agent's answer (${cmd}), ${where}`, s)),
    ),
    '',
    `- **Target (part 5)**: connect with \`auth\` on ≤ ${TARGET_RATIO}× without: ${result.met ? 'met' : 'NOT met'} — p50 ${result.ratio.p50.toFixed(2)}×, p95 ${result.ratio.p95.toFixed(2)}×, max ${result.ratio.max.toFixed(2)}×. Interleaved in blocks of ${BLOCK} (off/on ABBA), servers alternating; from the OpenVPN client's start to the /32 in the core's table (\`ip monitor route\`).`,
    `- **TOTP users (part 4)**: ${result.totp.users} signed in (${result.totp.challenges} challenges answered), ${result.totp.reconnected} reconnected to the other server with their token; second challenges: ${result.totp.second}.`,
    "- Failover: each client's profile lists its server first and the other second (bench/lab.ts figure 4b); kill -9 of the server's OpenVPN, or the controller's drain; until the core → site router → server path for the /32 leads via the other server (tables polled every 50 ms).",
    `- Connects over ${seconds(SLOW_MS)}: ${result.slow.off} of ${result.connect.off.length} with \`auth\` off, ${result.slow.on} of ${result.connect.on.length} with it on. ${WAKEUP_NOTE}`,
    `- The agent's answer to each of the ${result.pairs.length} connects with \`auth\` on (ms): slow connects ${pairList(result.pairs.filter((p) => p.ms > SLOW_MS))}; the others ${pairList(result.pairs.filter((p) => p.ms <= SLOW_MS))}.`,
    "- Agent's answer: from the agent having a whole `>CLIENT:CONNECT|REAUTH` to OpenVPN's SUCCESS for its first answer (src/agent/answer-timing.ts); client-auth-nt in failover windows is certificate-only and token reconnects together, client-pending-auth the TOTP challenge.",
    ...result.probes.map(
      (p) =>
        `- Rollout alone, ${p.toggle}: ${p.user} ${p.connected ? 'connected' : 'did not connect'}, ${p.heldByAgent ? 'held by the agent' : 'not held by the agent'} (client: ${p.clientSaid}; server: ${p.serverSaid || 'nothing about it'}).`,
    ),
    '',
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:auth needs root (network namespaces)');
  if (CONNECTS % BLOCK !== 0 || (CONNECTS / BLOCK) % 2 !== 0)
    throw new Error('--connects must be an even number of --block sized blocks (ABBA order)');
  const startedAt = new Date().toISOString();
  const loadBefore = uptime();
  const t0 = Date.now();
  say(`auth benchmark: ${CONNECTS} connects per state, ${loadBefore}`);
  const dir = mkdtempSync(join(os.tmpdir(), 'ovf-authbench-'));
  const blocks = (2 * CONNECTS) / BLOCK;
  // ABBA…: on, off, off, on, on, off, off, on
  const order: AuthState[] = Array.from({ length: blocks }, (_, i) =>
    ((i + 1) >> 1) % 2 === 0 ? 'on' : 'off',
  );
  const periods = order.filter((s, i) => i === 0 || order[i - 1] !== s);
  const onPeriods = periods.filter((s) => s === 'on').length;
  const failoverCert = periods.length * ROUNDS * 2 * ROUND_USERS;
  const failoverTotp = onPeriods * ROUNDS * 2 * ROUND_USERS;
  let fleet: Fleet | undefined;
  let r: Run | undefined;
  try {
    fleet = await initFleet(dir, { yaml: fleetYaml('on') });
    const add = async (prefix: string, n: number, group: string) =>
      (
        await fleet!.addUsers(
          Array.from({ length: n }, (_, i) => ({
            name: `${prefix}${String(i).padStart(3, '0')}`,
            groups: [group],
          })),
          // Issued now: the first connect of each does not wait for its pin to reach the servers.
          { issueCerts: true },
        )
      ).map((u) => ({ name: u.name, ipv4: u.ipv4 }));
    const connectUsers = await add('c', 2 * CONNECTS, 'staff');
    const certUsers = await add('f', failoverCert, 'staff');
    const totpUsers = await add('t', failoverTotp + 1, 'dba');
    for (const u of totpUsers) (u as UserAddr).totpUri = (await fleet.totp.enroll(u.name)).uri;
    const probeUsers = await add('p', 1, 'staff');
    await Lab.down(dir, PREFIX);
    const lab = await Lab.up(fleet, { prefix: PREFIX, log: (l) => say(`  ${l}`) });
    const admin = new ControllerClient(
      { kind: 'unix', path: lab.controllerSocket },
      readFileSync(adminTokenPath(dir), 'utf8').trim(),
      30_000,
    );
    r = { lab, fleet, admin, auth: 'on', windows: [], probes: [], rounds: 0 };
    await agentsHealthy(admin);
    if (KEEP_LOGS) {
      // Microsecond time stamps in the servers' logs (until the first toggle re-renders
      // server.conf): what OpenVPN did between the agent's answer and the PUSH_REPLY.
      for (const s of SERVERS) {
        const conf = join(lab.serverDir(s), 'server.conf');
        writeFileAtomic(conf, `${readFileSync(conf, 'utf8')}machine-readable-output\n`, 0o600);
        await lab.stopComponent('openvpn', s, 'SIGTERM');
        await lab.startComponent('openvpn', s);
      }
      await agentsHealthy(admin);
    }
    await sleep(SETTLE_MS);
    const connect: Record<AuthState, number[]> = { off: [], on: [] };
    const failover: Samples = {};
    const connectLog: ConnectSample[] = [];
    const totpCounts = { users: 0, challenges: 0, second: 0, reconnected: 0 };
    const connectPool = new Pool(connectUsers, 'connect users');
    const certPool = new Pool(certUsers, 'certificate-only users');
    const totpPool = new Pool(totpUsers.slice(1), 'TOTP users');
    let toggles = 0;
    for (const [i, state] of order.entries()) {
      if (state !== r.auth) {
        // The first two toggles are probed after the rollout alone: on → off with a
        // certificate-only user, off → on with a TOTP user whose client cannot answer a code.
        const probeUser = toggles === 0 ? probeUsers[0] : toggles === 1 ? totpUsers[0] : undefined;
        toggles++;
        await setAuth(r, state, probeUser);
      }
      await connectBlock(r, connectPool.take(BLOCK), connect[state], connectLog);
      say(`  auth ${state}, connect block ${i + 1}/${blocks}: ${fmt(connect[state])}`);
      // At the end of each period (before the next toggle): its failover rounds.
      if (order[i + 1] !== state)
        for (let k = 0; k < ROUNDS; k++) {
          await failoverRound(r, 'crash', certPool, totpPool, failover, totpCounts);
          await failoverRound(r, 'drain', certPool, totpPool, failover, totpCounts);
        }
    }
    const s = { off: summarize(connect.off), on: summarize(connect.on) };
    const ratio: Ratio = {
      p50: s.on.p50 / s.off.p50,
      p95: s.on.p95 / s.off.p95,
      max: s.on.max / s.off.max,
    };
    const met = ratio.p50 <= TARGET_RATIO && ratio.p95 <= TARGET_RATIO;
    // Samples that waited for OpenVPN's next look at the client (see WAKEUP_NOTE).
    const slow = {
      off: connect.off.filter((x) => x > SLOW_MS).length,
      on: connect.on.filter((x) => x > SLOW_MS).length,
    };
    const answers = {
      'certificate-only connects, auth on': answerTimes(r.lab, r.windows, 'connect', 'on'),
      'certificate-only connects, auth off': answerTimes(r.lab, r.windows, 'connect', 'off'),
      'TOTP sign-in and certificate connects before a failover': answerTimes(
        r.lab,
        r.windows,
        'place',
        'on',
      ),
      'reconnects after kill -9 (certificate and token)': answerTimes(
        r.lab,
        r.windows,
        'crash',
        'on',
      ),
      'reconnects after drain (certificate and token)': answerTimes(
        r.lab,
        r.windows,
        'drain',
        'on',
      ),
    };
    if (KEEP_LOGS) {
      mkdirSync(KEEP_LOGS, { recursive: true });
      writeFileSync(join(KEEP_LOGS, 'connects.json'), JSON.stringify(connectLog, null, 1));
      for (const s of SERVERS)
        for (const f of ['openvpn.log', 'agent.log']) {
          const from = join(r.lab.serverDir(s), 'run', f);
          if (existsSync(from)) copyFileSync(from, join(KEEP_LOGS, `${s}-${f}`));
        }
    }
    // Each auth-on connect with the agent's answer to it: is a slow connect a slow answer?
    const lines = answerLines(r.lab);
    const pairs = connectLog
      .filter((c) => c.auth === 'on')
      .map((c) => {
        const a = lines.find(
          (x) =>
            x.server === c.server && x.at >= c.startedAt - 5 && x.at <= c.startedAt + c.ms + 50,
        );
        return { ms: c.ms, answerMs: a ? Number(a.m![5]) : NaN };
      });
    const loadAfter = uptime();
    const durationS = (Date.now() - t0) / 1000;
    const result = {
      startedAt,
      durationS,
      load: { before: loadBefore, after: loadAfter },
      machine: machine(),
      params: { connects: CONNECTS, block: BLOCK, roundUsers: ROUND_USERS, rounds: ROUNDS, order },
      connect,
      ratio,
      met,
      slow,
      pairs,
      failover,
      totp: totpCounts,
      answers,
      probes: r.probes,
    };
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, 'auth.json'), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(RESULTS, 'auth.md'), markdown(result));
    say('');
    say(`connect, auth off                      ${fmt(connect.off)}`);
    say(`connect, auth on                       ${fmt(connect.on)}`);
    say(
      `ratio on/off: p50 ${ratio.p50.toFixed(2)}× p95 ${ratio.p95.toFixed(2)}× max ${ratio.max.toFixed(2)}× (target ≤ ${TARGET_RATIO}×: ${met ? 'met' : 'NOT met'})`,
    );
    for (const [k, v] of Object.entries(failover)) say(`${k.padEnd(38)} ${fmt(v)}`);
    for (const [where, byCommand] of Object.entries(answers))
      for (const [cmd, v] of Object.entries(byCommand))
        say(`agent answer ${cmd}, ${where}: ${fmt(v)}`);
    say(
      `TOTP: ${totpCounts.users} users signed in once, ${totpCounts.reconnected} reconnected with the token, second challenges ${totpCounts.second}`,
    );
    say(
      `connects over ${seconds(SLOW_MS)}: auth off ${slow.off}/${connect.off.length}, auth on ${slow.on}/${connect.on.length}`,
    );
    say(
      `agent answer for slow connects: ${pairList(pairs.filter((p) => p.ms > SLOW_MS))}; for the others: ${pairList(pairs.filter((p) => p.ms <= SLOW_MS))}`,
    );
    say(`load before: ${loadBefore}`);
    say(`load after:  ${loadAfter}`);
    say(`results: ${join(RESULTS, 'auth.md')} (${durationS.toFixed(0)} s)`);
  } finally {
    await Lab.down(dir, PREFIX, (l) => say(`  ${l}`));
    await fleet?.close();
    const left = (await listNamespaces()).filter((n) => n.startsWith(`${PREFIX}-`));
    rmSync(dir, { recursive: true, force: true });
    if (left.length) throw new Error(`namespaces left behind: ${left.join(', ')}`);
  }
}

await main();
