/**
 * FRR's /etc/frr/daemons for the spec's routing protocol: Debian's file with the daemons the
 * protocol needs switched on, everything else (zebra's options, vtysh_enable, the other
 * daemons) as Debian shipped it. Pure.
 */
import type { FleetSpec } from '../spec/schema.js';

export type RoutingProtocol = FleetSpec['routing']['protocol'];

export const ROUTING_PROTOCOLS: readonly RoutingProtocol[] = ['ospf', 'bgp', 'rip'];

/** Each protocol announces IPv4 and IPv6 user routes; BGP carries both on one session. */
export const DAEMONS_FOR: Record<RoutingProtocol, readonly string[]> = {
  ospf: ['ospfd', 'ospf6d'],
  bgp: ['bgpd'],
  rip: ['ripd', 'ripngd'],
};

export const FRR_DAEMONS_FILE = '/etc/frr/daemons';
/** Debian's daemons file as it was before the first setup changed it; remove puts it back. */
export const FRR_DAEMONS_BACKUP = '/etc/frr/daemons.before-ovpn-fleet';

/**
 * `base` (Debian's file) with `DAEMON=yes` for each daemon of `protocol`; a daemon the file
 * does not mention gets its line added at the end. Always derived from Debian's file, never
 * from a file an earlier setup wrote: a changed protocol switches the old daemons back off.
 */
export function daemonsFileFor(base: string, protocol: RoutingProtocol): string {
  const wanted = new Set(DAEMONS_FOR[protocol]);
  const seen = new Set<string>();
  const lines = base.split('\n').map((line) => {
    const m = /^([a-z0-9]+)=\S*\s*$/.exec(line);
    if (!m || !wanted.has(m[1])) return line;
    seen.add(m[1]);
    return `${m[1]}=yes`;
  });
  const missing = DAEMONS_FOR[protocol].filter((d) => !seen.has(d));
  if (missing.length) {
    if (lines.length && lines[lines.length - 1] === '') lines.pop();
    lines.push(
      `# Enabled by ovpn-fleet server setup (routing: ${protocol}).`,
      ...missing.map((d) => `${d}=yes`),
      '',
    );
  }
  return lines.join('\n');
}
