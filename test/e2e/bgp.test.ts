/**
 * The lab with `routing.protocol: bgp`: servers peer with their site routers (fleet.yaml's
 * neighbours), site routers with the core. A user's /32 and /128 reach the core, and nothing
 * but users' host routes leaves the servers.
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

const PREFIX = 'ovfb';
const runs = requireLab();
let dir = '';
let alice = { ipv4: '', ipv6: '' };

describe.runIf(runs)('lab: BGP', () => {
  beforeAll(async () => {
    buildOnce();
    dir = await newFleetDir();
    const file = join(dir, 'fleet.yaml');
    const doc = parseDocument(readFileSync(file, 'utf8'));
    const neighbors = [1, 2, 3].flatMap((site) => [
      { address: `10.255.${site}.1`, asn: 65000 + site, password: 'bgp-secret-1' },
      { address: `10.255.${site}.5`, asn: 65000 + site, password: 'bgp-secret-1' },
    ]);
    doc.set('routing', doc.createNode({ protocol: 'bgp', bgp: { asn: 65100, neighbors } }));
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

  it("announces a connected user's host routes through BGP, and only those", async () => {
    // Routes a careless `redistribute kernel/static` would leak, on the user's server.
    for (const route of ['192.0.2.128/25', '10.200.77.0/24'])
      await cliOk(dir, [
        'lab',
        'exec',
        '--prefix',
        PREFIX,
        'vpn22',
        '--',
        'ip',
        'route',
        'add',
        route,
        'dev',
        'pub0',
      ]);
    await cliOk(dir, ['lab', 'connect', 'alice', '--server', 'vpn22', '--prefix', PREFIX]);
    const ms = await waitUntil(
      'the core has alice via vpn22, both families',
      async () => {
        const s = await statusOf(dir, PREFIX, 'alice');
        return s.coreVia4.join() === 'vpn22' && s.coreVia6.join() === 'vpn22';
      },
      30_000,
      200,
    );
    console.log(`BGP: tunnel up -> core has alice's /32 and /128 in ${secs(ms)}`);
    expect(await ping(dir, PREFIX, 'intranet', alice.ipv4)).toBe(true);
    expect(await ping(dir, PREFIX, 'intranet', alice.ipv6)).toBe(true);
    const routes = (fam: '-4' | '-6') => coreRoutes(dir, PREFIX, fam, 'bgp');
    expect((await routes('-4')).filter((d) => d.startsWith('10.200.'))).toEqual([alice.ipv4]);
    expect((await routes('-6')).filter((d) => d.startsWith('fd7a:'))).toEqual([alice.ipv6]);
    // Besides alice, only the backbone's own links.
    const others = [...(await routes('-4')), ...(await routes('-6'))].filter(
      (d) => d !== alice.ipv4 && d !== alice.ipv6,
    );
    expect(others.filter((d) => !d.startsWith('10.255.') && !d.startsWith('fd00:255:'))).toEqual(
      [],
    );
  });
});
