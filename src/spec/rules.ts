/**
 * Cross-field rules over a schema-valid spec. Each rule returns issues with paths; none throws.
 */
import type { SpecIssue } from '../errors.js';
import {
  type Prefix,
  formatPrefix,
  mustParsePrefix,
  parseAddress,
  prefixContains,
  prefixesOverlap,
} from '../core/ip.js';
import type { FleetSpec } from './schema.js';
import { poolCapacity, userSlots } from '../core/ipam.js';
import { FRR_OSPF6_TRAILER_FIXED, compareVersions, ospf6Trailer } from './routing.js';

export interface RuleContext {
  /** Users in the store (enabled, disabled and quarantined alike hold addresses). */
  addressesHeld?: number;
}

type Rule = (spec: FleetSpec, ctx: RuleContext) => SpecIssue[];

function duplicates<T>(
  items: T[],
  key: (t: T) => string,
  path: (i: number) => string,
  what: string,
): SpecIssue[] {
  const seen = new Map<string, number>();
  const out: SpecIssue[] = [];
  items.forEach((item, i) => {
    const k = key(item);
    const first = seen.get(k);
    if (first !== undefined)
      out.push({ path: path(i), message: `duplicate ${what} "${k}" (also at ${path(first)})` });
    else seen.set(k, i);
  });
  return out;
}

function allServers(spec: FleetSpec) {
  return spec.sites.flatMap((site, si) =>
    site.servers.map((server, vi) => ({ site, server, path: `sites[${si}].servers[${vi}]` })),
  );
}

const uniqueNames: Rule = (spec) => {
  const servers = allServers(spec);
  return [
    ...duplicates(
      spec.sites,
      (s) => s.name,
      (i) => `sites[${i}].name`,
      'site name',
    ),
    ...duplicates(
      servers,
      (s) => s.server.name,
      (i) => `${servers[i].path}.name`,
      'server name',
    ),
    ...duplicates(
      servers,
      (s) => canonical(s.server.address),
      (i) => `${servers[i].path}.address`,
      'server address',
    ),
    ...duplicates(
      servers,
      (s) => s.server.backbone.split('/')[0],
      (i) => `${servers[i].path}.backbone`,
      'backbone address',
    ),
    ...duplicates(
      servers,
      (s) => s.server.routerId,
      (i) => `${servers[i].path}.routerId`,
      'router id',
    ),
    ...duplicates(
      spec.groups,
      (g) => g.name,
      (i) => `groups[${i}].name`,
      'group name',
    ),
    ...duplicates(
      spec.networks,
      (n) => n.name,
      (i) => `networks[${i}].name`,
      'network name',
    ),
  ];
};

function canonical(text: string): string {
  const a = parseAddress(text);
  return a ? `${a.family}:${a.value}` : text;
}

const addressesOutsidePools: Rule = (spec) => {
  const pools = [mustParsePrefix(spec.pools.ipv4), mustParsePrefix(spec.pools.ipv6)];
  const out: SpecIssue[] = [];
  const check = (text: string, path: string) => {
    const a = parseAddress(text.split('/')[0]);
    if (!a) return;
    const pool = pools.find((p) => prefixContains(p, a.family, a.value));
    if (pool) out.push({ path, message: `${text} is inside the user pool ${formatPrefix(pool)}` });
  };
  spec.sites.forEach((site, si) => {
    if (site.loadBalancer) check(site.loadBalancer, `sites[${si}].loadBalancer`);
    site.servers.forEach((server, vi) => {
      const p = `sites[${si}].servers[${vi}]`;
      check(server.address, `${p}.address`);
      check(server.backbone, `${p}.backbone`);
    });
  });
  return out;
};

const poolShapes: Rule = (spec, ctx) => {
  const out: SpecIssue[] = [];
  const v4 = mustParsePrefix(spec.pools.ipv4);
  const v6 = mustParsePrefix(spec.pools.ipv6);
  if (v4.length > 29)
    out.push({ path: 'pools.ipv4', message: `/${v4.length} is too small: use /29 or larger` });
  // OpenVPN accepts ifconfig-ipv6 netbits between 64 and 124.
  if (v6.length < 64 || v6.length > 124) {
    out.push({
      path: 'pools.ipv6',
      message: `/${v6.length} is not allowed by OpenVPN: use a prefix between /64 and /124`,
    });
  }
  const capacity = poolCapacity(v4, v6);
  if (ctx.addressesHeld !== undefined && BigInt(ctx.addressesHeld) > capacity) {
    out.push({
      path: userSlots(v4) <= userSlots(v6) ? 'pools.ipv4' : 'pools.ipv6',
      message: `pool holds ${capacity} users but ${ctx.addressesHeld} addresses are assigned or quarantined`,
    });
  }
  return out;
};

const noOverlaps: Rule = (spec) => {
  const out: SpecIssue[] = [];
  const named: { path: string; prefix: Prefix }[] = [
    { path: 'pools.ipv4', prefix: mustParsePrefix(spec.pools.ipv4) },
    { path: 'pools.ipv6', prefix: mustParsePrefix(spec.pools.ipv6) },
  ];
  spec.networks.forEach((n, ni) => {
    n.ipv4.forEach((p, i) =>
      named.push({ path: `networks[${ni}].ipv4[${i}]`, prefix: mustParsePrefix(p) }),
    );
    n.ipv6.forEach((p, i) =>
      named.push({ path: `networks[${ni}].ipv6[${i}]`, prefix: mustParsePrefix(p) }),
    );
  });
  for (let i = 0; i < named.length; i++) {
    for (let j = 0; j < i; j++) {
      if (prefixesOverlap(named[i].prefix, named[j].prefix)) {
        out.push({
          path: named[i].path,
          message: `${formatPrefix(named[i].prefix)} overlaps ${formatPrefix(named[j].prefix)} at ${named[j].path}`,
        });
      }
    }
  }
  const pools = named.slice(0, 2);
  spec.openvpn.push.routes.forEach((r, i) => {
    const p = mustParsePrefix(r);
    // A wider route around the pool is fine (the pool is more specific on the client); a
    // route inside the pool would send users' traffic for each other to the company network.
    const hit = pools.find(
      (pool) => prefixesOverlap(pool.prefix, p) && p.length >= pool.prefix.length,
    );
    if (hit)
      out.push({
        path: `openvpn.push.routes[${i}]`,
        message: `${r} lies inside the user pool ${formatPrefix(hit.prefix)}`,
      });
  });
  return out;
};

const policyReferences: Rule = (spec) => {
  const groups = new Set(spec.groups.map((g) => g.name));
  const networks = new Set(spec.networks.map((n) => n.name));
  const out: SpecIssue[] = [];
  spec.policy.forEach((rule, i) => {
    if (!groups.has(rule.from))
      out.push({ path: `policy[${i}].from`, message: `unknown group "${rule.from}"` });
    if (!networks.has(rule.to))
      out.push({ path: `policy[${i}].to`, message: `unknown network "${rule.to}"` });
    if (rule.ports) {
      if (rule.proto && !rule.proto.some((p) => p === 'tcp' || p === 'udp')) {
        out.push({ path: `policy[${i}].ports`, message: 'ports need proto tcp or udp' });
      } else if (rule.proto?.includes('icmp')) {
        // One nft rule carries one port match, and `th dport` on ICMP would compare its checksum.
        out.push({
          path: `policy[${i}].proto`,
          message: 'icmp has no ports: put icmp in a rule of its own',
        });
      }
      rule.ports.forEach((p, pi) => {
        if (typeof p === 'string') {
          const [lo, hi] = p.split('-').map(Number);
          if (lo < 1 || hi > 65535 || lo >= hi)
            out.push({ path: `policy[${i}].ports[${pi}]`, message: `bad port range "${p}"` });
        }
      });
    }
  });
  return out;
};

const openvpnTimers: Rule = (spec) => {
  const { interval, timeout } = spec.openvpn.keepalive;
  return timeout < 2 * interval
    ? [
        {
          path: 'openvpn.keepalive.timeout',
          message: `must be at least twice the interval (${2 * interval})`,
        },
      ]
    : [];
};

const routingPeers: Rule = (spec) => {
  const out: SpecIssue[] = [];
  const r = spec.routing;
  if (r.protocol === 'ospf' && r.ospf.deadInterval <= r.ospf.helloInterval) {
    out.push({ path: 'routing.ospf.deadInterval', message: 'must be longer than helloInterval' });
  }
  if (r.protocol === 'bgp') {
    for (const { server, path } of allServers(spec)) {
      const link = mustParsePrefix(backboneNetwork(server.backbone));
      const peers = r.bgp.neighbors.filter((n) => {
        const a = parseAddress(n.address);
        return a !== undefined && prefixContains(link, a.family, a.value);
      });
      if (peers.length === 0)
        out.push({
          path: `${path}.backbone`,
          message: `no routing.bgp.neighbors address inside ${server.backbone}`,
        });
    }
  }
  return out;
};

/** `10.0.1.2/30` → `10.0.1.0/30`. */
export function backboneNetwork(ifaceAddress: string): string {
  const [addr, len] = ifaceAddress.split('/');
  const a = parseAddress(addr)!;
  const size = 1n << BigInt(32 - Number(len));
  const net = a.value - (a.value % size);
  return formatPrefix({ family: 4, network: net, length: Number(len) });
}

/** A user certificate's lifetime and the restart grace of a retiring CA (VALIDITY in the PKI service). */
const USER_CERT_DAYS = 365;
const CA_RETIRE_GRACE_DAYS = 7;

/**
 * The old CA must outlive a rollover: after the switch its last user certificates run up to a
 * full lifetime, then the servers move to the new CA and restart. A rollover started later
 * than that would leave users with certificates their CA no longer vouches for.
 */
const pkiTimeline: Rule = (spec) => {
  const { caRolloverBeforeDays, caSwitchAfterDays } = spec.pki;
  const needed = caSwitchAfterDays + USER_CERT_DAYS + CA_RETIRE_GRACE_DAYS;
  return caRolloverBeforeDays < needed
    ? [
        {
          path: 'pki.caRolloverBeforeDays',
          message: `is ${caRolloverBeforeDays}: a rollover needs at least ${needed} days before the CA expires (caSwitchAfterDays ${caSwitchAfterDays} + a user certificate's ${USER_CERT_DAYS} days + ${CA_RETIRE_GRACE_DAYS} days for the servers' restart)`,
        },
      ]
    : [];
};

/** Groups the auth section names (TOTP groups, the SSO group map) must be the spec's groups. */
const authReferences: Rule = (spec) => {
  const auth = spec.auth;
  if (!auth) return [];
  const groups = new Set(spec.groups.map((g) => g.name));
  const out: SpecIssue[] = [];
  const totp = auth.totp?.groups;
  if (Array.isArray(totp))
    totp.forEach((g, i) => {
      if (!groups.has(g))
        out.push({ path: `auth.totp.groups[${i}]`, message: `unknown group "${g}"` });
    });
  for (const [claim, g] of Object.entries(auth.sso?.groupMap ?? {}))
    if (!groups.has(g))
      out.push({
        path: `auth.sso.groupMap.${claim}`,
        message: `unknown group "${g}" (provider group "${claim}" maps to it)`,
      });
  return out;
};

export const rules: Rule[] = [
  uniqueNames,
  addressesOutsidePools,
  poolShapes,
  noOverlaps,
  policyReferences,
  openvpnTimers,
  routingPeers,
  pkiTimeline,
  authReferences,
];

/** Below this, a routing key is within reach of a guess or a search over a captured hello. */
export const MIN_STRONG_SECRET = 12;

/**
 * The routing protocol's key is all that stops anyone on the backbone from announcing routes,
 * and so taking over users' addresses. The schema's minimum keeps the daemons happy; this
 * catches keys that pass it but protect nothing: the example's placeholder, or short ones.
 */
const weakRoutingSecrets: Rule = (spec) => {
  const r = spec.routing;
  const secrets: { path: string; value: string }[] = [];
  if (r.protocol === 'ospf') {
    secrets.push({ path: 'routing.ospf.auth.key', value: r.ospf.auth.key });
    // A trailer key of its own is checked too; one borrowed from OSPFv2 was checked just above.
    if (r.ospf.ipv6Auth?.type === 'trailer' && r.ospf.ipv6Auth.key !== undefined)
      secrets.push({ path: 'routing.ospf.ipv6Auth.key', value: r.ospf.ipv6Auth.key });
  }
  if (r.protocol === 'rip' && r.rip.auth)
    secrets.push({ path: 'routing.rip.auth.key', value: r.rip.auth.key });
  if (r.protocol === 'bgp')
    r.bgp.neighbors.forEach((n, i) => {
      if (n.password !== undefined)
        secrets.push({ path: `routing.bgp.neighbors[${i}].password`, value: n.password });
    });
  return secrets.flatMap(({ path, value }): SpecIssue[] => {
    if (/^change-?me/i.test(value))
      return [{ path, message: 'is a placeholder: set a random secret of your own' }];
    if (value.length < MIN_STRONG_SECRET)
      return [
        {
          path,
          message: `is short (${value.length} characters): use at least ${MIN_STRONG_SECRET}`,
        },
      ];
    return [];
  });
};

/**
 * FRR before 9.1 computes the OSPFv3 authentication trailer (RFC 7166) over the wrong bytes
 * (byte order; FRR issue #15800, fixed by commit 8a23a83eb6): its packets fail the check of
 * BIRD, IOS-XR and FRR >= 9.1 and theirs fail its own, so the adjacency never forms and no
 * user's IPv6 route reaches the datacenter, while OSPFv2 (MD5) carries IPv4 as if all were well.
 * Only FRR < 9.1 on both ends agrees with itself (as the FRR-only lab does). A warning, not an
 * error: such a datacenter exists, and the spec cannot know the routers.
 */
const ospf6TrailerOnOldFrr: Rule = (spec) => {
  const r = spec.routing;
  if (r.protocol !== 'ospf' || !ospf6Trailer(r.ospf)) return [];
  if (compareVersions(r.frrVersion, FRR_OSPF6_TRAILER_FIXED) >= 0) return [];
  return [
    {
      path: 'routing.ospf.ipv6Auth',
      message: `the OSPFv3 trailer of FRR ${r.frrVersion} (routing.frrVersion) is computed wrongly before ${FRR_OSPF6_TRAILER_FIXED} (FRR issue #15800): no adjacency with BIRD, IOS-XR or FRR ${FRR_OSPF6_TRAILER_FIXED}+, so users' IPv6 routes never reach them; set ipv6Auth to { type: none } or run FRR ${FRR_OSPF6_TRAILER_FIXED}+ on the servers`,
    },
  ];
};

/** Rules whose issues do not stop a fleet from working, only from being safe or reachable. */
/** With SSO the identity provider does the second factor: auth.totp asks nobody then. */
const totpBesideSso: Rule = (spec) =>
  spec.auth?.sso && spec.auth.totp
    ? [
        {
          path: 'auth.totp',
          message:
            'is ignored while auth.sso is set: every user signs in with the identity provider, which does the second factor',
        },
      ]
    : [];

export const warningRules: Rule[] = [weakRoutingSecrets, ospf6TrailerOnOldFrr, totpBesideSso];
