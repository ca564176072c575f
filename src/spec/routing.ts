/**
 * What a spec's routing section means once its defaults are resolved: shared by the rules, the
 * FRR renderer and the lab's routers, so that all three read a field the same way.
 */
import type { OspfSpec } from './schema.js';

/** The OSPFv3 trailer's key, or undefined when OSPFv3 runs unauthenticated. */
export function ospf6Trailer(o: OspfSpec): { keyId: number; key: string } | undefined {
  // Left out, the field means what every fleet had before it existed: the trailer with OSPFv2's key.
  const a = o.ipv6Auth ?? { type: 'trailer' as const };
  if (a.type === 'none') return undefined;
  return { keyId: a.keyId ?? o.auth.keyId, key: a.key ?? o.auth.key };
}

/** The FRR release that computes the OSPFv3 trailer as RFC 7166 says (FRR issue #15800). */
export const FRR_OSPF6_TRAILER_FIXED = '9.1';

/** Compares dotted release numbers ("8.4", "8.4.4", "10.2"): negative when a is older than b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
