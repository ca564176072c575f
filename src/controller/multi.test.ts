/**
 * Two controllers on one PostgreSQL (a real one, src/sys/postgres.ts; skipped visibly without
 * it, failing under CI=true): a change through one wakes an agent long-polling the other, both
 * serve the same directive, exactly one leads, and an eviction decided from reports that went
 * to different controllers is audited once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import type { AgentReport, Directive, RolloutStatusView, SessionReport } from '../api/index.js';
import { initFleet } from '../service/open.js';
import { type PostgresServer, postgresMissing, startPostgres } from '../sys/postgres.js';
import { itNeeds } from '../testing.js';
import { type Controller, buildController } from './app.js';

const missing = postgresMissing();
const ADMIN = 'multi-admin-token';
let server: PostgresServer | undefined;
let dir: string | undefined;
let env: NodeJS.ProcessEnv;
const tokens = new Map<string, string>();
const controllers: { ctl: Controller; log: string[] }[] = [];

beforeAll(async () => {
  if (missing && process.env.CI !== 'true') return;
  server = await startPostgres({ port: 5435 });
  env = {
    OVPN_FLEET_DATABASE_URL: `postgresql://${server.user}@localhost/postgres?host=${encodeURIComponent(server.socketDir)}&port=${server.port}`,
  };
  dir = mkdtempSync(join(tmpdir(), 'ovf-multi-'));
  const fleet = await initFleet(dir, { env });
  for (const s of fleet.serverNames()) tokens.set(s, await fleet.agentToken(s));
  await fleet.close();
  for (let i = 0; i < 2; i++) {
    const log: string[] = [];
    const ctl = await buildController({
      fleetDir: dir,
      baseDir: (s) => `/etc/ovpn-fleet/${s}`,
      adminToken: ADMIN,
      pollWaitMs: 10_000,
      log: (line) => log.push(line),
      env,
    });
    controllers.push({ ctl, log });
  }
}, 180_000);

afterAll(async () => {
  for (const { ctl } of controllers) await ctl.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

const agent = (s: string) => ({ authorization: `Bearer ${tokens.get(s)}` });
const admin = { authorization: `Bearer ${ADMIN}` };

async function poll(ctl: Controller, s: string, known = '') {
  return ctl.app.inject({
    method: 'GET',
    url: `/v1/agent/poll?known=${encodeURIComponent(known)}`,
    headers: agent(s),
  });
}

async function directive(ctl: Controller, s: string): Promise<Directive> {
  const r = await poll(ctl, s);
  expect(r.statusCode).toBe(200);
  return r.json();
}

async function until(fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };

async function report(ctl: Controller, s: string, sessions: SessionReport[]) {
  const body: AgentReport = { sessions, health: HEALTHY, bundleDigest: 'applied' };
  const r = await ctl.app.inject({
    method: 'POST',
    url: '/v1/agent/report',
    headers: agent(s),
    payload: body,
  });
  expect(r.statusCode).toBe(204);
}

itNeeds(
  missing,
  'a user added through one controller wakes a poll waiting on the other; both serve the same directive',
  async () => {
    const [a, b] = controllers.map((c) => c.ctl);
    const s = [...tokens.keys()][0];
    // The same state gives the same directive: once the leader's first PKI step (a CRL, say)
    // has reached the other controller too.
    await until(async () => (await directive(a, s)).token === (await directive(b, s)).token);
    const before = await directive(b, s);
    const waiting = poll(b, s, before.token);
    const added = await a.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: admin,
      payload: { name: 'ann', groups: [] },
    });
    expect(added.statusCode).toBe(201);
    const woken = await waiting;
    // Answered by the change, not by the poll's 10 s wait running out (that would be a 204).
    expect(woken.statusCode).toBe(200);
    const next: Directive = woken.json();
    expect(next.token).not.toBe(before.token);
    expect(
      next.bundle.files.some((f) => f.path.endsWith('/ann') || f.content.includes('ann')),
    ).toBe(true);
    await until(async () => (await directive(a, s)).token === next.token);
  },
  60_000,
);

itNeeds(
  missing,
  'exactly one leads; an eviction from reports sent to different controllers is in both directives and audited once',
  async () => {
    await until(
      () =>
        controllers.filter((c) => c.log.at(-1 - 0) !== undefined && isLeading(c.log)).length === 1,
    );
    const [a, b] = controllers.map((c) => c.ctl);
    const [s1, s2] = [...tokens.keys()];
    const user = await a.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: admin,
      payload: { name: 'bea', groups: [] },
    });
    expect(user.statusCode).toBe(201);
    const older = new Date(Date.now() - 60_000).toISOString();
    const newer = new Date().toISOString();
    const session = (since: string, clientId: number): SessionReport => ({
      user: 'bea',
      realAddress: `198.51.100.${clientId}:1194`,
      since,
      bytesIn: 0,
      bytesOut: 0,
      clientId,
    });
    for (const t of tokens.keys()) if (t !== s1 && t !== s2) await report(a, t, []);
    await report(a, s1, [session(older, 1)]);
    await report(b, s2, [session(newer, 2)]);
    const evicted = async (ctl: Controller) =>
      (await directive(ctl, s1)).evict.some((e) => e.user === 'bea' && e.since === older);
    await until(async () => (await evicted(a)) && (await evicted(b)));
    await new Promise((r) => setTimeout(r, 1000));
    const audit = await a.app.inject({
      url: '/v1/audit?kind=session.evict&user=bea&limit=50',
      headers: admin,
    });
    expect(audit.statusCode).toBe(200);
    expect(audit.json()).toHaveLength(1);
  },
  60_000,
);

/** Its last word on leadership was that it leads. */
function isLeading(log: readonly string[]): boolean {
  const said = log.filter((l) => l.startsWith('leading:') || l.startsWith('not leading:'));
  return said.at(-1)?.startsWith('leading:') ?? false;
}

itNeeds(
  missing,
  "a restart an agent reports to the follower starts the leader's rollout (the store carries it)",
  async () => {
    await until(() => controllers.filter((c) => isLeading(c.log)).length === 1);
    const leader = controllers.find((c) => isLeading(c.log))!.ctl;
    const follower = controllers.find((c) => !isLeading(c.log))!.ctl;
    const s = [...tokens.keys()][1];
    const restart = async (pending: boolean) => {
      const body: AgentReport = {
        sessions: [],
        health: HEALTHY,
        bundleDigest: 'applied',
        restart: { generation: 0, pending },
      };
      const r = await follower.app.inject({
        method: 'POST',
        url: '/v1/agent/report',
        headers: agent(s),
        payload: body,
      });
      expect(r.statusCode).toBe(204);
    };
    const status = async (): Promise<RolloutStatusView> =>
      (await leader.app.inject({ url: '/v1/rollout', headers: admin })).json();
    await restart(true);
    // Only the follower heard the agent; the leader decides, from what the store holds.
    await until(async () => {
      const st = await status();
      return st.pending.includes(s) || !!st.rollout?.steps.some((step) => step.server === s);
    });
    await leader.app.inject({ method: 'POST', url: '/v1/rollout/abort', headers: admin });
    await restart(false);
    await until(async () => (await status()).pending.length === 0);
  },
  60_000,
);

itNeeds(
  missing,
  'PostgreSQL stopped under both controllers: they keep serving the last directives, say it once, and recover by themselves',
  async () => {
    const [a, b] = controllers.map((c) => c.ctl);
    const s = [...tokens.keys()][0];
    const last = await directive(b, s);
    await server!.halt();
    // Serving from memory: the agents keep their directive (and a poll with it waits).
    expect((await directive(a, s)).token).toBe((await directive(a, s)).token);
    expect((await directive(b, s)).token).toBe(last.token);
    const refused = await a.app.inject({
      method: 'POST',
      url: '/v1/users',
      headers: admin,
      payload: { name: 'cid', groups: [] },
    });
    expect(refused.statusCode).toBe(503);
    expect(refused.json<{ error: string }>().error).toMatch(/^PostgreSQL .* is unreachable: /);
    await new Promise((r) => setTimeout(r, 1500));
    for (const { log } of controllers)
      expect(log.filter((l) => l.includes('lost the connection')).length).toBeLessThanOrEqual(1);
    expect(controllers.some((c) => c.log.some((l) => l.includes('lost the connection')))).toBe(
      true,
    );

    await server!.start();
    await until(async () => {
      const r = await a.app.inject({
        method: 'POST',
        url: '/v1/users',
        headers: admin,
        payload: { name: 'cid', groups: [] },
      });
      return r.statusCode === 201;
    }, 20_000);
    await until(async () => (await directive(b, s)).token !== last.token, 20_000);
    await until(async () => (await directive(a, s)).token === (await directive(b, s)).token);
    await until(() => controllers.filter((c) => isLeading(c.log)).length === 1, 20_000);
  },
  90_000,
);
