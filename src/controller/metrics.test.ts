/**
 * The controller's /metrics through fastify inject, on a real store in a temp fleet, with time
 * that moves only when the test moves it.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AgentReport, SessionReport } from '../api/index.js';
import { initFleet, openFleet } from '../service/open.js';
import { sample, samples } from '../sys/testing.js';
import { type Controller, type ControllerOptions, buildController } from './app.js';
import { FakeTimers, ManualClock } from './testing.js';

const ADMIN = 'admin-token-for-metrics';
const METRICS = 'metrics-token-for-prometheus';
const admin = { authorization: `Bearer ${ADMIN}` };
const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };

let template: string;
let tokens: Map<string, string>;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  template = mkdtempSync(join(tmpdir(), 'ovf-metrics-template-'));
  const fleet = await initFleet(template);
  try {
    tokens = new Map();
    for (const s of fleet.serverNames()) tokens.set(s, await fleet.agentToken(s));
    await fleet.addUsers(
      ['alice', 'bob'].map((name) => ({ name })),
      { issueCerts: false },
    );
  } finally {
    await fleet.close();
  }
});
afterAll(() => rmSync(template, { recursive: true, force: true }));
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

interface Setup {
  ctl: Controller;
  clock: ManualClock;
  dir: string;
}

async function metricsController(options: Partial<ControllerOptions> = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-metrics-'));
  cpSync(template, dir, { recursive: true });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new ManualClock();
  const ctl = await buildController({
    fleetDir: dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: ADMIN,
    serverToken: (s) => tokens.get(s)!,
    clock,
    timers: new FakeTimers(clock),
    log: () => {},
    ...options,
  });
  cleanup.push(() => ctl.close());
  return { ctl, clock, dir };
}

async function scrape(ctl: Controller, headers: Record<string, string> = admin): Promise<string> {
  const r = await ctl.app.inject({ url: '/metrics', headers });
  expect(r.statusCode).toBe(200);
  return r.body;
}

function session(user: string, since: Date, clientId = 1): SessionReport {
  return {
    user,
    realAddress: `198.51.100.${clientId}:1194`,
    since: since.toISOString(),
    bytesIn: 1000,
    bytesOut: 2000,
    clientId,
  };
}

async function report(ctl: Controller, server: string, sessions: SessionReport[]) {
  const body: AgentReport = { sessions, health: HEALTHY, bundleDigest: 'not-current' };
  const r = await ctl.app.inject({
    method: 'POST',
    url: '/v1/agent/report',
    headers: { authorization: `Bearer ${tokens.get(server)}` },
    payload: body,
  });
  expect(r.statusCode).toBe(204);
}

describe('GET /metrics on the controller', () => {
  it('needs the admin or the metrics token: 401 without or with a wrong one, 403 for an agent', async () => {
    const { ctl } = await metricsController({ metrics: { token: METRICS } });
    const get = (headers: Record<string, string> = {}) =>
      ctl.app.inject({ url: '/metrics', headers });
    const none = await get();
    expect(none.statusCode).toBe(401);
    expect(none.json()).toEqual({ error: expect.stringMatching(/missing bearer token/) });
    expect((await get({ authorization: 'Bearer nope' })).statusCode).toBe(401);
    const agentToken = await get({ authorization: `Bearer ${tokens.get('vpn11')}` });
    expect(agentToken.statusCode).toBe(403);
    expect(agentToken.body).not.toContain('ovpn_fleet_');

    const byAdmin = await get(admin);
    expect(byAdmin.statusCode).toBe(200);
    expect(byAdmin.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const byPrometheus = await get({ authorization: `Bearer ${METRICS}` });
    expect(byPrometheus.statusCode).toBe(200);
    expect(byPrometheus.body).toContain('# TYPE ovpn_fleet_server_sessions gauge');
    // The metrics token reads metrics and nothing else.
    expect(
      (await ctl.app.inject({ url: '/v1/users', headers: { authorization: `Bearer ${METRICS}` } }))
        .statusCode,
    ).toBe(401);
  });

  it('without a metrics token configured, only the admin token reads them', async () => {
    const { ctl } = await metricsController();
    const r = await ctl.app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${METRICS}` },
    });
    expect(r.statusCode).toBe(401);
  });

  it('shows each server, its sessions, its report age, health and bundle state', async () => {
    const { ctl, clock } = await metricsController();
    let text = await scrape(ctl);
    const vpn11 = { server: 'vpn11', site: 'dc1' };
    expect(sample(text, 'ovpn_fleet_server_last_report_age_seconds', vpn11)).toBe(Infinity);
    expect(sample(text, 'ovpn_fleet_server_up', vpn11)).toBe(0);
    expect(sample(text, 'ovpn_fleet_server_healthy', vpn11)).toBe(0);

    await report(ctl, 'vpn11', [
      session('alice', new Date(clock.now().getTime() - 60_000), 1),
      session('bob', new Date(clock.now().getTime() - 30_000), 2),
    ]);
    clock.advance(4_000);
    text = await scrape(ctl);
    expect(sample(text, 'ovpn_fleet_server_sessions', vpn11)).toBe(2);
    expect(sample(text, 'ovpn_fleet_server_last_report_age_seconds', vpn11)).toBe(4);
    expect(sample(text, 'ovpn_fleet_server_up', vpn11)).toBe(1);
    expect(sample(text, 'ovpn_fleet_server_stale', vpn11)).toBe(0);
    expect(sample(text, 'ovpn_fleet_server_healthy', vpn11)).toBe(1);
    expect(sample(text, 'ovpn_fleet_server_draining', vpn11)).toBe(0);
    // The agent reported a digest other than the current bundle's.
    expect(sample(text, 'ovpn_fleet_server_bundle_up_to_date', vpn11)).toBe(0);
    // Every server of fleet.yaml has its series, with its site.
    const servers = samples(text).filter((s) => s.name === 'ovpn_fleet_server_sessions');
    expect(servers.length).toBe(tokens.size);

    clock.advance(20_000);
    text = await scrape(ctl);
    expect(sample(text, 'ovpn_fleet_server_stale', vpn11)).toBe(1);
    expect(sample(text, 'ovpn_fleet_server_healthy', vpn11)).toBe(0);
  });

  it('shows users by status, CRL and certificate expiry as Unix times, and the store size', async () => {
    const { ctl, clock, dir } = await metricsController();
    const nowS = clock.now().getTime() / 1000;
    let text = await scrape(ctl);
    expect(sample(text, 'ovpn_fleet_users', { status: 'enabled' })).toBe(2);
    expect(sample(text, 'ovpn_fleet_users', { status: 'revoked' })).toBe(0);
    const crl = sample(text, 'ovpn_fleet_crl_next_update_timestamp_seconds')!;
    expect(crl).toBeGreaterThan(nowS + 14 * 86_400);
    for (const kind of ['ca', 'server'])
      expect(
        sample(text, 'ovpn_fleet_certificate_earliest_expiry_timestamp_seconds', { kind }),
      ).toBeGreaterThan(nowS + 300 * 86_400);
    expect(sample(text, 'ovpn_fleet_store_size_bytes')).toBeGreaterThan(4096);

    // A user revoked by another process (the CLI) shows after the controller's next rebuild.
    const other = await openFleet(dir, { clock });
    try {
      await other.profile('alice');
      await other.setStatus('alice', 'revoked');
    } finally {
      await other.close();
    }
    await ctl.refresh();
    text = await scrape(ctl);
    expect(sample(text, 'ovpn_fleet_users', { status: 'enabled' })).toBe(1);
    expect(sample(text, 'ovpn_fleet_users', { status: 'revoked' })).toBe(1);
    expect(sample(text, 'ovpn_fleet_revocations_total', { kind: 'client' })).toBe(1);
  });

  it("counts users' current certificates by state; the earliest client expiry ignores a superseded one", async () => {
    const { ctl, clock, dir } = await metricsController();
    const other = await openFleet(dir, { clock });
    try {
      await other.issueMissingCerts(['alice']);
    } finally {
      await other.close();
    }
    await ctl.refresh();
    let text = await scrape(ctl);
    const states = () =>
      Object.fromEntries(
        ['valid', 'renewal_due', 'expired'].map((state) => [
          state,
          sample(text, 'ovpn_fleet_client_certificates', { state }),
        ]),
      );
    expect(states()).toEqual({ valid: 1, renewal_due: 0, expired: 0 });
    // 340 days on, inside the window: the controller's hourly step renews at the next build.
    clock.advance(340 * 86_400_000);
    await ctl.refresh();
    text = await scrape(ctl);
    expect(states()).toEqual({ valid: 1, renewal_due: 0, expired: 0 });
    const nowS = clock.now().getTime() / 1000;
    const earliest = sample(text, 'ovpn_fleet_certificate_earliest_expiry_timestamp_seconds', {
      kind: 'client',
    })!;
    // The new certificate's, not the old one's 25 days from now.
    expect(earliest).toBeGreaterThan(nowS + 364 * 86_400);
  });

  it('counts evictions, drains and undrains as they happen', async () => {
    const { ctl, clock } = await metricsController();
    const t = clock.now().getTime();
    await report(ctl, 'vpn11', [session('alice', new Date(t - 60_000))]);
    await report(ctl, 'vpn21', [session('alice', new Date(t - 10_000))]);
    // Reported again: the same eviction is not counted twice.
    await report(ctl, 'vpn21', [session('alice', new Date(t - 10_000))]);
    let text = await scrape(ctl);
    expect(sample(text, 'ovpn_fleet_evictions_total', { server: 'vpn11' })).toBe(1);
    expect(sample(text, 'ovpn_fleet_evictions_total', { server: 'vpn21' })).toBeUndefined();

    const post = (url: string) => ctl.app.inject({ method: 'POST', url, headers: admin });
    expect((await post('/v1/servers/vpn11/drain')).statusCode).toBe(200);
    expect((await post('/v1/servers/vpn11/drain')).statusCode).toBe(200);
    expect((await post('/v1/servers/vpn11/undrain')).statusCode).toBe(200);
    text = await scrape(ctl);
    // The second drain changed nothing.
    expect(sample(text, 'ovpn_fleet_drains_total', { server: 'vpn11' })).toBe(1);
    expect(sample(text, 'ovpn_fleet_undrains_total', { server: 'vpn11' })).toBe(1);
  });

  it('counts API requests by route pattern, method and status; unknown URLs share one label', async () => {
    const { ctl } = await metricsController();
    await ctl.app.inject({ url: '/v1/users', headers: admin });
    await ctl.app.inject({ url: '/v1/users/alice', headers: admin });
    await ctl.app.inject({ url: '/v1/users/nobody', headers: admin });
    await ctl.app.inject({ url: '/v1/users' });
    for (const junk of ['/wp-login.php', '/v1/users/alice/../../etc', '/x?y=z', '/zz%00'])
      await ctl.app.inject({ url: junk, headers: admin });
    const text = await scrape(ctl);
    const req = (labels: Record<string, string>) =>
      sample(text, 'ovpn_fleet_api_requests_total', labels);
    expect(req({ route: '/v1/users', method: 'GET', status: '200' })).toBe(1);
    expect(req({ route: '/v1/users', method: 'GET', status: '401' })).toBe(1);
    expect(req({ route: '/v1/users/:name', method: 'GET', status: '200' })).toBe(1);
    expect(req({ route: '/v1/users/:name', method: 'GET', status: '404' })).toBe(1);
    expect(req({ route: 'unmatched', method: 'GET', status: '404' })).toBe(4);
    expect(
      sample(text, 'ovpn_fleet_api_request_duration_seconds_count', {
        route: '/v1/users/:name',
        method: 'GET',
        status: '404',
      }),
    ).toBe(1);
    // No raw URL ever becomes a label value.
    const routes = new Set(
      samples(text)
        .map((s) => s.labels.route)
        .filter(Boolean),
    );
    expect(
      [...routes].every((r) => r === 'unmatched' || r.startsWith('/v1/') || r === '/metrics'),
    ).toBe(true);
    expect(text).not.toContain('wp-login');
    expect(text).not.toContain('alice');
  });

  it('names users only with perUser', async () => {
    for (const perUser of [false, true]) {
      const { ctl, clock } = await metricsController({ metrics: { perUser } });
      await report(ctl, 'vpn11', [session('alice', new Date(clock.now().getTime() - 1000))]);
      const text = await scrape(ctl);
      const withUser = samples(text).filter((s) => 'user' in s.labels);
      if (!perUser) {
        expect(withUser).toEqual([]);
        expect(text).not.toContain('alice');
        continue;
      }
      const alice = { user: 'alice', server: 'vpn11', site: 'dc1' };
      expect(sample(text, 'ovpn_fleet_user_connected', alice)).toBe(1);
      expect(sample(text, 'ovpn_fleet_user_received_bytes', alice)).toBe(1000);
      expect(sample(text, 'ovpn_fleet_user_sent_bytes', alice)).toBe(2000);
    }
  });

  it('keeps each controller in its own registry', async () => {
    const a = await metricsController();
    const b = await metricsController();
    await a.ctl.app.inject({ method: 'POST', url: '/v1/servers/vpn11/drain', headers: admin });
    expect(sample(await scrape(a.ctl), 'ovpn_fleet_drains_total', { server: 'vpn11' })).toBe(1);
    expect(
      sample(await scrape(b.ctl), 'ovpn_fleet_drains_total', { server: 'vpn11' }),
    ).toBeUndefined();
  });
});
