/**
 * Prometheus' own tool judges what we ship: the alerting rules (`promtool check rules`), their
 * unit tests (`promtool test rules`), and real scrapes of a controller (built on a temp fleet
 * with the controller's fakes) and of an agent's registry (`promtool check metrics`, which also
 * lints names, units and help texts).
 *
 * Without promtool (Debian's `prometheus` package) the tests are skipped on a workstation,
 * visibly, their reason in their name; under CI=true they fail: a check that cannot run must
 * not pass.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { AgentReport } from '../src/api/index.js';
import { AgentRegistry } from '../src/agent/metrics.js';
import { type Controller, buildController } from '../src/controller/app.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from '../src/controller/testing.js';
import { run } from '../src/sys/exec.js';
import { itNeeds } from '../src/testing.js';

const PROMTOOL = '/usr/bin/promtool';
const RULES_DIR = resolve(import.meta.dirname, '..', 'deploy', 'prometheus');
const ADMIN = 'admin-token-for-promtool';

function itWithPromtool(name: string, fn: () => Promise<void>, timeoutMs = 60_000): void {
  const why = existsSync(PROMTOOL) ? undefined : `needs ${PROMTOOL} (apt-get install prometheus)`;
  itNeeds(why, name, fn, timeoutMs);
}

/** promtool's verdict: exit 0 and nothing said, or the test shows what it said. */
async function promtool(args: string[], input?: string): Promise<void> {
  const r = await run([PROMTOOL, ...args], {
    allowFailure: true,
    timeoutMs: 30_000,
    ...(input !== undefined ? { input } : {}),
  });
  expect({ code: r.code, said: `${r.stdout}${r.stderr}`.trim() }).toMatchObject({ code: 0 });
  if (args[1] === 'metrics') expect(`${r.stdout}${r.stderr}`.trim()).toBe('');
}

describe('the shipped alerting rules', () => {
  itWithPromtool('pass promtool check rules', () =>
    promtool(['check', 'rules', join(RULES_DIR, 'ovpn-fleet.rules.yml')]),
  );
  itWithPromtool('pass their unit tests (promtool test rules)', () =>
    promtool(['test', 'rules', join(RULES_DIR, 'ovpn-fleet.rules.test.yml')]),
  );
});

describe('scrapes pass promtool check metrics', () => {
  let t: ControllerFleet;
  let ctl: Controller;

  beforeAll(async () => {
    t = await controllerFleet();
    await t.fleet.addUsers([{ name: 'alice' }], { issueCerts: false });
    ctl = await buildController({
      fleetDir: t.dir,
      baseDir: (server) => `/etc/ovpn-fleet/${server}`,
      adminToken: ADMIN,
      clock: t.clock,
      timers: new FakeTimers(t.clock),
      log: () => {},
      metrics: { perUser: true },
    });
    // Something in every series: a session, a drain, requests that matched and did not.
    const report: AgentReport = {
      sessions: [
        {
          user: 'alice',
          realAddress: '198.51.100.7:1194',
          since: new Date(t.clock.now().getTime() - 60_000).toISOString(),
          bytesIn: 1,
          bytesOut: 2,
          clientId: 1,
        },
      ],
      health: { openvpn: true, routing: true, ruleset: true, draining: false, ok: true },
    };
    const agentToken = await t.fleet.agentToken('vpn11');
    await ctl.app.inject({
      method: 'POST',
      url: '/v1/agent/report',
      headers: { authorization: `Bearer ${agentToken}` },
      payload: report,
    });
    const admin = { authorization: `Bearer ${ADMIN}` };
    await ctl.app.inject({ method: 'POST', url: '/v1/servers/vpn12/drain', headers: admin });
    await ctl.app.inject({ url: '/nowhere', headers: admin });
  }, 60_000);

  afterAll(async () => {
    await ctl?.close();
    await t?.cleanup();
  });

  itWithPromtool("the controller's /metrics", async () => {
    const r = await ctl.app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('ovpn_fleet_user_connected{');
    await promtool(['check', 'metrics'], r.body);
  });

  itWithPromtool("an agent's registry", async () => {
    let now = Date.parse('2026-03-01T12:00:00Z');
    const metrics = new AgentRegistry({ now: () => now, sessions: () => 3 });
    metrics.connected();
    metrics.disconnected('drain', 2);
    metrics.disconnected('vanished');
    metrics.routePresent(0.012);
    metrics.bundleApplied('c'.repeat(64), now);
    metrics.applyFailed('ruleset');
    metrics.rulesetRolledBack();
    metrics.routesReconciled(['10.8.0.2'], ['fd00:8::3']);
    metrics.polled(true, now);
    now += 2000;
    const { body } = await metrics.render();
    expect(body).toContain('ovpn_fleet_agent_last_poll_success_age_seconds 2');
    await promtool(['check', 'metrics'], body);
  });
});
