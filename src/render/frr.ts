/**
 * FRR configuration. zebra sees every kernel route that is not proto kernel/redirect as type K,
 * so `redistribute kernel` goes through a route-map that admits only host routes inside the
 * user pools (/32 and /128): never the pool itself, the tun's connected route, a default route
 * or any static route an operator adds. `redistribute connected` is never used.
 */
import { mustParsePrefix } from '../core/ip.js';
import { backboneNetwork } from '../spec/rules.js';
import { ospf6Trailer } from '../spec/routing.js';
import type { OspfSpec } from '../spec/schema.js';
import { GENERATED_HEADER, type ServerContext } from './types.js';

export const USERS_V4 = 'OVPNF-USERS-V4';
export const USERS_V6 = 'OVPNF-USERS-V6';

function userRouteFilters(ctx: ServerContext): string[] {
  const { spec } = ctx;
  return [
    "! Only users' host routes may leave this server.",
    `ip prefix-list ${USERS_V4} seq 10 permit ${spec.pools.ipv4} ge 32`,
    `ipv6 prefix-list ${USERS_V6} seq 10 permit ${spec.pools.ipv6} ge 128`,
    `route-map ${USERS_V4} permit 10`,
    ` match ip address prefix-list ${USERS_V4}`,
    'exit',
    `route-map ${USERS_V6} permit 10`,
    ` match ipv6 address prefix-list ${USERS_V6}`,
    'exit',
    "! Anything else meets the route-maps' implicit deny.",
    '!',
  ];
}

/**
 * One backbone interface for OSPFv2 (MD5) and OSPFv3 (the HMAC-SHA-256 trailer, or none, as
 * routing.ospf.ipv6Auth says), point-to-point with the spec's timers: no DR election wait,
 * adjacency in a few seconds. Shared with the lab's own FRR routers, which must speak exactly
 * what the servers speak.
 */
export function ospfInterface(
  iface: string,
  o: OspfSpec,
  withArea = false,
  notPassive = false,
): string[] {
  const trailer = ospf6Trailer(o);
  return [
    `interface ${iface}`,
    ...(withArea ? [` ip ospf area ${o.area}`] : []),
    ...(notPassive ? [' no ip ospf passive'] : []),
    ' ip ospf network point-to-point',
    ` ip ospf hello-interval ${o.helloInterval}`,
    ` ip ospf dead-interval ${o.deadInterval}`,
    ' ip ospf authentication message-digest',
    ` ip ospf message-digest-key ${o.auth.keyId} md5 ${o.auth.key}`,
    ` ipv6 ospf6 area ${o.area}`,
    ' ipv6 ospf6 network point-to-point',
    ` ipv6 ospf6 hello-interval ${o.helloInterval}`,
    ` ipv6 ospf6 dead-interval ${o.deadInterval}`,
    ...(trailer
      ? [
          ` ipv6 ospf6 authentication key-id ${trailer.keyId} hash-algo hmac-sha-256 key ${trailer.key}`,
        ]
      : []),
    'exit',
    '!',
  ];
}

function ospf(ctx: ServerContext, o: OspfSpec): string[] {
  const { server } = ctx;
  const iface = server.backboneInterface;
  return [
    // The backbone interface is exempt from `passive-interface default` on the interface, the
    // way FRR 8.4 keeps it in its running config: `no passive-interface IFACE` under router ospf
    // is deprecated and shown as `no ip ospf passive` there, so frr-reload.py saw a difference on
    // every reload: it ran `ip ospf passive` in its delete pass and put it back in its add pass.
    // In between the interface sends no hellos and drops those it gets (ospfd's passive check);
    // a reload slower than the dead interval (3 s) would take the adjacency down.
    ...ospfInterface(iface, o, false, true),
    'router ospf',
    ` ospf router-id ${server.routerId}`,
    ' passive-interface default',
    ` network ${backboneNetwork(server.backbone)} area ${o.area}`,
    ` area ${o.area} authentication message-digest`,
    ` redistribute kernel route-map ${USERS_V4}`,
    ' ! Announce a user within milliseconds of the hook adding the route.',
    ' timers throttle spf 0 50 1000',
    ' timers throttle lsa all 0',
    ' timers lsa min-arrival 0',
    'exit',
    '!',
    'router ospf6',
    ` ospf6 router-id ${server.routerId}`,
    ` redistribute kernel route-map ${USERS_V6}`,
    ' timers throttle spf 0 50 1000',
    ' timers lsa min-arrival 0',
    'exit',
    '!',
  ];
}

/**
 * `router bgp` with its sessions: fast timers (keepalive 1, hold 3, connect retry 1) and the
 * optional TCP-MD5 password. Shared with the lab's routers, which must match the servers.
 */
export function bgpRouterHead(
  asn: number,
  routerId: string,
  peers: { address: string; asn: number; password?: string }[],
): string[] {
  const lines = [
    `router bgp ${asn}`,
    ` bgp router-id ${routerId}`,
    ' no bgp default ipv4-unicast',
    ' no bgp ebgp-requires-policy',
  ];
  for (const p of peers) {
    lines.push(
      ` neighbor ${p.address} remote-as ${p.asn}`,
      ` neighbor ${p.address} timers 1 3`,
      ` neighbor ${p.address} timers connect 1`,
    );
    if (p.password) lines.push(` neighbor ${p.address} password ${p.password}`);
  }
  return lines;
}

function bgp(
  ctx: ServerContext,
  b: Extract<ServerContext['spec']['routing'], { protocol: 'bgp' }>['bgp'],
): string[] {
  const { server } = ctx;
  const link = mustParsePrefix(backboneNetwork(server.backbone));
  const peers = b.neighbors.filter((n) => {
    const a = mustParsePrefix(`${n.address}/32`);
    return a.network >= link.network && a.network < link.network + (1n << BigInt(32 - link.length));
  });
  const lines = bgpRouterHead(b.asn, server.routerId, peers);
  lines.push(' address-family ipv4 unicast', `  redistribute kernel route-map ${USERS_V4}`);
  for (const p of peers)
    lines.push(
      `  neighbor ${p.address} activate`,
      `  neighbor ${p.address} route-map ${USERS_V4} out`,
    );
  lines.push(
    ' exit-address-family',
    ' address-family ipv6 unicast',
    `  redistribute kernel route-map ${USERS_V6}`,
  );
  // IPv6 user routes ride the IPv4 session: bgpd takes the backbone interface's global IPv6
  // address as their next hop (seen in the lab), so that interface needs one (a ULA will do);
  // without it the next hop would be an unusable IPv4-mapped address.
  for (const p of peers)
    lines.push(
      `  neighbor ${p.address} activate`,
      `  neighbor ${p.address} route-map ${USERS_V6} out`,
    );
  lines.push(' exit-address-family', 'exit', '!');
  return lines;
}

/**
 * RIPv2 MD5 authentication on the given interfaces (RIPng has none). Shared with the lab.
 *
 * The key chain has no `exit` lines, only `!`. A daemon that reads the integrated config itself
 * (`ripngd -f frr.conf`, as the lab starts FRR) does not know `key chain`, stays at the top
 * level, and the chain's `exit` then took it out of configuration mode: found in the lab,
 * ripngd rejected every later line and never ran RIPng. Without `exit`, ripd leaves the chain
 * the way FRR always reads such files: a command its current node does not know is retried in
 * the parent nodes (so `interface …` below lands at the top level).
 */
export function ripAuth(key: string, ifaces: string[]): string[] {
  return [
    'key chain OVPNF-RIP',
    ' key 1',
    `  key-string ${key}`,
    '!',
    ...ifaces.flatMap((i) => [
      `interface ${i}`,
      ' ip rip authentication mode md5',
      ' ip rip authentication key-chain OVPNF-RIP',
      'exit',
      '!',
    ]),
  ];
}

function rip(
  ctx: ServerContext,
  r: Extract<ServerContext['spec']['routing'], { protocol: 'rip' }>['rip'],
): string[] {
  const iface = ctx.server.backboneInterface;
  const lines: string[] = [];
  if (r.auth) lines.push(...ripAuth(r.auth.key, [iface]));
  lines.push(
    'router rip',
    ' version 2',
    ` network ${iface}`,
    ` redistribute kernel route-map ${USERS_V4}`,
    ' timers basic 5 15 10',
    'exit',
    '!',
    'router ripng',
    ` network ${iface}`,
    ` redistribute kernel route-map ${USERS_V6}`,
    ' timers basic 5 15 10',
    'exit',
    '!',
  );
  return lines;
}

export function renderFrrConf(ctx: ServerContext): string {
  const { server, spec } = ctx;
  const r = spec.routing;
  const body =
    r.protocol === 'ospf'
      ? ospf(ctx, r.ospf)
      : r.protocol === 'bgp'
        ? bgp(ctx, r.bgp)
        : rip(ctx, r.rip);
  return [
    `! ${GENERATED_HEADER(`FRR, server ${server.name}, ${r.protocol}`)}`,
    `frr version ${r.frrVersion}`,
    'frr defaults traditional',
    `hostname ${server.name}`,
    'service integrated-vtysh-config',
    '!',
    ...userRouteFilters(ctx),
    ...body,
    '',
  ].join('\n');
}
