/**
 * The fleet against a datacenter that is not FRR: the lab's core and site routers run BIRD 2
 * (`lab up --routers bird`), the servers FRR 8.4 from their bundles. For OSPF (v2 with MD5, v3
 * without the trailer, as the example ships) and BGP (TCP-MD5): a connected user's /32 and /128
 * are learned on the BIRD core from the right server, nothing else of the servers is announced,
 * and both are withdrawn when the user leaves. Then the reason the example leaves the OSPFv3
 * trailer off: FRR 8.4's trailer never forms an adjacency with BIRD (FRR issue #15800).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { birdPaths } from '../../src/lab/bird.js';
import {
  addLeakBait,
  buildOnce,
  cli,
  cliOk,
  coreRoutes,
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
const SECRET = 'q8#Vz1!pL0w9rT';

const CASES = [
  {
    name: 'OSPF',
    prefix: 'ovfj',
    server: 'vpn22',
    routerId: '10.255.2.6',
    routing: {
      protocol: 'ospf',
      frrVersion: '8.4',
      ospf: { auth: { keyId: 1, key: SECRET }, ipv6Auth: { type: 'none' } },
    },
  },
  {
    name: 'BGP',
    prefix: 'ovfz',
    server: 'vpn12',
    routerId: '10.255.1.6',
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
] as const;

/** `birdc show …` on one of the lab's BIRD routers ("core", "r-dc1", …). */
async function birdc(dir: string, prefix: string, router: string, ...cmd: string[]) {
  const socket = birdPaths(join(dir, '.lab', prefix), `${prefix}-${router}`).socket;
  return cliOk(dir, [
    'lab',
    'exec',
    '--prefix',
    prefix,
    'core',
    '--',
    'birdc',
    '-s',
    socket,
    ...cmd,
  ]);
}

describe.runIf(runs).each(CASES)(
  'lab with BIRD routers: $name',
  ({ name, prefix, server, routerId, routing }) => {
    let dir = '';
    let alice = { ipv4: '', ipv6: '' };

    beforeAll(async () => {
      await buildOnce();
      ({ dir, alice } = await labWithRouting(prefix, routing, ['--routers', 'bird']));
    }, 600_000);

    afterAll(async () => {
      if (!dir) return;
      await cliOk(dir, ['lab', 'down', '--prefix', prefix]);
      expect(netnsNames().filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
      rmSync(dir, { recursive: true, force: true });
    }, 120_000);

    it("learns a connected user's /32 and /128 from the right server, only those, and withdraws them on leave", async () => {
      await addLeakBait(dir, prefix, server);
      await cliOk(dir, ['lab', 'connect', 'alice', '--server', server, '--prefix', prefix]);
      const ms = await waitUntil(
        `the BIRD core has alice via ${server}, both families`,
        async () => {
          const s = await statusOf(dir, prefix, 'alice');
          return s.coreVia4.join() === server && s.coreVia6.join() === server;
        },
        60_000,
        200,
      );
      console.log(`${name} on BIRD: tunnel up -> core has alice's /32 and /128 in ${secs(ms)}`);
      // BIRD names the origin: the server's router id (OSPF external) or its AS behind the
      // site router's (BGP path: site AS, fleet AS 65100).
      const v4route = await birdc(dir, prefix, 'core', 'show', 'route', 'for', alice.ipv4, 'all');
      const v6route = await birdc(dir, prefix, 'core', 'show', 'route', 'for', alice.ipv6, 'all');
      for (const r of [v4route, v6route]) {
        if (name === 'OSPF') expect(r).toContain(`[${routerId}]`);
        else expect(r).toMatch(/BGP\.as_path: 6500\d 65100\n/);
      }
      expect(await ping(dir, prefix, 'intranet', alice.ipv4)).toBe(true);
      expect(await ping(dir, prefix, 'intranet', alice.ipv6)).toBe(true);
      const v4 = await coreRoutes(dir, prefix, '-4', 'bird');
      const v6 = await coreRoutes(dir, prefix, '-6', 'bird');
      expect(v4.filter((d) => d.startsWith('10.200.'))).toEqual([alice.ipv4]);
      expect(v6.filter((d) => d.startsWith('fd7a:'))).toEqual([alice.ipv6]);
      // Besides alice, only the backbone's own links: no static, no pool subnet, no public prefix.
      expect(leaked([...v4, ...v6], [alice.ipv4, alice.ipv6])).toEqual([]);

      await cliOk(dir, ['lab', 'disconnect', 'alice', '--prefix', prefix]);
      const gone = await waitUntil(
        "both of alice's routes gone from the BIRD core",
        async () => {
          const s = await statusOf(dir, prefix, 'alice');
          return s.coreVia4.length === 0 && s.coreVia6.length === 0;
        },
        30_000,
        200,
      );
      console.log(`${name} on BIRD: disconnect -> both routes gone from the core in ${secs(gone)}`);
      const after = await coreRoutes(dir, prefix, '-4', 'bird');
      expect(after.filter((d) => d.startsWith('10.200.'))).toEqual([]);
    });

    // Registered for OSPF only (not skipped for BGP: a skip would read as a test that could not run).
    if (name === 'OSPF')
      it("with FRR 8.4's OSPFv3 trailer on the servers, BIRD never forms the adjacency: IPv6 users vanish, IPv4 stays", async () => {
        const user = 'alice';
        await cliOk(dir, ['lab', 'connect', user, '--server', 'vpn11', '--prefix', prefix]);
        await waitUntil(
          `the core has ${user} via vpn11, both families`,
          async () => {
            const s = await statusOf(dir, prefix, user);
            return s.coreVia4.join() === 'vpn11' && s.coreVia6.join() === 'vpn11';
          },
          60_000,
          200,
        );
        // The same trailer (HMAC-SHA-256, key id 1, the same key) everywhere: on every BIRD
        // router by its config, on every server's running FRR by vtysh.
        const trailer = `authentication cryptographic; password "${SECRET}" { id 1; algorithm hmac sha256; };`;
        for (const router of ['core', 'r-dc1', 'r-dc2', 'r-dc3']) {
          const conf = birdPaths(join(dir, '.lab', prefix), `${prefix}-${router}`).conf;
          const text = readFileSync(conf, 'utf8');
          expect(text).toContain('authentication none;');
          writeFileSync(conf, text.replace('authentication none;', trailer));
          expect(await birdc(dir, prefix, router, 'configure')).toContain('Reconfigured');
        }
        for (const s of ['vpn11', 'vpn12', 'vpn21', 'vpn22', 'vpn31', 'vpn32']) {
          const r = await cli(dir, [
            'lab',
            'exec',
            '--prefix',
            prefix,
            s,
            '--',
            'vtysh',
            '-N',
            `${prefix}-s-${s}`,
            '-c',
            'configure terminal',
            '-c',
            'interface eth1',
            '-c',
            `ipv6 ospf6 authentication key-id 1 hash-algo hmac-sha-256 key ${SECRET}`,
          ]);
          expect(r.code).toBe(0);
        }
        const ms = await waitUntil(
          `${user}'s /128 gone from the core while the /32 stays`,
          async () => {
            const s = await statusOf(dir, prefix, user);
            return s.coreVia6.length === 0 && s.coreVia4.join() === 'vpn11';
          },
          30_000,
          200,
        );
        console.log(`trailer on: ${user}'s /128 gone from the BIRD core in ${secs(ms)}`);
        const log = birdPaths(join(dir, '.lab', prefix), `${prefix}-r-dc1`).log;
        // BIRD rate-limits these lines per protocol ("<AUTH> ..." stands for the ones it
        // dropped), so the first may name either server of the site.
        await waitUntil(
          `BIRD to log the servers' trailers as wrong (see ${log})`,
          () =>
            /ospf_ipv6: Authentication failed for nbr 10\.255\.1\.[26] on s[01] - wrong authentication code/.test(
              readFileSync(log, 'utf8'),
            ),
          15_000,
          200,
        );
        // BIRD with BIRD: Full with the same trailer (the configuration is right; the routers
        // were reconfigured one after the other, so this adjacency re-forms first); BIRD with
        // FRR 8.4: no neighbour at all. OSPFv2 (MD5) stays Full with both servers.
        let neighbours = '';
        const split = () => neighbours.split('ospf_ipv6:');
        await waitUntil(
          'r-dc1 Full with the core in OSPFv3, trailer on both (BIRD with BIRD)',
          async () => {
            neighbours = await birdc(dir, prefix, 'r-dc1', 'show', 'ospf', 'neighbors');
            return /Full\/PtP\s+\S+\s+core0 /.test(split()[1] ?? '');
          },
          30_000,
          500,
        );
        const [v2, v3] = split();
        expect(v2, neighbours).toMatch(/Full\/PtP\s+\S+\s+s0 /);
        expect(v2, neighbours).toMatch(/Full\/PtP\s+\S+\s+s1 /);
        expect(v3, neighbours).not.toMatch(/\ss[01] /);
        expect(await ping(dir, prefix, 'intranet', alice.ipv4), 'IPv4 via OSPFv2').toBe(true);
        expect(await ping(dir, prefix, 'intranet', alice.ipv6), 'IPv6 without OSPFv3').toBe(false);
      });
  },
);
