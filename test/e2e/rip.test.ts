/**
 * The lab with `routing.protocol: rip`: RIPv2 (MD5) and RIPng from the servers to their site
 * routers, on to the core. A user's /32 and /128 reach the core; a static route and a
 * non-host route inside the pool on a server do not: nothing but users' host routes leaves
 * the servers.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import {
  buildOnce,
  coreRoutes,
  cliOk,
  netnsNames,
  newFleetDir,
  ping,
  requireLab,
  secs,
  statusOf,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfr';
const runs = requireLab();
let dir = '';
let alice = { ipv4: '', ipv6: '' };

describe.runIf(runs)('lab: RIP', () => {
  beforeAll(async () => {
    buildOnce();
    dir = await newFleetDir();
    const file = join(dir, 'fleet.yaml');
    const doc = parseDocument(readFileSync(file, 'utf8'));
    doc.set('routing', doc.createNode({ protocol: 'rip', rip: { auth: { key: 'rip-secret-1' } } }));
    writeFileSync(file, doc.toString());
    await cliOk(dir, ['validate']);
    alice = JSON.parse(
      await cliOk(dir, ['user', 'add', 'alice', '-g', 'staff', '--json']),
    ) as typeof alice;
    console.log((await cliOk(dir, ['lab', 'up', '--prefix', PREFIX])).trim());
  }, 600_000);

  afterAll(async () => {
    if (!dir) return;
    await cliOk(dir, ['lab', 'down', '--prefix', PREFIX]);
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it("announces a connected user's host routes through RIP and RIPng, and only those", async () => {
    // Routes a careless `redistribute kernel/static` would leak, on the user's server.
    for (const route of ['192.0.2.128/25', '10.200.77.0/24'])
      await cliOk(dir, [
        'lab',
        'exec',
        '--prefix',
        PREFIX,
        'vpn21',
        '--',
        'ip',
        'route',
        'add',
        route,
        'dev',
        'pub0',
      ]);
    await cliOk(dir, ['lab', 'connect', 'alice', '--server', 'vpn21', '--prefix', PREFIX]);
    const ms = await waitUntil(
      'the core has alice via vpn21, both families',
      async () => {
        const s = await statusOf(dir, PREFIX, 'alice');
        return s.coreVia4.join() === 'vpn21' && s.coreVia6.join() === 'vpn21';
      },
      60_000,
      200,
    );
    console.log(`RIP: tunnel up -> core has alice's /32 and /128 in ${secs(ms)}`);
    expect(await ping(dir, PREFIX, 'intranet', alice.ipv4)).toBe(true);
    expect(await ping(dir, PREFIX, 'intranet', alice.ipv6)).toBe(true);
    // Besides alice, only the backbone's own links (the routers' connected networks).
    const v4 = await coreRoutes(dir, PREFIX, '-4', 'rip');
    const v6 = await coreRoutes(dir, PREFIX, '-6', 'ripng');
    expect(v4.filter((d) => d.startsWith('10.200.'))).toEqual([alice.ipv4]);
    expect(v4.filter((d) => !d.startsWith('10.200.')).every((d) => d.startsWith('10.255.'))).toBe(
      true,
    );
    expect(v6.filter((d) => d.startsWith('fd7a:'))).toEqual([alice.ipv6]);
    expect(v6.filter((d) => !d.startsWith('fd7a:')).every((d) => d.startsWith('fd00:255:'))).toBe(
      true,
    );
  });
});
