/**
 * End-to-end helpers: the tests drive the built CLI exactly as a user would, against real
 * OpenVPN, FRR and nftables in network namespaces.
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { createConnection, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { waitFor } from '../../src/sys/time.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin', 'ovpn-fleet.js');

/** Why the lab cannot run here, or undefined when it can. */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  for (const p of [
    '/usr/sbin/openvpn',
    '/usr/lib/frr/zebra',
    '/usr/sbin/nft',
    '/usr/sbin/conntrack',
    '/dev/net/tun',
  ]) {
    if (!existsSync(p)) return `${p} missing (run npm run setup)`;
  }
  return undefined;
}

/** Under CI the end-to-end tests must run: a missing prerequisite is a failure, not a skip. */
export function requireLab(): boolean {
  const why = labUnavailable();
  if (why && process.env.CI === 'true')
    throw new Error(`end-to-end tests cannot run under CI: ${why}`);
  if (why) console.warn(`skipping end-to-end tests: ${why}`);
  return why === undefined;
}

/**
 * Builds dist/ when a source file is newer than it (the test line has built it already). Run as
 * a child the worker waits for, not a synchronous exec: under load tsc takes long enough that a
 * worker blocked on it misses vitest's RPC deadline and the whole run dies.
 */
export async function buildOnce(): Promise<void> {
  const built = join(ROOT, 'dist', 'cli', 'main.js');
  const stale = !existsSync(built) || newestSource(join(ROOT, 'src')) > statSync(built).mtimeMs;
  if (!stale) return;
  const code = await new Promise<number | null>((resolve) =>
    // The whole build: the console's browser script and styles come with it.
    spawn('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' }).on('exit', resolve),
  );
  if (code !== 0) throw new Error(`npm run build exited ${code}`);
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI without blocking this process: the test worker must keep answering its runner
 * while a command waits for a tunnel.
 */
export function cli(
  dir: string,
  args: string[],
  timeoutMs = 300_000,
  input?: string,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, '--dir', dir, ...args], {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) child.stdin?.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export async function cliOk(
  dir: string,
  args: string[],
  timeoutMs?: number,
  input?: string,
): Promise<string> {
  const r = await cli(dir, args, timeoutMs, input);
  if (r.code !== 0)
    throw new Error(`ovpn-fleet ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function newFleetDir(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-fleet-e2e-'));
  await cliOk(dir, ['init', '--example']);
  return dir;
}

export interface UserStatus {
  user: string;
  client: string;
  server?: string;
  ipv4?: string;
  ipv6?: string;
  coreVia4: string[];
  coreVia6: string[];
  coreKnows: boolean;
}

export async function labStatus(dir: string, prefix: string): Promise<UserStatus[]> {
  return JSON.parse(
    await cliOk(dir, ['lab', 'status', '--json', '--prefix', prefix]),
  ) as UserStatus[];
}

export async function statusOf(dir: string, prefix: string, user: string): Promise<UserStatus> {
  const s = (await labStatus(dir, prefix)).find((r) => r.user === user);
  if (!s) throw new Error(`${user} not in lab status`);
  return s;
}

/**
 * Polls until fn returns true (the project's one waitFor); returns the elapsed milliseconds,
 * which the tests print; throws naming `what` on timeout.
 */
export async function waitUntil(
  what: string,
  fn: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 100,
): Promise<number> {
  const start = Date.now();
  await waitFor(what, fn, timeoutMs, everyMs);
  return Date.now() - start;
}

/** One ping from a lab host (service host, user, core…). */
export async function ping(
  dir: string,
  prefix: string,
  host: string,
  address: string,
  source?: string,
): Promise<boolean> {
  const args = [
    'lab',
    'exec',
    '--prefix',
    prefix,
    host,
    '--',
    'ping',
    '-c1',
    '-W1',
    ...(source ? ['-I', source] : []),
    address,
  ];
  return (await cli(dir, args, 10_000)).code === 0;
}

/** A TCP connection from a lab host; true when the service answered. */
export async function tcp(
  dir: string,
  prefix: string,
  host: string,
  address: string,
  port: number,
): Promise<boolean> {
  const r = await cli(
    dir,
    [
      'lab',
      'exec',
      '--prefix',
      prefix,
      host,
      '--',
      'timeout',
      '3',
      'bash',
      '-c',
      `cat </dev/tcp/${address}/${port}`,
    ],
    10_000,
  );
  return r.code === 0 && r.stdout.includes(`port ${port} hello`);
}

export function netnsNames(): string[] {
  const out = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

export function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Destinations the core router learned by a routing protocol (`ip route show proto P`). */
export async function coreRoutes(
  dir: string,
  prefix: string,
  family: '-4' | '-6',
  proto: 'ospf' | 'ospf6' | 'bgp' | 'rip' | 'ripng' | 'bird',
): Promise<string[]> {
  const args = [
    'lab',
    'exec',
    '--prefix',
    prefix,
    'core',
    '--',
    'ip',
    family,
    '-j',
    'route',
    'show',
    'proto',
    proto,
  ];
  return (JSON.parse(await cliOk(dir, args)) as { dst: string }[]).map((r) => r.dst);
}

/**
 * A fleet whose fleet.yaml routes with `routing`, one user alice (staff), and its lab up under
 * `prefix` (`upArgs` go to `lab up`, e.g. --routers bird). For the per-protocol tests.
 */
export async function labWithRouting(
  prefix: string,
  routing: Record<string, unknown>,
  upArgs: string[] = [],
): Promise<{ dir: string; alice: { ipv4: string; ipv6: string } }> {
  const dir = await newFleetDir();
  const file = join(dir, 'fleet.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.set('routing', doc.createNode(routing));
  writeFileSync(file, doc.toString());
  await cliOk(dir, ['validate']);
  const alice = JSON.parse(await cliOk(dir, ['user', 'add', 'alice', '-g', 'staff', '--json'])) as {
    ipv4: string;
    ipv6: string;
  };
  console.log((await cliOk(dir, ['lab', 'up', '--prefix', prefix, ...upArgs])).trim());
  return { dir, alice };
}

/** Routes a careless `redistribute kernel/static` would leak: a static one and a pool subnet. */
export async function addLeakBait(dir: string, prefix: string, server: string): Promise<void> {
  for (const route of ['192.0.2.128/25', '10.200.77.0/24'])
    await cliOk(dir, [
      'lab',
      'exec',
      '--prefix',
      prefix,
      server,
      '--',
      'ip',
      'route',
      'add',
      route,
      'dev',
      'pub0',
    ]);
}

/** What the core learned besides the given host routes and the backbone's own links. */
export function leaked(routes: string[], hosts: string[]): string[] {
  return routes.filter(
    (d) => !hosts.includes(d) && !d.startsWith('10.255.') && !d.startsWith('fd00:255:'),
  );
}

/**
 * Follows an OpenVPN client's management socket line by line, as a client UI does: releases
 * `--management-hold` and hands every other line to `onLine` with a way to answer.
 */
export function followManagement(
  sock: string,
  onLine: (line: string, send: (command: string) => void) => void,
): Socket {
  const conn = createConnection(sock);
  conn.setEncoding('utf8');
  const send = (command: string) => void conn.write(`${command}\n`);
  let buf = '';
  conn.on('data', (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line.startsWith('>HOLD:')) send('hold release');
      else onLine(line, send);
    }
  });
  conn.on('error', () => undefined);
  return conn;
}
