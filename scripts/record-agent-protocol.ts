/**
 * Records what this release's agent sends the controller and what the controller answers, to
 * test/fixtures/agent-protocol-<N>.json: the next release's tests replay it against their
 * controller (test/agent-protocol.test.ts), which must keep answering the previous release's
 * agents. Run it at release time: `npx tsx scripts/record-agent-protocol.ts`.
 *
 * The fleet is `init`'s example with users alice and bob; alice is on vpn11 and then on vpn21,
 * so vpn11's directive carries an eviction. Bundle file contents are elided (they are keys and
 * configs of a throwaway fleet, and only their shape is the contract); the token is not kept
 * (each fleet has its own).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as api from '../src/api/index.js';
import { buildController } from '../src/controller/app.js';
import { initFleet, openFleet } from '../src/service/open.js';

// Releases before the protocol header had neither of these exports: they speak 1 and send none.
const contract = api as unknown as {
  AGENT_PROTOCOL?: number;
  AGENT_PROTOCOL_HEADER?: string;
  agentProtocolHeaders?: () => Record<string, string>;
};
const protocol = contract.AGENT_PROTOCOL ?? 1;
const protocolHeaders = contract.agentProtocolHeaders?.() ?? {};

const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };
const session = (user: string, since: string, clientId: number, ipv4: string, ipv6: string) => ({
  user,
  realAddress: `198.51.100.${clientId}:1194`,
  ipv4,
  ipv6,
  since,
  bytesIn: 1000 * clientId,
  bytesOut: 2000 * clientId,
  clientId,
});

interface Exchange {
  server: string;
  request: { method: string; url: string; headers: Record<string, string>; body?: unknown };
  response: { status: number; headers: Record<string, string>; body?: unknown };
}

const dir = mkdtempSync(join(tmpdir(), 'ovf-record-'));
// The controller's timers are unref'd (they never keep a process alive): the waiting poll needs
// something that does.
const keepAlive = setInterval(() => undefined, 1000);
try {
  const fleet = await initFleet(dir);
  const [alice, bob] = await fleet.addUsers([{ name: 'alice' }, { name: 'bob' }], {
    issueCerts: false,
  });
  await fleet.close();
  const ctl = await buildController({
    fleetDir: dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'recorder-admin-token',
    pollWaitMs: 100,
    log: () => {},
  });
  const tokens = async (server: string) => {
    const f = await openFleet(dir);
    try {
      return await f.agentToken(server);
    } finally {
      await f.close();
    }
  };
  const exchanges: Exchange[] = [];
  const send = async (server: string, request: Exchange['request']) => {
    const r = await ctl.app.inject({
      method: request.method as 'GET' | 'POST',
      url: request.url,
      headers: { ...request.headers, authorization: `Bearer ${await tokens(server)}` },
      ...(request.body !== undefined ? { payload: request.body as object } : {}),
    });
    const headers: Record<string, string> = {};
    for (const name of ['content-type', contract.AGENT_PROTOCOL_HEADER ?? ''])
      if (name && r.headers[name] !== undefined) headers[name] = String(r.headers[name]);
    const body = r.body ? (JSON.parse(r.body) as unknown) : undefined;
    exchanges.push({ server, request, response: { status: r.statusCode, headers, body } });
    return body;
  };
  const report = (server: string, sessions: ReturnType<typeof session>[]) =>
    send(server, {
      method: 'POST',
      url: '/v1/agent/report',
      headers: { 'content-type': 'application/json', ...protocolHeaders },
      body: {
        bundleDigest: 'a'.repeat(64),
        sessions,
        health: HEALTHY,
        routes: {
          ipv4: sessions.map((s) => s.ipv4),
          ipv6: sessions.map((s) => s.ipv6),
        },
      },
    });
  const poll = (server: string, known: string) =>
    send(server, {
      method: 'GET',
      url: `/v1/agent/poll?known=${encodeURIComponent(known)}`,
      headers: { ...protocolHeaders },
    });

  const T1 = '2026-01-05T10:00:00.000Z';
  const T2 = '2026-01-05T10:05:00.000Z';
  await report('vpn11', [
    session('alice', T1, 1, alice.ipv4, alice.ipv6),
    session('bob', T1, 2, bob.ipv4, bob.ipv6),
  ]);
  await report('vpn21', [session('alice', T2, 7, alice.ipv4, alice.ipv6)]);
  const directive = (await poll('vpn11', '')) as { token: string };
  await poll('vpn11', directive.token);
  await ctl.close();

  for (const x of exchanges) {
    const body = x.response.body as { bundle?: { files: { content: string }[] } } | undefined;
    for (const f of body?.bundle?.files ?? [])
      f.content = `(${Buffer.byteLength(f.content)} bytes elided)`;
  }
  const out = new URL(`../test/fixtures/agent-protocol-${protocol}.json`, import.meta.url);
  writeFileSync(out, `${JSON.stringify({ protocol, exchanges }, null, 2)}\n`);
  console.log(
    `recorded ${exchanges.length} exchanges of agent protocol ${protocol}: ${out.pathname}`,
  );
} finally {
  clearInterval(keepAlive);
  rmSync(dir, { recursive: true, force: true });
}
