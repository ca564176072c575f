/**
 * 150 users connected at once (the seed's "150 in parallel"), spread over the servers by the
 * load balancers and their profiles, every one reachable from a service host.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildOnce,
  cli,
  cliOk,
  labStatus,
  netnsNames,
  newFleetDir,
  requireLab,
  secs,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfs';
const N = 150;
const runs = requireLab();
let dir = '';

describe.runIf(runs)(`lab: ${N} clients at once`, () => {
  beforeAll(async () => {
    await buildOnce();
    dir = await newFleetDir();
    const csv = [
      'name,groups',
      ...Array.from({ length: N }, (_, i) => `u${String(i).padStart(3, '0')},staff`),
    ];
    writeFileSync(join(dir, 'users.csv'), `${csv.join('\n')}\n`);
    await cliOk(dir, ['user', 'import', join(dir, 'users.csv')]);
  }, 120_000);

  afterAll(async () => {
    if (!dir) return;
    await cliOk(dir, ['lab', 'down', '--prefix', PREFIX]);
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it(`connects ${N} clients and reaches every one from a service host`, async () => {
    const t0 = Date.now();
    const up = await cliOk(dir, ['lab', 'up', '--prefix', PREFIX, '--clients', String(N)], 600_000);
    console.log(up.trim());
    // Which server holds a session comes from OpenVPN's status file, rewritten once a second.
    let status = await labStatus(dir, PREFIX);
    await waitUntil(
      `all ${N} sessions on a server`,
      async () => (status = await labStatus(dir, PREFIX)).every((s) => s.server !== undefined),
      30_000,
      500,
    );
    expect(status).toHaveLength(N);
    const perServer = new Map<string, number>();
    for (const s of status) perServer.set(s.server!, (perServer.get(s.server!) ?? 0) + 1);
    console.log(`sessions per server: ${[...perServer].map(([k, v]) => `${k}=${v}`).join(' ')}`);
    expect(perServer.size).toBeGreaterThanOrEqual(2);

    // Every user answers a ping from the intranet service host, through the core and its server.
    const pending = new Set(status.map((s) => s.ipv4!));
    await waitUntil(
      `all ${N} users reachable from the intranet host`,
      async () => {
        const batch = [...pending];
        const script =
          batch.map((a) => `ping -c1 -W1 ${a} >/dev/null 2>&1 && echo ${a}`).join(' & ') +
          ' & wait';
        const r = await cli(
          dir,
          ['lab', 'exec', '--prefix', PREFIX, 'intranet', '--', 'sh', '-c', script],
          60_000,
        );
        for (const line of r.stdout.split('\n')) pending.delete(line.trim());
        return pending.size === 0;
      },
      120_000,
      500,
    );
    console.log(
      `lab up --clients ${N} until all ${N} reachable from a service host: ${secs(Date.now() - t0)}`,
    );
  });
});
