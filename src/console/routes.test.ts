import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { TOTP, URI } from 'otpauth';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Role, SessionInfo, SessionReport, User } from '../api/index.js';
import { createHttp } from '../controller/http.js';
import { totpRoutes } from '../controller/routes/auth.js';
import { signInRoutes } from '../controller/routes/session.js';
import { userRoutes } from '../controller/routes/users.js';
import { ControllerState } from '../controller/state.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from '../controller/testing.js';
import type { EventStreams } from './events.js';
import { CONTENT_SECURITY_POLICY, type ConsoleOptions, consoleRoutes } from './routes.js';

const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };
const AUTH = { authorization: 'Bearer admin-token' };
const HOSTILE = '"><script>alert(1)</script>';

let t: ControllerFleet;
let timers: FakeTimers;
let state: ControllerState;
let app: FastifyInstance;
let streams: EventStreams;
let jsDir: string;
let ann: User;

async function start(more: Partial<ConsoleOptions> = {}): Promise<void> {
  app = await createHttp({}, { tokens: state.auth, sessions: state.consoleSessions }, () => {});
  // The routes a signed-in person's browser calls besides the pages (as app.ts mounts them).
  signInRoutes(app, state, { secure: false });
  userRoutes(app, state);
  totpRoutes(app, state);
  streams = consoleRoutes(app, state, {
    clock: t.clock,
    timers,
    csrfToken: (req) => req.who?.session?.csrfToken,
    assetDirs: { css: fileURLToPath(new URL('./assets', import.meta.url)), js: jsDir },
    ...more,
  });
  await app.ready();
}

beforeEach(async () => {
  t = await controllerFleet();
  [ann] = await t.fleet.addUsers([{ name: 'ann', groups: [] }], { issueCerts: false });
  timers = new FakeTimers(t.clock);
  state = new ControllerState(t.fleet, t.changes, t.clock, timers, {
    fleetDir: t.dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'admin-token',
    log: () => {},
  });
  await state.refresh();
  jsDir = mkdtempSync(join(tmpdir(), 'ovf-console-js-'));
  writeFileSync(join(jsDir, 'console.js'), 'export {};\n');
  await start();
  signedIn.clear();
});

afterEach(async () => {
  await app.close();
  await state.close();
  await t.cleanup();
  rmSync(jsDir, { recursive: true, force: true });
});

async function annOnline(realAddress = '198.51.100.7:40000'): Promise<void> {
  const session: SessionReport = {
    user: 'ann',
    realAddress,
    ipv4: ann.ipv4,
    since: new Date(t.clock.now().getTime() - 60_000).toISOString(),
    bytesIn: 1234,
    bytesOut: 5678,
    clientId: 3,
  };
  await state.report('vpn11', { sessions: [session], health: HEALTHY, bundleDigest: 'applied' });
}

/** Markup with white space squeezed, so assertions need not follow the templates' layout. */
const flat = (s: string) => s.replace(/\s+/g, ' ').replace(/> </g, '><').replace(/ >/g, '>');

const PASSWORD = 'correct horse battery';

/** Session headers (cookie, CSRF token) of a real account of each role, signed in once. */
const signedIn = new Map<Role, { cookie: string; 'x-csrf-token': string }>();

async function signIn(name: string, password: string) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/session',
    headers: { 'content-type': 'application/json' },
    payload: { name, password },
  });
  expect(res.statusCode, res.body).toBe(200);
  const cookie = String(res.headers['set-cookie']).split(';')[0];
  return { cookie, info: res.json<SessionInfo>() };
}

async function session(role: Role) {
  let headers = signedIn.get(role);
  if (!headers) {
    await state.fleet.admins.add(`${role}-1`, role, PASSWORD);
    const { cookie, info } = await signIn(`${role}-1`, PASSWORD);
    headers = { cookie, 'x-csrf-token': info.csrfToken };
    signedIn.set(role, headers);
  }
  return headers;
}

/** A page as the admin token, or as a signed-in account of `role`. */
async function page(url: string, role?: Role) {
  const res = await app.inject({ url, headers: role ? await session(role) : AUTH });
  return { statusCode: res.statusCode, headers: res.headers, body: flat(res.body) };
}

describe('console pages', () => {
  const pages = [
    ['/console', 'Overview of'],
    ['/console/sessions', 'Sessions'],
    ['/console/users', 'Users'],
    ['/console/users/ann', 'User ann'],
    ['/console/routes', 'Routes'],
    ['/console/policy', 'Policy'],
    ['/console/pki', 'PKI'],
    ['/console/audit', 'Audit log'],
  ] as const;

  it.each(pages)('%s renders a whole page with a strict CSP', async (url, title) => {
    const res = await page(url);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toMatch(/^<!doctype html><html lang="en">/);
    expect(res.body).toContain(`<h1>${title}`);
    expect(res.body).toContain('<meta name="csrf-token"');
    expect(res.body).toContain('<a class="skip" href="#main">');
    expect(res.body).toContain('aria-live="polite"');
    // No inline script or style anywhere: the CSP would refuse them.
    expect(res.body).not.toMatch(/<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=/i);
  });

  it('answers only the live region for ?fragment=1', async () => {
    await annOnline();
    const res = await page('/console/sessions?fragment=1');
    expect(res.statusCode).toBe(200);
    expect(res.body).not.toContain('<html');
    expect(res.body).not.toContain('<form');
    expect(res.body).toContain('data-testid="session-row" data-user="ann" data-server="vpn11"');
  });

  it('shows the servers, load balancers and CRL on the Overview, and a session as it arrives', async () => {
    let body = (await page('/console')).body;
    expect(body).toContain('<svg class="cluster" role="img"');
    expect(body).toContain('198.51.100.10'); // dc1's load balancer in the example fleet
    expect(body).toMatch(/data-testid="crl"> ?CRL #\d+ next update/);
    expect(body).toContain('never reported');
    expect(body).toContain('0 sessions on 6 servers');
    await annOnline();
    body = (await page('/console')).body;
    expect(body).toContain('1 sessions on 6 servers');
    expect(body).toMatch(
      /data-server="vpn11">\s*<rect[^>]*><\/rect>\s*<text[^>]*>vpn11<\/text>\s*<text[^>]*>1 session</,
    );
    expect(body).toContain('<span class="badge badge-ok">healthy</span>');
  });

  it('lists sessions and filters them by user, server and site on the server', async () => {
    await annOnline();
    expect((await page('/console/sessions?server=vpn11')).body).toContain('data-user="ann"');
    expect((await page('/console/sessions?site=dc1')).body).toContain('data-user="ann"');
    expect((await page('/console/sessions?user=AN')).body).toContain('data-user="ann"');
    const other = (await page('/console/sessions?server=vpn21')).body;
    expect(other).not.toContain('data-user="ann"');
    expect(other).toContain('0 sessions of 1.');
  });

  it('searches and pages users on the server', async () => {
    await t.fleet.addUsers(
      Array.from({ length: 60 }, (_, i) => ({
        name: `u${String(i).padStart(2, '0')}`,
        groups: ['dba'],
      })),
      { issueCerts: false },
    );
    const first = (await page('/console/users')).body;
    expect(first).toContain('Users 1–50 of 61.');
    expect(first).toContain('href="/console/users?page=2" rel="next"');
    const second = (await page('/console/users?page=2')).body;
    expect(second).toContain('Users 51–61 of 61.');
    const found = (await page('/console/users?q=u05')).body;
    expect(found).toContain('Users 1–1 of 1 matching “u05”.');
    expect((await page('/console/users?q=dba')).body).toContain('of 60 matching');
    expect((await page('/console/users?page=999')).body).toContain('Users 51–61 of 61.');
    // Filters by status and group, kept in the pager's links.
    await t.fleet.setStatus('u07', 'disabled');
    const disabled = (await page('/console/users?status=disabled')).body;
    expect(disabled).toContain('Users 1–1 of 1, disabled.');
    expect(disabled).toContain('data-user="u07"');
    expect(disabled).toContain('<option value="disabled" selected>disabled</option>');
    const dba = (await page('/console/users?group=dba&q=u')).body;
    expect(dba).toContain('Users 1–50 of 60 matching “u”, in dba.');
    expect(dba).toContain('href="/console/users?q=u&amp;group=dba&amp;page=2" rel="next"');
    // An unknown status or group is no filter at all.
    expect((await page('/console/users?status=bogus&group=nope')).body).toContain(
      'Users 1–50 of 61.',
    );
  });

  it('shows a user with addresses, current sessions, the location history and audit entries', async () => {
    await annOnline(HOSTILE);
    t.clock.advance(5_000);
    // The client left vpn11 (its session closes: disconnect) and came back on vpn21.
    await state.report('vpn11', { sessions: [], health: HEALTHY, bundleDigest: 'applied' });
    t.clock.advance(5_000);
    await state.report('vpn21', {
      sessions: [
        {
          user: 'ann',
          realAddress: '203.0.113.9:5000',
          ipv4: ann.ipv4,
          since: t.clock.now().toISOString(),
          bytesIn: 1,
          bytesOut: 2,
          clientId: 4,
        },
      ],
      health: HEALTHY,
      bundleDigest: 'applied',
    });
    const body = (await page('/console/users/ann')).body;
    expect(body).toContain(`<code>${ann.ipv4}</code>`);
    expect(body).toContain('data-testid="session-row" data-user="ann" data-server="vpn21"');
    // Newest first: the live one on vpn21, then the one that ended on vpn11.
    const rows = [...body.matchAll(/data-testid="history-row" data-server="(vpn\d+)"/g)];
    expect(rows.map((m) => m[1])).toEqual(['vpn21', 'vpn11']);
    expect(body).toMatch(
      /data-server="vpn21"><td>vpn21<\/td><td><code>203\.0\.113\.9:5000<\/code><\/td>[\s\S]*?<span class="badge badge-ok">connected<\/span>/,
    );
    expect(body).toMatch(
      /data-server="vpn11">[\s\S]*?<td class="num">1\.2 kB<\/td><td class="num">5\.7 kB<\/td><td>disconnect<\/td>/,
    );
    // The real address the client came from is the client's to choose: escaped.
    expect(body).not.toContain('<script>alert(1)');
    expect(body).toContain('<code>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</code>');
    expect(body).toContain('<code>user.add</code>');
  });

  it('tells on the user page when a renewed certificate waits in a new profile, and until when the old one works', async () => {
    await t.fleet.issueMissingCerts(['ann']);
    const first = await t.fleet.getUser('ann');
    expect((await page('/console/users/ann')).body).not.toContain('data-testid="new-profile"');
    t.clock.advance(350 * 86_400_000);
    const due = (await page('/console/users/ann')).body;
    expect(due).toContain('data-testid="cert-renewal"');
    expect(due).toContain('15 days left');
    await t.fleet.renewUserCerts(['ann']);
    const body = (await page('/console/users/ann')).body;
    expect(body).toContain('data-testid="new-profile"');
    expect(body).toContain(`<time datetime="${first.certNotAfter}">`);
    expect(body).toContain('signed by acme VPN CA');
    expect(body).not.toContain('data-testid="cert-renewal"');
    await t.fleet.profile('ann');
    expect((await page('/console/users/ann')).body).not.toContain('data-testid="new-profile"');
  });

  it('says so when a user has no history yet', async () => {
    expect((await page('/console/users/ann')).body).toContain(
      'No session or sign-in recorded yet.',
    );
  });

  it('shows the host routes the agents report against the sessions, problems counted', async () => {
    await annOnline();
    // vpn11 holds ann's /32 (her session is there), vpn21 holds it too: a duplicate.
    await state.report('vpn21', {
      sessions: [],
      health: HEALTHY,
      bundleDigest: 'applied',
      routes: { ipv4: [ann.ipv4, '10.200.255.250'], ipv6: [] },
    });
    await state.report('vpn11', {
      sessions: [
        {
          user: 'ann',
          realAddress: '198.51.100.7:40000',
          ipv4: ann.ipv4,
          since: t.clock.now().toISOString(),
          bytesIn: 0,
          bytesOut: 0,
          clientId: 3,
        },
      ],
      health: HEALTHY,
      bundleDigest: 'applied',
      routes: { ipv4: [ann.ipv4], ipv6: [] },
    });
    const view = await state.routes();
    const body = (await page('/console/routes')).body;
    expect(body).toContain(
      `${view.rows.length} users or addresses with a session or a host route;`,
    );
    expect(body).toContain(
      `: ${view.counts.missing} missing, ${view.counts.duplicate} on two servers, ${view.counts.stale} stale;`,
    );
    expect(view.counts.duplicate).toBeGreaterThan(0);
    expect(body).toContain('<tr data-user="ann" class="mismatch">');
    expect(body).toContain('<span class="odd">vpn21</span>');
    expect(body).toContain('on two servers</span>');
    // An address nobody owns, held by vpn21: a row without a user.
    expect(body).toContain('<span class="muted">no user</span>');
    // The servers that never reported routes are listed as unverified, in one line.
    expect(view.unverifiedServers.length).toBeGreaterThan(0);
    expect(body).toContain(
      `<span class="badge badge-warn">unverified</span> on ${view.unverifiedServers.join(', ')} (stale, or no routes reported).`,
    );
    expect(view.unverifiedServers).not.toContain('vpn11');
  });

  it('says when there are no routes and no sessions', async () => {
    const body = (await page('/console/routes')).body;
    expect(body).toContain('No user is connected and no server holds a host route.');
    expect(body).toContain('no mismatch');
  });

  it('shows each group with what it may reach as compiled and its members', async () => {
    await t.fleet.addUsers([{ name: 'dora', groups: ['staff'] }], { issueCerts: false });
    const body = (await page('/console/policy')).body;
    expect(body).toContain('<h2 id="group-staff">staff</h2>');
    expect(body).toMatch(
      /<td>intranet<\/td><td>IPv4<\/td>\s*<td><code>10\.20\.0\.0\/24<\/code><\/td>\s*<td>tcp<\/td><td>80, 443<\/td>/,
    );
    expect(body).toContain('1 enabled member: dora');
  });

  it('lists certificates by expiry, never a key, and revoked ones', async () => {
    await t.fleet.profile('ann');
    await t.fleet.setStatus('ann', 'revoked');
    const body = (await page('/console/pki')).body;
    expect(body).not.toContain('PRIVATE KEY');
    expect(body).not.toContain('BEGIN CERTIFICATE');
    expect(body).toMatch(/<td>server<\/td><td>vpn\d\d<\/td>[\s\S]*<td>CA<\/td>/);
    expect(body).toContain('data-testid="revoked"');
    expect(body).toMatch(/<td><code>[0-9a-f]+<\/code><\/td><td>ann<\/td>/);
  });

  it('shows a CA rollover on the PKI page: the next CA by its state', async () => {
    await t.fleet.pki.rolloverCa();
    const body = (await page('/console/pki')).body;
    expect(body).toMatch(/<td>CA<\/td><td>acme VPN CA 2<\/td>[\s\S]*?next CA, \d+ days left/);
  });

  it('filters the audit log in the store and links exports with the same filter', async () => {
    await state.store.audit({
      at: t.clock.now().toISOString(),
      actor: HOSTILE,
      action: 'login.fail',
      subject: HOSTILE,
      detail: { why: HOSTILE },
    });
    const all = (await page('/console/audit')).body;
    expect(all).not.toContain('<script>alert(1)');
    expect(all).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    const users = (await page('/console/audit?kind=user.&user=ann')).body;
    expect(users).toContain('<code>user.add</code>');
    expect(users).not.toContain('login.fail');
    expect(users).toContain('href="/v1/audit?format=csv&amp;user=ann&amp;kind=user."');
    expect(users).toContain('href="/v1/audit?format=jsonl&amp;user=ann&amp;kind=user."');
    // An exact action, an actor, and bounds (until is exclusive).
    expect((await page('/console/audit?kind=user.add')).body).toContain('<code>user.add</code>');
    expect((await page('/console/audit?kind=user.revoke')).body).toContain('No entry matches.');
    expect((await page(`/console/audit?actor=${encodeURIComponent(HOSTILE)}`)).body).toContain(
      '<code>login.fail</code>',
    );
    const now = t.clock.now().toISOString();
    expect((await page(`/console/audit?until=${now}&kind=login.fail`)).body).toContain(
      'No entry matches.',
    );
    expect((await page(`/console/audit?since=${now}&kind=login.fail`)).body).toContain(
      '<code>login.fail</code>',
    );
    // What the export route refuses, the page refuses too, naming the field.
    const bad = await page('/console/audit?since=yesterday');
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('since: &quot;yesterday&quot; is not a date');
    const local = await page('/console/audit?until=2030-01-31T10:00:00');
    expect(local.statusCode).toBe(400);
    expect((await page('/console/audit?since=2030-02-01&until=2030-01-01')).body).toContain(
      'until: must be later than since',
    );
    expect((await page('/console/audit?kind=%25')).statusCode).toBe(400);
  });

  it('escapes hostile values wherever they come from', async () => {
    await annOnline(HOSTILE);
    for (const url of [
      '/console/sessions',
      `/console/sessions?user=${encodeURIComponent(HOSTILE)}`,
      `/console/users?q=${encodeURIComponent(HOSTILE)}`,
      `/console/audit?actor=${encodeURIComponent(HOSTILE)}`,
    ]) {
      const body = (await page(url)).body;
      expect(body, url).not.toContain('<script>alert(1)');
      expect(body, url).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    }
    const missing = await page(`/console/users/${encodeURIComponent(HOSTILE)}`);
    expect(missing.statusCode).toBe(404);
    expect(missing.body).not.toContain('<script>alert(1)');
    expect(missing.body).toContain('&lt;script&gt;');
  });
});

describe('what each role sees', () => {
  beforeEach(async () => await annOnline());

  it('a viewer sees no kill, drain or user actions', async () => {
    for (const url of ['/console', '/console/sessions', '/console/users', '/console/users/ann']) {
      const body = (await page(url, 'viewer')).body;
      expect(body, url).not.toMatch(/data-testid="(kill|drain|revoke|delete|disable|add-user)"/);
      expect(body, url).not.toContain('/profile');
    }
    expect((await page('/console', 'viewer')).body).toContain('data-testid="role">viewer<');
  });

  it('a signed-in viewer gets the CSRF token in the page, no revoke button, and 403 on revoke', async () => {
    const headers = await session('viewer');
    const body = (await page('/console/users/ann', 'viewer')).body;
    expect(body).toContain(`<meta name="csrf-token" content="${headers['x-csrf-token']}" /`);
    expect(body).toContain('data-testid="who">console:viewer-1<');
    expect(body).not.toContain('data-testid="revoke"');
    const res = await app.inject({
      method: 'POST',
      url: '/v1/users/ann/revoke',
      headers,
    });
    expect(res.statusCode).toBe(403);
    expect(res.json<{ error: string }>().error).toContain('needs the admin role');
    expect((await state.store.getUser('ann'))?.status).toBe('enabled');
    // The same session with the admin role may (the 403 was the role, not the request).
    const admin = await app.inject({
      method: 'POST',
      url: '/v1/users/ann/revoke',
      headers: await session('admin'),
    });
    expect(admin.statusCode, admin.body).toBe(200);
    expect((await state.store.getUser('ann'))?.status).toBe('revoked');
  });

  it('a bearer token has no session: the CSRF meta tag is empty', async () => {
    expect((await page('/console')).body).toContain('<meta name="csrf-token" content="" /');
  });

  it('an operator can end sessions and drain, not revoke', async () => {
    const sessions = (await page('/console/sessions', 'operator')).body;
    expect(sessions).toContain(
      'data-action="kill" data-user="ann" data-server="vpn11" data-testid="kill"> End session<span class="sr"> of ann on vpn11</span>',
    );
    expect((await page('/console', 'operator')).body).toContain('data-testid="drain"');
    const users = (await page('/console/users', 'operator')).body;
    expect(users).not.toContain('data-testid="revoke"');
    expect((await page('/console/users/ann', 'operator')).body).not.toContain(
      'data-testid="revoke"',
    );
  });

  it('an admin can revoke, delete, add, import and use bulk actions', async () => {
    const users = (await page('/console/users')).body;
    expect(users).toContain('data-op="revoke" data-user="ann" data-testid="revoke"');
    expect(users).toContain('data-form="add-user"');
    expect(users).toContain('data-form="import"');
    expect(users).toContain('data-form="bulk"');
    expect(users).toContain('name="sel" value="ann" aria-label="Select ann"');
    expect(users).toContain('href="/v1/users/ann/profile"');
    expect((await page('/console/users/ann')).body).toContain('data-testid="revoke"');
    // A signed-in admin account sees the same, profile link included.
    const signed = (await page('/console/users', 'admin')).body;
    expect(signed).toContain('data-op="revoke" data-user="ann" data-testid="revoke"');
    expect(signed).toContain('href="/v1/users/ann/profile"');
  });

  it('an operator may not download a profile, and gets no link to one', async () => {
    expect((await page('/console/users/ann', 'operator')).body).not.toContain('/profile');
    const res = await app.inject({
      url: '/v1/users/ann/profile',
      headers: await session('operator'),
    });
    expect(res.statusCode).toBe(403);
  });
});

describe('TOTP on the user page', () => {
  /** A new enrolment of ann through the console, as the browser script posts it. */
  const enrol = async (headers: Record<string, string>) =>
    app.inject({ method: 'POST', url: '/console/users/ann/totp', headers });

  /** The code ann's app shows now (the service checks codes on the same fake clock). */
  const codeOf = (uri: string) => {
    const totp = URI.parse(uri);
    if (!(totp instanceof TOTP)) throw new Error(`not a TOTP URI: ${uri}`);
    return totp.generate({ timestamp: t.clock.now().getTime() });
  };

  const auditActions = async () =>
    (await state.store.auditQuery({ subject: 'ann', actionPrefix: 'user.totp.', limit: 10 })).map(
      (e) => `${e.action} by ${e.actor}`,
    );

  it('enrols: the card shows the QR code, the URI and ten recovery codes once, never cached', async () => {
    const headers = await session('admin');
    const before = (await page('/console/users/ann', 'admin')).body;
    expect(before).toContain('data-testid="totp-status" data-state="none"');
    expect(before).toContain('data-action="totp-enrol" data-user="ann" data-enrolled="no"');
    const res = await enrol(headers);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    const card = flat(res.body);
    expect(card).toMatch(/^<section class="card totp" id="totp-card"/);
    expect(card).toContain('<svg class="qr" data-testid="totp-qr"');
    const uri = /data-testid="totp-uri">([^<]+)<\/code>/.exec(card)![1].replaceAll('&amp;', '&');
    expect(uri).toMatch(/^otpauth:\/\/totp\/.*[?&]secret=[A-Z2-7]{32}/);
    const codes = [...card.matchAll(/<li><code>([a-z0-9]{5}-[a-z0-9]{5})<\/code><\/li>/g)].map(
      (m) => m[1],
    );
    expect(new Set(codes).size).toBe(10);
    expect(card).toContain('they cannot be shown again');
    expect(card).toContain('data-form="totp-confirm" data-user="ann"');
    expect(await auditActions()).toEqual(['user.totp.enroll by console:admin-1']);

    // A second view: the status, the confirm form, and neither the secret nor a code.
    for (const url of ['/console/users/ann', '/console/users/ann/totp']) {
      const again = (await page(url, 'admin')).body;
      expect(again, url).toContain('data-state="pending"');
      expect(again, url).toContain('data-form="totp-confirm"');
      expect(again, url).not.toContain('data-testid="totp-uri"');
      expect(again, url).not.toContain(new URL(uri).searchParams.get('secret')!);
      for (const c of codes) expect(again, url).not.toContain(c);
    }
    expect((await page('/console/users/ann')).body).toContain(
      'waiting for confirmation</span>, 10 recovery codes left',
    );
  });

  it('confirms with the right code only; then the user is active', async () => {
    const headers = await session('admin');
    const uri = /data-testid="totp-uri">([^<]+)<\/code>/
      .exec((await enrol(headers)).body)![1]
      .replaceAll('&amp;', '&');
    const right = codeOf(uri);
    const confirm = (code: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/users/ann/totp/confirm',
        headers,
        payload: { code },
      });
    const wrong = await confirm(right === '000000' ? '111111' : '000000');
    expect(wrong.statusCode).toBe(400);
    expect(wrong.json<{ error: string }>().error).toContain(
      'is not the code the authenticator app shows now',
    );
    expect((await page('/console/users/ann')).body).toContain('data-state="pending"');
    const ok = await confirm(right);
    expect(ok.statusCode, ok.body).toBe(200);
    const body = (await page('/console/users/ann', 'admin')).body;
    expect(body).toContain(
      'data-testid="totp-status" data-state="active"><span class="badge badge-ok">active</span>, 10 recovery codes left',
    );
    expect(body).toContain(
      'id="totp-card" data-keep="totp-card" data-testid="totp-card" data-user="ann" data-state="active"',
    );
    expect(body).not.toContain('data-form="totp-confirm"');
    expect(body).toContain('data-action="totp-reset"');
    expect(await auditActions()).toEqual([
      'user.totp.confirm by console:admin-1',
      'user.totp.enroll by console:admin-1',
    ]);
  });

  it('refuses an enrolment without the CSRF token, or with a wrong one', async () => {
    const { cookie } = await session('admin');
    const tries: Record<string, string>[] = [
      { cookie },
      { cookie, 'x-csrf-token': 'not-the-token' },
    ];
    for (const headers of tries) {
      const res = await enrol(headers);
      expect(res.statusCode).toBe(403);
      expect(res.json<{ error: string }>().error).toMatch(/x-csrf-token header/);
    }
    expect(await state.fleet.totp.status('ann')).toMatchObject({ enrolled: false });
    expect(await auditActions()).toEqual([]);
  });

  it('shows viewers and operators the status, not the card, and refuses them the enrolment', async () => {
    for (const role of ['viewer', 'operator'] as const) {
      const body = (await page('/console/users/ann', role)).body;
      expect(body, role).toContain('data-testid="totp-status" data-state="none"');
      expect(body, role).toContain('data-testid="totp-asked" data-asked="no"');
      expect(body, role).not.toContain('data-testid="totp-card"');
      expect(body, role).not.toContain('data-action="totp-');
      const res = await enrol(await session(role));
      expect(res.statusCode, role).toBe(403);
      expect(res.json<{ error: string }>().error).toContain('needs the admin role');
      expect(
        (await app.inject({ url: '/console/users/ann/totp', headers: await session(role) }))
          .statusCode,
      ).toBe(403);
    }
    expect(await state.fleet.totp.status('ann')).toMatchObject({ enrolled: false });
    // An unknown user: 404 for the enrolment.
    const nobody = await app.inject({
      method: 'POST',
      url: '/console/users/nobody/totp',
      headers: await session('admin'),
    });
    expect(nobody.statusCode).toBe(404);
  });

  it('resets through the API: the card offers a new enrolment again', async () => {
    const headers = await session('admin');
    await enrol(headers);
    const res = await app.inject({ method: 'DELETE', url: '/v1/users/ann/totp', headers });
    expect(res.statusCode, res.body).toBe(200);
    const card = flat((await app.inject({ url: '/console/users/ann/totp', headers })).body);
    expect(card).toContain('data-state="none"');
    expect(card).not.toContain('data-action="totp-reset"');
    expect(await auditActions()).toEqual([
      'user.totp.reset by console:admin-1',
      'user.totp.enroll by console:admin-1',
    ]);
  });

  it('puts TOTP and SSO sign-ins in the location history, in time order with the connects', async () => {
    // A refused TOTP answer from vpn11 (ann is not enrolled), then a connect that got in.
    const refused = await state.fleet.totp.check('ann', '123456', {
      server: 'vpn11',
      realAddress: '198.51.100.7:40000',
    });
    expect(refused).toEqual({
      ok: false,
      reason: 'no TOTP is enrolled for you: ask an administrator',
    });
    t.clock.advance(10_000);
    await state.store.audit({
      at: t.clock.now().toISOString(),
      actor: 'sso',
      action: 'sso.refused',
      subject: 'ann',
      detail: {
        server: 'vpn21',
        remote: '203.0.113.9:5000',
        idpSubject: HOSTILE,
        reason: 'ann is in none of the allowed groups (vpn)',
      },
    });
    t.clock.advance(10_000);
    await state.store.audit({
      at: t.clock.now().toISOString(),
      actor: 'sso:sub-1',
      action: 'sso.sign-in',
      subject: 'ann',
      detail: {
        server: 'vpn11',
        remote: '198.51.100.7:40001',
        idpSubject: 'sub-1',
        browser: '192.0.2.5',
        groups: [],
      },
    });
    t.clock.advance(1_000);
    await state.report('vpn11', {
      sessions: [
        {
          user: 'ann',
          realAddress: '198.51.100.7:40001',
          ipv4: ann.ipv4,
          since: t.clock.now().toISOString(),
          bytesIn: 0,
          bytesOut: 0,
          clientId: 5,
        },
      ],
      health: HEALTHY,
      bundleDigest: 'applied',
    });
    const body = (await page('/console/users/ann')).body;
    const rows = [
      ...body.matchAll(
        /data-testid="(history-row|signin-row)" data-server="(vpn\d+)"(?: data-method="(\w+)" data-ok="(\w+)")?/g,
      ),
    ].map((m) => (m[1] === 'history-row' ? `session ${m[2]}` : `${m[3]} ${m[2]} ${m[4]}`));
    expect(rows).toEqual(['session vpn11', 'sso vpn11 yes', 'sso vpn21 no', 'totp vpn11 no']);
    expect(body).toMatch(
      /data-method="totp" data-ok="no"><td>vpn11<\/td><td><code>198\.51\.100\.7:40000<\/code><\/td><td colspan="2">TOTP sign-in<\/td><td><time[^>]*>[^<]*<\/time><\/td><td><span class="badge badge-bad">refused<\/span><\/td><td colspan="2"><\/td><td>no TOTP is enrolled for you: ask an administrator<\/td>/,
    );
    expect(body).toContain(
      'SSO sign-in, subject <code>sub-1</code>, browser at <code>192.0.2.5</code>',
    );
    expect(body).toContain('<td>ann is in none of the allowed groups (vpn)</td>');
    // The provider's subject is the provider's to choose: escaped.
    expect(body).not.toContain('<script>alert(1)');
    expect(body).toContain('subject <code>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</code>');
  });
});

describe('login page and assets', () => {
  it('serves the login page to anyone, with labelled fields and a safe next', async () => {
    const res = await app.inject({ url: '/console/login?next=%2Fconsole%2Fusers%3Fq%3Da' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(res.body).toContain('<label for="login-name">Name</label>');
    expect(res.body).toContain('<label for="login-password">Password</label>');
    expect(res.body).toContain('data-next="/console/users?q=a"');
    expect(res.body).not.toContain('data-action="logout"');
    for (const next of [
      '//evil.example/console',
      'https://evil.example/',
      '/v1/users',
      '/console\\@evil',
    ])
      expect(
        (await app.inject({ url: `/console/login?next=${encodeURIComponent(next)}` })).body,
      ).toContain('data-next="/console"');
  });

  it('lets an admin with a one-time password set a new one, and then go on', async () => {
    const login = (await app.inject({ url: '/console/login' })).body;
    expect(flat(login)).toMatch(/<form class="card login" data-form="password" [^>]*hidden>/);
    expect(login).toContain('<label for="password-next">New password</label>');
    const { oneTimePassword } = await state.fleet.admins.add('newbie', 'admin');
    const { cookie, info } = await signIn('newbie', oneTimePassword!);
    expect(info.mustChangePassword).toBe(true);
    // Until the password is changed, the pages refuse the session.
    expect((await app.inject({ url: '/console', headers: { cookie } })).statusCode).toBe(403);
    const change = (headers: Record<string, string>) =>
      app.inject({
        method: 'POST',
        url: '/v1/session/password',
        headers: { cookie, ...headers },
        payload: { current: oneTimePassword, next: 'a password of my own' },
      });
    expect((await change({})).statusCode).toBe(403); // no x-csrf-token
    const res = await change({ 'x-csrf-token': info.csrfToken });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<SessionInfo>().mustChangePassword).toBe(false);
    const home = await app.inject({ url: '/console', headers: { cookie } });
    expect(home.statusCode).toBe(200);
    expect(home.body).toContain(
      `<meta name="csrf-token" content="${res.json<SessionInfo>().csrfToken}"`,
    );
  });

  it('serves the stylesheet and the script with their content types', async () => {
    const css = await app.inject({ url: '/console/assets/console.css' });
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(css.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(css.headers['x-content-type-options']).toBe('nosniff');
    expect(css.body).toContain('.badge-ok');
    const js = await app.inject({ url: '/console/assets/console.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
  });

  it('answers 404 for anything but its own assets', async () => {
    // A literal ../ is resolved before routing: it never reaches the assets route at all.
    const literal = await app.inject({ url: '/console/assets/../routes.ts' });
    expect(literal.statusCode).not.toBe(200);
    expect(literal.body).not.toContain('consoleRoutes');
    for (const url of [
      '/console/assets/..%2F..%2F..%2Fpackage.json',
      '/console/assets/..%2Froutes.ts',
      '/console/assets/%2E%2E%2Froutes.ts',
      '/console/assets/routes.ts',
      '/console/assets/console.js.map', // not built here
    ])
      expect((await app.inject({ url })).statusCode, url).toBe(404);
  });

  it('keeps the pages and the event stream behind authentication', async () => {
    // A page sends the browser to sign in, and back here after; the stream just refuses.
    const page = await app.inject({ url: '/console/users?q=ann' });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe(
      `/console/login?next=${encodeURIComponent('/console/users?q=ann')}`,
    );
    expect((await app.inject({ url: '/console/events' })).statusCode).toBe(401);
  });
});

describe('the event stream', () => {
  interface Stream {
    res: IncomingMessage;
    text: () => string;
    until: (s: string, count?: number) => Promise<void>;
  }

  async function open(headers: Record<string, string> = AUTH): Promise<Stream> {
    if (!app.server.listening) {
      const address = await app.listen({ host: '127.0.0.1', port: 0 });
      expect(address).toContain('127.0.0.1');
    }
    const { port } = app.server.address() as AddressInfo;
    return new Promise((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port, path: '/console/events', headers }, (res) => {
        let text = '';
        const waiters: (() => void)[] = [];
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
          waiters.splice(0).forEach((w) => w());
        });
        const until = (s: string, count = 1): Promise<void> =>
          new Promise((done) => {
            const check = () => (text.split(s).length - 1 >= count ? done() : waiters.push(check));
            check();
          });
        resolve({ res, text: () => text, until });
      });
      req.on('error', reject);
    });
  }

  it('sends one coalesced event after changes, heartbeats, and unsubscribes on close', async () => {
    const unsubscribed = vi.fn();
    const subscribe = state.onChange.bind(state);
    vi.spyOn(state, 'onChange').mockImplementation((listener) => {
      const off = subscribe(listener);
      return () => {
        unsubscribed();
        return off();
      };
    });
    const stream = await open();
    expect(stream.res.statusCode).toBe(200);
    expect(stream.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    await stream.until(': connected');
    expect(streams.open).toBe(1);

    await annOnline();
    await state.setDraining('vpn21', true, 'api:admin');
    await annOnline();
    await timers.advance(250);
    await stream.until('event: change');
    expect(stream.text()).toContain('event: change\ndata: {"what":["sessions","servers"]}\n\n');

    await timers.advance(15_000);
    await stream.until(': heartbeat');
    await state.setDraining('vpn21', false, 'api:admin');
    await timers.advance(250);
    await stream.until('event: change', 2);
    expect(stream.text().split('event: change').length - 1).toBe(2);
    expect(stream.text()).toContain('data: {"what":["servers"]}');

    expect(unsubscribed).not.toHaveBeenCalled();
    stream.res.destroy();
    await vi.waitFor(() => expect(streams.open).toBe(0));
    expect(unsubscribed).toHaveBeenCalledTimes(1);
    expect(timers.pending).toBe(0); // the close stopped its heartbeat too
  });

  it('allows 4 streams per console session (and 4 for bearer callers), 503 beyond', async () => {
    const viewer = { cookie: (await session('viewer')).cookie };
    const operator = { cookie: (await session('operator')).cookie };
    for (let i = 0; i < 4; i++) await (await open(viewer)).until(': connected');
    const fifth = await app.inject({ url: '/console/events', headers: viewer });
    expect(fifth.statusCode).toBe(503);
    expect(fifth.json().error).toContain('for this session (4)');
    // Another session, and bearer callers, have their own allowance.
    await (await open(operator)).until(': connected');
    for (let i = 0; i < 4; i++) await (await open()).until(': connected');
    expect((await app.inject({ url: '/console/events', headers: AUTH })).statusCode).toBe(503);
    expect(streams.open).toBe(9);
  });

  it("ends a session's stream at the next heartbeat once the session is gone, or idle", async () => {
    const { cookie, info } = await signIn(
      (await state.fleet.admins.add('out-1', 'viewer', PASSWORD)).admin.name,
      PASSWORD,
    );
    const stream = await open({ cookie });
    await stream.until(': connected');
    const ended = new Promise<void>((r) => stream.res.on('end', r));
    const out = await app.inject({
      method: 'DELETE',
      url: '/v1/session',
      headers: { cookie, 'x-csrf-token': info.csrfToken },
    });
    expect(out.statusCode).toBe(204);
    await timers.advance(15_000);
    await ended;
    expect(stream.text()).not.toContain(': heartbeat');
    await vi.waitFor(() => expect(streams.open).toBe(0));

    // A session nobody uses: the stream ends with it, after the idle timeout.
    const idle = await open({ cookie: (await session('viewer')).cookie });
    await idle.until(': connected');
    const idleEnded = new Promise<void>((r) => idle.res.on('end', r));
    await timers.advance(30 * 60_000);
    await idleEnded;
    await vi.waitFor(() => expect(streams.open).toBe(0));
    expect(timers.pending).toBe(0);
  });

  it('refuses a stream beyond the limit with 503, and ends open streams when the app closes', async () => {
    await app.close();
    await start({ maxStreams: 1 });
    const stream = await open();
    await stream.until(': connected');
    const second = await app.inject({ url: '/console/events', headers: AUTH });
    expect(second.statusCode).toBe(503);
    expect(second.json().error).toContain('too many console event streams');
    const ended = new Promise<void>((r) => stream.res.on('end', r));
    await app.close();
    await ended;
    expect(streams.open).toBe(0);
  });
});
