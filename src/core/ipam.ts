/**
 * Address plan of the user pools. Pure: the store supplies what is taken.
 *
 * Offset 0 is the network, offset 1 the gateway (the tun address every server shares — the
 * same on every server, so a user's ccd file and pushed route-gateway are identical
 * everywhere), the IPv4 broadcast is never used. A user normally gets the same offset in both
 * pools (10.200.0.7 ↔ fd00:200::7), which makes logs easy to read; pins may differ.
 */
import { type Prefix, formatAddress, lastAddress, parseAddress, prefixContains } from './ip.js';

export const GATEWAY_OFFSET = 1n;
export const FIRST_USER_OFFSET = 2n;

export function gatewayAddress(pool: Prefix): string {
  return formatAddress(pool.family, pool.network + GATEWAY_OFFSET);
}

/** How many users fit in one pool. */
export function userSlots(pool: Prefix): bigint {
  const lastUsable = pool.family === 4 ? lastAddress(pool) - 1n : lastAddress(pool);
  const n = lastUsable - (pool.network + FIRST_USER_OFFSET) + 1n;
  return n > 0n ? n : 0n;
}

export function poolCapacity(v4: Prefix, v6: Prefix): bigint {
  const a = userSlots(v4);
  const b = userSlots(v6);
  return a < b ? a : b;
}

export type AddressCheck = { ok: true; address: string } | { ok: false; reason: string };

/** Checks an address an admin wants to pin: right family, in the pool, not reserved. */
export function checkPinnable(pool: Prefix, text: string): AddressCheck {
  const a = parseAddress(text);
  if (!a || a.family !== pool.family)
    return { ok: false, reason: `"${text}" is not an IPv${pool.family} address` };
  if (!prefixContains(pool, a.family, a.value)) {
    return {
      ok: false,
      reason: `${text} is outside the pool ${formatAddress(pool.family, pool.network)}/${pool.length}`,
    };
  }
  const offset = a.value - pool.network;
  const beyond = pool.family === 4 && a.value === lastAddress(pool);
  if (offset < FIRST_USER_OFFSET || beyond)
    return { ok: false, reason: `${text} is reserved (network, gateway or broadcast)` };
  return { ok: true, address: formatAddress(a.family, a.value) };
}

export function offsetOf(pool: Prefix, text: string): bigint | undefined {
  const a = parseAddress(text);
  if (!a || !prefixContains(pool, a.family, a.value)) return undefined;
  return a.value - pool.network;
}

export function addressAt(pool: Prefix, offset: bigint): string {
  return formatAddress(pool.family, pool.network + offset);
}

/**
 * A cursor over free offsets. `taken*` hold offsets already assigned or quarantined.
 * Allocation prefers one offset free in both pools; it is O(users) for a whole import
 * because the cursor only moves forward.
 */
export class OffsetAllocator {
  private cursor = FIRST_USER_OFFSET;
  private readonly limit4: bigint;
  private readonly limit6: bigint;

  constructor(
    private readonly v4: Prefix,
    private readonly v6: Prefix,
    private readonly taken4: Set<bigint>,
    private readonly taken6: Set<bigint>,
  ) {
    this.limit4 = FIRST_USER_OFFSET + userSlots(v4);
    this.limit6 = FIRST_USER_OFFSET + userSlots(v6);
  }

  /** Next pair of addresses; `pinned` values are used as given (already checked free). */
  next(pinned: { ipv4?: string; ipv6?: string } = {}): { ipv4: string; ipv6: string } | undefined {
    let o4 = pinned.ipv4 !== undefined ? offsetOf(this.v4, pinned.ipv4) : undefined;
    let o6 = pinned.ipv6 !== undefined ? offsetOf(this.v6, pinned.ipv6) : undefined;
    if (o4 === undefined && o6 !== undefined && o6 < this.limit4 && !this.taken4.has(o6)) o4 = o6;
    if (o6 === undefined && o4 !== undefined && o4 < this.limit6 && !this.taken6.has(o4)) o6 = o4;
    if (o4 === undefined && o6 === undefined) {
      const both = this.scan(
        (o) => !this.taken4.has(o) && !this.taken6.has(o),
        this.limit4 < this.limit6 ? this.limit4 : this.limit6,
      );
      if (both !== undefined) o4 = o6 = both;
    }
    o4 ??= this.scanFrom(this.taken4, this.limit4);
    o6 ??= this.scanFrom(this.taken6, this.limit6);
    if (o4 === undefined || o6 === undefined) return undefined;
    this.taken4.add(o4);
    this.taken6.add(o6);
    return { ipv4: addressAt(this.v4, o4), ipv6: addressAt(this.v6, o6) };
  }

  private scan(free: (o: bigint) => boolean, limit: bigint): bigint | undefined {
    while (this.cursor < limit && !free(this.cursor)) this.cursor++;
    return this.cursor < limit ? this.cursor : undefined;
  }

  private scanFrom(taken: Set<bigint>, limit: bigint): bigint | undefined {
    for (let o = FIRST_USER_OFFSET; o < limit; o++) if (!taken.has(o)) return o;
    return undefined;
  }
}
