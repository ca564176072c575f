/**
 * The operator's console and the metrics, against a real lab: Debian's chromium driven by
 * playwright-core signs in, adds a user, sees them come online on the right server when they
 * connect with their real OpenVPN client, revokes them and sees them go; a viewer cannot
 * revoke; an admin enrols a user in TOTP on the user page and confirms it with the code an
 * authenticator app would show. A real Prometheus scrapes the controller and all six agents. Both run in the core
 * router's namespace, where the lab's controller listens (the host's network is untouched).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOTP, URI } from 'otpauth';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../../src/lab/sso-browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_AGENT_METRICS_PORT, LAB_CONTROLLER_PORT } from '../../src/lab/lab.js';
import { planLab } from '../../src/lab/plan.js';
import { loadSpec } from '../../src/service/spec-file.js';
import {
  ROOT,
  buildOnce,
  cli,
  cliOk,
  netnsNames,
  newFleetDir,
  requireLab,
  secs,
  statusOf,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfw';
const CORE = `${PREFIX}-core`;
const BASE = `http://127.0.0.1:${LAB_CONTROLLER_PORT}`;
const PROMETHEUS = '/usr/bin/prometheus';
const SHOTS = join(ROOT, 'docs', 'console');
const PASSWORD = { boss: 'correct horse battery', eye: 'staple of the viewers' };

const runs = requireLab() && requireTools();
let dir = '';
let work = '';
let browser: Browser | undefined;
let prometheus: ChildProcess | undefined;

/** Chromium and Prometheus too: under CI a missing one fails the run, never skips it. */
function requireTools(): boolean {
  for (const tool of [CHROMIUM, PROMETHEUS, '/usr/bin/promtool', '/usr/bin/curl']) {
    if (!existsSync(tool)) {
      const why = `${tool} missing (run npm run setup)`;
      if (process.env.CI === 'true') throw new Error(`console tests cannot run under CI: ${why}`);
      console.warn(`skipping console tests: ${why}`);
      return false;
    }
  }
  return true;
}

const lab = (sub: string, ...args: string[]) =>
  cliOk(dir, ['lab', sub, '--prefix', PREFIX, ...args]);

/** Runs `sh -c SCRIPT` in the core namespace (curl, promtool): its standard output. */
const inCore = (script: string) => lab('exec', 'core', '--', 'sh', '-c', script);

async function signIn(name: keyof typeof PASSWORD): Promise<Page> {
  if (!browser) throw new Error('no browser');
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  await page.goto(`${BASE}/console/login`);
  await page.getByTestId('login-name').fill(name);
  await page.getByTestId('login-password').fill(PASSWORD[name]);
  await page.getByTestId('login-submit').click();
  await page.waitForURL(`${BASE}/console`);
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

/** One PromQL instant query through the Prometheus in the core namespace: the values. */
async function promql(query: string): Promise<number[]> {
  const out = await inCore(
    `curl -sf --get --data-urlencode 'query=${query}' http://127.0.0.1:9090/api/v1/query`,
  );
  const body = JSON.parse(out) as { data: { result: { value: [number, string] }[] } };
  return body.data.result.map((r) => Number(r.value[1]));
}

describe.runIf(runs)('the console and the metrics, in a browser and in Prometheus', () => {
  beforeAll(async () => {
    await buildOnce();
    dir = await newFleetDir();
    work = mkdtempSync(join(tmpdir(), 'ovpn-fleet-console-'));
    for (const u of ['ann', 'ben']) await cliOk(dir, ['user', 'add', u, '-g', 'staff']);
    await cliOk(
      dir,
      ['admin', 'add', 'boss', '--role', 'admin', '--password-stdin'],
      undefined,
      PASSWORD.boss,
    );
    await cliOk(
      dir,
      ['admin', 'add', 'eye', '--role', 'viewer', '--password-stdin'],
      undefined,
      PASSWORD.eye,
    );
    console.log((await lab('up')).trim());

    // Chromium in the core namespace: playwright talks to it over a pipe, so the wrapper only
    // has to exec it there.
    const wrapper = join(work, 'chromium-in-core');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${CORE} ${CHROMIUM} "$@"\n`);
    chmodSync(wrapper, 0o755);
    browser = await launchChromium(wrapper);

    // Prometheus in the core namespace: the controller on its loopback, each agent on its
    // server's backbone address (the core routes to them), each with its own token.
    const plan = planLab(loadSpec(join(dir, 'fleet.yaml')), PREFIX);
    const config = join(work, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'scrape_configs:',
        '  - job_name: controller',
        `    authorization: { credentials_file: ${join(dir, 'controller.token')} }`,
        `    static_configs: [{ targets: ['127.0.0.1:${LAB_CONTROLLER_PORT}'] }]`,
        '  - job_name: agents',
        `    authorization: { credentials_file: ${join(dir, '.lab', PREFIX, 'metrics.token')} }`,
        '    static_configs:',
        `      - targets: [${plan.servers.map((s) => `'${s.backboneAddress}:${LAB_AGENT_METRICS_PORT}'`).join(', ')}]`,
        '',
      ].join('\n'),
    );
    mkdirSync(join(work, 'tsdb'));
    prometheus = spawn(
      'ip',
      [
        'netns',
        'exec',
        CORE,
        PROMETHEUS,
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(work, 'tsdb')}`,
        '--web.listen-address=127.0.0.1:9090',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    writeFileSync(join(work, 'prometheus.pid'), `${prometheus.pid}\n`);
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
    // Stopped by the pid we started it with.
    if (prometheus?.pid) process.kill(prometheus.pid, 'SIGTERM');
    if (!dir) return;
    console.log((await cliOk(dir, ['lab', 'down', '--prefix', PREFIX])).trim());
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('an admin adds a user, sees them online on the right server without a reload, revokes them and sees them go', async () => {
    mkdirSync(SHOTS, { recursive: true });
    const page = await signIn('boss');
    page.on('dialog', (d) => void d.accept());
    await shot(page, 'overview');

    await page.goto(`${BASE}/console/users`);
    await page.getByTestId('new-user-name').fill('walt');
    await page.getByTestId('add-user').click();
    await page.locator('[data-testid="user-row"][data-user="walt"]').waitFor();
    await shot(page, 'users');

    await page.goto(`${BASE}/console/sessions`);
    const row = page.locator('[data-testid="session-row"][data-user="walt"]');
    const t0 = Date.now();
    await lab('connect', 'walt', '--server', 'vpn21');
    const connected = Date.now();
    await row.waitFor({ timeout: 15_000 });
    console.log(
      `walt connected in ${secs(connected - t0)}; on the Sessions page ${secs(Date.now() - connected)} later, without a reload`,
    );
    expect(await row.getAttribute('data-server')).toBe('vpn21');
    await shot(page, 'sessions');

    // The network's view: vpn21's agent holds walt's /32 and /128, and nothing disagrees.
    await waitUntil(
      'walt routed via vpn21 on the Routes page',
      async () => {
        await page.goto(`${BASE}/console/routes`);
        const row = (
          await page.locator('tr', { hasText: 'walt' }).first().innerText({ timeout: 1000 })
        )
          .split('\t')
          .map((cell) => cell.trim());
        return row.filter((cell) => cell === 'vpn21').length === 3 && row.includes('ok');
      },
      15_000,
      500,
    );
    for (const name of ['routes', 'policy', 'pki', 'audit']) {
      await page.goto(`${BASE}/console/${name}`);
      await shot(page, name);
    }
    await page.goto(`${BASE}/console/users/walt`);
    await shot(page, 'user');

    await page.goto(`${BASE}/console/users?q=walt`);
    await page.locator('[data-testid="revoke"][data-user="walt"]').click();
    await page.goto(`${BASE}/console/sessions`);
    await page
      .locator('[data-testid="session-row"][data-user="walt"]')
      .waitFor({ state: 'detached', timeout: 15_000 });
    await waitUntil(
      'walt offline in the lab',
      async () => !(await statusOf(dir, PREFIX, 'walt')).server,
      15_000,
    );
    const show = JSON.parse(await cliOk(dir, ['user', 'show', 'walt', '--json'])) as {
      status: string;
    };
    expect(show.status).toBe('revoked');
    // Revoked means revoked: the real client is refused.
    expect(
      (await cli(dir, ['lab', 'connect', '--prefix', PREFIX, 'walt', '--server', 'vpn21'])).code,
    ).not.toBe(0);
  });

  it("an admin enrols a user in TOTP on the user page, confirms with the app's code and sees it active", async () => {
    const page = await signIn('boss');
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${BASE}/console/users/ben`);
    await page.locator('[data-testid="totp-status"][data-state="none"]').waitFor();
    await page.getByTestId('totp-enrol').click();
    await page.getByTestId('totp-enrolment').waitFor();
    expect(await page.getByTestId('totp-qr').isVisible()).toBe(true);
    const codes = await page.locator('[data-testid="recovery-codes"] li').allInnerTexts();
    expect(codes).toHaveLength(10);
    // What a person would type into the app by hand: the URI as the page shows it.
    const app = URI.parse((await page.getByTestId('totp-uri').innerText()).trim());
    if (!(app instanceof TOTP)) throw new Error('the page shows no TOTP URI');
    await page.locator('[data-testid="totp-status"][data-state="pending"]').waitFor();
    // The live region was refreshed (the status moved): the card with the codes stayed.
    expect(await page.locator('[data-testid="recovery-codes"] li').allInnerTexts()).toEqual(codes);
    await page.evaluate("document.getElementById('totp-card').scrollIntoView()");
    await shot(page, 'user-totp');

    await page.getByTestId('totp-code').fill(app.generate());
    await page.getByTestId('totp-confirm').click();
    await page.locator('[data-testid="totp-status"][data-state="active"]').waitFor();
    await page.locator('#totp-card[data-state="active"]').waitFor();
    expect(await page.getByTestId('recovery-codes').count()).toBe(0);
    expect(await page.getByTestId('totp-status').innerText()).toContain(
      'active, 10 recovery codes left',
    );
    // Shown once: a reload shows neither the codes nor the secret.
    await page.reload();
    const html = await page.content();
    for (const c of codes) expect(html).not.toContain(c);
    expect(html).not.toContain(app.secret.base32);
    // The API says the same, and the audit log has both steps by the signed-in admin.
    const answers = await page.evaluate<
      [{ confirmed: boolean }, { action: string; actor: string }[]]
    >(`(async () => {
      const get = async (url) => (await fetch(url, { headers: { accept: 'application/json' } })).json();
      return [await get('/v1/users/ben/totp'), await get('/v1/audit?user=ben&kind=user.totp.')];
    })()`);
    expect(answers[0]).toEqual({ enrolled: true, confirmed: true, recoveryCodesLeft: 10 });
    expect(answers[1].map((e) => `${e.action} by ${e.actor}`)).toEqual([
      'user.totp.confirm by console:boss',
      'user.totp.enroll by console:boss',
    ]);
  });

  it('a viewer sees no revoke button, and the API refuses the viewer a revoke (403)', async () => {
    const page = await signIn('eye');
    await page.goto(`${BASE}/console/users?q=ann`);
    await page.locator('[data-testid="user-row"][data-user="ann"]').waitFor();
    expect(await page.locator('[data-testid="revoke"]').count()).toBe(0);
    // In the page, as the console's own script would: the viewer's cookie and CSRF token.
    const status = await page.evaluate(`(async () => {
      const token = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';
      const res = await fetch('/v1/users/ann/revoke', { method: 'POST', headers: { 'x-csrf-token': token } });
      return res.status + ' ' + (await res.text());
    })()`);
    // Refused for the role, not for a missing CSRF token.
    expect(status).toMatch(/^403 .*admin role/);
    const ann = JSON.parse(await cliOk(dir, ['user', 'show', 'ann', '--json'])) as {
      status: string;
    };
    expect(ann.status).toBe('enabled');
  });

  it("Prometheus scrapes the controller and all six agents; its session count is the lab's", async () => {
    await lab('connect', 'ann', '--server', 'vpn11');
    await lab('connect', 'ben', '--server', 'vpn32');
    await waitUntil(
      'seven targets up',
      async () => {
        const up = await promql('up').catch(() => []);
        return up.length === 7 && up.every((v) => v === 1);
      },
      60_000,
      1000,
    );
    const ms = await waitUntil(
      'Prometheus counts two sessions, from the controller and from the agents',
      async () =>
        (await promql('sum(ovpn_fleet_server_sessions)'))[0] === 2 &&
        (await promql('sum(ovpn_fleet_agent_sessions)'))[0] === 2,
      30_000,
      1000,
    );
    console.log(`Prometheus showed both sessions ${secs(ms)} after they were up`);
    const online = (
      await Promise.all(['ann', 'ben', 'walt'].map((u) => statusOf(dir, PREFIX, u)))
    ).filter((s) => s.server).length;
    expect(online).toBe(2);

    // promtool accepts every endpoint's output as it is.
    const controllerToken = join(dir, 'controller.token');
    const agentToken = join(dir, '.lab', PREFIX, 'metrics.token');
    const plan = planLab(loadSpec(join(dir, 'fleet.yaml')), PREFIX);
    const endpoints = [
      { url: `http://127.0.0.1:${LAB_CONTROLLER_PORT}/metrics`, token: controllerToken },
      ...plan.servers.map((s) => ({
        url: `http://${s.backboneAddress}:${LAB_AGENT_METRICS_PORT}/metrics`,
        token: agentToken,
      })),
    ];
    for (const e of endpoints) {
      const r = await cli(dir, [
        'lab',
        'exec',
        '--prefix',
        PREFIX,
        'core',
        '--',
        'sh',
        '-c',
        `curl -sf -H "Authorization: Bearer $(cat ${e.token})" ${e.url} | promtool check metrics`,
      ]);
      expect(r.code, `${e.url}: ${r.stdout}${r.stderr}`).toBe(0);
    }
  });
});
