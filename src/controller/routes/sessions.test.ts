/**
 * `/v1/users/:name/history`, `/v1/routes` and `POST /v1/sessions/kill` through the HTTP edge
 * (fastify inject) over a real store, with the agents' report and poll routes beside them.
 */
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type AgentReport,
  type Directive,
  MAX_HOST_ROUTES,
  type Role,
  type SessionReport,
  roleAtLeast,
} from '../../api/index.js';
import type { User } from '../../store/types.js';
import { Forbidden } from '../http-errors.js';
import { createHttp } from '../http.js';
import { ControllerState } from '../state.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from '../testing.js';
import { agentRoutes } from './agent.js';
import { serverRoutes } from './servers.js';
import { sessionRoutes } from './sessions.js';

const ADMIN = { authorization: 'Bearer admin-token' };
const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };

let t: ControllerFleet;
let state: ControllerState;
let app: FastifyInstance;
let ann: User;
let bob: User;

beforeEach(async () => {
  t = await controllerFleet();
  [ann, bob] = await t.fleet.addUsers([{ name: 'ann' }, { name: 'bob' }], { issueCerts: false });
  state = new ControllerState(t.fleet, t.changes, t.clock, new FakeTimers(t.clock), {
    fleetDir: t.dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'admin-token',
    log: () => {},
  });
  await state.refresh();
  app = await createHttp({}, { tokens: state.auth, sessions: state.consoleSessions }, () => {});
  // Stand-in for the accounts of other roles (the admin token is always `admin`): a test
  // header turns the caller into a viewer or an operator, checked as http.ts checks roles.
  app.addHook('onRequest', (req, _reply, done) => {
    const role = req.headers['x-test-role'] as Role | undefined;
    const scope = req.routeOptions.config?.auth ?? 'admin';
    if (!role || scope === 'none' || scope === 'agent') return done();
    req.who = { actor: `test:${role}`, role };
    if (!roleAtLeast(role, scope)) return done(new Forbidden(`needs the ${scope} role`));
    done();
  });
  agentRoutes(app, state, { pollWaitMs: 10, requestTimeoutMs: 1000 });
  serverRoutes(app, state);
  sessionRoutes(app, state);
  await app.ready();
});
afterEach(async () => {
  await state.close();
  await app.close();
  await t.cleanup();
});

const agent = async (server: string) => ({
  authorization: `Bearer ${await t.fleet.agentToken(server)}`,
});

function session(user: User, clientId: number, since = '2026-03-01T11:00:00.000Z'): SessionReport {
  return {
    user: user.name,
    realAddress: `198.51.100.${clientId}:1194`,
    ipv4: user.ipv4,
    ipv6: user.ipv6,
    since,
    bytesIn: 10 * clientId,
    bytesOut: 20 * clientId,
    clientId,
  };
}

async function report(server: string, sessions: SessionReport[], more: Partial<AgentReport> = {}) {
  const r = await app.inject({
    method: 'POST',
    url: '/v1/agent/report',
    headers: await agent(server),
    payload: { sessions, health: HEALTHY, bundleDigest: 'applied', ...more },
  });
  expect(r.statusCode, r.body).toBe(204);
}

async function directive(server: string): Promise<Directive> {
  const r = await app.inject({ url: '/v1/agent/poll?known=', headers: await agent(server) });
  expect(r.statusCode).toBe(200);
  return r.json();
}

const kill = (payload: unknown, headers: Record<string, string> = ADMIN) =>
  app.inject({ method: 'POST', url: '/v1/sessions/kill', headers, payload: payload as object });

function oneLine(r: { statusCode: number; json(): any }, status: number, re: RegExp) {
  expect(r.statusCode).toBe(status);
  expect(r.json().error).toMatch(re);
  expect(r.json().error).not.toContain('\n');
}

describe('GET /v1/users/:name/history', () => {
  it("lists the user's sessions newest first, with where, when, bytes and why they ended", async () => {
    await report('vpn11', [session(ann, 1)]);
    t.clock.advance(1000);
    await report('vpn11', []);
    const ended = t.clock.now().toISOString();
    await report('vpn21', [session(ann, 2, '2026-03-01T11:30:00.000Z')]);

    const r = await app.inject({ url: '/v1/users/ann/history', headers: ADMIN });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual([
      {
        user: 'ann',
        server: 'vpn21',
        realAddress: '198.51.100.2:1194',
        ipv4: ann.ipv4,
        ipv6: ann.ipv6,
        since: '2026-03-01T11:30:00.000Z',
        until: null,
        bytesIn: 20,
        bytesOut: 40,
        reason: null,
      },
      expect.objectContaining({ server: 'vpn11', until: ended, reason: 'disconnect', bytesIn: 10 }),
    ]);
    const one = await app.inject({ url: '/v1/users/ann/history?limit=1', headers: ADMIN });
    expect(one.json()).toHaveLength(1);
    expect((await app.inject({ url: '/v1/users/bob/history', headers: ADMIN })).json()).toEqual([]);
  });

  it('404 for an unknown user, 400 for a bad limit or an unknown parameter', async () => {
    oneLine(await app.inject({ url: '/v1/users/zed/history', headers: ADMIN }), 404, /zed/);
    for (const q of ['limit=0', 'limit=abc', 'limit=10000', 'limit=-1', 'max=3'])
      oneLine(
        await app.inject({ url: `/v1/users/ann/history?${q}`, headers: ADMIN }),
        400,
        /^querystring/,
      );
  });
});

describe('GET /v1/routes', () => {
  it("compares the agents' host routes with the sessions and counts the problems", async () => {
    // ann on vpn11, routed there; bob on vpn12, but only vpn21 routes his /32.
    await report('vpn11', [session(ann, 1)], { routes: { ipv4: [ann.ipv4], ipv6: [ann.ipv6] } });
    await report('vpn12', [session(bob, 2)], { routes: { ipv4: [], ipv6: [bob.ipv6] } });
    await report('vpn21', [], { routes: { ipv4: [bob.ipv4], ipv6: [] } });
    const r = await app.inject({ url: '/v1/routes', headers: ADMIN });
    expect(r.statusCode).toBe(200);
    const view = r.json();
    expect(view.rows).toEqual([
      {
        user: 'ann',
        ipv4: ann.ipv4,
        ipv6: ann.ipv6,
        server: 'vpn11',
        ipv4Servers: ['vpn11'],
        ipv6Servers: ['vpn11'],
        problem: null,
        problems: [],
        unverified: false,
      },
      expect.objectContaining({
        user: 'bob',
        server: 'vpn12',
        ipv4Servers: ['vpn21'],
        ipv6Servers: ['vpn12'],
        problem: 'missing',
        problems: ['missing', 'stale'],
      }),
    ]);
    expect(view.counts).toEqual({ missing: 1, duplicate: 0, stale: 1 });
    // The servers that never reported are left out, not counted.
    expect(view.unverifiedServers).toEqual(
      t.fleet
        .serverNames()
        .filter((s) => !['vpn11', 'vpn12', 'vpn21'].includes(s))
        .sort(),
    );
  });

  it('refuses a report whose routes are not addresses, too many, or of another shape', async () => {
    const bad = async (routes: unknown, re: RegExp) => {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/agent/report',
        headers: await agent('vpn11'),
        payload: { sessions: [], health: HEALTHY, routes },
      });
      oneLine(r, 400, re);
    };
    await bad({ ipv4: ['10.0.0.300'], ipv6: [] }, /^body\.routes\.ipv4\[0\]: /);
    await bad({ ipv4: ['10.0.0.0/24'], ipv6: [] }, /^body\.routes\.ipv4\[0\]: /);
    await bad({ ipv4: [], ipv6: ['fe80::1%vpn0'] }, /^body\.routes\.ipv6\[0\]: /);
    await bad({ ipv4: [], ipv6: ['10.0.0.1'] }, /^body\.routes\.ipv6\[0\]: /);
    await bad({ ipv4: [7], ipv6: [] }, /^body\.routes\.ipv4\[0\]: /);
    await bad({ ipv4: [] }, /^body\.routes\.ipv6: is required/);
    await bad({ ipv4: [], ipv6: [], ipv5: [] }, /^body\.routes\.ipv5: is not a known field/);
    const many = Array.from(
      { length: MAX_HOST_ROUTES + 1 },
      (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`,
    );
    await bad(
      { ipv4: many, ipv6: [] },
      /^body\.routes\.ipv4: must have at most 20000 items \(got 20001\)$/,
    );
    // Nothing of the refused reports was kept.
    expect(
      (await t.fleet.store.listServerStates()).find((s) => s.name === 'vpn11'),
    ).toBeUndefined();
  });
});

describe('POST /v1/sessions/kill', () => {
  it("tells the server's agent to end that session, once, audited, and ends it as killed", async () => {
    await report('vpn11', [session(ann, 1), session(bob, 2)]);
    const before = await directive('vpn11');
    const r = await kill({ server: 'vpn11', user: 'ann' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      server: 'vpn11',
      user: 'ann',
      sessions: [{ user: 'ann', server: 'vpn11', since: '2026-03-01T11:00:00.000Z' }],
    });
    const d = await directive('vpn11');
    expect(d.token).not.toBe(before.token);
    expect(d.evict).toEqual([
      { user: 'ann', since: '2026-03-01T11:00:00.000Z', clientId: 1, reason: 'operator' },
    ]);
    // No other server is told anything.
    expect((await directive('vpn12')).evict).toEqual([]);

    // Asked again: the same directive, no second audit entry.
    expect((await kill({ server: 'vpn11', user: 'ann' })).statusCode).toBe(200);
    expect((await directive('vpn11')).token).toBe(d.token);
    const kills = (await t.fleet.store.auditLog(100)).filter((e) => e.action === 'session.kill');
    expect(kills).toEqual([
      expect.objectContaining({
        actor: 'api:admin',
        subject: 'ann',
        detail: expect.objectContaining({ server: 'vpn11', since: '2026-03-01T11:00:00.000Z' }),
      }),
    ]);

    // The agent ends it: gone from the report, the kill is dropped, the history says why.
    await report('vpn11', [session(bob, 2)]);
    expect((await directive('vpn11')).evict).toEqual([]);
    const history = await app.inject({ url: '/v1/users/ann/history', headers: ADMIN });
    expect(history.json()[0]).toMatchObject({ server: 'vpn11', reason: 'killed' });
    // ann reconnects: her new session is not killed again.
    await report('vpn11', [session(bob, 2), session(ann, 3, '2026-03-01T11:05:00.000Z')]);
    expect((await directive('vpn11')).evict).toEqual([]);
    oneLine(await kill({ server: 'vpn12', user: 'ann' }), 404, /no live session of ann on vpn12/);
  });

  it('404 for no such server or live session; 400 for a bad body', async () => {
    await report('vpn11', [session(ann, 1)]);
    oneLine(await kill({ server: 'vpn99', user: 'ann' }), 404, /no server named vpn99/);
    oneLine(await kill({ server: 'vpn11', user: 'bob' }), 404, /no live session of bob on vpn11/);
    oneLine(await kill({ server: 'vpn11' }), 400, /^body\.user: is required/);
    oneLine(await kill({ server: 'vpn11', user: 'ann', now: true }), 400, /^body\.now: /);
    oneLine(await kill({ server: 'vpn11', user: 7 }), 400, /^body\.user: /);
    oneLine(await kill({ server: 'vpn11', user: 'x'.repeat(201) }), 400, /^body\.user: /);
    expect((await t.fleet.store.auditLog(100)).filter((e) => e.action === 'session.kill')).toEqual(
      [],
    );
  });

  it('a viewer may read history and routes but gets 403 on a kill; an operator may kill', async () => {
    await report('vpn11', [session(ann, 1)]);
    const viewer = { ...ADMIN, 'x-test-role': 'viewer' };
    const operator = { ...ADMIN, 'x-test-role': 'operator' };
    expect((await app.inject({ url: '/v1/users/ann/history', headers: viewer })).statusCode).toBe(
      200,
    );
    expect((await app.inject({ url: '/v1/routes', headers: viewer })).statusCode).toBe(200);
    oneLine(await kill({ server: 'vpn11', user: 'ann' }, viewer), 403, /operator/);
    expect((await directive('vpn11')).evict).toEqual([]);
    expect((await kill({ server: 'vpn11', user: 'ann' }, operator)).statusCode).toBe(200);
    const entry = (await t.fleet.store.auditLog(100)).find((e) => e.action === 'session.kill');
    expect(entry?.actor).toBe('test:operator');
    // An agent token is no operator.
    oneLine(await kill({ server: 'vpn11', user: 'ann' }, await agent('vpn11')), 403, /agent/);
  });
});
