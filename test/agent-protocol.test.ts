/**
 * An agent one release older than its controller keeps working. The previous release's agent is
 * its recorded exchanges (test/fixtures/agent-protocol-1.json, made by
 * scripts/record-agent-protocol.ts at that release), replayed against today's controller; today's
 * agent runs against today's controller over real HTTP. Versions the controller does not speak
 * are refused in one line.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../src/agent/agent.js';
import { type AgentHost, controllerLink } from '../src/agent/host.js';
import { FakeHost } from '../src/agent/testing.js';
import {
  AGENT_PROTOCOL,
  AGENT_PROTOCOL_HEADER,
  OLDEST_AGENT_PROTOCOL,
  type SessionView,
} from '../src/api/index.js';
import { ControllerClient } from '../src/client/client.js';
import { type Controller, buildController } from '../src/controller/app.js';
import { initFleet, openFleet } from '../src/service/open.js';
import { waitFor } from '../src/sys/time.js';

const ADMIN = 'admin-token-for-tests';
const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };
const admin = { authorization: `Bearer ${ADMIN}` };

interface Exchange {
  server: string;
  request: { method: string; url: string; headers: Record<string, string>; body?: unknown };
  response: { status: number; headers: Record<string, string>; body?: unknown };
}
interface Recording {
  protocol: number;
  exchanges: Exchange[];
}

const recording = (protocol: number) =>
  JSON.parse(
    readFileSync(new URL(`fixtures/agent-protocol-${protocol}.json`, import.meta.url), 'utf8'),
  ) as Recording;

/**
 * Every place in `recorded` where `actual` lacks the value or has another JSON type: what an agent
 * that parsed `recorded` would miss. Fields `actual` adds are fine (agents strip unknown keys);
 * arrays are compared element by element's shape with the first actual element.
 */
function missing(recorded: unknown, actual: unknown, path = '$'): string[] {
  const kind = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
  if (kind(recorded) !== kind(actual))
    return [`${path}: ${kind(recorded)} recorded, ${kind(actual)} now`];
  if (Array.isArray(recorded)) {
    const now = actual as unknown[];
    if (recorded.length && !now.length) return [`${path}: items recorded, none now`];
    return recorded.length ? missing(recorded[0], now[0], `${path}[0]`) : [];
  }
  if (kind(recorded) === 'object') {
    const now = actual as Record<string, unknown>;
    return Object.entries(recorded as Record<string, unknown>).flatMap(([k, v]) =>
      k in now ? missing(v, now[k], `${path}.${k}`) : [`${path}.${k}: gone`],
    );
  }
  return [];
}

let template: string;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  template = mkdtempSync(join(tmpdir(), 'ovf-protocol-template-'));
  // The recorder's fleet: init's example, then alice and bob (so the same addresses).
  const fleet = await initFleet(template);
  await fleet.addUsers([{ name: 'alice' }, { name: 'bob' }], { issueCerts: false });
  await fleet.close();
});
afterAll(() => rmSync(template, { recursive: true, force: true }));
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function controller(): Promise<{ ctl: Controller; token: (server: string) => string }> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-protocol-'));
  cpSync(template, dir, { recursive: true });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const fleet = await openFleet(dir);
  const tokens = new Map<string, string>();
  for (const s of fleet.serverNames()) tokens.set(s, await fleet.agentToken(s));
  await fleet.close();
  const ctl = await buildController({
    fleetDir: dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: ADMIN,
    pollWaitMs: 100,
    log: () => {},
  });
  cleanup.push(() => ctl.close());
  return { ctl, token: (s) => tokens.get(s)! };
}

const sessionsOf = async (ctl: Controller) =>
  (await ctl.app.inject({ url: '/v1/sessions', headers: admin }))
    .json<SessionView[]>()
    .map((s) => `${s.user}@${s.server}`);

describe(`agent protocol: this controller answers ${OLDEST_AGENT_PROTOCOL} to ${AGENT_PROTOCOL}`, () => {
  it('the previous release is the oldest answered', () => {
    expect(OLDEST_AGENT_PROTOCOL).toBe(AGENT_PROTOCOL - 1);
  });

  it(`answers the recorded exchanges of protocol ${OLDEST_AGENT_PROTOCOL} as that release did`, async () => {
    const { ctl, token } = await controller();
    const { protocol, exchanges } = recording(OLDEST_AGENT_PROTOCOL);
    expect(protocol).toBe(OLDEST_AGENT_PROTOCOL);
    expect(exchanges.map((x) => x.request.url.split('?')[0])).toEqual([
      '/v1/agent/report',
      '/v1/agent/report',
      '/v1/agent/poll',
      '/v1/agent/poll',
    ]);
    // Directive tokens are the recorded fleet's: a later `known=` names the one given here.
    const tokens = new Map<string, string>();
    for (const { server, request, response } of exchanges) {
      let url = request.url;
      for (const [then, now] of tokens) url = url.replace(then, now);
      const r = await ctl.app.inject({
        method: request.method as 'GET' | 'POST',
        url,
        headers: { ...request.headers, authorization: `Bearer ${token(server)}` },
        ...(request.body !== undefined ? { payload: request.body as object } : {}),
      });
      const what = `${request.method} ${request.url} from ${server}`;
      expect(r.statusCode, `${what}: ${r.body}`).toBe(response.status);
      if (response.headers['content-type'])
        expect(r.headers['content-type'], what).toBe(response.headers['content-type']);
      if (response.body === undefined) continue;
      const now = r.json<{ token?: string }>();
      expect(missing(response.body, now), what).toEqual([]);
      const then = (response.body as { token?: string }).token;
      if (then && now.token) tokens.set(then, now.token);
    }
    // What the reports said is what the controller now holds; the eviction is the recorded one.
    expect(await sessionsOf(ctl)).toEqual(['alice@vpn11', 'bob@vpn11', 'alice@vpn21']);
    const poll = exchanges[2].response.body as { evict: unknown[] };
    expect(poll.evict).toEqual([{ user: 'alice', since: '2026-01-05T10:00:00.000Z' }]);
  });

  it('refuses a version it does not speak in one line naming the header, answers each it speaks', async () => {
    const { ctl, token } = await controller();
    const ask = (version: string | undefined, url = '/v1/agent/poll?known=') =>
      ctl.app.inject({
        method: 'GET',
        url,
        headers: {
          authorization: `Bearer ${token('vpn11')}`,
          ...(version !== undefined ? { [AGENT_PROTOCOL_HEADER]: version } : {}),
        },
      });
    const range = `this controller speaks ${OLDEST_AGENT_PROTOCOL} to ${AGENT_PROTOCOL}`;
    const refusals: [string, string][] = [
      [
        String(OLDEST_AGENT_PROTOCOL - 1),
        `${AGENT_PROTOCOL_HEADER}: agent protocol ${OLDEST_AGENT_PROTOCOL - 1} is too old (${range}): upgrade the agent`,
      ],
      [
        String(AGENT_PROTOCOL + 1),
        `${AGENT_PROTOCOL_HEADER}: agent protocol ${AGENT_PROTOCOL + 1} is newer than this controller (${range}): upgrade the controller first`,
      ],
      ['two', `${AGENT_PROTOCOL_HEADER}: "two" is not a version number`],
    ];
    for (const [version, line] of refusals) {
      const r = await ask(version);
      expect({ status: r.statusCode, body: r.json<unknown>() }, version).toEqual({
        status: 400,
        body: { error: line },
      });
    }
    // A report with a version not spoken is refused before its body is looked at.
    const report = await ctl.app.inject({
      method: 'POST',
      url: '/v1/agent/report',
      headers: {
        authorization: `Bearer ${token('vpn11')}`,
        [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL + 1),
      },
      payload: { not: 'a report' },
    });
    expect(report.statusCode).toBe(400);
    expect(report.json<{ error: string }>().error).toMatch(/^ovpn-fleet-agent-protocol: /);
    // Without a token, nothing about versions: authentication answers first.
    const anonymous = await ctl.app.inject({
      url: '/v1/agent/poll',
      headers: { [AGENT_PROTOCOL_HEADER]: '999' },
    });
    expect(anonymous.statusCode).toBe(401);

    for (let v = OLDEST_AGENT_PROTOCOL; v <= AGENT_PROTOCOL; v++) {
      const r = await ask(String(v));
      expect(r.statusCode).toBe(200);
      expect(r.headers[AGENT_PROTOCOL_HEADER]).toBe(String(v));
    }
    // No header: a release-1 agent.
    expect((await ask(undefined)).headers[AGENT_PROTOCOL_HEADER]).toBe('1');
  });

  it("today's agent names its protocol on the poll and on the report", async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(
        `${req.method} ${req.url?.split('?')[0]} ${String(req.headers[AGENT_PROTOCOL_HEADER])}`,
      );
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    const { port } = server.address() as AddressInfo;
    const client = new ControllerClient({ kind: 'tcp', host: '127.0.0.1', port, tls: false }, 't');
    const link = controllerLink(client, client);
    await link.poll('');
    await link.report({ sessions: [], health: HEALTHY });
    expect(seen).toEqual([
      `GET /v1/agent/poll ${AGENT_PROTOCOL}`,
      `POST /v1/agent/report ${AGENT_PROTOCOL}`,
    ]);
  });

  it('an agent the controller refuses says why once, and keeps its last good bundle', async () => {
    const fake = new FakeHost();
    const refusal = `{"error":"${AGENT_PROTOCOL_HEADER}: agent protocol ${AGENT_PROTOCOL} is newer than this controller"}`;
    let polls = 0;
    fake.controller.poll = () => {
      polls++;
      return Promise.resolve({ status: 400, text: refusal });
    };
    const lines: string[] = [];
    const agent = new Agent({
      server: 'vpn11',
      bundleDir: '/fake/bundle',
      controller: 'unix:/nowhere',
      token: 't',
      tunDevice: 'vpn0',
      routeProtocol: 201,
      log: (l) => lines.push(l),
      host: fake,
    });
    await agent.start();
    await fake.clock.advance(60_000);
    const stopped = agent.stop();
    await fake.clock.advance(60_000);
    await stopped;
    expect(polls).toBeGreaterThan(5);
    expect(lines.filter((l) => l.includes('controller answered'))).toEqual([
      `controller answered 400: ${refusal}`,
    ]);
  });

  it("today's agent applies the directive and reports over HTTP to today's controller", async () => {
    const { ctl, token } = await controller();
    const address = await ctl.app.listen({ host: '127.0.0.1', port: 0 });
    expect(address).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const { port } = ctl.app.server.address() as AddressInfo;
    const endpoint = { kind: 'tcp' as const, host: '127.0.0.1', port, tls: false };
    const fake = new FakeHost();
    // The agent's own HTTP link (the one realHost uses); the rest of the server is faked.
    const host: AgentHost = {
      run: fake.run,
      signalOpenvpn: (signal) => fake.signalOpenvpn(signal),
      openvpnAlive: () => fake.openvpnAlive(),
      openvpnPid: () => fake.openvpnPid(),
      bundle: fake.bundle,
      clock: fake.clock,
      management: fake.management,
      routes: fake.routes,
      serveHealth: (answer) => fake.serveHealth(answer),
      controller: controllerLink(
        new ControllerClient(endpoint, token('vpn11'), 5000),
        new ControllerClient(endpoint, token('vpn11'), 5000),
      ),
    };
    const lines: string[] = [];
    const agent = new Agent({
      server: 'vpn11',
      bundleDir: '/fake/bundle',
      controller: `unix:/nowhere`,
      token: token('vpn11'),
      tunDevice: 'vpn0',
      routeProtocol: 201,
      log: (l) => lines.push(l),
      host,
    });
    fake.management.sessions = [
      {
        user: 'alice',
        realAddress: '198.51.100.3:1194',
        since: new Date(fake.clock.now() - 60_000).toISOString(),
        bytesIn: 1,
        bytesOut: 2,
        clientId: 3,
      },
    ];
    await agent.start();
    cleanup.push(async () => {
      const stopped = agent.stop();
      await fake.clock.advance(60_000);
      await stopped;
    });
    const servers = async () =>
      (await ctl.app.inject({ url: '/v1/servers', headers: admin }))
        .json<{ name: string; upToDate: boolean }[]>()
        .find((s) => s.name === 'vpn11');
    await waitFor(
      'vpn11 up to date with its bundle',
      async () => {
        await fake.clock.advance(1000);
        return (await servers())?.upToDate === true;
      },
      20_000,
    );
    expect(fake.bundle.readFile('VERSION')).toBeDefined();
    expect(await sessionsOf(ctl)).toEqual(['alice@vpn11']);
    expect(lines.filter((l) => /refused|answered 4/.test(l))).toEqual([]);
  });
});
