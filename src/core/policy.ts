/**
 * The policy compiler: group rules → a handful of set-based rules. Users appear only as set
 * elements, so the rule count depends on the policy, never on the number of users.
 */
import { mustParsePrefix } from './ip.js';

export interface CompiledRule {
  family: 4 | 6;
  groupSet: string;
  networkSet: string;
  /** l4 protocols; undefined = any. */
  protocols?: ('tcp' | 'udp' | 'icmp')[];
  ports?: string[];
  comment: string;
}

export interface CompiledPolicy {
  groupSets: { name: string; family: 4 | 6; elements: string[] }[];
  networkSets: { name: string; family: 4 | 6; elements: string[] }[];
  rules: CompiledRule[];
}

export const groupSetName = (group: string, family: 4 | 6) =>
  `g_${group.replace(/-/g, '_')}_v${family}`;
export const networkSetName = (network: string, family: 4 | 6) =>
  `n_${network.replace(/-/g, '_')}_v${family}`;

export interface PolicyMember {
  ipv4: string;
  ipv6: string;
  groups: string[];
  enabled: boolean;
}

/**
 * The parts of the (validated) spec the compiler reads. Declared here rather than imported from
 * src/spec, whose schema builds on core: core depends on nothing of ours but itself.
 */
export interface PolicySpec {
  groups: readonly { name: string }[];
  networks: readonly { name: string; ipv4: readonly string[]; ipv6: readonly string[] }[];
  policy: readonly {
    from: string;
    to: string;
    proto?: readonly ('tcp' | 'udp' | 'icmp')[];
    ports?: readonly (number | string)[];
    comment?: string;
  }[];
}

export function compilePolicy(spec: PolicySpec, users: PolicyMember[]): CompiledPolicy {
  const members = new Map<string, PolicyMember[]>(spec.groups.map((g) => [g.name, []]));
  for (const u of users) {
    if (!u.enabled) continue;
    for (const g of u.groups) members.get(g)?.push(u);
  }
  const groupSets = spec.groups.flatMap((g) =>
    ([4, 6] as const).map((family) => ({
      name: groupSetName(g.name, family),
      family,
      elements: members.get(g.name)!.map((u) => (family === 4 ? u.ipv4 : u.ipv6)),
    })),
  );
  const networkSets = spec.networks.flatMap((n) =>
    ([4, 6] as const).map((family) => ({
      name: networkSetName(n.name, family),
      family,
      elements: [...(family === 4 ? n.ipv4 : n.ipv6)],
    })),
  );
  const rules: CompiledRule[] = [];
  spec.policy.forEach((rule, i) => {
    const network = spec.networks.find((n) => n.name === rule.to)!;
    for (const family of [4, 6] as const) {
      const prefixes = family === 4 ? network.ipv4 : network.ipv6;
      if (prefixes.length === 0) continue;
      prefixes.forEach((p) => mustParsePrefix(p));
      const protocols = rule.proto ?? (rule.ports ? (['tcp', 'udp'] as const).slice() : undefined);
      rules.push({
        family,
        groupSet: groupSetName(rule.from, family),
        networkSet: networkSetName(rule.to, family),
        ...(protocols ? { protocols: [...protocols] } : {}),
        ...(rule.ports ? { ports: rule.ports.map(String) } : {}),
        comment: `policy[${i}] ${rule.from} -> ${rule.to}${rule.comment ? `: ${rule.comment}` : ''}`,
      });
    }
  });
  return { groupSets, networkSets, rules };
}
