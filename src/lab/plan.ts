/**
 * The lab's topology, derived from the spec alone. Pure: names, links and addresses, no I/O.
 *
 *   clients ─┐                         ┌─ site router dc1 ─┬─ vpn11 (eth1)
 *   lb-dc1  ─┼─ inet (bridge) ─ pub0 ──┤                   └─ vpn12
 *   servers ─┘  (documentation ranges) ├─ site router dc2 ─ …         core ─ service hosts
 *
 * Every server has pub0 on the "internet" bridge and its backbone interface on a /30 to its
 * site's router; site routers hang off the core, the core off the service hosts' networks.
 */
import { formatAddress, mustParsePrefix, parseIPv4 } from '../core/ip.js';
import type { FleetSpec } from '../spec/schema.js';
import { backboneNetwork } from '../spec/rules.js';

export interface LabIface {
  ns: string;
  name: string;
  v4?: string; // address/len
  v6?: string;
  /** Runs the routing protocol (OSPF point-to-point). */
  routing?: boolean;
}

export interface LabLink {
  a: LabIface;
  b: LabIface;
}

export type NodeRole = 'inet' | 'core' | 'router' | 'server' | 'lb' | 'host' | 'client';

export interface LabNode {
  ns: string;
  role: NodeRole;
  /** Spec name (server, site, network or user) this node stands for. */
  name: string;
  routes: { to: string; via?: string; dev?: string }[];
  forwarding: boolean;
}

export interface LabPlan {
  prefix: string;
  nodes: LabNode[];
  links: LabLink[];
  /** Public /24s on the bridge: every public address is on-link for every attached node. */
  publicNets: string[];
  servers: {
    name: string;
    site: string;
    ns: string;
    address: string;
    backboneIface: string;
    backbonePeer: string;
    /** The server's own backbone address. */
    backboneAddress: string;
    routerNs: string;
  }[];
  loadBalancers: {
    site: string;
    ns: string;
    address: string;
    members: { server: string; address: string }[];
  }[];
  hosts: { network: string; ns: string; ipv4?: string; ipv6?: string }[];
  core: string;
  inet: string;
}

export const PUBLIC_NETS = ['198.51.100.0/24', '203.0.113.0/24', '192.0.2.0/24'];
/** Clients take public addresses from here: 198.51.100.100 + index. */
export const CLIENT_BASE = '198.51.100.100';
export const MAX_CLIENTS = 150;

const nsName = (prefix: string, kind: string, name: string) => `${prefix}-${kind}-${name}`;

function publicNetOf(address: string): string {
  const v = parseIPv4(address);
  const hit = PUBLIC_NETS.find((n) => {
    const p = mustParsePrefix(n);
    return v !== undefined && v >= p.network && v < p.network + 256n;
  });
  if (!hit) {
    throw new Error(
      `lab: public address ${address} is not in a documentation range (${PUBLIC_NETS.join(', ')})`,
    );
  }
  return hit;
}

function peerOf(ifaceAddress: string): string {
  // The router side of a server's backbone /30 (or larger): the first host that is not the server.
  const net = mustParsePrefix(backboneNetwork(ifaceAddress));
  const [addr, len] = ifaceAddress.split('/');
  const own = parseIPv4(addr)!;
  const first = net.network + 1n;
  const peer = own === first ? first + 1n : first;
  return `${formatAddress(4, peer)}/${len}`;
}

export function planLab(spec: FleetSpec, prefix: string): LabPlan {
  const inet = `${prefix}-inet`;
  const core = `${prefix}-core`;
  const nodes: LabNode[] = [
    { ns: inet, role: 'inet', name: 'inet', routes: [], forwarding: false },
    { ns: core, role: 'core', name: 'core', routes: [], forwarding: true },
  ];
  const links: LabLink[] = [];
  const servers: LabPlan['servers'] = [];
  const loadBalancers: LabPlan['loadBalancers'] = [];
  const onLink = PUBLIC_NETS.map((to) => ({ to, dev: 'pub0' }));

  spec.sites.forEach((site, si) => {
    const router = nsName(prefix, 'r', site.name);
    nodes.push({ ns: router, role: 'router', name: site.name, routes: [], forwarding: true });
    links.push({
      // IPv6 (ULA) on router links too: BGP carries users' /128s with global next hops.
      a: {
        ns: core,
        name: `r${si}`,
        v4: `10.254.${si}.1/30`,
        v6: `fd00:254:${si}::1/64`,
        routing: true,
      },
      b: {
        ns: router,
        name: 'core0',
        v4: `10.254.${si}.2/30`,
        v6: `fd00:254:${si}::2/64`,
        routing: true,
      },
    });
    site.servers.forEach((server, vi) => {
      const ns = nsName(prefix, 's', server.name);
      nodes.push({ ns, role: 'server', name: server.name, routes: onLink, forwarding: true });
      const peer = peerOf(server.backbone);
      links.push({
        a: {
          ns: router,
          name: `s${vi}`,
          v4: peer,
          v6: `fd00:255:${si}:${vi}::1/64`,
          routing: true,
        },
        b: {
          ns,
          name: server.backboneInterface,
          v4: server.backbone,
          v6: `fd00:255:${si}:${vi}::2/64`,
        },
      });
      publicNetOf(server.address);
      links.push({
        a: { ns: inet, name: `v${si}-${vi}` },
        b: { ns, name: 'pub0', v4: `${server.address}/24` },
      });
      servers.push({
        name: server.name,
        site: site.name,
        ns,
        address: server.address,
        backboneIface: server.backboneInterface,
        backbonePeer: peer.split('/')[0],
        backboneAddress: server.backbone.split('/')[0],
        routerNs: router,
      });
    });
    if (site.loadBalancer) {
      const ns = nsName(prefix, 'lb', site.name);
      publicNetOf(site.loadBalancer);
      nodes.push({ ns, role: 'lb', name: site.name, routes: onLink, forwarding: true });
      links.push({
        a: { ns: inet, name: `lb${si}` },
        b: { ns, name: 'pub0', v4: `${site.loadBalancer}/24` },
      });
      loadBalancers.push({
        site: site.name,
        ns,
        address: site.loadBalancer,
        members: site.servers.map((s) => ({ server: s.name, address: s.address })),
      });
    }
  });

  const hosts: LabPlan['hosts'] = [];
  spec.networks.forEach((net, ni) => {
    const ns = nsName(prefix, 'h', net.name);
    const v4net = net.ipv4[0] ? mustParsePrefix(net.ipv4[0]) : undefined;
    const v6net = net.ipv6[0] ? mustParsePrefix(net.ipv6[0]) : undefined;
    const at = (p: typeof v4net, n: bigint) =>
      p ? `${formatAddress(p.family, p.network + n)}/${p.length}` : undefined;
    const routes: LabNode['routes'] = [];
    if (v4net) routes.push({ to: 'default', via: at(v4net, 1n)!.split('/')[0] });
    if (v6net) routes.push({ to: 'default', via: at(v6net, 1n)!.split('/')[0] });
    nodes.push({ ns, role: 'host', name: net.name, routes, forwarding: false });
    links.push({
      a: { ns: core, name: `h${ni}`, ...opt('v4', at(v4net, 1n)), ...opt('v6', at(v6net, 1n)) },
      b: { ns, name: 'eth0', ...opt('v4', at(v4net, 10n)), ...opt('v6', at(v6net, 0x10n)) },
    });
    hosts.push({
      network: net.name,
      ns,
      ...opt('ipv4', at(v4net, 10n)?.split('/')[0]),
      ...opt('ipv6', at(v6net, 0x10n)?.split('/')[0]),
    });
  });

  return {
    prefix,
    nodes,
    links,
    publicNets: PUBLIC_NETS,
    servers,
    loadBalancers,
    hosts,
    core,
    inet,
  };
}

function opt<K extends string>(key: K, value: string | undefined): { [k in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [k in K]?: string };
}

/** A client's namespace and its address on the internet bridge. */
export function clientNode(
  prefix: string,
  user: string,
  index: number,
): { node: LabNode; link: LabLink; address: string } {
  if (index < 0 || index >= MAX_CLIENTS) throw new Error(`lab: at most ${MAX_CLIENTS} clients`);
  const address = formatAddress(4, parseIPv4(CLIENT_BASE)! + BigInt(index));
  const ns = nsName(prefix, 'c', user);
  return {
    node: {
      ns,
      role: 'client',
      name: user,
      routes: PUBLIC_NETS.map((to) => ({ to, dev: 'pub0' })),
      forwarding: false,
    },
    link: {
      a: { ns: `${prefix}-inet`, name: `c${index}` },
      b: { ns, name: 'pub0', v4: `${address}/24` },
    },
    address,
  };
}
