/**
 * FRR configs of the lab's own routers (core and site routers): the "datacenter network" the
 * VPN servers announce users into. Pure. Same protocol and authentication as the fleet.
 */
import type { FleetSpec } from '../spec/schema.js';
import type { LabPlan } from './plan.js';
import { ospfInterface, ripAuth } from '../render/frr.js';

export function renderRouterConf(spec: FleetSpec, plan: LabPlan, ns: string): string {
  const r = spec.routing;
  const ifaces = plan.links.flatMap((l) => [l.a, l.b]).filter((i) => i.ns === ns && i.routing);
  const isCore = ns === plan.core;
  const lines = [
    'frr version 8.4',
    'frr defaults traditional',
    `hostname ${ns}`,
    `log file /var/run/frr/${ns}/frr.log informational`,
    '!',
  ];
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
    throw new Error(
      "lab: routing protocol bgp is rendered for servers but the lab's routers speak only ospf and rip for now",
    );
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
