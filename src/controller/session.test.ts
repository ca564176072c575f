/**
 * Admin accounts through the controller: sign-in, cookie, CSRF, roles, idle timeout, rate
 * limit, one-time passwords — buildController on a real store, fastify inject, a ManualClock.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Controller, type ControllerOptions, buildController } from './app.js';
import { initFleet, openFleet } from '../service/open.js';
import { selfSignedCert } from '../testing.js';
import { FakeTimers, ManualClock } from './testing.js';

const TOKEN = 'admin-token-for-tests';
const bearer = { authorization: `Bearer ${TOKEN}` };
const PASSWORD = {
  ann: 'ann-the-admin-pw',
  olga: 'olga-operates-it',
  vic: 'vic-only-watches',
};
const MINUTE = 60_000;

let template: string;
let ottoOneTime: string;
const cleanup: (() => unknown)[] = [];

beforeAll(async () => {
  template = mkdtempSync(join(tmpdir(), 'ovf-session-template-'));
  await (await initFleet(template)).close();
  const fleet = await openFleet(template, { actor: 'cli:root' });
  try {
    await fleet.admins.add('ann', 'admin', PASSWORD.ann);
    await fleet.admins.add('olga', 'operator', PASSWORD.olga);
    await fleet.admins.add('vic', 'viewer', PASSWORD.vic);
    ottoOneTime = (await fleet.admins.add('otto', 'operator')).oneTimePassword!;
  } finally {
    await fleet.close();
  }
}, 60_000);
afterAll(() => rmSync(template, { recursive: true, force: true }));
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Setup {
  ctl: Controller;
  clock: ManualClock;
  dir: string;
}

async function setup(options: Partial<ControllerOptions> = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-session-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(template, dir, { recursive: true });
  const clock = new ManualClock();
  const ctl = await buildController({
    fleetDir: dir,
    baseDir: (s) => `/etc/ovpn-fleet/${s}`,
    adminToken: TOKEN,
    clock,
    timers: new FakeTimers(clock),
    log: () => {},
    ...options,
  });
  cleanup.push(() => ctl.close());
  return { ctl, clock, dir };
}

type Inject = Controller['app']['inject'];
type Res = Awaited<ReturnType<Inject>>;

function signIn(ctl: Controller, name: string, password: string, remoteAddress = '192.0.2.10') {
  return ctl.app.inject({
    method: 'POST',
    url: '/v1/session',
    payload: { name, password },
    remoteAddress,
  });
}

/** A signed-in browser: its cookie and CSRF token, and requests that send them. */
interface Browser {
  cookie: string;
  csrf: string;
  get(url: string): Promise<Res>;
  /** A change with the CSRF header (unless `csrf` says otherwise). */
  send(
    method: 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: object,
    csrf?: string | null,
  ): Promise<Res>;
}

async function browser(
  ctl: Controller,
  name: keyof typeof PASSWORD | 'otto',
  password?: string,
): Promise<Browser> {
  const r = await signIn(ctl, name, password ?? PASSWORD[name as keyof typeof PASSWORD]);
  expect(r.statusCode, r.body).toBe(200);
  const cookie = String(r.headers['set-cookie']).split(';')[0];
  const csrf = r.json().csrfToken as string;
  return {
    cookie,
    csrf,
    get: (url) => ctl.app.inject({ url, headers: { cookie } }),
    send: (method, url, payload, token = csrf) =>
      ctl.app.inject({
        method,
        url,
        headers: { cookie, ...(token !== null ? { 'x-csrf-token': token } : {}) },
        ...(payload ? { payload } : {}),
      }),
  };
}

function expectError(r: Res, status: number, re: RegExp) {
  expect(r.statusCode, r.body).toBe(status);
  const { error } = r.json();
  expect(error).toMatch(re);
  expect(error).not.toContain('\n');
}

async function audit(ctl: Controller, n = 50) {
  const r = await ctl.app.inject({ url: `/v1/audit?limit=${n}`, headers: bearer });
  return r.json<{ actor: string; action: string; subject: string; detail?: object }[]>();
}

describe('sign-in', { timeout: 60_000 }, () => {
  it('sets an HttpOnly, SameSite=Strict cookie (Secure only over HTTPS) and says who is signed in', async () => {
    const { ctl } = await setup();
    const r = await signIn(ctl, 'ann', PASSWORD.ann);
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body).toEqual({
      name: 'ann',
      role: 'admin',
      csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      mustChangePassword: false,
    });
    const cookie = String(r.headers['set-cookie']);
    expect(cookie).toMatch(
      /^ovpn_fleet_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/,
    );
    expect(r.headers['cache-control']).toBe('no-store');
    const me = await ctl.app.inject({
      url: '/v1/session',
      headers: { cookie: cookie.split(';')[0] },
    });
    expect(me.json()).toEqual(body);

    const dir = mkdtempSync(join(tmpdir(), 'ovf-tls-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const files = selfSignedCert(dir, 'controller');
    const tls = await setup({
      https: { cert: readFile(files.cert), key: readFile(files.key) },
    });
    const secure = await signIn(tls.ctl, 'ann', PASSWORD.ann);
    const tlsCookie = String(secure.headers['set-cookie']);
    // Under TLS the __Host- prefix: a sibling subdomain cannot plant a session cookie.
    expect(tlsCookie).toMatch(
      /^__Host-ovpn_fleet_session=[\w-]{43}; HttpOnly; SameSite=Strict; Path=\/; Secure$/,
    );
    const session = tlsCookie.split(';')[0];
    const tlsMe = await tls.ctl.app.inject({ url: '/v1/session', headers: { cookie: session } });
    expect(tlsMe.statusCode).toBe(200);
    // The bare name is not a session on a TLS controller.
    const planted = await tls.ctl.app.inject({
      url: '/v1/session',
      headers: { cookie: session.replace('__Host-', '') },
    });
    expect(planted.statusCode).toBe(401);
  });

  it('refuses hostile or malformed input with a 400 naming the field, before any account is touched', async () => {
    const { ctl } = await setup();
    const post = (payload: unknown, headers: Record<string, string> = {}) =>
      ctl.app.inject({ method: 'POST', url: '/v1/session', payload: payload as string, headers });
    expectError(
      await post({ name: 'ann\u001b[2J', password: 'x' }),
      400,
      /^name: "ann\\u001b\[2J" is not a valid admin name/,
    );
    expectError(
      await post({ name: 'ann', password: 'p'.repeat(10_000) }),
      400,
      /^body\.password: must be at most 1024 characters long \(got 10000 characters\)$/,
    );
    expectError(
      await post({ name: 42, password: 'x' }),
      400,
      /^body\.name: must be a string, got 42$/,
    );
    expectError(await post({ name: 'ann' }), 400, /^body\.password: is required$/);
    expectError(
      await post({ name: 'ann', password: 'x', role: 'admin' }),
      400,
      /^body\.role: is not a known field \(fields here: name, password\)$/,
    );
    expectError(
      await post({ name: 'a'.repeat(65), password: 'x' }),
      400,
      /^body\.name: must be at most 64 characters long \(got 65 characters\)$/,
    );
    // A form (which any site can make a browser post) cannot sign in: login CSRF.
    expectError(
      await post(`name=ann&password=${PASSWORD.ann}`, {
        'content-type': 'application/x-www-form-urlencoded',
      }),
      400,
      /^content-type: must be application\/json$/,
    );
    expect((await audit(ctl)).filter((e) => e.action.startsWith('admin.login'))).toEqual([]);
  });

  it('answers a wrong password and an unknown name alike, audits both without the password', async () => {
    const { ctl } = await setup();
    const wrong = await signIn(ctl, 'ann', 'not-her-password');
    const unknown = await signIn(ctl, 'nobody', 'not-her-password');
    expect([wrong.statusCode, wrong.json()]).toEqual([401, { error: 'wrong name or password' }]);
    expect([unknown.statusCode, unknown.json()]).toEqual([
      401,
      { error: 'wrong name or password' },
    ]);
    expect(wrong.headers['set-cookie']).toBeUndefined();
    await browser(ctl, 'ann');
    const log = await audit(ctl);
    expect(log.slice(0, 3).map((e) => [e.actor, e.action, e.subject, e.detail])).toEqual([
      ['console:ann', 'admin.login', 'ann', { address: '192.0.2.10' }],
      [
        'console',
        'admin.login-failed',
        '(unknown name)',
        { reason: 'unknown name', address: '192.0.2.10' },
      ],
      ['console', 'admin.login-failed', 'ann', { reason: 'wrong password', address: '192.0.2.10' }],
    ]);
    const text = JSON.stringify(log);
    for (const secret of ['not-her-password', PASSWORD.ann, 'nobody'])
      expect(text).not.toContain(secret);
  });

  it('rate-limits failures per account (429, Retry-After) until the window has passed', async () => {
    const { ctl, clock } = await setup();
    for (let i = 0; i < 5; i++)
      expect((await signIn(ctl, 'vic', `wrong-${i}`)).statusCode).toBe(401);
    const limited = await signIn(ctl, 'vic', PASSWORD.vic);
    expectError(limited, 429, /^too many failed sign-ins: try again in 900 s$/);
    expect(limited.headers['retry-after']).toBe('900');
    // Unknown names are limited the same way: the limit tells nothing about who exists.
    for (let i = 0; i < 5; i++) await signIn(ctl, 'ghost', `wrong-${i}`, '198.51.100.1');
    expect((await signIn(ctl, 'ghost', 'x', '198.51.100.1')).statusCode).toBe(429);
    // Another account is not locked out by vic's failures.
    expect((await signIn(ctl, 'ann', PASSWORD.ann)).statusCode).toBe(200);
    clock.advance(10 * MINUTE);
    expect((await signIn(ctl, 'vic', PASSWORD.vic)).headers['retry-after']).toBe('300');
    clock.advance(5 * MINUTE);
    expect((await signIn(ctl, 'vic', PASSWORD.vic)).statusCode).toBe(200);
    const reasons = (await audit(ctl, 100))
      .filter((e) => e.action === 'admin.login-failed')
      .map((e) => (e.detail as { reason: string }).reason);
    // One entry per key going over its limit (vic, ghost), not one per refused request.
    expect(reasons.filter((r) => r === 'rate limited')).toHaveLength(2);
    expect(reasons).toHaveLength(12);
  });

  it('a flood of refused sign-ins writes one audit entry per over-limit key and window', async () => {
    const { ctl, clock } = await setup();
    for (let i = 0; i < 5; i++) await signIn(ctl, 'vic', `wrong-${i}`);
    for (let i = 0; i < 40; i++)
      expect((await signIn(ctl, 'vic', `flood-${i}`)).statusCode).toBe(429);
    const limited = async () =>
      (await audit(ctl, 200)).filter(
        (e) => (e.detail as { reason?: string } | undefined)?.reason === 'rate limited',
      );
    expect((await limited()).map((e) => [e.subject, e.detail])).toEqual([
      ['vic', { reason: 'rate limited', address: '192.0.2.10', retryAfter: 900 }],
    ]);
    // Over the limit again in a later window: one more entry.
    clock.advance(15 * MINUTE);
    for (let i = 0; i < 5; i++) await signIn(ctl, 'vic', `wrong-${i}`);
    for (let i = 0; i < 10; i++) await signIn(ctl, 'vic', `flood-${i}`);
    expect(await limited()).toHaveLength(2);
  });

  it('counts concurrent attempts: a burst gets no more password checks than the limit', async () => {
    const { ctl } = await setup({ loginLimit: { maxConcurrentChecks: 8 } });
    const burst = await Promise.all(
      Array.from({ length: 8 }, (_, i) => signIn(ctl, 'olga', `wrong-${i}`)),
    );
    expect(burst.map((r) => r.statusCode).sort()).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
  });

  it('checks at most two passwords at once: beyond, a 429 at once, neither counted nor audited', async () => {
    const { ctl } = await setup();
    const burst = await Promise.all(
      Array.from({ length: 6 }, (_, i) => signIn(ctl, 'olga', `wrong-${i}`)),
    );
    expect(burst.map((r) => r.statusCode).sort()).toEqual([401, 401, 429, 429, 429, 429]);
    expect(burst.find((r) => r.statusCode === 429)!.headers['retry-after']).toBe('1');
    const failed = (await audit(ctl)).filter((e) => e.action === 'admin.login-failed');
    expect(failed).toHaveLength(2);
    // Only the two checked attempts count towards olga's limit of 5.
    for (let i = 0; i < 3; i++) expect((await signIn(ctl, 'olga', 'wrong')).statusCode).toBe(401);
    expect((await signIn(ctl, 'olga', PASSWORD.olga)).statusCode).toBe(429);
  });

  it('rate-limits failures per client address over all names', async () => {
    const { ctl } = await setup({ loginLimit: { perAddress: 3 } });
    for (const name of ['a1', 'a2', 'a3']) await signIn(ctl, name, 'wrong', '203.0.113.5');
    expect((await signIn(ctl, 'ann', PASSWORD.ann, '203.0.113.5')).statusCode).toBe(429);
    expect((await signIn(ctl, 'ann', PASSWORD.ann, '203.0.113.6')).statusCode).toBe(200);
  });
});

describe('sessions on the API', { timeout: 60_000 }, () => {
  it('viewer reads but gets 403 on writes; operator drains but cannot add users; admin can; actors are audited', async () => {
    const { ctl } = await setup();
    const vic = await browser(ctl, 'vic');
    const olga = await browser(ctl, 'olga');
    const ann = await browser(ctl, 'ann');
    expect((await vic.get('/v1/users')).statusCode).toBe(200);
    expect((await vic.get('/v1/servers')).statusCode).toBe(200);
    expectError(
      await vic.send('POST', '/v1/users', { name: 'carl' }),
      403,
      /needs the admin role \(console:vic is viewer\)/,
    );
    expectError(await vic.send('POST', '/v1/servers/vpn11/drain'), 403, /needs the operator role/);
    expectError(
      await olga.send('POST', '/v1/users', { name: 'carl' }),
      403,
      /needs the admin role \(console:olga is operator\)/,
    );
    expect((await olga.send('POST', '/v1/servers/vpn11/drain')).json()).toMatchObject({
      name: 'vpn11',
      draining: true,
    });
    expect((await ann.send('POST', '/v1/users', { name: 'carl' })).statusCode).toBe(201);
    expect((await ann.send('POST', '/v1/servers/vpn11/undrain')).statusCode).toBe(200);
    // The admin token: no CSRF token needed, and audited as before.
    const viaToken = await ctl.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: bearer,
      payload: { name: 'dora' },
    });
    expect(viaToken.statusCode).toBe(201);
    const tokenDrain = await ctl.app.inject({
      method: 'POST',
      url: '/v1/servers/vpn12/drain',
      headers: bearer,
    });
    expect(tokenDrain.statusCode).toBe(200);
    const log = (await audit(ctl)).filter((e) => /^(user\.add|server\.)/.test(e.action));
    expect(log.map((e) => [e.actor, e.action, e.subject])).toEqual([
      ['api:admin', 'server.drain', 'vpn12'],
      ['api:admin', 'user.add', 'dora'],
      ['console:ann', 'server.undrain', 'vpn11'],
      ['console:ann', 'user.add', 'carl'],
      ['console:olga', 'server.drain', 'vpn11'],
    ]);
  });

  it('a change with the cookie needs the CSRF token: missing or wrong is 403, right is OK', async () => {
    const { ctl } = await setup();
    const olga = await browser(ctl, 'olga');
    expectError(
      await olga.send('POST', '/v1/servers/vpn11/drain', undefined, null),
      403,
      /^missing x-csrf-token header/,
    );
    expectError(
      await olga.send('POST', '/v1/servers/vpn11/drain', undefined, 'guess'),
      403,
      /^wrong x-csrf-token header/,
    );
    const other = await browser(ctl, 'vic');
    expectError(
      await olga.send('POST', '/v1/servers/vpn11/drain', undefined, other.csrf),
      403,
      /^wrong x-csrf-token/,
    );
    expect((await ctl.app.inject({ url: '/v1/servers', headers: bearer })).json()[0].draining).toBe(
      false,
    );
    expect((await olga.send('POST', '/v1/servers/vpn11/drain')).statusCode).toBe(200);
    // A form post carries it in _csrf.
    const form = (csrf: string) =>
      ctl.app.inject({
        method: 'POST',
        url: '/v1/servers/vpn11/undrain',
        headers: { cookie: olga.cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: `_csrf=${encodeURIComponent(csrf)}`,
      });
    expectError(await form('guess'), 403, /^missing or wrong _csrf field/);
    expect((await form(olga.csrf)).json()).toMatchObject({ draining: false });
  });

  it('signing in again with a session cookie ends the previous session', async () => {
    const { ctl } = await setup();
    const first = await browser(ctl, 'vic');
    const again = await ctl.app.inject({
      method: 'POST',
      url: '/v1/session',
      payload: { name: 'ann', password: PASSWORD.ann },
      headers: { cookie: first.cookie },
    });
    expect(again.statusCode).toBe(200);
    expectError(await first.get('/v1/session'), 401, /^no such session/);
    const cookie = String(again.headers['set-cookie']).split(';')[0];
    expect((await ctl.app.inject({ url: '/v1/session', headers: { cookie } })).json().name).toBe(
      'ann',
    );
  });

  it('signs out: the cookie is dropped and the session gone', async () => {
    const { ctl } = await setup();
    const vic = await browser(ctl, 'vic');
    expectError(await vic.send('DELETE', '/v1/session', undefined, null), 403, /x-csrf-token/);
    const out = await vic.send('DELETE', '/v1/session');
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toBe(
      'ovpn_fleet_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0',
    );
    const after = await vic.get('/v1/session');
    expectError(after, 401, /^no such session/);
    expect(String(after.headers['set-cookie'])).toMatch(/Max-Age=0/);
    expect((await audit(ctl, 1))[0]).toMatchObject({
      actor: 'console:vic',
      action: 'admin.logout',
      detail: { reason: 'logout' },
    });
    // The token has no session to show or end.
    expectError(await ctl.app.inject({ url: '/v1/session', headers: bearer }), 404, /bearer token/);
  });

  it('ends a session idle for the timeout (injected clock), and after its lifetime', async () => {
    const { ctl, clock } = await setup({ consoleIdleTimeoutMs: 5 * MINUTE });
    const vic = await browser(ctl, 'vic');
    clock.advance(4 * MINUTE);
    expect((await vic.get('/v1/session')).statusCode).toBe(200);
    clock.advance(4 * MINUTE);
    expect((await vic.get('/v1/users')).statusCode).toBe(200);
    clock.advance(5 * MINUTE);
    expectError(await vic.get('/v1/users'), 401, /^session ended after 5 minutes without activity/);
    expectError(await vic.get('/v1/users'), 401, /^no such session/);

    const busy = await setup();
    const ann = await browser(busy.ctl, 'ann');
    for (let h = 0; h < 11; h++) {
      busy.clock.advance(20 * MINUTE);
      expect((await ann.get('/v1/session')).statusCode).toBe(200);
      busy.clock.advance(20 * MINUTE);
      expect((await ann.get('/v1/session')).statusCode).toBe(200);
      busy.clock.advance(20 * MINUTE);
      expect((await ann.get('/v1/session')).statusCode).toBe(200);
    }
    busy.clock.advance(20 * MINUTE);
    expect((await ann.get('/v1/session')).statusCode).toBe(200);
    busy.clock.advance(20 * MINUTE);
    expect((await ann.get('/v1/session')).statusCode).toBe(200);
    busy.clock.advance(20 * MINUTE);
    expectError(await ann.get('/v1/session'), 401, /^session ended after 12 hours: sign in again$/);
    const again = await browser(busy.ctl, 'ann');
    busy.clock.advance(31 * MINUTE);
    expectError(
      await again.get('/v1/session'),
      401,
      /^session ended after 30 minutes without activity/,
    );
  });

  it('a removed or demoted admin (by the CLI, another process) loses its sessions at once', async () => {
    const { ctl, dir } = await setup();
    const olga = await browser(ctl, 'olga');
    const vic = await browser(ctl, 'vic');
    const cli = await openFleet(dir, { actor: 'cli:root' });
    try {
      await cli.admins.setRole('olga', 'viewer');
      await cli.admins.remove('vic');
    } finally {
      await cli.close();
    }
    expectError(await olga.get('/v1/users'), 401, /^no such session/);
    expectError(await vic.get('/v1/users'), 401, /^no such session/);
    const again = await browser(ctl, 'olga');
    expectError(
      await again.send('POST', '/v1/servers/vpn11/drain'),
      403,
      /needs the operator role/,
    );
    expect((await signIn(ctl, 'vic', PASSWORD.vic)).statusCode).toBe(401);
  });

  it('an unknown cookie is a 401; an agent route wants its token even with a cookie', async () => {
    const { ctl } = await setup();
    const fake = { cookie: `ovpn_fleet_session=${'A'.repeat(43)}` };
    expectError(await ctl.app.inject({ url: '/v1/users', headers: fake }), 401, /^no such session/);
    const ann = await browser(ctl, 'ann');
    expectError(
      await ctl.app.inject({ url: '/v1/agent/poll', headers: { cookie: ann.cookie } }),
      401,
      /missing bearer token/,
    );
  });
});

describe("changing one's own password", { timeout: 60_000 }, () => {
  it('a refused new password neither counts as a failure nor clears the failures counted', async () => {
    const { ctl } = await setup();
    const ann = await browser(ctl, 'ann');
    const change = (current: string, next: string) =>
      ann.send('POST', '/v1/session/password', { current, next });
    for (let i = 0; i < 4; i++)
      expectError(await change(`wrong-${i}`, 'a-new-password-1'), 400, /^current: is not/);
    expectError(await change(PASSWORD.ann, 'short'), 400, /^next: must be at least 12/);
    expectError(await change(PASSWORD.ann, PASSWORD.ann), 400, /^next: must differ/);
    expectError(await change('wrong-4', 'a-new-password-1'), 400, /^current: is not/);
    // Five failures of ann's: the bad new passwords did not wipe them.
    expectError(await change(PASSWORD.ann, 'a-new-password-1'), 429, /^too many failed/);
  });
});

describe('one-time passwords', { timeout: 60_000 }, () => {
  it('allow only changing the password; the change needs the current one and ends the other sessions', async () => {
    const { ctl } = await setup();
    const first = await browser(ctl, 'otto', ottoOneTime);
    const second = await browser(ctl, 'otto', ottoOneTime);
    expect((await first.get('/v1/session')).json()).toMatchObject({
      name: 'otto',
      role: 'operator',
      mustChangePassword: true,
    });
    expectError(await first.get('/v1/users'), 403, /one-time password: change it first/);
    expectError(await first.send('POST', '/v1/servers/vpn11/drain'), 403, /one-time password/);
    const change = (current: string, next: string, csrf: string | null = first.csrf) =>
      first.send('POST', '/v1/session/password', { current, next }, csrf);
    expectError(await change(ottoOneTime, 'otto-new-password', null), 403, /x-csrf-token/);
    expectError(
      await change('not the password', 'otto-new-password'),
      400,
      /^current: is not the current password$/,
    );
    expectError(
      await change(ottoOneTime, 'too-short'),
      400,
      /^next: must be at least 12 characters/,
    );
    expectError(
      await change(ottoOneTime, 'p'.repeat(10_000)),
      400,
      /^body\.next: must be at most 1024 characters long/,
    );
    expectError(
      await change(ottoOneTime, 'line\nbreak in it'),
      400,
      /^next: must not contain control characters/,
    );
    const ok = await change(ottoOneTime, 'otto-new-password');
    expect(ok.json()).toEqual({
      name: 'otto',
      role: 'operator',
      csrfToken: first.csrf,
      mustChangePassword: false,
    });
    expect((await first.get('/v1/users')).statusCode).toBe(200);
    expect((await first.send('POST', '/v1/servers/vpn11/drain')).statusCode).toBe(200);
    expectError(await second.get('/v1/session'), 401, /^no such session/);
    expect((await signIn(ctl, 'otto', ottoOneTime)).statusCode).toBe(401);
    expect((await signIn(ctl, 'otto', 'otto-new-password')).statusCode).toBe(200);
    const log = await audit(ctl);
    expect(log.find((e) => e.action === 'admin.password')).toMatchObject({
      actor: 'console:otto',
      subject: 'otto',
      detail: { mustChangePassword: false, sessionsEnded: 1 },
    });
    const text = JSON.stringify(log);
    for (const secret of [
      ottoOneTime,
      'otto-new-password',
      'not the password',
      first.csrf,
      first.cookie.split('=')[1],
    ])
      expect(text).not.toContain(secret);
  });
});

function readFile(path: string): Buffer {
  return readFileSync(path);
}
