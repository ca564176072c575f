/**
 * nftables ruleset, applied with one `nft -f` (one transaction). The first two lines make the
 * file replace our table whole, whether or not it exists, without touching anyone else's tables.
 */
import type { CompiledPolicy, CompiledRule } from '../core/policy.js';
import { GENERATED_HEADER, type ServerContext } from './types.js';

export const NFT_TABLE = 'ovpn_fleet';

function setBlock(name: string, family: 4 | 6, elements: string[], interval: boolean): string[] {
  const lines = [`\tset ${name} {`, `\t\ttype ipv${family}_addr`];
  if (interval) lines.push('\t\tflags interval');
  if (elements.length) {
    // One element per line keeps diffs of the ruleset readable at 10,000 users.
    lines.push(
      '\t\telements = {',
      ...elements.map((e, i) => `\t\t\t${e}${i < elements.length - 1 ? ',' : ''}`),
      '\t\t}',
    );
  }
  lines.push('\t}');
  return lines;
}

function ruleLine(r: CompiledRule): string {
  const ip = r.family === 4 ? 'ip' : 'ip6';
  const parts = [`${ip} saddr @${r.groupSet}`, `${ip} daddr @${r.networkSet}`];
  if (r.protocols) {
    const l4 = r.protocols.map((p) => (p === 'icmp' ? (r.family === 4 ? 'icmp' : 'ipv6-icmp') : p));
    parts.push(l4.length === 1 ? `meta l4proto ${l4[0]}` : `meta l4proto { ${l4.join(', ')} }`);
  }
  if (r.ports)
    parts.push(
      r.ports.length === 1 ? `th dport ${r.ports[0]}` : `th dport { ${r.ports.join(', ')} }`,
    );
  return `\t\t${parts.join(' ')} counter accept comment "${nftComment(r.comment)}"`;
}

/** nft has no escapes in quoted strings and refuses a comment over 128 bytes (whole file). */
function nftComment(text: string): string {
  const chars = Array.from(text.replace(/"/g, "'").replace(/[\0-\x1f\x7f]/g, ' '));
  while (Buffer.byteLength(chars.join('')) > 128) chars.pop();
  return chars.join('');
}

export function renderNftables(ctx: ServerContext, policy: CompiledPolicy): string {
  const tun = ctx.options.tunDevice;
  const lines = [
    '#!/usr/sbin/nft -f',
    `# ${GENERATED_HEADER(`nftables, server ${ctx.server.name}`)}`,
    `table inet ${NFT_TABLE}`,
    `delete table inet ${NFT_TABLE}`,
    '',
    `table inet ${NFT_TABLE} {`,
    "\t# Members of each group (users' addresses); the agent may update these sets alone.",
  ];
  for (const s of policy.groupSets) lines.push(...setBlock(s.name, s.family, s.elements, false));
  lines.push('\t# Company networks named in fleet.yaml.');
  for (const s of policy.networkSets) lines.push(...setBlock(s.name, s.family, s.elements, true));
  if (ctx.spec.firewall.protectServers) lines.push(...inputChain(ctx));
  lines.push(
    '',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\t# Only traffic users start is filtered here; replies to it pass via conntrack.',
    `\t\tiifname "${tun}" jump from_users`,
    '\t}',
    '',
    '\tchain from_users {',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    ...policy.rules.map(ruleLine),
    '\t\t# Default deny, with a prompt error for the user instead of a silent timeout.',
    '\t\tcounter reject with icmpx type admin-prohibited',
    '\t}',
    '}',
    '',
  );
  return lines.join('\n');
}

/** What the routing protocol needs to get in on the backbone interface. */
function routingInput(ctx: ServerContext): string {
  const iface = `iifname "${ctx.server.backboneInterface}"`;
  switch (ctx.spec.routing.protocol) {
    case 'ospf':
      return `${iface} meta l4proto ospf accept`; // protocol 89 for OSPFv2 and OSPFv3
    case 'bgp':
      return `${iface} tcp dport 179 accept`;
    case 'rip':
      return `${iface} udp dport { 520, 521 } accept`;
  }
}

/**
 * The servers' own input, when fleet.yaml asks for it. A mistake here (a wrong backbone
 * interface) would cut the server off its routers: the agent's confirm window rolls it back.
 */
function inputChain(ctx: ServerContext): string[] {
  const o = ctx.spec.openvpn;
  const extra = ctx.spec.firewall.allowInput.flatMap((r) => {
    const v4 = r.from.filter((p) => !p.includes(':'));
    const v6 = r.from.filter((p) => p.includes(':'));
    const ports = r.ports.length === 1 ? String(r.ports[0]) : `{ ${r.ports.join(', ')} }`;
    return [
      ...(v4.length ? [`\t\tip saddr { ${v4.join(', ')} } ${r.proto} dport ${ports} accept`] : []),
      ...(v6.length ? [`\t\tip6 saddr { ${v6.join(', ')} } ${r.proto} dport ${ports} accept`] : []),
    ];
  });
  return [
    '',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy drop;',
    '\t\tiif lo accept',
    '\t\tct state established,related accept',
    '\t\tct state invalid drop',
    '\t\tmeta l4proto { icmp, ipv6-icmp } accept',
    `\t\t${o.proto} dport ${o.port} accept`,
    `\t\t${routingInput(ctx)}`,
    ...extra,
    '\t\tcounter',
    '\t}',
  ];
}
