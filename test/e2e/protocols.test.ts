/**
 * The lab with each routing protocol besides OSPF (lab.test.ts): BGP (servers peer with their
 * site routers as fleet.yaml's neighbours, site routers with the core) and RIP (RIPv2 with MD5
 * and RIPng). A user's /32 and /128 reach the core; a static route and a non-host route inside
 * the pool on the user's server do not: nothing but users' host routes leaves the servers.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addLeakBait,
  buildOnce,
  coreRoutes,
  cliOk,
  labWithRouting,
  leaked,
  netnsNames,
  ping,
  requireLab,
  secs,
  statusOf,
  waitUntil,
} from './helpers.js';

const runs = requireLab();

const CASES = [
  {
    name: 'BGP',
    prefix: 'ovfb',
    server: 'vpn22',
    protos: ['bgp', 'bgp'] as const,
    routing: {
      protocol: 'bgp',
      bgp: {
        asn: 65100,
        neighbors: [1, 2, 3].flatMap((site) => [
          { address: `10.255.${site}.1`, asn: 65000 + site, password: 'bgp-secret-1' },
          { address: `10.255.${site}.5`, asn: 65000 + site, password: 'bgp-secret-1' },
        ]),
      },
    },
  },
  {
    name: 'RIP',
    prefix: 'ovfr',
    server: 'vpn21',
    protos: ['rip', 'ripng'] as const,
    routing: { protocol: 'rip', rip: { auth: { key: 'rip-secret-1' } } },
  },
];

describe.runIf(runs).each(CASES)('lab: $name', ({ name, prefix, server, protos, routing }) => {
  let dir = '';
  let alice = { ipv4: '', ipv6: '' };

  beforeAll(async () => {
    await buildOnce();
    ({ dir, alice } = await labWithRouting(prefix, routing));
  }, 600_000);

  afterAll(async () => {
    if (!dir) return;
    await cliOk(dir, ['lab', 'down', '--prefix', prefix]);
    expect(netnsNames().filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it("announces a connected user's host routes, and only those", async () => {
    await addLeakBait(dir, prefix, server);
    await cliOk(dir, ['lab', 'connect', 'alice', '--server', server, '--prefix', prefix]);
    const ms = await waitUntil(
      `the core has alice via ${server}, both families`,
      async () => {
        const s = await statusOf(dir, prefix, 'alice');
        return s.coreVia4.join() === server && s.coreVia6.join() === server;
      },
      60_000,
      200,
    );
    console.log(`${name}: tunnel up -> core has alice's /32 and /128 in ${secs(ms)}`);
    expect(await ping(dir, prefix, 'intranet', alice.ipv4)).toBe(true);
    expect(await ping(dir, prefix, 'intranet', alice.ipv6)).toBe(true);
    const v4 = await coreRoutes(dir, prefix, '-4', protos[0]);
    const v6 = await coreRoutes(dir, prefix, '-6', protos[1]);
    expect(v4.filter((d) => d.startsWith('10.200.'))).toEqual([alice.ipv4]);
    expect(v6.filter((d) => d.startsWith('fd7a:'))).toEqual([alice.ipv6]);
    // Besides alice, only the backbone's own links: no static, no pool subnet, no public prefix.
    expect(leaked([...v4, ...v6], [alice.ipv4, alice.ipv6])).toEqual([]);
  });
});
