/**
 * SSO at connect, for real on loopback: the controller with OidcWebSignIn (buildController's
 * `sso`), the lab's test OpenID provider (oidc-provider over HTTPS, trusted through caFile) and
 * Debian's chromium signing in at the provider's form. Without chromium the browser tests are
 * skipped visibly, and fail under CI=true.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestIdp, type TestIdp } from '../../lab/idp.js';
import { chromiumMissing, launchChromium, signInWithBrowser } from '../../lab/sso-browser.js';
import { EXAMPLE_FLEET_YAML } from '../../spec/example.js';
import { initFleet, openFleet } from '../../service/open.js';
import { itNeeds } from '../../testing.js';
import { type Controller, type ControllerOptions, buildController } from '../app.js';
import { FakeTimers, ManualClock } from '../testing.js';
import { OidcWebSignIn, type OidcSettings } from './oidc.js';
import type { WebSignInResult } from './web-sign-in.js';

const missing = chromiumMissing();
const PASSWORD = { ann: 'ann-secret-1', bob: 'bob-secret-2' };
const TTL_MS = 120_000;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

let dir = '';
let idp: TestIdp | undefined;
let ctl: Controller | undefined;
let browser: Browser | undefined;
let base = '';
const clock = new ManualClock(new Date());
const results: WebSignInResult[] = [];
let ssoOptions: ControllerOptions['sso'];
let ctlTimers: FakeTimers | undefined;

function settings(caFile: string, secretFile: string, issuer: string): OidcSettings {
  return {
    issuer,
    clientId: 'ovpn-fleet',
    clientSecretFile: secretFile,
    allowedGroups: ['vpn-users'],
    allowedDomains: [],
    groupsClaim: 'groups',
    groupMap: { 'vpn-users': 'staff', engineering: 'eng', unmapped: 'ignored-elsewhere' },
    caFile,
  };
}

beforeAll(async () => {
  if (missing && process.env.CI !== 'true') return;
  dir = mkdtempSync(join(tmpdir(), 'ovf-sso-'));
  const fleetDir = join(dir, 'fleet');
  await (await initFleet(fleetDir)).close();
  const [idpPort, ctlPort] = [await freePort(), await freePort()];
  base = `http://127.0.0.1:${ctlPort}`;
  idp = await startTestIdp({
    dir,
    port: idpPort,
    users: [
      { name: 'ann', password: PASSWORD.ann, groups: ['vpn-users', 'engineering'] },
      { name: 'bob', password: PASSWORD.bob, groups: ['sales'] },
    ],
    clients: [
      {
        clientId: 'ovpn-fleet',
        clientSecret: 'client-secret-of-the-test',
        redirectUris: [`${base}/sso/callback`],
      },
    ],
  });
  const secretFile = join(dir, 'client.secret');
  writeFileSync(secretFile, 'client-secret-of-the-test\n', { mode: 0o600 });
  ctl = await buildController({
    fleetDir,
    baseDir: (s) => `/etc/ovpn-fleet/${s}`,
    adminToken: 'admin-token-of-the-test',
    clock,
    timers: (ctlTimers = new FakeTimers(clock)),
    log: () => {},
    sso: (ssoOptions = {
      settings: settings(idp.caFile, secretFile, idp.issuer),
      publicUrl: base,
      pendingTtlMs: TTL_MS,
    }),
  });
  ctl.webSignIn!.onResult((r) => results.push(r));
  await ctl.app.listen({ host: '127.0.0.1', port: ctlPort });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await ctl?.close();
  await idp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

/** Another controller on the same store whose public URL is the first one's (callbacks land there). */
const secondController = () =>
  buildController({
    fleetDir: join(dir, 'fleet'),
    baseDir: (s) => `/etc/ovpn-fleet/${s}`,
    adminToken: 'admin-token-of-the-test',
    clock,
    log: () => {},
    sso: { ...ssoOptions!, publicUrl: base },
  });

const begin = (id: string, user: string) =>
  ctl!.webSignIn!.begin({ id, user, server: 'vpn11', remote: '198.51.100.7' });

describe('SSO at connect with a real provider and browser', () => {
  itNeeds(
    missing,
    'shows whose connection it is before the provider, and goes on only from its own page',
    async () => {
      const path = new URL(await begin('req-confirm', 'ann')).pathname;
      const shown = await ctl!.app.inject({ url: path });
      expect(shown.statusCode).toBe(200);
      expect(shown.body).toContain('<b>ann</b> to <b>vpn11</b> from <b>198.51.100.7</b>');
      expect(shown.headers['set-cookie']).toMatch(
        /; HttpOnly; SameSite=Strict; Path=\/sso\/start\//,
      );
      const token = /name="confirm" value="([^"]+)"/.exec(shown.body)![1];
      const cookie = String(shown.headers['set-cookie']).split(';')[0];
      const post = (headers: Record<string, string>, payload: string) =>
        ctl!.app.inject({
          method: 'POST',
          url: path,
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          payload,
        });
      // A form another site posts carries no SameSite=Strict cookie; a wrong token is refused.
      expect((await post({}, `confirm=${token}`)).statusCode).toBe(403);
      expect((await post({ cookie }, 'confirm=not-the-token')).statusCode).toBe(403);
      const go = await post({ cookie }, `confirm=${token}`);
      expect(go.statusCode).toBe(303);
      expect(go.headers.location?.startsWith(idp!.issuer)).toBe(true);
    },
    30_000,
  );

  itNeeds(
    missing,
    'signs in: the listener gets ok with the mapped groups, the result is audited, and the answer cannot be replayed',
    async () => {
      const added = await ctl!.app.inject({
        method: 'POST',
        url: '/v1/users',
        headers: { authorization: 'Bearer admin-token-of-the-test' },
        payload: { name: 'ann', groups: ['staff'] },
      });
      expect(added.statusCode, added.body).toBe(201);
      const url = await begin('req-ok', 'ann');
      expect(url).toMatch(new RegExp(`^${base}/sso/start/[A-Za-z0-9_-]{43}$`));
      const done = await signInWithBrowser(browser!, url, 'ann', PASSWORD.ann);
      expect(done.text).toContain('Signed in as ann');
      expect(done.status).toBe(200);
      expect(results.find((r) => r.id === 'req-ok')).toEqual({
        id: 'req-ok',
        ok: true,
        subject: 'sub-ann',
        email: 'ann@example.com',
        groups: ['eng', 'staff'],
      });
      const audit = await ctl!.app.inject({
        url: '/v1/audit?kind=sso.&user=ann',
        headers: { authorization: 'Bearer admin-token-of-the-test' },
      });
      const entries = audit.json<Record<string, unknown>[]>();
      expect(entries[0]).toMatchObject({
        actor: 'sso:sub-ann',
        action: 'sso.sign-in',
        subject: 'ann',
        detail: {
          server: 'vpn11',
          remote: '198.51.100.7',
          browser: '127.0.0.1',
          idpSubject: 'sub-ann',
          issuer: idp!.issuer,
          groups: ['eng', 'staff'],
        },
      });
      // The mapped groups are ann's session groups now, stored with the sign-in.
      const reader = await openFleet(join(dir, 'fleet'));
      try {
        expect((await reader.getUser('ann')).sessionGroups).toMatchObject({
          groups: ['eng', 'staff'],
        });
      } finally {
        await reader.close();
      }
      // The provider's answer again (the same code and state): already used.
      const replay = await fetch(done.url);
      expect(replay.status).toBe(409);
      expect(await replay.text()).toContain('already been completed');
      expect(results.filter((r) => r.id === 'req-ok')).toHaveLength(1);
    },
    60_000,
  );

  itNeeds(
    missing,
    'a wrong password stays at the provider: no result',
    async () => {
      const url = await begin('req-wrong', 'ann');
      const done = await signInWithBrowser(browser!, url, 'ann', 'not-her-password');
      expect(done.text).toContain('Invalid user or password');
      expect(results.find((r) => r.id === 'req-wrong')).toBeUndefined();
    },
    60_000,
  );

  itNeeds(
    missing,
    'a user outside the allowed groups is refused with the reason; so is another person than the VPN user',
    async () => {
      const done = await signInWithBrowser(
        browser!,
        await begin('req-bob', 'bob'),
        'bob',
        PASSWORD.bob,
      );
      expect(done.status).toBe(403);
      expect(done.text).toContain('bob is in none of the allowed groups (vpn-users)');
      expect(results.find((r) => r.id === 'req-bob')).toEqual({
        id: 'req-bob',
        ok: false,
        subject: 'sub-bob',
        reason: 'bob is in none of the allowed groups (vpn-users)',
      });
      const other = await signInWithBrowser(
        browser!,
        await begin('req-x', 'ann'),
        'bob',
        PASSWORD.bob,
      );
      expect(other.text).toContain('signed in as bob, but this connection is for VPN user ann');
      expect(results.find((r) => r.id === 'req-x')).toMatchObject({ ok: false });
    },
    60_000,
  );

  itNeeds(
    missing,
    'an expired sign-in is refused at the start page and at the callback',
    async () => {
      const stale = await begin('req-stale', 'ann');
      clock.advance(TTL_MS + 1000);
      const page = await fetch(stale);
      expect(page.status).toBe(410);
      expect(await page.text()).toContain('expired');

      const slow = await begin('req-slow', 'ann');
      const done = await signInWithBrowser(browser!, slow, 'ann', PASSWORD.ann, () =>
        clock.advance(TTL_MS + 1000),
      );
      expect(done.status).toBe(410);
      expect(done.text).toContain('sign-in expired');
      expect(results.find((r) => r.id === 'req-slow')).toEqual({
        id: 'req-slow',
        ok: false,
        reason: 'sign-in expired: connect again',
      });
    },
    60_000,
  );
});

describe('SSO across controllers sharing one store', () => {
  itNeeds(
    missing,
    'a sign-in begun on one controller and finished on another reaches the first one',
    async () => {
      // A second controller on the same store, whose public URL is the first one's: the
      // browser's callback lands on the first, the result must reach the second's listener.
      const other = await secondController();
      try {
        const got: WebSignInResult[] = [];
        const arrived = new Promise<void>((resolve) =>
          other.webSignIn!.onResult((r) => {
            got.push(r);
            resolve();
          }),
        );
        const url = await other.webSignIn!.begin({
          id: 'req-far',
          user: 'ann',
          server: 'vpn21',
          remote: '203.0.113.9',
        });
        const done = await signInWithBrowser(browser!, url, 'ann', PASSWORD.ann);
        expect(done.text).toContain('Signed in as ann');
        await arrived;
        expect(got).toEqual([
          {
            id: 'req-far',
            ok: true,
            subject: 'sub-ann',
            email: 'ann@example.com',
            groups: ['eng', 'staff'],
          },
        ]);
      } finally {
        await other.close();
      }
    },
    60_000,
  );
});

describe('SSO when the controller that began a sign-in dies', () => {
  itNeeds(
    missing,
    'another controller takes the sign-in over and hears its result',
    async () => {
      const dying = await secondController();
      const url = await dying.webSignIn!.begin({
        id: 'req-orphan',
        user: 'ann',
        server: 'vpn12',
        remote: '203.0.113.10',
      });
      await dying.close();
      expect(await ctl!.webSignIn!.adopt!('req-never')).toBeUndefined();
      const adopted = await ctl!.webSignIn!.adopt!('req-orphan');
      expect(adopted).toMatchObject({ user: 'ann', server: 'vpn12', remote: '203.0.113.10' });
      const done = await signInWithBrowser(browser!, url, 'ann', PASSWORD.ann);
      expect(done.text).toContain('Signed in as ann');
      // This controller's result poll runs on its fake timers: move them on until it is heard.
      const timers = ctlTimers!;
      for (let i = 0; i < 50 && !results.some((r) => r.id === 'req-orphan'); i++) {
        await timers.advance(500);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(results.find((r) => r.id === 'req-orphan')).toMatchObject({
        ok: true,
        groups: ['eng', 'staff'],
      });
    },
    60_000,
  );
});

describe('SSO pages without a provider', () => {
  itNeeds(
    missing,
    'answers an unknown start id, a callback without state or with an unknown one with 4xx pages',
    async () => {
      if (!ctl) throw new Error('no controller');
      const unknown = await ctl.app.inject({ url: `/sso/start/${'x'.repeat(43)}` });
      expect(unknown.statusCode).toBe(404);
      expect(unknown.headers['content-type']).toMatch(/^text\/html/);
      expect((await ctl.app.inject({ url: '/sso/callback?code=1' })).statusCode).toBe(400);
      expect((await ctl.app.inject({ url: '/sso/callback?code=1&state=nope' })).statusCode).toBe(
        404,
      );
    },
  );

  it('has no /sso routes without auth.sso', async () => {
    const plain = mkdtempSync(join(tmpdir(), 'ovf-sso-none-'));
    try {
      await (await initFleet(plain)).close();
      const c = await buildController({
        fleetDir: plain,
        baseDir: (s) => `/etc/ovpn-fleet/${s}`,
        adminToken: 'admin-token-of-the-test',
        clock,
        timers: new FakeTimers(clock),
        log: () => {},
      });
      try {
        expect(c.webSignIn).toBeUndefined();
        const r = await c.app.inject({
          url: `/sso/start/${'x'.repeat(43)}`,
          headers: { authorization: 'Bearer admin-token-of-the-test' },
        });
        expect(r.json()).toEqual({ error: `no route GET /sso/start/${'x'.repeat(43)}` });
      } finally {
        await c.close();
      }
    } finally {
      rmSync(plain, { recursive: true, force: true });
    }
  }, 30_000);

  it("takes auth.sso from fleet.yaml: an agent's sign-in for a user is sent to /sso/start", async () => {
    const fleetDir = mkdtempSync(join(tmpdir(), 'ovf-sso-spec-'));
    try {
      const secretFile = join(fleetDir, 'client.secret');
      writeFileSync(secretFile, 'a-secret\n', { mode: 0o600 });
      const yaml = `${EXAMPLE_FLEET_YAML}auth:
  sso:
    issuer: https://idp.example.test/realms/corp
    clientId: ovpn-fleet
    clientSecretFile: ${secretFile}
    publicUrl: https://vpn.example.test
`;
      const fleet = await initFleet(fleetDir, { yaml });
      await fleet.addUsers([{ name: 'ann' }], { issueCerts: false });
      const agentToken = await fleet.agentToken('vpn11');
      await fleet.close();
      const c = await buildController({
        fleetDir,
        baseDir: (s) => `/etc/ovpn-fleet/${s}`,
        adminToken: 'admin-token-of-the-test',
        clock,
        timers: new FakeTimers(clock),
        log: () => {},
      });
      try {
        expect(c.webSignIn).toBeInstanceOf(OidcWebSignIn);
        const r = await c.app.inject({
          method: 'POST',
          url: '/v1/agent/auth/begin',
          headers: { authorization: `Bearer ${agentToken}` },
          payload: { user: 'ann', realAddress: '198.51.100.7:51000' },
        });
        expect(r.statusCode, r.body).toBe(200);
        expect(r.json<{ url: string }>().url).toMatch(
          /^https:\/\/vpn\.example\.test\/sso\/start\/[A-Za-z0-9_-]{43}$/,
        );
      } finally {
        await c.close();
      }
    } finally {
      rmSync(fleetDir, { recursive: true, force: true });
    }
  }, 30_000);

  it('refuses an http issuer and email matching without allowed domains', () => {
    const dir2 = mkdtempSync(join(tmpdir(), 'ovf-sso-cfg-'));
    try {
      const secret = join(dir2, 's');
      writeFileSync(secret, 'x\n');
      const make = (s: Partial<OidcSettings>) =>
        new OidcWebSignIn({
          settings: { ...settings('', secret, 'https://idp.example.com'), caFile: undefined, ...s },
          publicUrl: 'https://vpn.example.com',
          store: {} as never,
          clock,
        });
      expect(() => make({ issuer: 'http://idp.example.com' })).toThrow(/not an https URL/);
      expect(() => make({ userClaim: 'email' })).toThrow(/auth\.sso\.allowedDomains/);
      expect(() => make({ clientSecretFile: join(dir2, 'none') })).toThrow(
        /auth\.sso\.clientSecretFile: cannot read .*none: ENOENT/,
      );
      const rp = make({ allowedDomains: ['Example.com'], userClaim: 'email' });
      const claims = {
        sub: 's1',
        email: 'ann@example.com',
        email_verified: true,
        groups: ['vpn-users'],
      };
      expect(rp.judge({ requestId: 'r', user: 'ann' }, claims).result).toMatchObject({ ok: true });
      expect(
        rp.judge({ requestId: 'r', user: 'ann' }, { ...claims, email: 'ann@evil.example' }).result,
      ).toMatchObject({ ok: false, reason: 'email domain evil.example is not allowed' });
      expect(
        rp.judge({ requestId: 'r', user: 'ann' }, { ...claims, email_verified: false }).result,
      ).toMatchObject({ ok: false, reason: 'the identity provider gave no verified email' });
      // No groups at all (claim missing or empty) is refused where allowedGroups is set, so it
      // never becomes session groups; without allowedGroups it passes with none (the spec's
      // groups then stay: core/session-groups.ts).
      const noGroups: Partial<typeof claims> = { ...claims };
      delete noGroups.groups;
      expect(rp.judge({ requestId: 'r', user: 'ann' }, noGroups).result).toMatchObject({
        ok: false,
        reason: 'ann is in none of the allowed groups (vpn-users)',
      });
      expect(
        make({ allowedDomains: ['example.com'], userClaim: 'email', allowedGroups: [] }).judge(
          { requestId: 'r', user: 'ann' },
          { ...claims, groups: [] },
        ).result,
      ).toMatchObject({ ok: true, groups: [] });
      // A provider that does not say the address is verified is not taken at its word.
      const unsaid: Partial<typeof claims> = { ...claims };
      delete unsaid.email_verified;
      expect(rp.judge({ requestId: 'r', user: 'ann' }, unsaid).result).toMatchObject({
        ok: false,
        reason: 'the identity provider gave no verified email',
      });
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
