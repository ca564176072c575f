/**
 * SSO at connect for real (issue 16): the lab runs a real OpenID provider (`lab up --sso`:
 * oidc-provider in its own namespace on the lab's internet segment) and the controller's HTTPS
 * side; real OpenVPN 2.6 clients announce `IV_SSO webauth`, get `>INFOMSG:WEB_AUTH::<url>` on
 * their management interface, and Debian's Chromium, started in the client's own namespace and
 * trusting only the lab's CA, signs the person in at the provider's form. Then: the tunnel, the
 * fixed address, the core's route and a service host's answer; a wrong password, a user outside
 * the allowed groups, a revoked certificate and an expired token are refused with what the user
 * is shown; a server's OpenVPN stopped moves the client to the other site's server with its
 * token, without a second sign-in. Two sites with one server each, prefix ovfo.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect } from 'vitest';
import { parseDocument } from 'yaml';
import {
  labBrowser,
  labIdpUsers,
  labSsoSettings,
  oidcProviderMissing,
} from '../../src/lab/sso-lab.js';
import { chromiumMissing, launchChromium, signInWithBrowser } from '../../src/lab/sso-browser.js';
import { labDir, loadState, type LabState } from '../../src/lab/state.js';
import { itNeeds } from '../../src/testing.js';
import {
  buildOnce,
  cli,
  cliOk,
  followManagement,
  netnsNames,
  newFleetDir,
  ping,
  requireLab,
  secs,
  statusOf,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfo';
const runs = requireLab();
const missing = chromiumMissing() ?? oidcProviderMissing();
/** Short, so that the test sees it end: the roaming must happen well within it. */
const TOKEN_LIFETIME_S = 50;
/**
 * ann's client renegotiates this long after each connect (a client's reneg-sec is exact, not
 * randomised): after she roams, her next renegotiation comes after the token's end.
 */
const ANN_RENEG_S = 50;
/** How long a client is held for its sign-in (the schema's minimum). */
const PENDING_S = 30;

let dir = '';
let state: LabState | undefined;
const clients: SsoClient[] = [];
const addresses: Record<string, { ipv4: string; ipv6: string }> = {};

const lab = (sub: string, ...args: string[]) =>
  cliOk(dir, ['lab', sub, '--prefix', PREFIX, ...args]);
const clientDir = (user: string) => join(dir, '.lab', PREFIX, 'clients', user);
const passwordOf = (user: string) => {
  const u = labIdpUsers(state!.sso!).find((x) => x.name === user);
  if (!u) throw new Error(`${user} is not a user of the lab's identity provider`);
  return u.password;
};

interface SsoClient {
  user: string;
  /** The WEB_AUTH URLs the management interface received, in order. */
  urls: string[];
  log(): string;
  /** How many times the tunnel came up. */
  established(): number;
  stop(): void;
}

/**
 * Runs the user's OpenVPN client (their lab profile, dialling `remotes` in order) as a client
 * with a UI does: a management socket, `IV_SSO webauth` announced, and every
 * `>INFOMSG:WEB_AUTH::<url>` collected for the person to open.
 */
async function startSsoClient(
  user: string,
  remotes: string[],
  extraLines: string[] = [],
): Promise<SsoClient> {
  const d = clientDir(user);
  const profile = readFileSync(join(d, 'profile.ovpn'), 'utf8')
    .replace(/^remote .*\n/gm, '')
    .replace(
      /^client\n/m,
      `client\n${remotes.map((r) => `remote ${r} 1194\n`).join('')}${extraLines.map((l) => `${l}\n`).join('')}`,
    );
  writeFileSync(join(d, 'sso.ovpn'), profile, { mode: 0o600 });
  const sock = join(d, 'mgmt.sock');
  const log = join(d, 'sso.log');
  const pidFile = join(d, 'sso.pid');
  for (const f of [sock, log, pidFile]) rmSync(f, { force: true });
  const r = await cli(dir, [
    'lab',
    'exec',
    '--prefix',
    PREFIX,
    user,
    '--',
    'openvpn',
    '--config',
    join(d, 'sso.ovpn'),
    '--dev',
    'tun0',
    '--verb',
    '4',
    // What OpenVPN GUI and Connect announce (ssl.c push_peer_info passes IV_SSO from setenv):
    // the server may then hold the connect with client-pending-auth WEB_AUTH::url.
    '--setenv',
    'IV_SSO',
    'webauth',
    '--management',
    sock,
    'unix',
    // Held until our management client is attached: a WEB_AUTH sent before would be missed.
    '--management-hold',
    '--daemon',
    `${PREFIX}-sso-${user}`,
    '--writepid',
    pidFile,
    '--log',
    log,
  ]);
  expect(r.code, r.stderr).toBe(0);
  let pid = 0;
  await waitUntil(
    `${user}'s client pid`,
    () => {
      pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) : 0;
      return pid > 0;
    },
    10_000,
  );
  await waitUntil(`${user}'s management socket`, () => existsSync(sock), 10_000);
  const urls: string[] = [];
  const conn = followManagement(sock, (line) => {
    // management-notes.txt: ">INFOMSG:WEB_AUTH::<url>" (flags between the colons: none).
    const m = /^>INFOMSG:WEB_AUTH:[^:]*:(\S+)$/.exec(line);
    if (m) urls.push(m[1]);
  });
  const readLog = () => (existsSync(log) ? readFileSync(log, 'utf8') : '');
  const client: SsoClient = {
    user,
    urls,
    log: readLog,
    established: () => readLog().match(/Initialization Sequence Completed/g)?.length ?? 0,
    stop: () => {
      conn.destroy();
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
    },
  };
  clients.push(client);
  return client;
}

/** The next WEB_AUTH URL the client receives (the `n`th, from 1). */
async function webAuthUrl(c: SsoClient, n = 1, timeoutMs = 20_000): Promise<string> {
  await waitUntil(`WEB_AUTH #${n} for ${c.user}`, () => c.urls.length >= n, timeoutMs);
  return c.urls[n - 1];
}

/**
 * The person at the client's computer: Chromium in the client's namespace (so it reaches the
 * controller and the provider over the lab's internet segment, as a laptop's browser does),
 * trusting the lab's CA and nothing else of the lab; certificate errors are not ignored.
 */
async function signIn(user: string, url: string, password: string) {
  // The state as it is now: the client's namespace came with its first `lab connect`.
  const now = loadState(labDir(dir, PREFIX))!;
  const { executablePath, args } = labBrowser(now, `${PREFIX}-c-${user}`);
  const browser: Browser = await launchChromium(executablePath, args);
  try {
    return await signInWithBrowser(browser, url, user, password, undefined, {
      checkCertificates: true,
    });
  } finally {
    await browser.close();
  }
}

describe.runIf(runs)('SSO at connect with a real provider, Chromium and OpenVPN', () => {
  beforeAll(async () => {
    if (missing && process.env.CI !== 'true') return;
    await buildOnce();
    dir = await newFleetDir();
    const file = join(dir, 'fleet.yaml');
    const doc = parseDocument(readFileSync(file, 'utf8'));
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
    // The lab's provider and the controller's HTTPS side: their files appear at `lab up --sso`,
    // before the controller reads them.
    const sso = labSsoSettings(labDir(dir, PREFIX));
    doc.set(
      'auth',
      doc.createNode({
        sso: { ...sso, allowedGroups: ['staff'] },
        token: { lifetime: `${TOKEN_LIFETIME_S}s` },
        pendingSeconds: PENDING_S,
      }),
    );
    writeFileSync(file, doc.toString());
    await cliOk(dir, ['validate']);
    for (const [user, group] of [
      ['ann', 'staff'],
      ['bob', 'dba'],
      ['cat', 'staff'],
      ['dan', 'staff'],
    ])
      addresses[user] = JSON.parse(
        await cliOk(dir, ['user', 'add', user, '-g', group, '--json']),
      ) as {
        ipv4: string;
        ipv6: string;
      };
    console.log((await lab('up', '--sso')).trim());
    state = loadState(labDir(dir, PREFIX));
  }, 600_000);

  // What the clients, the agents and the provider said, when a test fails (the lab goes at the end).
  afterEach((ctx) => {
    if (ctx.task.result?.state !== 'fail' || !dir) return;
    const tail = (text: string) => text.split('\n').slice(-25).join('\n');
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
    for (const c of clients) console.log(`--- ${c.user}'s client:\n${tail(c.log())}`);
    for (const s of ['vpn11', 'vpn21'])
      console.log(
        `--- ${s}'s agent:\n${tail(read(join(dir, '.lab', PREFIX, 'servers', s, 'run', 'agent.log')))}`,
      );
    console.log(`--- idp:\n${tail(read(join(dir, '.lab', PREFIX, 'sso', 'idp.log')))}`);
  });

  afterAll(async () => {
    for (const c of clients) c.stop();
    if (!dir) return;
    console.log((await cliOk(dir, ['lab', 'down', '--prefix', PREFIX])).trim());
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  itNeeds(
    missing,
    'shows the provider in lab status, and refuses a client that cannot sign in in a browser, saying why',
    async () => {
      const status = await lab('status');
      expect(status).toMatch(/idp\s+yes\s+ovfo-idp\s+https:\/\/192\.0\.2\.250/);
      // Every user's client host and profile; none gets in without IV_SSO webauth.
      for (const user of ['ann', 'bob', 'cat', 'dan']) {
        const r = await cli(dir, ['lab', 'connect', '--prefix', PREFIX, user, '--server', 'vpn11']);
        expect(r.code, `${user} connected without a sign-in`).not.toBe(0);
      }
      expect(readFileSync(join(clientDir('ann'), 'openvpn.log'), 'utf8')).toMatch(
        /AUTH_FAILED.*needs a sign-in in the browser/,
      );
    },
    120_000,
  );

  itNeeds(
    missing,
    'a wrong password stays at the provider, and the client stays held',
    async () => {
      // On vpn21, which stays up: vpn11 is stopped later, maybe before cat's time runs out.
      const cat = await startSsoClient('cat', ['203.0.113.11']);
      const url = await webAuthUrl(cat);
      expect(url).toMatch(/^https:\/\/192\.0\.2\.251\/sso\/start\/[A-Za-z0-9_-]{43}$/);
      const page = await signIn('cat', url, 'not-her-password');
      expect(page.text).toContain('Invalid user or password');
      expect(page.url.startsWith(state!.sso!.issuer)).toBe(true);
      // Until its pending time ends (checked at the end of this file).
      expect(cat.log()).not.toMatch(/AUTH_FAILED/);
      expect(cat.established()).toBe(0);
    },
    60_000,
  );

  itNeeds(
    missing,
    'a user outside the allowed groups is refused, in the browser and in the client, with the reason',
    async () => {
      const bob = await startSsoClient('bob', ['198.51.100.11']);
      const page = await signIn('bob', await webAuthUrl(bob), passwordOf('bob'));
      expect(page.status).toBe(403);
      expect(page.text).toContain('bob is in none of the allowed groups (staff)');
      await waitUntil('bob refused', () => /AUTH_FAILED/.test(bob.log()), 20_000);
      expect(bob.log()).toMatch(/AUTH_FAILED.*bob is in none of the allowed groups \(staff\)/);
      expect(bob.established()).toBe(0);
    },
    60_000,
  );

  let ann: SsoClient;
  let annSignedInAt = 0;

  itNeeds(
    missing,
    'signs in through Chromium: the tunnel, the fixed address, the core route and a service host',
    async () => {
      ann = await startSsoClient(
        'ann',
        ['198.51.100.11', '203.0.113.11'],
        [`reneg-sec ${ANN_RENEG_S}`],
      );
      const page = await signIn('ann', await webAuthUrl(ann), passwordOf('ann'));
      annSignedInAt = Date.now();
      expect(page.text).toContain('Signed in as ann');
      expect(page.url.startsWith(`${state!.sso!.publicUrl}/sso/callback`)).toBe(true);
      await waitUntil("ann's tunnel", () => ann.established() === 1, 30_000);
      await waitUntil(
        'ann on vpn11, routed by the core',
        async () => {
          const s = await statusOf(dir, PREFIX, 'ann');
          return s.server === 'vpn11' && s.coreVia4.includes('vpn11');
        },
        20_000,
      );
      const s = await statusOf(dir, PREFIX, 'ann');
      expect(s.ipv4).toBe(addresses.ann.ipv4);
      expect(s.ipv6).toBe(addresses.ann.ipv6);
      expect(s.coreVia4).toEqual(['vpn11']);
      expect(await ping(dir, PREFIX, 'intranet', addresses.ann.ipv4)).toBe(true);
      expect(ann.urls).toHaveLength(1);
    },
    60_000,
  );

  itNeeds(
    missing,
    "moves to the other site's server with its token when its server stops: no second sign-in",
    async () => {
      await lab('stop', 'openvpn', 'vpn11');
      await waitUntil('ann on vpn21', () => ann.established() === 2, 40_000);
      await waitUntil(
        'the core routes ann via vpn21',
        async () => {
          const s = await statusOf(dir, PREFIX, 'ann');
          return s.server === 'vpn21' && s.coreVia4.join() === 'vpn21';
        },
        20_000,
      );
      expect((await statusOf(dir, PREFIX, 'ann')).ipv4).toBe(addresses.ann.ipv4);
      expect(await ping(dir, PREFIX, 'intranet', addresses.ann.ipv4)).toBe(true);
      expect(ann.urls).toHaveLength(1);
      console.log(
        `ann on vpn21 ${secs(Date.now() - annSignedInAt)} after her sign-in (token lifetime ${TOKEN_LIFETIME_S} s)`,
      );
    },
    60_000,
  );

  itNeeds(
    missing,
    'a revoked certificate is cut off, and its token does not bring it back',
    async () => {
      const dan = await startSsoClient('dan', ['203.0.113.11']);
      const page = await signIn('dan', await webAuthUrl(dan), passwordOf('dan'));
      expect(page.text).toContain('Signed in as dan');
      await waitUntil("dan's tunnel", () => dan.established() === 1, 30_000);
      await cliOk(dir, ['user', 'revoke', 'dan']);
      const serverLog = join(dir, '.lab', PREFIX, 'servers', 'vpn21', 'run', 'openvpn.log');
      await waitUntil(
        'vpn21 refusing the revoked certificate',
        () => /certificate revoked: CN=dan/.test(readFileSync(serverLog, 'utf8')),
        30_000,
      );
      expect(dan.established()).toBe(1);
      expect(dan.urls).toHaveLength(1);
      expect((await statusOf(dir, PREFIX, 'dan')).coreKnows).toBe(false);
      dan.stop();
    },
    60_000,
  );

  itNeeds(
    missing,
    'a sign-in not finished in time is refused with the reason',
    async () => {
      const cat = clients.find((c) => c.user === 'cat')!;
      await waitUntil('cat refused', () => /AUTH_FAILED/.test(cat.log()), (PENDING_S + 15) * 1000);
      expect(cat.log()).toMatch(/AUTH_FAILED.*the sign-in was not finished in time/);
      expect(cat.established()).toBe(0);
      cat.stop();
    },
    60_000,
  );

  itNeeds(
    missing,
    'an expired token is refused at the next renegotiation with the reason, and the client is asked to sign in again',
    async () => {
      await waitUntil(
        'a new sign-in for ann',
        () => ann.urls.length === 2,
        (ANN_RENEG_S + 20) * 1000,
      );
      const refused = /^.*AUTH_FAILED.*your sign-in has expired.*$/m.exec(ann.log());
      expect(refused).not.toBeNull();
      console.log(
        `ann asked to sign in again ${secs(Date.now() - annSignedInAt)} after her sign-in; her client: ${refused![0]}`,
      );
      // The second sign-in works like the first.
      const page = await signIn('ann', ann.urls[1], passwordOf('ann'));
      expect(page.text).toContain('Signed in as ann');
      await waitUntil("ann's tunnel again", () => ann.established() === 3, 30_000);
    },
    120_000,
  );
});
