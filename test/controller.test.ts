/**
 * The controller through its HTTP API (fastify inject) on a real SQLite store in a temp fleet.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentReport, Directive, SessionReport } from '../src/api/index.js';
import { type Controller, buildController } from '../src/controller/app.js';
import { initFleet, openFleet } from '../src/service/open.js';
import type { AuditEntry, User } from '../src/store/types.js';
import { type Timers, realTimers, waitFor } from '../src/sys/time.js';

const ADMIN = 'admin-token-for-tests';
const admin = { authorization: `Bearer ${ADMIN}` };

let template: string;
let tokens: Map<string, string>;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  template = mkdtempSync(join(tmpdir(), 'ovpn-ctl-template-'));
  const fleet = await initFleet(template);
  tokens = new Map();
  for (const s of fleet.serverNames()) tokens.set(s, await fleet.agentToken(s));
  await fleet.close();
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

/** A fresh copy of the template fleet with its own controller (and these users, if given). */
async function setup(
  opts: {
    pollWaitMs?: number;
    users?: string[];
    options?: Partial<Parameters<typeof buildController>[0]>;
  } = {},
): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-ctl-'));
  cpSync(template, dir, { recursive: true });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  if (opts.users?.length) {
    const fleet = await openFleet(dir);
    try {
      await fleet.addUsers(
        opts.users.map((name) => ({ name })),
        { issueCerts: false },
      );
    } finally {
      await fleet.close();
    }
  }
  const clock = { offsetMs: 0 };
  const ctl = await buildController({
    fleetDir: dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: ADMIN,
    serverToken: (s) => tokens.get(s)!,
    clock: { now: () => new Date(Date.now() + clock.offsetMs) },
    pollWaitMs: opts.pollWaitMs ?? 400,
    log: () => {},
    ...opts.options,
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
    expect(profile.headers['content-type']).toBe('application/x-openvpn-profile');
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

/**
 * Node's timers, except that each poll's wait (the timeout of `waitMs`) is held here for the
 * test to run by hand: a poll then answers 204 because its wait ran out, and only then.
 */
function heldPollWaits(waitMs: number) {
  const held = new Set<() => void>();
  const timers: Timers = {
    ...realTimers,
    setTimeout: (fn, ms) => {
      if (ms !== waitMs) return realTimers.setTimeout(fn, ms);
      held.add(fn);
      return fn;
    },
    clearTimeout: (h) => {
      if (!held.delete(h as () => void)) realTimers.clearTimeout(h);
    },
  };
  const runAll = () => {
    const due = [...held];
    held.clear();
    for (const fn of due) fn();
  };
  return { timers, waiting: () => held.size, runAll };
}

/** Whether a promise has settled yet, without waiting for it. */
function settledFlag(p: Promise<unknown>): () => boolean {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return () => settled;
}

/** Polls wait ten minutes here: a poll answered by its timeout fails the test by its own. */
const LONG_WAIT_MS = 600_000;

describe('long-poll', () => {
  it('answers at once when the token differs, waits and answers 204 otherwise', async () => {
    const waits = heldPollWaits(LONG_WAIT_MS);
    const { ctl } = await setup({ pollWaitMs: LONG_WAIT_MS, options: { timers: waits.timers } });
    const d = await directive(ctl, 'vpn11');
    expect(d.token).toMatch(/^[0-9a-f]{64}$/);
    const again = poll(ctl, 'vpn11', d.token);
    const answered = settledFlag(again);
    await waitFor('the poll to wait', () => waits.waiting() === 1, 5000, 5);
    // A change elsewhere does not answer it, nor does a poll of another server.
    await ctl.refresh();
    const other = await poll(ctl, 'vpn12', 'old-token');
    expect(other.statusCode).toBe(200);
    expect(answered()).toBe(false);
    waits.runAll();
    expect((await again).statusCode).toBe(204);
    const stale = await poll(ctl, 'vpn11', 'old-token');
    expect(stale.statusCode).toBe(200);
    expect(stale.json().token).toBe(d.token);
  });

  it('wakes a waiting poll when the admin API adds a user', async () => {
    const waits = heldPollWaits(LONG_WAIT_MS);
    const { ctl } = await setup({ pollWaitMs: LONG_WAIT_MS, options: { timers: waits.timers } });
    const d = await directive(ctl, 'vpn12');
    const waiting = poll(ctl, 'vpn12', d.token);
    // Waiting for real, not answered at once by a change that came first.
    await waitFor('the poll to wait', () => waits.waiting() === 1, 5000, 5);
    await ctl.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: admin,
      payload: { name: 'carol' },
    });
    const r = await waiting;
    expect(r.statusCode).toBe(200);
    const next: Directive = r.json();
    expect(next.token).not.toBe(d.token);
    expect(next.bundle.files.map((f) => f.path)).toContain('ccd/carol');
  });

  it('wakes a waiting poll when another process changes the store', async () => {
    const waits = heldPollWaits(LONG_WAIT_MS);
    const { ctl, dir } = await setup({
      pollWaitMs: LONG_WAIT_MS,
      options: { timers: waits.timers },
    });
    const d = await directive(ctl, 'vpn21');
    expect(d.bundle.files.map((f) => f.path)).not.toContain('ccd/dave');
    const waiting = poll(ctl, 'vpn21', d.token);
    await waitFor('the poll to wait', () => waits.waiting() === 1, 5000, 5);
    // What `ovpn-fleet user add dave` does: its own connection to fleet.db.
    const cli = await openFleet(dir);
    try {
      await cli.addUsers([{ name: 'dave', groups: ['staff'] }]);
    } finally {
      await cli.close();
    }
    const r = await waiting;
    expect(r.statusCode).toBe(200);
    const files: Directive['bundle']['files'] = r.json().bundle.files;
    const ccd = files.find((f) => f.path === 'ccd/dave');
    expect(ccd?.content).toMatch(/ifconfig-push/);
  });

  it('keeps serving the last good fleet.yaml when it becomes invalid, reloads a good one', async () => {
    const { ctl, dir } = await setup();
    const path = join(dir, 'fleet.yaml');
    const good = readFileSync(path, 'utf8');
    const health = async (): Promise<{ ok: boolean; specProblem?: string }> =>
      (await ctl.app.inject({ url: '/v1/health', headers: admin })).json();
    writeFileSync(path, `${good}\nbogus: [\n`);
    const problem = await waitFor(
      'the controller to notice the broken fleet.yaml',
      async () => (await health()).specProblem,
      5000,
      20,
    );
    expect(problem).toMatch(/fleet\.yaml/);
    // Nobody without the admin token learns what is wrong with the spec.
    expect((await ctl.app.inject({ url: '/v1/health' })).json()).toEqual({ ok: true });
    const asAgent = await ctl.app.inject({ url: '/v1/health', headers: agent('vpn11') });
    expect(asAgent.json()).toEqual({ ok: true });
    expect((await poll(ctl, 'vpn11')).statusCode).toBe(200);

    writeFileSync(path, good.replace('groups:\n', 'groups:\n  - { name: ops }\n'));
    await waitFor(
      'the controller to reload the repaired fleet.yaml',
      async () => (await health()).specProblem === undefined,
      5000,
      20,
    );
    expect(await health()).toEqual({ ok: true });
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
  // Reports are checked against the controller's clock: sessions started in the past.
  const T1 = new Date(Date.now() - 600_000).toISOString();
  const T2 = new Date(Date.now() - 300_000).toISOString();

  it('keeps the session table from reports and audits connect, move and disconnect', async () => {
    const { ctl } = await setup({ users: ['alice', 'bob'] });
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
    const { ctl, clock } = await setup({ users: ['alice', 'bob'] });
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
    expectOneLineError(r, 400, /^body\.sessions\[0\]\.realAddress: is required$/);
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

describe('a stolen agent token, and no token at all (issue 11)', () => {
  const past = (ms: number) => new Date(Date.now() - ms).toISOString();

  async function userOf(ctl: Controller, name: string): Promise<User> {
    return (await ctl.app.inject({ url: `/v1/users/${name}`, headers: admin })).json<User>();
  }

  async function auditRows(ctl: Controller): Promise<AuditEntry[]> {
    return (await ctl.app.inject({ url: '/v1/audit?limit=9999', headers: admin })).json<
      AuditEntry[]
    >();
  }

  it("refuses forged sessions: unknown or disabled users, others' addresses, a start in the future", async () => {
    const { ctl } = await setup({ users: ['alice', 'bob', 'carl'] });
    const alice = await userOf(ctl, 'alice');
    const bob = await userOf(ctl, 'bob');
    await ctl.app.inject({ method: 'POST', url: '/v1/users/carl/disable', headers: admin });
    // alice is really on vpn21.
    const real = { ...session('alice', past(60_000), 7), ipv4: alice.ipv4, ipv6: alice.ipv6 };
    await report(ctl, 'vpn21', [real]);

    // vpn11's token claims alice started a year from now: that would evict her real session.
    const future = new Date(Date.now() + 365 * 86_400_000).toISOString();
    await report(ctl, 'vpn11', [
      { ...session('alice', future, 1), ipv4: alice.ipv4 },
      { ...session('bob', past(1000), 2), ipv4: alice.ipv4 }, // alice's address, not bob's
      { ...session('bob', past(1000), 3), ipv6: alice.ipv6 },
      session('mallory', past(1000), 4), // no such user
      session('carl', past(1000), 5), // disabled
      { ...session('bob', past(1000), 6), ipv4: bob.ipv4, ipv6: bob.ipv6.toUpperCase() },
    ]);
    const sessions = (await ctl.app.inject({ url: '/v1/sessions', headers: admin })).json();
    expect(sessions.map((s: any) => `${s.user}@${s.server}#${s.ipv4 ?? '-'}`)).toEqual([
      `bob@vpn11#${bob.ipv4}`,
      `alice@vpn21#${alice.ipv4}`,
    ]);
    expect((await directive(ctl, 'vpn21')).evict).toEqual([]);
    expect((await directive(ctl, 'vpn11')).evict).toEqual([]);
    const events = (await auditRows(ctl)).map((e) => `${e.action} ${e.subject}`);
    expect(events).not.toContain('session.evict alice');
    expect(events).not.toContain('session.connect mallory');
  });

  it('refuses a report with an address that is not an address, or unknown fields, as 400', async () => {
    const { ctl } = await setup({ users: ['alice'] });
    const send = (payload: object) =>
      ctl.app.inject({
        method: 'POST',
        url: '/v1/agent/report',
        headers: agent('vpn11'),
        payload,
      });
    expectOneLineError(
      await send({
        sessions: [{ ...session('alice', past(1000)), ipv4: 'x\ny' }],
        health: HEALTHY,
      }),
      400,
      /^body\.sessions\[0\]\.ipv4: "x\\ny" is not a valid ipv4$/,
    );
    // Deeply nested JSON where the health object is: refused by the schema, not a 500.
    const deep = `${'{"a":'.repeat(5000)}{}${'}'.repeat(5000)}`;
    const nested = await ctl.app.inject({
      method: 'POST',
      url: '/v1/agent/report',
      headers: { ...agent('vpn11'), 'content-type': 'application/json' },
      payload: `{"sessions":[],"health":${JSON.stringify(HEALTHY).slice(0, -1)},"extra":${deep}}}`,
    });
    expectOneLineError(
      nested,
      400,
      /^body\.health\.extra: is not a known field \(fields here: openvpn, routing, ruleset, draining, ok\)$/,
    );
    const raw = await ctl.app.inject({
      method: 'POST',
      url: '/v1/agent/report',
      headers: { ...agent('vpn11'), 'content-type': 'application/json' },
      payload: `{"sessions":[],"health":${'['.repeat(200_000)}${']'.repeat(200_000)}}`,
    });
    expect(raw.statusCode).toBeGreaterThanOrEqual(400);
    expect(raw.statusCode).toBeLessThan(500);
  });

  it("bounds the audit entries one server's reports can write, and says how many it dropped", async () => {
    const names = Array.from({ length: 120 }, (_, i) => `u${i}`);
    const { ctl } = await setup({ users: names, options: { auditBurst: 50, auditPerSecond: 0 } });
    const all = names.map((n, i) => session(n, past(5000), i + 1));
    // Everyone connects, disconnects, connects …: 20 reports, 2,400 would-be entries.
    for (let round = 0; round < 20; round++) await report(ctl, 'vpn11', round % 2 ? [] : all);
    const rows = (await auditRows(ctl)).filter((e) => e.actor === 'agent:vpn11');
    expect(rows.length).toBe(50);
    // Another server has its own budget.
    await report(ctl, 'vpn21', [session('u1', past(1000), 1)]);
    const after = await auditRows(ctl);
    expect(after.filter((e) => e.actor === 'agent:vpn21').map((e) => e.action)).toContain(
      'session.connect',
    );
  });

  it('writes one audit.suppressed entry with the count once the budget refills', async () => {
    const names = Array.from({ length: 30 }, (_, i) => `u${i}`);
    const { ctl, clock } = await setup({
      users: names,
      options: { auditBurst: 10, auditPerSecond: 1 },
    });
    await report(
      ctl,
      'vpn11',
      names.map((n, i) => session(n, past(5000), i + 1)),
    );
    clock.offsetMs = 5000;
    await report(ctl, 'vpn11', []);
    const suppressed = (await auditRows(ctl)).filter((e) => e.action === 'audit.suppressed');
    expect(suppressed).toEqual([
      expect.objectContaining({
        subject: 'vpn11',
        detail: expect.objectContaining({ entries: 20 }),
      }),
    ]);
  });

  it('deletes audit entries older than audit.retentionDays when it starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ovpn-ctl-'));
    cpSync(template, dir, { recursive: true });
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const fleet = await openFleet(dir);
    const old = new Date(Date.now() - 500 * 86_400_000).toISOString();
    const recent = new Date(Date.now() - 10 * 86_400_000).toISOString();
    await fleet.store.audit({ at: old, actor: 'cli:test', action: 'user.add', subject: 'ancient' });
    await fleet.store.audit({
      at: recent,
      actor: 'cli:test',
      action: 'user.add',
      subject: 'recent',
    });
    await fleet.close();
    writeFileSync(
      join(dir, 'fleet.yaml'),
      `${readFileSync(join(dir, 'fleet.yaml'), 'utf8')}\naudit: { retentionDays: 100 }\n`,
    );
    const ctl = await buildController({
      fleetDir: dir,
      baseDir: () => '/etc/ovpn-fleet',
      adminToken: ADMIN,
      serverToken: (s) => tokens.get(s)!,
      log: () => {},
    });
    cleanup.push(() => ctl.close());
    const subjects = (await auditRows(ctl)).map((e) => e.subject);
    expect(subjects).toContain('recent');
    expect(subjects).not.toContain('ancient');
  });

  it('keeps one waiting poll per server: a new poll answers the older one', async () => {
    const { ctl } = await setup({ pollWaitMs: 30_000 });
    const d = await directive(ctl, 'vpn11');
    const polls = Array.from({ length: 50 }, () => poll(ctl, 'vpn11', d.token));
    const other = poll(ctl, 'vpn12', (await directive(ctl, 'vpn12')).token);
    const answered = await Promise.all(polls.slice(0, 49));
    expect(answered.map((r) => r.statusCode)).toEqual(Array(49).fill(204));
    await ctl.app.inject({ method: 'POST', url: '/v1/servers/vpn11/drain', headers: admin });
    const last = await polls[49];
    expect(last.statusCode).toBe(200);
    expect(last.json().drain).toBe(true);
    expect(last.headers['content-type']).toMatch(/^application\/json/);
    // vpn12's poll was not disturbed by vpn11's.
    await ctl.app.inject({ method: 'POST', url: '/v1/servers/vpn12/drain', headers: admin });
    expect((await other).statusCode).toBe(200);
  });
});

describe('connections (issue 11)', () => {
  /** A controller on a real loopback port, and raw sockets to it. */
  async function listening(options: Partial<Parameters<typeof buildController>[0]>) {
    const { ctl } = await setup({ options });
    await ctl.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = ctl.app.server.address() as { port: number };
    return { ctl, port };
  }

  function rawRequest(port: number, text: string) {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.write(text);
    return { socket, closed, received: () => received };
  }

  it('closes the connection after a 401, while the body is still coming', async () => {
    const { port } = await listening({});
    const c = rawRequest(
      port,
      'POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n' +
        'Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"name":',
    );
    await c.closed;
    expect(c.received()).toMatch(/^HTTP\/1\.1 401 /);
    expect(c.received().toLowerCase()).toContain('connection: close');
  });

  it('cuts off a client that trickles its request in (408), even with a valid token', async () => {
    const { port } = await listening({ requestTimeoutMs: 500 });
    const c = rawRequest(
      port,
      `POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
    );
    const drip = setInterval(() => c.socket.write(' '), 100);
    try {
      await c.closed;
    } finally {
      clearInterval(drip);
    }
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('refuses connections beyond maxConnections and serves again once they go', async () => {
    const { ctl, port } = await listening({ maxConnections: 5, requestTimeoutMs: 1000 });
    const idle = Array.from({ length: 5 }, () =>
      rawRequest(port, 'GET /v1/health HTTP/1.1\r\nHost: x\r\n'),
    );
    const connections = () =>
      new Promise<number>((done, fail) =>
        ctl.app.server.getConnections((err, n) => (err ? fail(err) : done(n))),
      );
    await waitFor(
      'the five idle connections to hold every slot',
      async () => (await connections()) === 5,
      5000,
      10,
    );
    const extra = rawRequest(port, 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n');
    await extra.closed;
    expect(extra.received()).toBe('');
    // The half-sent requests run out of time and free their slots.
    await Promise.all(idle.map((c) => c.closed));
    const ok = rawRequest(port, 'GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await ok.closed;
    expect(ok.received()).toMatch(/^HTTP\/1\.1 200 /);
  });
});
