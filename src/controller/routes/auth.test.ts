/** `/v1/agent/auth/*` through the HTTP edge (fastify inject) over a real store. */
import type { FastifyInstance } from 'fastify';
import { TOTP, URI } from 'otpauth';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FIXED_NOW } from '../../testing.js';
import { SignIns } from '../connect-auth/sign-ins.js';
import type { WebSignIn, WebSignInResult } from '../connect-auth/web-sign-in.js';
import { createHttp } from '../http.js';
import { ControllerState } from '../state.js';
import { type ControllerFleet, FakeTimers, controllerFleet, settle } from '../testing.js';
import { authRoutes, totpRoutes } from './auth.js';

let t: ControllerFleet;
let state: ControllerState;
let app: FastifyInstance;
let emit: (r: WebSignInResult) => void;
const begun: unknown[] = [];

const web: WebSignIn = {
  begin: (req) => {
    begun.push(req);
    return Promise.resolve(`https://vpn.example/sign-in/${req.id}`);
  },
  onResult: (listener) => (emit = listener),
  // The store of another controller's sign-ins, as OidcWebSignIn.adopt reads it.
  adopt: (requestId) =>
    Promise.resolve(
      requestId === 'begun-elsewhere'
        ? {
            user: 'ann',
            server: 'vpn11',
            remote: '198.51.100.9:1194',
            expiresAt: Date.now() + 60_000,
          }
        : undefined,
    ),
};

async function build(withWeb: boolean): Promise<void> {
  state = new ControllerState(t.fleet, t.changes, t.clock, new FakeTimers(t.clock), {
    fleetDir: t.dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'admin-token',
    log: () => {},
  });
  await state.refresh();
  app = await createHttp({}, { tokens: state.auth, sessions: state.consoleSessions }, () => {});
  const signIns = new SignIns({
    ...(withWeb ? { web } : {}),
    now: () => t.clock.now().getTime(),
    audit: (e) => t.fleet.store.audit(e),
    log: () => {},
    pendingMs: () => 120_000,
  });
  authRoutes(app, state, signIns, { waitMs: 200, requestTimeoutMs: 1000 });
  totpRoutes(app, state);
  await app.ready();
}

beforeEach(async () => {
  begun.length = 0;
  t = await controllerFleet();
  await t.fleet.addUsers([{ name: 'ann' }], { issueCerts: false });
});
afterEach(async () => {
  await app?.close();
  await t.cleanup();
});

const agent = async (server: string) => ({
  authorization: `Bearer ${await t.fleet.agentToken(server)}`,
});

describe('sign-ins at connect', () => {
  it('checks a TOTP answer, once, and audits it with the server and the address', async () => {
    await build(false);
    const { uri } = await t.fleet.totp.enroll('ann');
    const code = (URI.parse(uri) as TOTP).generate({ timestamp: FIXED_NOW.getTime() });
    const answer = async (response: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/agent/auth/answer',
        headers: await agent('vpn11'),
        payload: { user: 'ann', method: 'totp', response, realAddress: '198.51.100.9:1194' },
      });
    const ok = await answer(code);
    expect([ok.statusCode, ok.json()]).toEqual([200, { ok: true }]);
    expect((await answer(code)).json()).toEqual({
      ok: false,
      reason: 'this code was used already: wait for the next one',
    });
    const entries = (await t.fleet.store.auditLog(10)).filter((e) => e.action === 'auth.totp');
    expect(entries.map((e) => [e.actor, e.subject, (e.detail as { from: string }).from])).toEqual([
      ['agent:vpn11', 'ann', '198.51.100.9:1194'],
      ['agent:vpn11', 'ann', '198.51.100.9:1194'],
    ]);
    const anonymous = await app.inject({
      method: 'POST',
      url: '/v1/agent/auth/answer',
      payload: { user: 'ann', method: 'totp', response: code },
    });
    expect(anonymous.statusCode).toBe(401);
  });

  it('opens a web sign-in, long-polls for its outcome, and audits the subject', async () => {
    await build(true);
    const b = await app.inject({
      method: 'POST',
      url: '/v1/agent/auth/begin',
      headers: await agent('vpn11'),
      payload: { user: 'ann', realAddress: '198.51.100.9:1194' },
    });
    expect(b.statusCode).toBe(200);
    const { id, url } = b.json<{ id: string; url: string }>();
    expect(url).toBe(`https://vpn.example/sign-in/${id}`);
    expect(begun).toEqual([{ id, user: 'ann', server: 'vpn11', remote: '198.51.100.9:1194' }]);
    const nothingYet = await app.inject({
      url: `/v1/agent/auth/wait?id=${id}`,
      headers: await agent('vpn11'),
    });
    expect(nothingYet.statusCode).toBe(204);
    const other = await app.inject({
      url: `/v1/agent/auth/wait?id=${id}`,
      headers: await agent('vpn12'),
    });
    expect(other.statusCode).toBe(403);
    const waiting = app.inject({
      url: `/v1/agent/auth/wait?id=${id}`,
      headers: await agent('vpn11'),
    });
    await settle();
    emit({ id, ok: true, subject: 'idp|ann', email: 'ann@corp.example', groups: ['dba'] });
    const done = await waiting;
    expect([done.statusCode, done.json()]).toEqual([200, { ok: true, groups: ['dba'] }]);
    await settle();
    const entry = (await t.fleet.store.auditLog(5)).find((e) => e.action === 'auth.sso');
    expect(entry?.detail).toMatchObject({ server: 'vpn11', ok: true, idpSubject: 'idp|ann' });
  });

  it('takes over a sign-in another controller began, for its own server only', async () => {
    await build(true);
    const wait = async (id: string, server: string) =>
      app.inject({ url: `/v1/agent/auth/wait?id=${id}`, headers: await agent(server) });
    const unknown = await wait('never-begun', 'vpn11');
    expect([unknown.statusCode, unknown.json().error]).toEqual([
      404,
      'no sign-in never-begun in progress',
    ]);
    expect((await wait('begun-elsewhere', 'vpn12')).statusCode).toBe(403);
    const waiting = wait('begun-elsewhere', 'vpn11');
    await settle();
    emit({ id: 'begun-elsewhere', ok: true, subject: 'idp|ann', groups: [] });
    const done = await waiting;
    expect([done.statusCode, done.json()]).toEqual([200, { ok: true, groups: [] }]);
    await settle();
    const entry = (await t.fleet.store.auditLog(5)).find((e) => e.action === 'auth.sso');
    expect(entry).toMatchObject({ actor: 'agent:vpn11', subject: 'ann' });
  });

  it('refuses a web sign-in in one line when the controller has no identity provider', async () => {
    await build(false);
    const b = await app.inject({
      method: 'POST',
      url: '/v1/agent/auth/begin',
      headers: await agent('vpn11'),
      payload: { user: 'ann' },
    });
    expect(b.statusCode).toBe(409);
    expect(b.json<{ error: string }>().error).toMatch(/web sign-in is off/);
  });

  it('enrols a user by the API with a QR code, confirms, tells the status and resets (admins)', async () => {
    await build(false);
    const ADMIN = { authorization: 'Bearer admin-token' };
    const e = await app.inject({ method: 'POST', url: '/v1/users/ann/totp', headers: ADMIN });
    expect(e.statusCode).toBe(200);
    expect(e.headers['cache-control']).toBe('no-store');
    const body = e.json<{ uri: string; qrSvg: string; recoveryCodes: string[] }>();
    expect(body.qrSvg).toMatch(/^<svg /);
    expect(body.recoveryCodes).toHaveLength(10);
    const code = (URI.parse(body.uri) as TOTP).generate({ timestamp: FIXED_NOW.getTime() });
    const bad = await app.inject({
      method: 'POST',
      url: '/v1/users/ann/totp/confirm',
      headers: ADMIN,
      payload: { code: '12345' },
    });
    expect(bad.statusCode).toBe(400);
    const c = await app.inject({
      method: 'POST',
      url: '/v1/users/ann/totp/confirm',
      headers: ADMIN,
      payload: { code },
    });
    expect(c.json()).toEqual({ enrolled: true, confirmed: true, recoveryCodesLeft: 10 });
    const status = await app.inject({ url: '/v1/users/ann/totp', headers: ADMIN });
    expect(JSON.stringify(status.json())).not.toContain(
      new URL(body.uri).searchParams.get('secret'),
    );
    const d = await app.inject({ method: 'DELETE', url: '/v1/users/ann/totp', headers: ADMIN });
    expect(d.json()).toEqual({ enrolled: false, confirmed: false, recoveryCodesLeft: 0 });
    const actions = (await t.fleet.store.auditLog(10)).map((a) => a.action);
    expect(actions).toEqual(
      expect.arrayContaining(['user.totp.enroll', 'user.totp.confirm', 'user.totp.reset']),
    );
  });
});
