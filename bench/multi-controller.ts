/**
 * Two controllers on PostgreSQL (issue 15): figures, printed, never asserted in tests.
 *
 *   npm run bench:multi [-- --samples N]     (root; ~4 min with N = 10)
 *
 * 1. change → all agents: a user added through either controller (alternating), until the
 *    user's ccd file is on all six servers of the lab (`lab up --controllers 2 --store
 *    postgres`; every other agent lists the second controller first). Target p95 < 0.5 s.
 * 2. controller kill -9 → every agent that used it on the other one: from the kill to the last
 *    agent's switch line in its log (polled every 10 ms). The killed controller is started
 *    again and its agents come back before the next sample. Target p95 < 2 s.
 * 3. API user creation rate on PostgreSQL vs SQLite: POST /v1/users through one controller
 *    built in this process (Fastify inject: the store and the API, no socket, no agents), 200
 *    users one at a time and 200 eight at a time, on a fresh SQLite fleet and on a fresh
 *    PostgreSQL (src/sys/postgres.ts, unix socket); plus the rate through the lab's controllers
 *    with six agents rebuilding their bundles meanwhile.
 * 4. silent move and revoke with split reports: a client killed on vpn11 (its agent reports to
 *    controller 1) reconnects to vpn12 (controller 2), until the core routes it only via vpn12;
 *    a user on vpn21 (controller 1) revoked through controller 2, until the core has no route.
 *
 * Writes bench/results/multi-controller.json, and prints the load average: on a busy machine
 * every figure grows.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ControllerClient, parseEndpoints } from '../src/client/client.js';
import { adminTokenPath } from '../src/controller/auth.js';
import { buildController } from '../src/controller/app.js';
import { Lab, listNamespaces } from '../src/lab/lab.js';
import { initFleet } from '../src/service/open.js';
import { startPostgres } from '../src/sys/postgres.js';
import { sleep, waitFor } from '../src/sys/time.js';
import { intArg, percentile } from './measure.js';

const SAMPLES = intArg('--samples', 10);
const PREFIX = 'obm';
const SERVERS = ['vpn11', 'vpn12', 'vpn21', 'vpn22', 'vpn31', 'vpn32'];
const RESULTS = join(import.meta.dirname, 'results');
const say = (line: string) => process.stdout.write(`${line}\n`);

interface Stats {
  n: number;
  p50: number;
  p95: number;
  max: number;
}
function stats(ms: number[]): Stats {
  const s = [...ms].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), max: s.at(-1) ?? NaN };
}
const fmt = (st: Stats) =>
  `p50 ${(st.p50 / 1000).toFixed(3)} s, p95 ${(st.p95 / 1000).toFixed(3)} s, max ${(st.max / 1000).toFixed(3)} s (n=${st.n})`;

async function post(c: ControllerClient, path: string, body?: unknown): Promise<string> {
  const r = await c.raw('POST', path, body);
  if (r.status >= 300) throw new Error(`POST ${path}: ${r.status} ${r.text}`);
  return r.text;
}

/** The API's user creation rate (users/s) through one in-process controller on `env`'s store. */
async function creationRate(
  env: NodeJS.ProcessEnv,
): Promise<{ sequential: number; parallel8: number }> {
  const dir = mkdtempSync(join(os.tmpdir(), 'ovf-bench-rate-'));
  try {
    await (await initFleet(dir, { env })).close();
    const ctl = await buildController({
      fleetDir: dir,
      baseDir: (s) => `/etc/ovpn-fleet/${s}`,
      adminToken: 'bench',
      log: () => undefined,
      env,
    });
    try {
      const add = async (name: string) => {
        const r = await ctl.app.inject({
          method: 'POST',
          url: '/v1/users',
          headers: { authorization: 'Bearer bench' },
          payload: { name, groups: [] },
        });
        if (r.statusCode !== 201) throw new Error(`${name}: ${r.statusCode} ${r.body}`);
      };
      let t0 = performance.now();
      for (let i = 0; i < 200; i++) await add(`s${i}`);
      const sequential = 200 / ((performance.now() - t0) / 1000);
      const queue = Array.from({ length: 200 }, (_, i) => `p${i}`);
      t0 = performance.now();
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let n = queue.shift(); n; n = queue.shift()) await add(n);
        }),
      );
      const parallel8 = 200 / ((performance.now() - t0) / 1000);
      return { sequential, parallel8 };
    } finally {
      await ctl.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (the lab)');
  if ((await listNamespaces()).some((n) => n.startsWith(`${PREFIX}-`)))
    throw new Error(`a lab with prefix ${PREFIX} exists: ovpn-fleet lab down --prefix ${PREFIX}`);
  const results: Record<string, unknown> = { samples: SAMPLES, at: new Date().toISOString() };

  say('API user creation rate, one controller in this process:');
  const sqlite = await creationRate({});
  say(
    `  SQLite:     ${sqlite.sequential.toFixed(0)} users/s one at a time, ${sqlite.parallel8.toFixed(0)} users/s eight at a time`,
  );
  const pgServer = await startPostgres({ port: 5439 });
  let postgres;
  try {
    postgres = await creationRate({
      OVPN_FLEET_DATABASE_URL: `postgresql://${pgServer.user}@localhost/postgres?host=${encodeURIComponent(pgServer.socketDir)}&port=${pgServer.port}`,
    });
  } finally {
    await pgServer.stop();
  }
  say(
    `  PostgreSQL: ${postgres.sequential.toFixed(0)} users/s one at a time, ${postgres.parallel8.toFixed(0)} users/s eight at a time`,
  );
  results.creationRate = { sqlite, postgres };

  const dir = mkdtempSync(join(os.tmpdir(), 'ovf-bench-multi-'));
  const fleet = await initFleet(dir);
  let lab: Lab | undefined;
  try {
    lab = await Lab.up(fleet, {
      prefix: PREFIX,
      controllers: 2,
      store: 'postgres',
      log: (l) => say(`  ${l}`),
    });
    const endpoints = lab.controllerEndpoints;
    const token = readFileSync(adminTokenPath(dir), 'utf8').trim();
    const both = new ControllerClient(parseEndpoints(endpoints), token);
    const single = parseEndpoints(endpoints).map((e) => new ControllerClient(e, token));
    const serverDir = (s: string) => join(dir, '.lab', PREFIX, 'servers', s);
    const agentLog = (s: string) => {
      const f = join(serverDir(s), 'run', 'agent.log');
      return existsSync(f) ? readFileSync(f, 'utf8') : '';
    };
    const switchesTo = (s: string) => [...agentLog(s).matchAll(/controller \S+ -> (\S+):/g)];
    /** Which controller the agent uses: its first, or where its last switch went. */
    const using = (s: string) =>
      switchesTo(s).at(-1)?.[1] ?? (SERVERS.indexOf(s) % 2 === 1 ? endpoints[1] : endpoints[0]);

    // The agents start under tsx here: wait until every one applies bundles before timing.
    await post(both, '/v1/users', { name: 'warmup', groups: ['staff'] });
    await waitFor(
      'every agent applying bundles',
      () => SERVERS.every((s) => existsSync(join(serverDir(s), 'ccd', 'warmup'))) || undefined,
      180_000,
      100,
    );

    // 1. change → all agents.
    const change: number[] = [];
    const answered: number[] = [];
    for (let i = 0; i < SAMPLES * 2; i++) {
      const name = `chg${i}`;
      const t0 = performance.now();
      await post(single[i % 2], '/v1/users', { name, groups: ['staff'] });
      answered.push(performance.now() - t0);
      await waitFor(
        `${name} on all six servers`,
        () => SERVERS.every((s) => existsSync(join(serverDir(s), 'ccd', name))) || undefined,
        10_000,
        5,
      );
      change.push(performance.now() - t0);
    }
    results.changeToAllAgents = stats(change);
    results.changeAnswered = stats(answered);
    say(`change → all six agents (two controllers): ${fmt(stats(change))}`);
    say(
      `  of which the API's answer (the change committed, bundles built): ${fmt(stats(answered))}`,
    );

    // 3b. creation rate through the lab's controllers, agents rebuilding meanwhile.
    {
      const t0 = performance.now();
      for (let i = 0; i < 100; i++)
        await post(single[i % 2], '/v1/users', { name: `lab${i}`, groups: ['staff'] });
      const rate = 100 / ((performance.now() - t0) / 1000);
      results.creationRateLab = rate;
      say(
        `API user creation through the lab's two controllers (PostgreSQL over the lab network, 6 agents): ${rate.toFixed(0)} users/s one at a time`,
      );
    }

    // 2. controller kill -9 → every agent on the other one.
    const failover: number[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(SAMPLES / 2)); i++) {
      const victim = i % 2 === 0 ? 1 : 2;
      const victimEndpoint = endpoints[victim - 1];
      const other = endpoints[2 - victim];
      // Wait until the victim's agents are back on it (an agent returns to its first within 10 s).
      await waitFor(
        'each agent on its first controller',
        () =>
          SERVERS.every((s, k) => using(s) === (k % 2 === 1 ? endpoints[1] : endpoints[0])) ||
          undefined,
        30_000,
        100,
      );
      const movers = SERVERS.filter((s) => using(s) === victimEndpoint);
      const before = new Map(movers.map((s) => [s, switchesTo(s).length]));
      const t0 = performance.now();
      await lab.stopComponent(`controller${victim === 1 ? '' : '2'}`, undefined, 'SIGKILL');
      await waitFor(
        'every agent of the killed controller on the other one',
        () =>
          movers.every((s) => switchesTo(s).length > before.get(s)! && using(s) === other) ||
          undefined,
        20_000,
        10,
      );
      failover.push(performance.now() - t0);
      await lab.startComponent(`controller${victim === 1 ? '' : '2'}`, undefined);
    }
    results.killToOther = stats(failover);
    say(`controller kill -9 → every agent on the other one: ${fmt(stats(failover))}`);

    // 4. silent move and revoke with split reports.
    await waitFor(
      'vpn11 on controller 1, vpn12 on controller 2',
      () => (using('vpn11') === endpoints[0] && using('vpn12') === endpoints[1]) || undefined,
      30_000,
      100,
    );
    const coreVia = async (user: string) => {
      const row = (await lab!.status()).find((r) => r.user === user);
      return row ? { v4: row.coreVia4.join(), v6: row.coreVia6.join() } : { v4: '', v6: '' };
    };
    await post(both, '/v1/users', { name: 'mover', groups: ['staff'] });
    const move: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const [from, to] = i % 2 === 0 ? ['vpn11', 'vpn12'] : ['vpn12', 'vpn11'];
      if (i === 0) {
        await lab.connect('mover', { server: from });
        await waitFor(
          'mover on its first server',
          async () => (await coreVia('mover')).v4 === from || undefined,
          20_000,
          50,
        );
      }
      await lab.disconnect('mover', 'SIGKILL');
      await lab.connect('mover', { server: to });
      const t0 = performance.now();
      await waitFor(
        `core only via ${to}`,
        async () => {
          const c = await coreVia('mover');
          return (c.v4 === to && c.v6 === to) || undefined;
        },
        20_000,
        20,
      );
      move.push(performance.now() - t0);
      // The old session's scheduled exit, before the next move goes back there.
      await sleep(6000);
    }
    results.silentMoveSplit = stats(move);
    say(
      `silent move between servers reporting to different controllers → core only via the new one (after the tunnel is up): ${fmt(stats(move))}`,
    );

    const revoke: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const name = `rev${i}`;
      await post(both, '/v1/users', { name, groups: ['staff'] });
      await lab.connect(name, { server: 'vpn21' });
      await waitFor(
        `${name} via vpn21`,
        async () => (await coreVia(name)).v4 === 'vpn21' || undefined,
        20_000,
        50,
      );
      const t0 = performance.now();
      await post(single[1], `/v1/users/${name}/revoke`);
      await waitFor(
        `${name} out of the core`,
        async () => {
          const c = await coreVia(name);
          return (c.v4 === '' && c.v6 === '') || undefined;
        },
        20_000,
        20,
      );
      revoke.push(performance.now() - t0);
      await lab.forget(name);
    }
    results.revokeSplit = stats(revoke);
    say(
      `revoke through controller 2 of a user on a server reporting to controller 1 → routes gone from the core: ${fmt(stats(revoke))}`,
    );
  } finally {
    await lab?.close();
    await Lab.down(dir, PREFIX, (l) => say(`  ${l}`));
    await fleet.close();
    rmSync(dir, { recursive: true, force: true });
  }
  results.loadAverage = os.loadavg();
  say(
    `load average during the run: ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${os.cpus().length} cores`,
  );
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'multi-controller.json'), `${JSON.stringify(results, null, 2)}\n`);
  say(`wrote ${join(RESULTS, 'multi-controller.json')}`);
}

await main();
