/**
 * The lab's load balancer: in-kernel DNAT in its own namespace. Flows are hashed over the
 * healthy members; SNAT brings replies back through the balancer, as on a one-armed LB.
 * Pure renderer; the health loop (lb-health.ts) re-applies it when membership changes.
 */
export const LB_TABLE = 'ovpnf_lb';

export function renderLbRuleset(
  lb: { address: string },
  healthy: string[],
  port: number,
  all: string[],
): string {
  const lines = [`table ip ${LB_TABLE}`, `delete table ip ${LB_TABLE}`, `table ip ${LB_TABLE} {`];
  lines.push('\tchain pre {', '\t\ttype nat hook prerouting priority dstnat; policy accept;');
  if (healthy.length) {
    const map = healthy.map((a, i) => `${i} : ${a}`).join(', ');
    lines.push(
      `\t\tip daddr ${lb.address} udp dport ${port} dnat to jhash ip saddr . udp sport mod ${healthy.length} map { ${map} }`,
    );
  }
  lines.push(
    '\t}',
    '\tchain filter {',
    '\t\ttype filter hook prerouting priority raw; policy accept;',
  );
  // No healthy member: refuse at once so clients move on to their next remote.
  if (!healthy.length) lines.push(`\t\tip daddr ${lb.address} udp dport ${port} reject`);
  lines.push(
    '\t}',
    '\tchain post {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
  );
  lines.push(`\t\tip daddr { ${all.join(', ')} } udp dport ${port} masquerade`);
  lines.push('\t}', '}', '');
  return lines.join('\n');
}
