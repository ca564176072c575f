/**
 * Console live-update benchmark (issue 13, "Figures": a session shows up in a connected
 * browser < 1 s after the connect). A lab with the control plane (prefix "obw"); Debian's
 * chromium, driven by playwright-core and run in the lab's core namespace where the controller
 * listens, signs in and opens /console/sessions once; then, one user at a time, a real OpenVPN
 * client connects (the Lab API's connect, servers taken in turn) and the clock stops when the
 * user's session row is visible on that page — no reload: the row comes over the page's
 * server-sent events. Then each user disconnects in turn and the clock stops when the row is gone.
 *
 *   npm run bench:console-live [-- --users N]   (root; N = 12 by default)
 *
 * The lab's controller is the built one (dist/): it serves the console's compiled browser script,
 * which a run from the sources would not have. So this script builds first (see package.json)
 * and takes the Lab and the fleet from dist/ too, typed as their sources.
 *
 * Per connect two numbers: from the connect call's return (both tunnel addresses are up in the
 * client) to the row visible — the figure — and from the call's start (client namespace, profile,
 * OpenVPN's start and handshake included). The row's wait starts before the call, so a row that
 * beats the call's return gives a negative first number rather than a late one. Playwright's
 * `waitFor` polls the page (animation frames, then a round trip to this process): a sample is
 * late by up to a frame or two (~16–40 ms).
 *
 * Prints the figures and writes bench/results/console-live.md.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../src/lab/sso-browser.js';
import type * as LabModule from '../src/lab/lab.js';
import type * as OpenModule from '../src/service/open.js';
import type { Fleet } from '../src/service/fleet.js';
import { sleep, waitFor } from '../src/sys/time.js';
import { seconds as unsigned, summarize } from './lab-report.js';
import { intArg } from './measure.js';

const USERS = intArg('--users', 12);
const PREFIX = 'obw';
const CORE = `${PREFIX}-core`;
const ADMIN = { name: 'boss', password: 'correct horse battery staple' };
/** Quiet time after `lab up`: the agents' first bundles applied, FRR settled (as bench/lab.ts). */
const SETTLE_MS = 8000;
/** A row that takes longer than this is a failure, not a slow sample. */
const ROW_TIMEOUT_MS = 30_000;
const TARGET_MS = 1000;
const RESULTS = join(import.meta.dirname, 'results', 'console-live.md');
const DIST = new URL('../dist/', import.meta.url);

/** The disconnect's return comes after the row is gone (the client exits ~1 s after SIGTERM). */
const seconds = (ms: number) => (ms < 0 ? `-${unsigned(-ms)}` : unsigned(ms));
const say = (line: string) => process.stdout.write(`${line}\n`);
const now = () => performance.now();

/** The built Lab and fleet opener: the controller they start serves the compiled console. */
async function built(): Promise<{ lab: typeof LabModule; open: typeof OpenModule }> {
  const lab = new URL('lab/lab.js', DIST);
  const open = new URL('service/open.js', DIST);
  for (const u of [lab, open])
    if (!existsSync(u)) throw new Error(`${u.pathname} missing: run "npm run build" first`);
  return {
    lab: (await import(lab.href)) as typeof LabModule,
    open: (await import(open.href)) as typeof OpenModule,
  };
}

async function launch(work: string): Promise<Browser> {
  // Playwright talks to chromium over a pipe: the wrapper only has to exec it in the core.
  const wrapper = join(work, 'chromium-in-core');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${CORE} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  return launchChromium(wrapper);
}

async function sessionsPage(browser: Browser, base: string): Promise<Page> {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}/console/login`);
  await page.getByTestId('login-name').fill(ADMIN.name);
  await page.getByTestId('login-password').fill(ADMIN.password);
  await page.getByTestId('login-submit').click();
  await page.waitForURL(`${base}/console`);
  await page.goto(`${base}/console/sessions`);
  return page;
}

const row = (page: Page, user: string) =>
  page.locator(`[data-testid="session-row"][data-user="${user}"]`);

/** Resolves with the time the row reached `state`; started before the action it waits for. */
function rowAt(page: Page, user: string, state: 'visible' | 'detached'): Promise<number> {
  return row(page, user)
    .waitFor({ state, timeout: ROW_TIMEOUT_MS })
    .then(() => now());
}

interface Samples {
  /** Connect call returned (tunnel up) → row visible: the figure. */
  connectFromUp: number[];
  /** Connect call started → row visible. */
  connectFromCall: number[];
  /** Disconnect call started (SIGTERM to the client) → row gone. */
  disconnectFromCall: number[];
  /** Disconnect call returned (client exited) → row gone. */
  disconnectFromExit: number[];
}

function fmt(s: number[]): string {
  const x = summarize(s);
  return `n=${x.n} p50 ${seconds(x.p50)} p95 ${seconds(x.p95)} max ${seconds(x.max)}`;
}

function report(samples: Samples, servers: string[], startedAt: string, durationS: number) {
  const rows: { what: string; s: number[]; target?: number }[] = [
    {
      what: 'connect returned (tunnel up) → session row visible',
      s: samples.connectFromUp,
      target: TARGET_MS,
    },
    { what: 'connect called → session row visible', s: samples.connectFromCall },
    { what: 'disconnect called (SIGTERM) → session row gone', s: samples.disconnectFromCall },
    {
      what: 'disconnect returned (client exited) → session row gone',
      s: samples.disconnectFromExit,
    },
  ];
  const raw = (s: number[]) => s.map((x) => x.toFixed(0)).join(', ');
  const cpu = os.cpus();
  return [
    '# ovpn-fleet console, live sessions in a browser',
    '',
    `${USERS} users, one at a time, each connecting with a real OpenVPN client to the next of the lab's ${servers.length} servers (${servers.join(', ')}) while Debian's chromium (playwright-core, in the core namespace) shows /console/sessions, signed in as an admin; the row arrives over the page's server-sent events, no reload. ` +
      `Then each disconnects in turn (SIGTERM: the client's exit notification). ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown'}), node ${process.version}; written ${startedAt}, ${durationS.toFixed(0)} s.`,
    '',
    '| figure | n | p50 | p95 | max | target (p95) | |',
    '|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => {
      const x = summarize(r.s);
      const target = r.target === undefined ? '' : `< ${seconds(r.target)}`;
      const met = r.target === undefined ? '' : x.p95 < r.target ? 'ok' : 'over';
      return `| ${r.what} | ${x.n} | ${seconds(x.p50)} | ${seconds(x.p95)} | ${seconds(x.max)} | ${target} | ${met} |`;
    }),
    '',
    'Samples in order (ms):',
    '',
    ...rows.map((r) => `- ${r.what}: ${raw(r.s)}`),
    '',
    "The row's wait starts before the call; playwright's `waitFor` polls the page, so each sample is late by up to a frame or two. " +
      'A negative sample would mean the row was on the page before the connect call returned (the agent reports the session from the server side while the client is still configuring its tunnel).',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('bench:console-live needs root (network namespaces)');
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} missing (run npm run setup)`);
  const { lab: L, open } = await built();
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  const dir = mkdtempSync(join(os.tmpdir(), 'ovf-bench-live-'));
  const work = mkdtempSync(join(os.tmpdir(), 'ovf-bench-live-work-'));
  const base = `http://127.0.0.1:${L.LAB_CONTROLLER_PORT}`;
  let fleet: Fleet | undefined;
  let browser: Browser | undefined;
  const samples: Samples = {
    connectFromUp: [],
    connectFromCall: [],
    disconnectFromCall: [],
    disconnectFromExit: [],
  };
  let servers: string[] = [];
  try {
    fleet = await open.initFleet(dir);
    const users = (
      await fleet.addUsers(
        Array.from({ length: USERS }, (_, i) => ({
          name: `w${String(i).padStart(2, '0')}`,
          groups: ['staff'],
        })),
      )
    ).map((u) => u.name);
    await fleet.admins.add(ADMIN.name, 'admin', ADMIN.password);
    await L.Lab.down(dir, PREFIX);
    const up = Date.now();
    const lab = await L.Lab.up(fleet, { prefix: PREFIX, log: (l) => say(`  ${l}`) });
    const socks = lab.plan.servers.map((s) => join(lab.serverDir(s.name), 'run', 'agent.sock'));
    await waitFor('every agent to come up', () => socks.every((p) => existsSync(p)), 60_000, 200);
    say(`lab "${PREFIX}" up in ${((Date.now() - up) / 1000).toFixed(1)} s`);
    await sleep(SETTLE_MS);
    servers = lab.plan.servers.map((s) => s.name);

    browser = await launch(work);
    const page = await sessionsPage(browser, base);
    say(`chromium signed in as ${ADMIN.name} on ${base}/console/sessions`);

    for (const [i, user] of users.entries()) {
      const server = servers[i % servers.length];
      if ((await row(page, user).count()) !== 0)
        throw new Error(`${user} listed before connecting`);
      const called = now();
      const visible = rowAt(page, user, 'visible');
      // Awaited below; handled here too so a failed connect is the error reported.
      visible.catch(() => undefined);
      await lab.connect(user, { server });
      const returned = now();
      const at = await visible;
      const shown = await row(page, user).getAttribute('data-server');
      if (shown !== server) throw new Error(`${user} shown on ${shown}, connected to ${server}`);
      samples.connectFromUp.push(at - returned);
      samples.connectFromCall.push(at - called);
      say(
        `  ${user} → ${server}: tunnel up ${seconds(returned - called)} after the call, row ${seconds(at - returned)} later`,
      );
    }
    for (const user of users) {
      const called = now();
      const gone = rowAt(page, user, 'detached');
      gone.catch(() => undefined);
      await lab.disconnect(user, 'SIGTERM');
      const returned = now();
      const at = await gone;
      samples.disconnectFromCall.push(at - called);
      samples.disconnectFromExit.push(at - returned);
      say(`  ${user} disconnected: row gone ${seconds(at - called)} after the SIGTERM`);
    }
  } finally {
    await browser?.close();
    // The Lab API stops every process it started by its recorded pid.
    await L.Lab.down(dir, PREFIX, (l) => say(l));
    const left = (await L.listNamespaces()).filter((n) => n.startsWith(`${PREFIX}-`));
    await fleet?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    if (left.length) process.exitCode = 2;
    if (left.length) say(`namespaces left behind: ${left.join(', ')}`);
  }
  const text = report(samples, servers, startedAt, (Date.now() - t0) / 1000);
  mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
  writeFileSync(RESULTS, text);
  say('');
  say(`connect returned → row visible        ${fmt(samples.connectFromUp)}`);
  say(`connect called → row visible          ${fmt(samples.connectFromCall)}`);
  say(`disconnect called → row gone          ${fmt(samples.disconnectFromCall)}`);
  say(`disconnect returned → row gone        ${fmt(samples.disconnectFromExit)}`);
  const p95 = summarize(samples.connectFromUp).p95;
  say(
    `target: p95 < ${seconds(TARGET_MS)}: ${p95 < TARGET_MS ? 'met' : 'NOT met'} (${seconds(p95)})`,
  );
  say(`written to ${RESULTS}`);
  if (!(p95 < TARGET_MS)) process.exitCode ||= 1;
}

await main();
