/**
 * FRR configs of the lab's own routers (core and site routers): the "datacenter network" the
 * VPN servers announce users into. Pure. Same protocol and authentication as the fleet.
 * (`lab up --routers bird` renders BIRD instead: bird.ts.)
 */
import type { FleetSpec } from '../spec/schema.js';
import type { LabPlan } from './plan.js';
import { bgpRouterHead, ospfInterface, ripAuth } from '../render/frr.js';

export function renderRouterConf(spec: FleetSpec, plan: LabPlan, ns: string): string {
  const r = spec.routing;
  const ifaces = plan.links.flatMap((l) => [l.a, l.b]).filter((i) => i.ns === ns && i.routing);
  const isCore = ns === plan.core;
  const lines = ['frr version 8.4', 'frr defaults traditional', `hostname ${ns}`, '!'];
  if (r.protocol === 'ospf') {
    const o = r.ospf;
    for (const i of ifaces) lines.push(...ospfInterface(i.name, o, true));
    const rid = ifaces[0]?.v4?.split('/')[0] ?? '10.254.255.1';
    lines.push(
      'router ospf',
      ` ospf router-id ${isCore ? '10.254.255.1' : rid}`,
      ' timers throttle spf 0 50 1000',
      ' timers throttle lsa all 0',
      ' timers lsa min-arrival 0',
    );
    if (isCore) lines.push(' redistribute connected');
    lines.push(
      'exit',
      '!',
      'router ospf6',
      ` ospf6 router-id ${isCore ? '10.254.255.1' : rid}`,
      ' timers throttle spf 0 50 1000',
      ' timers lsa min-arrival 0',
    );
    if (isCore) lines.push(' redistribute connected');
    lines.push('exit', '!');
  } else if (r.protocol === 'rip') {
    if (r.rip.auth)
      lines.push(
        ...ripAuth(
          r.rip.auth.key,
          ifaces.map((i) => i.name),
        ),
      );
    lines.push(
      'router rip',
      ' version 2',
      ...ifaces.map((i) => ` network ${i.name}`),
      ' timers basic 5 15 10',
    );
    if (isCore) lines.push(' redistribute connected');
    lines.push(
      'exit',
      '!',
      'router ripng',
      ...ifaces.map((i) => ` network ${i.name}`),
      ' timers basic 5 15 10',
    );
    if (isCore) lines.push(' redistribute connected');
    lines.push('exit', '!');
  } else {
    lines.push(...bgpRouter(plan, ns, r.bgp));
  }
  return `${lines.join('\n')}\n`;
}

/** Daemons a node of the lab runs for the fleet's protocol. */
export function routingDaemons(spec: FleetSpec): string[] {
  switch (spec.routing.protocol) {
    case 'ospf':
      return ['zebra', 'ospfd', 'ospf6d'];
    case 'rip':
      return ['zebra', 'ripd', 'ripngd'];
    case 'bgp':
      return ['zebra', 'bgpd'];
  }
}

/** The core's own ASN in the lab; site routers take theirs from fleet.yaml's neighbours. */
export const LAB_CORE_ASN = 64999;

type BgpSpec = Extract<FleetSpec['routing'], { protocol: 'bgp' }>['bgp'];

/** The core's router id (OSPF and BGP); site routers take their address toward the core. */
export function coreRouterId(): string {
  return '10.254.255.1';
}

/** A site router's ASN is that of the fleet's neighbour entry naming one of its addresses. */
export function siteNeighbor(
  plan: LabPlan,
  b: BgpSpec,
  routerNs: string,
): BgpSpec['neighbors'][number] {
  const mine = plan.servers.filter((s) => s.routerNs === routerNs).map((s) => s.backbonePeer);
  const n = b.neighbors.find((x) => mine.includes(x.address));
  if (!n) throw new Error(`lab: no routing.bgp.neighbors entry for the router of ${routerNs}`);
  return n;
}

/**
 * Site routers peer with their servers (the fleet's neighbours) and with the core; the core
 * announces the service networks. eBGP everywhere: next hops are rewritten hop by hop.
 */
function bgpRouter(plan: LabPlan, ns: string, b: BgpSpec): string[] {
  const neighborOf = (routerNs: string) => siteNeighbor(plan, b, routerNs);
  const sessions: { address: string; asn: number; password?: string }[] = [];
  let asn = LAB_CORE_ASN;
  if (ns === plan.core) {
    for (const l of plan.links.filter((x) => x.a.ns === plan.core && x.b.name === 'core0')) {
      sessions.push({ address: l.b.v4!.split('/')[0], asn: neighborOf(l.b.ns).asn });
    }
  } else {
    asn = neighborOf(ns).asn;
    for (const s of plan.servers.filter((x) => x.routerNs === ns)) {
      const n = b.neighbors.find((x) => x.address === s.backbonePeer);
      sessions.push({
        address: s.backboneAddress,
        asn: b.asn,
        ...(n?.password ? { password: n.password } : {}),
      });
    }
    const core = plan.links.find((x) => x.b.ns === ns && x.b.name === 'core0')!;
    sessions.push({ address: core.a.v4!.split('/')[0], asn: LAB_CORE_ASN });
  }
  const routerId =
    ns === plan.core
      ? '10.254.255.1'
      : plan.links.find((x) => x.b.ns === ns && x.b.name === 'core0')!.b.v4!.split('/')[0];
  const lines = bgpRouterHead(asn, routerId, sessions);
  for (const af of ['ipv4', 'ipv6']) {
    lines.push(` address-family ${af} unicast`);
    if (ns === plan.core) lines.push('  redistribute connected');
    for (const p of sessions) lines.push(`  neighbor ${p.address} activate`);
    lines.push(' exit-address-family');
  }
  lines.push('exit', '!');
  return lines;
}
