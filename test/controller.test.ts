/**
 * The controller through its HTTP API (fastify inject) on a real SQLite store in a temp fleet.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentReport, Directive, SessionReport } from '../src/agent/protocol.js';
import { type Controller, buildController } from '../src/controller/app.js';
import { Fleet } from '../src/service/fleet.js';

const ADMIN = 'admin-token-for-tests';
const admin = { authorization: `Bearer ${ADMIN}` };

let template: string;
let tokens: Map<string, string>;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  template = mkdtempSync(join(tmpdir(), 'ovpn-ctl-template-'));
  const fleet = await Fleet.init(template);
  tokens = new Map(fleet.serverNames().map((s) => [s, fleet.agentToken(s)]));
  fleet.close();
});

afterAll(() => rmSync(template, { recursive: true, force: true }));

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Setup {
  dir: string;
  ctl: Controller;
  clock: { offsetMs: number };
}

/** A fresh copy of the template fleet with its own controller. */
async function setup(opts: { pollWaitMs?: number } = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-ctl-'));
  cpSync(template, dir, { recursive: true });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const clock = { offsetMs: 0 };
  const ctl = await buildController({
    fleetDir: dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: ADMIN,
    serverToken: (s) => tokens.get(s)!,
    clock: { now: () => new Date(Date.now() + clock.offsetMs) },
    pollWaitMs: opts.pollWaitMs ?? 400,
    log: () => {},
  });
  cleanup.push(() => ctl.close());
  return { dir, ctl, clock };
}

const agent = (server: string) => ({ authorization: `Bearer ${tokens.get(server)}` });

async function poll(ctl: Controller, server: string, known = '') {
  return ctl.app.inject({
    method: 'GET',
    url: `/v1/agent/poll?known=${encodeURIComponent(known)}`,
    headers: agent(server),
  });
}

async function directive(ctl: Controller, server: string): Promise<Directive> {
  const r = await poll(ctl, server);
  expect(r.statusCode).toBe(200);
  return r.json();
}

const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };

function session(user: string, since: string, clientId = 1): SessionReport {
  return {
    user,
    realAddress: `198.51.100.${clientId}:1194`,
    since,
    bytesIn: 10,
    bytesOut: 20,
    clientId,
  };
}

async function report(ctl: Controller, server: string, sessions: SessionReport[]) {
  const body: AgentReport = { sessions, health: HEALTHY, bundleDigest: 'applied-digest' };
  const r = await ctl.app.inject({
    method: 'POST',
    url: '/v1/agent/report',
    headers: agent(server),
    payload: body,
  });
  expect(r.statusCode).toBe(204);
}

function expectOneLineError(r: { statusCode: number; json(): any }, status: number, re: RegExp) {
  expect(r.statusCode).toBe(status);
  const { error } = r.json();
  expect(error).toMatch(re);
  expect(error).not.toContain('\n');
}

describe('auth', () => {
  it('401 without or with a wrong token, 403 for the wrong scope', async () => {
    const { ctl } = await setup();
    const app = ctl.app;
    expectOneLineError(await app.inject({ url: '/v1/users' }), 401, /missing bearer token/);
    expectOneLineError(
      await app.inject({ url: '/v1/users', headers: { authorization: 'Bearer nope' } }),
      401,
      /invalid token/,
    );
    expectOneLineError(
      await app.inject({ url: '/v1/agent/poll', headers: { authorization: 'Bearer nope' } }),
      401,
      /invalid token/,
    );
    // An agent token cannot reach admin routes, not even read-only ones.
    for (const url of ['/v1/users', '/v1/sessions', '/v1/audit']) {
      expectOneLineError(await app.inject({ url, headers: agent('vpn11') }), 403, /agent/);
    }
    expectOneLineError(
      await app.inject({ method: 'POST', url: '/v1/servers/vpn11/drain', headers: agent('vpn11') }),
      403,
      /agent/,
    );
    // The admin token is no agent token.
    expectOneLineError(
      await app.inject({ url: '/v1/agent/poll', headers: admin }),
      403,
      /server token/,
    );
    // An agent can only read its own server's directive.
    expectOneLineError(
      await app.inject({ url: '/v1/agent/poll?server=vpn12', headers: agent('vpn11') }),
      403,
      /belongs to server vpn11/,
    );
    expect((await app.inject({ url: '/v1/users', headers: admin })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v1/health' })).json()).toEqual({ ok: true });
  });

  it("each agent gets its own server's bundle", async () => {
    const { ctl } = await setup();
    const d11 = await directive(ctl, 'vpn11');
    const d21 = await directive(ctl, 'vpn21');
    expect(d11.bundle.digest).not.toBe(d21.bundle.digest);
    const conf = d11.bundle.files.find((f) => f.path === 'server.conf')!.content;
    expect(conf).toContain('/etc/ovpn-fleet/vpn11');
  });
});

describe('users API', () => {
  it('adds, reads, changes and deletes users with mapped errors', async () => {
    const { ctl } = await setup();
    const app = ctl.app;
    const add = (payload: unknown) =>
      app.inject({ method: 'POST', url: '/v1/users', headers: admin, payload: payload as object });

    const created = await add({ name: 'alice', groups: ['staff'] });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ name: 'alice', groups: ['staff'], status: 'enabled' });
    expect(created.json().ipv4).toMatch(/^\d+\.\d+\.\d+\.\d+$/);

    expectOneLineError(await add({ name: 'alice' }), 409, /alice already exists/);
    expectOneLineError(await add({ groups: [] }), 400, /^body\.name: is required$/);
    expectOneLineError(await add({ name: 'bob', group: ['staff'] }), 400, /^body\.group: /);
    expectOneLineError(await add({ name: 'bob', groups: 'x' }), 400, /^body\.groups/);
    expectOneLineError(await add({ name: 'b;ob' }), 400, /^name: /);
    expectOneLineError(await add({ name: 'bob', groups: ['nope'] }), 400, /^group: unknown group/);

    const list = await app.inject({ url: '/v1/users', headers: admin });
    expect(list.json().map((u: { name: string }) => u.name)).toEqual(['alice']);
    expect((await app.inject({ url: '/v1/users/alice', headers: admin })).json().name).toBe(
      'alice',
    );
    expectOneLineError(
      await app.inject({ url: '/v1/users/zed', headers: admin }),
      404,
      /no user named zed/,
    );

    const groups = await app.inject({
      method: 'PUT',
      url: '/v1/users/alice/groups',
      headers: admin,
      payload: { groups: [] },
    });
    expect(groups.json().groups).toEqual([]);

    const profile = await app.inject({ url: '/v1/users/alice/profile', headers: admin });
    expect(profile.statusCode).toBe(200);
    expect(profile.headers['content-type']).toMatch(/^text\/plain/);
    expect(profile.body).toContain('BEGIN CERTIFICATE');

    const disabled = await app.inject({
      method: 'POST',
      url: '/v1/users/alice/disable',
      headers: admin,
    });
    expect(disabled.json().status).toBe('disabled');
    await app.inject({ method: 'POST', url: '/v1/users/alice/revoke', headers: admin });
    expectOneLineError(
      await app.inject({ method: 'POST', url: '/v1/users/alice/enable', headers: admin }),
      409,
      /revoked/,
    );

    const deleted = await app.inject({ method: 'DELETE', url: '/v1/users/alice', headers: admin });
    expect(deleted.statusCode).toBe(200);
    expectOneLineError(
      await app.inject({ url: '/v1/users/alice', headers: admin }),
      404,
      /no user named alice/,
    );

    const audit = (await app.inject({ url: '/v1/audit?limit=50', headers: admin })).json();
    const actions = audit.map((e: { action: string; actor: string }) => `${e.action} ${e.actor}`);
    for (const a of ['user.add', 'user.groups', 'user.disable', 'user.revoke', 'user.delete'])
      expect(actions).toContain(`${a} api:admin`);
    expectOneLineError(
      await app.inject({ url: '/v1/audit?limit=0', headers: admin }),
      400,
      /^querystring\.limit: /,
    );
  });
});

describe('long-poll', () => {
  it('answers at once when the token differs, waits and answers 204 otherwise', async () => {
    const { ctl } = await setup({ pollWaitMs: 400 });
    const d = await directive(ctl, 'vpn11');
    expect(d.token).toMatch(/^[0-9a-f]{64}$/);
    const started = Date.now();
    const again = await poll(ctl, 'vpn11', d.token);
    expect(again.statusCode).toBe(204);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    const stale = await poll(ctl, 'vpn11', 'old-token');
    expect(stale.statusCode).toBe(200);
    expect(stale.json().token).toBe(d.token);
  });

  it('wakes a waiting poll when the admin API adds a user', async () => {
    const { ctl } = await setup({ pollWaitMs: 10_000 });
    const d = await directive(ctl, 'vpn12');
    const waiting = poll(ctl, 'vpn12', d.token);
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await ctl.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: admin,
      payload: { name: 'carol' },
    });
    const r = await waiting;
    expect(r.statusCode).toBe(200);
    expect(Date.now() - started).toBeLessThan(2000);
    const next: Directive = r.json();
    expect(next.token).not.toBe(d.token);
    expect(next.bundle.files.map((f) => f.path)).toContain('ccd/carol');
  });

  it('wakes a waiting poll within a second when another process changes the store', async () => {
    const { ctl, dir } = await setup({ pollWaitMs: 10_000 });
    const d = await directive(ctl, 'vpn21');
    expect(d.bundle.files.map((f) => f.path)).not.toContain('ccd/dave');
    const waiting = poll(ctl, 'vpn21', d.token);
    const started = Date.now();
    // What `ovpn-fleet user add dave` does: its own connection to fleet.db.
    const cli = Fleet.open(dir);
    try {
      await cli.addUsers([{ name: 'dave', groups: ['staff'] }]);
    } finally {
      cli.close();
    }
    const r = await waiting;
    expect(r.statusCode).toBe(200);
    expect(Date.now() - started).toBeLessThan(1500);
    const files: Directive['bundle']['files'] = r.json().bundle.files;
    const ccd = files.find((f) => f.path === 'ccd/dave');
    expect(ccd?.content).toMatch(/ifconfig-push/);
  });

  it('keeps serving the last good fleet.yaml when it becomes invalid, reloads a good one', async () => {
    const { ctl, dir } = await setup();
    const path = join(dir, 'fleet.yaml');
    const good = readFileSync(path, 'utf8');
    writeFileSync(path, `${good}\nbogus: [\n`);
    await new Promise((r) => setTimeout(r, 500));
    const health = (await ctl.app.inject({ url: '/v1/health' })).json();
    expect(health.specProblem).toBeTruthy();
    expect((await poll(ctl, 'vpn11')).statusCode).toBe(200);

    writeFileSync(path, good.replace('groups:\n', 'groups:\n  - { name: ops }\n'));
    await new Promise((r) => setTimeout(r, 500));
    expect((await ctl.app.inject({ url: '/v1/health' })).json()).toEqual({ ok: true });
    const added = await ctl.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: admin,
      payload: { name: 'erin', groups: ['ops'] },
    });
    expect(added.statusCode).toBe(201);
  });
});

describe('sessions, eviction and drain', () => {
  const T1 = '2030-01-01T10:00:00.000Z';
  const T2 = '2030-01-01T10:05:00.000Z';

  it('keeps the session table from reports and audits connect, move and disconnect', async () => {
    const { ctl } = await setup();
    await report(ctl, 'vpn11', [session('alice', T1, 1), session('bob', T1, 2)]);
    await report(ctl, 'vpn21', [session('alice', T2, 7)]);
    let sessions = (await ctl.app.inject({ url: '/v1/sessions', headers: admin })).json();
    expect(sessions.map((s: any) => `${s.user}@${s.server}`)).toEqual([
      'alice@vpn11',
      'bob@vpn11',
      'alice@vpn21',
    ]);
    expect(sessions[0]).toMatchObject({ realAddress: '198.51.100.1:1194', bytesIn: 10 });
    expect(sessions[0].stale).toBe(false);

    // A report replaces the server's whole list: alice's old session there is gone.
    await report(ctl, 'vpn11', [session('bob', T1, 2)]);
    sessions = (await ctl.app.inject({ url: '/v1/sessions', headers: admin })).json();
    expect(sessions.map((s: any) => `${s.user}@${s.server}`)).toEqual(['bob@vpn11', 'alice@vpn21']);

    const servers = (await ctl.app.inject({ url: '/v1/servers', headers: admin })).json();
    const vpn11 = servers.find((s: any) => s.name === 'vpn11');
    expect(vpn11).toMatchObject({
      site: 'dc1',
      sessions: 1,
      stale: false,
      health: HEALTHY,
      appliedDigest: 'applied-digest',
      upToDate: false,
    });
    expect(vpn11.currentDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(servers.find((s: any) => s.name === 'vpn31').stale).toBe(true);

    const audit = (await ctl.app.inject({ url: '/v1/audit?limit=100', headers: admin })).json();
    const events = audit.map((e: any) => `${e.action} ${e.subject} ${e.actor}`);
    expect(events).toContain('session.connect alice agent:vpn11');
    expect(events).toContain('session.connect alice agent:vpn21');
    expect(events).toContain('session.move alice agent:vpn21');
    expect(events).toContain('session.disconnect alice agent:vpn11');
    expect(events).not.toContain('session.move bob agent:vpn11');
  });

  it("tells the server with the older session to evict it, ignoring stale servers' sessions", async () => {
    const { ctl, clock } = await setup();
    expect((await directive(ctl, 'vpn11')).evict).toEqual([]);
    await report(ctl, 'vpn11', [session('alice', T1, 1), session('bob', T1, 2)]);
    await report(ctl, 'vpn21', [session('alice', T2, 7)]);
    expect((await directive(ctl, 'vpn11')).evict).toEqual([{ user: 'alice', since: T1 }]);
    expect((await directive(ctl, 'vpn21')).evict).toEqual([]);
    const audit = (await ctl.app.inject({ url: '/v1/audit?limit=100', headers: admin })).json();
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: 'session.evict',
        subject: 'alice',
        detail: { server: 'vpn11', since: T1 },
      }),
    );

    // vpn21 stops reporting: its session no longer decides anything.
    clock.offsetMs = 11_000;
    await report(ctl, 'vpn11', [session('alice', T1, 1), session('bob', T1, 2)]);
    expect((await directive(ctl, 'vpn11')).evict).toEqual([]);
    const servers = (await ctl.app.inject({ url: '/v1/servers', headers: admin })).json();
    expect(servers.find((s: any) => s.name === 'vpn21').stale).toBe(true);
    expect(servers.find((s: any) => s.name === 'vpn11').stale).toBe(false);
  });

  it('drain sets the flag in the directive, wakes the agent and is audited', async () => {
    const { ctl } = await setup({ pollWaitMs: 10_000 });
    const d = await directive(ctl, 'vpn22');
    expect(d.drain).toBe(false);
    const waiting = poll(ctl, 'vpn22', d.token);
    const drained = await ctl.app.inject({
      method: 'POST',
      url: '/v1/servers/vpn22/drain',
      headers: admin,
    });
    expect(drained.json()).toMatchObject({ name: 'vpn22', draining: true });
    const woken = await waiting;
    expect(woken.statusCode).toBe(200);
    expect(woken.json().drain).toBe(true);
    expect((await directive(ctl, 'vpn21')).drain).toBe(false);

    await ctl.app.inject({ method: 'POST', url: '/v1/servers/vpn22/undrain', headers: admin });
    expect((await directive(ctl, 'vpn22')).drain).toBe(false);
    expectOneLineError(
      await ctl.app.inject({ method: 'POST', url: '/v1/servers/nope/drain', headers: admin }),
      404,
      /no server named nope/,
    );
    const audit = (await ctl.app.inject({ url: '/v1/audit', headers: admin })).json();
    const events = audit.map((e: any) => `${e.action} ${e.subject} ${e.actor}`);
    expect(events).toContain('server.drain vpn22 api:admin');
    expect(events).toContain('server.undrain vpn22 api:admin');
  });

  it('rejects a malformed report naming the field', async () => {
    const { ctl } = await setup();
    const r = await ctl.app.inject({
      method: 'POST',
      url: '/v1/agent/report',
      headers: agent('vpn11'),
      payload: { sessions: [{ user: 'alice' }], health: HEALTHY },
    });
    expectOneLineError(r, 400, /^body\.sessions\.0\.realAddress: is required$/);
  });
});

describe('OpenAPI', () => {
  it('serves the document that docs/openapi.json holds (npm run openapi)', async () => {
    const { ctl } = await setup();
    const served = (await ctl.app.inject({ url: '/v1/openapi.json' })).json();
    expect(Object.keys(served.paths)).toEqual(
      expect.arrayContaining(['/v1/users', '/v1/users/{name}/profile', '/v1/agent/poll']),
    );
    const file = JSON.parse(
      readFileSync(resolve(import.meta.dirname, '..', 'docs', 'openapi.json'), 'utf8'),
    );
    expect(served).toEqual(file);
  });
});
