/**
 * FRR reload that converges, in the lab: after the agents apply a new frr.conf, each server's
 * running config is its file (frr-reload.py's own comparison, src/sys/frr-reload.ts frrDiff),
 * what the file no longer has is gone from the daemons, and users' routes are still on the core.
 * A bad frr.conf handed to the agent is refused and FRR's running config stays as it was.
 *
 * Two labs, one after the other under the same prefix: BGP (a neighbour removed, the user pool
 * and with it the redistribution filter changed) and OSPF (the OSPFv2 and OSPFv3 key changed, a
 * bad file refused).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument, type Document } from 'yaml';
import { Agent } from '../../src/agent/agent.js';
import { RecordedMetrics } from '../../src/agent/testing.js';
import type { Directive } from '../../src/api/index.js';
import { run } from '../../src/sys/exec.js';
import { type FrrDiff, frrDiff, frrRunningConfig, reloadFrr } from '../../src/sys/frr-reload.js';
import {
  buildOnce,
  cli,
  cliOk,
  coreRoutes,
  newFleetDir,
  netnsNames,
  requireLab,
  secs,
  statusOf,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfq';
const SERVERS = ['vpn11', 'vpn12', 'vpn21', 'vpn22', 'vpn31', 'vpn32'];
const SITES = ['dc1', 'dc2', 'dc3'];
const runs = requireLab();

const serverNs = (server: string) => `${PREFIX}-s-${server}`;
const routerNs = (site: string) => `${PREFIX}-r-${site}`;
/** FRR of one lab node (`vtysh -N NS`), reached through its sockets: no netns needed. */
const frrOf = (ns: string) => ({ instance: ns, run });

/** Everything a lab of this file needs, set by its beforeAll. */
interface Lab {
  dir: string;
  alice: { ipv4: string; ipv6: string };
}

const frrConfOf = (lab: Lab, server: string) =>
  join(lab.dir, '.lab', PREFIX, 'servers', server, 'frr.conf');

/** How each server's running config differs from its frr.conf; {} when every one is its file. */
async function outOfSync(lab: Lab, servers = SERVERS): Promise<Record<string, FrrDiff>> {
  const out: Record<string, FrrDiff> = {};
  for (const s of servers) {
    const d = await frrDiff(frrConfOf(lab, s), frrOf(serverNs(s)));
    if (d.remove.length || d.add.length) out[s] = d;
  }
  return out;
}

/**
 * Waits until every server runs exactly its frr.conf, once `ready` says the files are the new
 * ones; the elapsed time. A server found running its file is not asked again: its file no longer
 * changes (that is what `ready` waits for), and each question is a frr-reload.py run (a second of
 * CPU), six per round otherwise.
 */
async function converged(lab: Lab, what: string, ready: () => boolean = () => true) {
  let last: Record<string, FrrDiff> = {};
  let pending = SERVERS;
  try {
    return await waitUntil(
      what,
      async () => {
        if (!ready()) return false;
        last = await outOfSync(lab, pending);
        pending = pending.filter((s) => s in last);
        return pending.length === 0;
      },
      120_000,
      1000,
    );
  } catch (err) {
    // The differences, not only "timed out": what frr-reload.py would still change.
    throw new Error(`${(err as Error).message}; still differing: ${JSON.stringify(last)}`);
  }
}

function editSpec(lab: Lab, edit: (doc: Document) => void): void {
  const file = join(lab.dir, 'fleet.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  edit(doc);
  writeFileSync(file, doc.toString());
}

const running = (ns: string) => frrRunningConfig(frrOf(ns));

/** The core routes alice through `server` (IPv4 and IPv6). */
const coreViaServer = async (lab: Lab, server: string) => {
  const s = await statusOf(lab.dir, PREFIX, 'alice');
  return s.coreVia4.join() === server && s.coreVia6.join() === server;
};

/**
 * A fleet routing with `routing` (fleet.yaml edited further by `edit`), one user alice, its lab
 * up under PREFIX and alice connected to `server` and on the core.
 */
async function labUp(
  routing: Record<string, unknown>,
  server: string,
  edit: (yaml: string) => string = (y) => y,
): Promise<Lab> {
  const dir = await newFleetDir();
  const file = join(dir, 'fleet.yaml');
  const doc = parseDocument(edit(readFileSync(file, 'utf8')));
  doc.set('routing', doc.createNode(routing));
  writeFileSync(file, doc.toString());
  await cliOk(dir, ['validate']);
  const alice = JSON.parse(await cliOk(dir, ['user', 'add', 'alice', '-g', 'staff', '--json'])) as {
    ipv4: string;
    ipv6: string;
  };
  console.log((await cliOk(dir, ['lab', 'up', '--prefix', PREFIX])).trim());
  const lab = { dir, alice };
  await cliOk(dir, ['lab', 'connect', 'alice', '--server', server, '--prefix', PREFIX]);
  await waitUntil('alice on the core', () => coreViaServer(lab, server), 60_000, 250);
  return lab;
}

async function labDown(lab: Lab | undefined): Promise<void> {
  if (!lab) return;
  console.log((await cliOk(lab.dir, ['lab', 'down', '--prefix', PREFIX])).trim());
  expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
  rmSync(lab.dir, { recursive: true, force: true });
}

/**
 * vpn11's backbone is a /29 with a second neighbour on it, 10.255.1.3, which the first test
 * removes (fleet.yaml needs one neighbour per server; a /30 has room for one). Nobody answers on
 * .3: bgpd keeps trying it, as it would a router being retired. vpn12 moves to the next /30.
 */
const BGP_SITES = (yaml: string) =>
  yaml
    .replace('backbone: 10.255.1.2/30,', 'backbone: 10.255.1.2/29,')
    .replace(
      'backbone: 10.255.1.6/30, routerId: 10.255.1.6 }',
      'backbone: 10.255.1.10/30, routerId: 10.255.1.10 }',
    );

const BGP = {
  protocol: 'bgp',
  bgp: {
    asn: 65100,
    neighbors: [
      '10.255.1.1',
      '10.255.1.3',
      '10.255.1.9',
      '10.255.2.1',
      '10.255.2.5',
      '10.255.3.1',
      '10.255.3.5',
    ].map((address) => ({
      address,
      asn: 65000 + Number(address.split('.')[2]),
      password: 'bgp-secret-1',
    })),
  },
};

const OSPF = {
  protocol: 'ospf',
  ospf: {
    area: '0.0.0.0',
    auth: { keyId: 1, key: 'change-me-ospf' },
    helloInterval: 1,
    deadInterval: 3,
  },
};

describe.runIf(runs)('FRR reload converges: BGP', () => {
  let lab: Lab | undefined;
  const need = () => lab!;

  beforeAll(async () => {
    await buildOnce();
    lab = await labUp(BGP, 'vpn11', BGP_SITES);
    // The starting point: what the lab started FRR with is what the agents' files say.
    expect(await outOfSync(lab)).toEqual({});
  }, 600_000);

  afterAll(() => labDown(lab), 120_000);

  it('a removed BGP neighbour is gone from the running bgpd, the other session stays', async () => {
    const l = need();
    const ns = serverNs('vpn11');
    const peer = async (address: string) =>
      (
        await run(['vtysh', '-N', ns, '-c', `show bgp neighbors ${address} json`], {
          allowFailure: true,
        })
      ).stdout.includes('"bgpState"');
    expect(await running(ns)).toContain('neighbor 10.255.1.3 remote-as 65001');
    expect(await peer('10.255.1.3')).toBe(true);
    editSpec(l, (doc) =>
      doc.setIn(
        ['routing', 'bgp', 'neighbors'],
        doc.createNode(BGP.bgp.neighbors.filter((n) => n.address !== '10.255.1.3')),
      ),
    );
    const ms = await converged(
      l,
      'every server runs its frr.conf, vpn11 without 10.255.1.3',
      () => !readFileSync(frrConfOf(l, 'vpn11'), 'utf8').includes('10.255.1.3'),
    );
    console.log(`neighbour removed -> running config == frr.conf on all servers in ${secs(ms)}`);
    expect(await running(ns)).not.toContain('10.255.1.3');
    // bgpd itself has no such peer any more, not only its config text; the other one is up.
    expect(await peer('10.255.1.3')).toBe(false);
    expect(await peer('10.255.1.1')).toBe(true);
    expect(await coreViaServer(l, 'vpn11')).toBe(true);
  }, 180_000);

  it("a pool change changes the servers' redistribution filter in bgpd", async () => {
    const l = need();
    // A host route inside the wider pool but outside today's: filtered out until the change.
    await cliOk(l.dir, [
      'lab',
      'exec',
      '--prefix',
      PREFIX,
      'vpn11',
      '--',
      'ip',
      'route',
      'add',
      '10.201.0.9/32',
      'dev',
      'pub0',
    ]);
    await new Promise((r) => setTimeout(r, 3000));
    expect(await coreRoutes(l.dir, PREFIX, '-4', 'bgp')).not.toContain('10.201.0.9');

    editSpec(l, (doc) => doc.setIn(['pools', 'ipv4'], '10.200.0.0/15'));
    const ms = await converged(l, 'every server runs its frr.conf with the /15 filter', () =>
      SERVERS.every((s) =>
        readFileSync(frrConfOf(l, s), 'utf8').includes('permit 10.200.0.0/15 ge 32'),
      ),
    );
    console.log(`pool changed -> running config == frr.conf on all servers in ${secs(ms)}`);
    const text = await running(serverNs('vpn11'));
    expect(text).toContain('ip prefix-list OVPNF-USERS-V4 seq 10 permit 10.200.0.0/15 ge 32');
    expect(text).not.toContain('10.200.0.0/16');
    await waitUntil(
      'the core learns the route the new filter admits',
      async () => (await coreRoutes(l.dir, PREFIX, '-4', 'bgp')).includes('10.201.0.9'),
      30_000,
      500,
    );
    // server.conf changed too (the pool), so OpenVPN restarted and alice moved on: she is on the
    // core again through whichever server she is on now.
    await waitUntil(
      "alice's /32 and /128 on the core again",
      async () => {
        const s = await statusOf(l.dir, PREFIX, 'alice');
        return !!s.server && s.coreVia4.join() === s.server && s.coreVia6.join() === s.server;
      },
      90_000,
      500,
    );
  }, 300_000);
});

describe.runIf(runs)('FRR reload converges: OSPF', () => {
  let lab: Lab | undefined;
  const need = () => lab!;

  beforeAll(async () => {
    await buildOnce();
    lab = await labUp(OSPF, 'vpn21');
    expect(await outOfSync(lab)).toEqual({});
  }, 600_000);

  afterAll(() => labDown(lab), 120_000);

  it('a changed OSPFv2 and OSPFv3 key replaces the old one in the running daemons', async () => {
    const l = need();
    const oldV2 = 'ip ospf message-digest-key 1 md5 change-me-ospf';
    const oldV3 = 'ipv6 ospf6 authentication key-id 1 hash-algo hmac-sha-256 key change-me-ospf';
    const newV2 = 'ip ospf message-digest-key 2 md5 rotated-key-2';
    const newV3 = 'ipv6 ospf6 authentication key-id 2 hash-algo hmac-sha-256 key rotated-key-2';
    expect(await running(serverNs('vpn21'))).toContain(oldV2);
    editSpec(l, (doc) =>
      doc.setIn(['routing', 'ospf', 'auth'], doc.createNode({ keyId: 2, key: 'rotated-key-2' })),
    );
    const ms = await converged(l, 'every server runs its frr.conf with key 2', () =>
      SERVERS.every((s) => readFileSync(frrConfOf(l, s), 'utf8').includes('rotated-key-2')),
    );
    console.log(`key changed -> running config == frr.conf on all servers in ${secs(ms)}`);
    for (const s of SERVERS) {
      const text = await running(serverNs(s));
      expect(text).toContain(newV2);
      expect(text).toContain(newV3);
      expect(text).not.toContain('change-me-ospf');
    }
    // The datacenter's side of the rotation: its routers (the core too) take the new key the
    // same way, each from its own running config.
    const scratch = mkdtempSync(join(tmpdir(), 'ovfq-routers-'));
    try {
      for (const ns of [`${PREFIX}-core`, ...SITES.map(routerNs)]) {
        const file = join(scratch, `${ns}.conf`);
        writeFileSync(file, (await running(ns)).replaceAll(oldV2, newV2).replaceAll(oldV3, newV3), {
          mode: 0o600,
        });
        const r = await reloadFrr(file, {
          ...frrOf(ns),
          scratchDir: scratch,
          keepRunning: (text) => {
            writeFileSync(join(scratch, 'before.conf'), text, { mode: 0o600 });
            return join(scratch, 'before.conf');
          },
        });
        expect(r).toMatchObject({ ok: true, drift: { remove: [], add: [] } });
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    const back = await waitUntil(
      "alice's /32 (OSPFv2) and /128 (OSPFv3) on the core through vpn21 again",
      () => coreViaServer(l, 'vpn21'),
      60_000,
      250,
    );
    console.log(`routers rekeyed -> alice back on the core in ${secs(back)}`);
  }, 300_000);

  it('a bad frr.conf handed to the agent is refused and the running config left as it was', async () => {
    const l = need();
    const ns = serverNs('vpn21');
    const good = readFileSync(frrConfOf(l, 'vpn21'), 'utf8');
    const before = await running(ns);
    // An agent of our own for vpn21's FRR, with a bundle folder of its own and no controller or
    // OpenVPN: only its FRR apply touches anything, through vtysh's sockets.
    const bundleDir = mkdtempSync(join(tmpdir(), 'ovfq-agent-'));
    const log: string[] = [];
    const metrics = new RecordedMetrics();
    const agent = new Agent({
      server: 'vpn21',
      bundleDir,
      controller: `unix:${join(bundleDir, 'no-controller.sock')}`,
      token: 'x',
      tunDevice: 'vpn0',
      routeProtocol: 201,
      frrInstance: ns,
      log: (line) => log.push(line),
      metrics,
    });
    const directive = (digest: string, frr: string): Directive => ({
      token: `t-${digest}`,
      bundle: { digest, files: [{ path: 'frr.conf', content: frr, mode: 0o640 }] },
      evict: [],
      drain: false,
    });
    try {
      // vtysh cannot parse it: refused before anything reaches FRR.
      await agent.handle(directive('c'.repeat(64), `${good}router ospf\n bogus-command 1\nexit\n`));
      expect(log.filter((x) => x.includes('frr.conf'))).toEqual([
        expect.stringMatching(
          /^frr\.conf refused, FRR left as it was: line \d+: % Unknown command.*bogus-command 1$/,
        ),
      ]);
      expect(await running(ns)).toBe(before);

      // It parses, and changes the redistribution filter, but ospfd refuses a line: the reload
      // has applied the filter by then, and the running config from before is put back.
      const refusedByOspfd = good
        .replace('permit 10.200.0.0/16 ge 32', 'permit 10.200.0.0/17 ge 32')
        .replace(
          ' ip ospf network point-to-point\n',
          ' ip ospf network point-to-point\n ip ospf area 0.0.0.0\n',
        );
      await agent.handle(directive('d'.repeat(64), refusedByOspfd));
      expect(log.filter((x) => x.includes('frr.conf')).slice(1)).toEqual([
        'frr.conf refused by FRR, its running config restored: ospfd refused "ip ospf area 0.0.0.0": Please remove all network commands first.',
      ]);
      expect(await running(ns)).toBe(before);
      expect(metrics.of('apply failed')).toEqual(['frr', 'frr']);
    } finally {
      await agent.stop();
      rmSync(bundleDir, { recursive: true, force: true });
    }
    // The lab's own agent and files are untouched: vpn21 still runs its frr.conf, alice routed.
    expect(await outOfSync(l, ['vpn21'])).toEqual({});
    expect(await coreViaServer(l, 'vpn21')).toBe(true);
    expect((await cli(l.dir, ['lab', 'status', '--prefix', PREFIX])).code).toBe(0);
  }, 180_000);
});
