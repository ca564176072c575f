/**
 * IPv4/IPv6 addresses and prefixes as bigints: one arithmetic for both families.
 * Pure; every parse error says which value was wrong.
 */
export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  /** Network address (host bits zero). */
  network: bigint;
  length: number;
}

const V4_BITS = 32;
const V6_BITS = 128;

export function bits(family: Family): number {
  return family === 4 ? V4_BITS : V6_BITS;
}

export function parseIPv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

export function parseIPv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length < 2) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const groups = s.split(':');
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const head = parseGroups(halves[0]);
  const tail = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (!head || !tail) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

export function parseAddress(text: string): { family: Family; value: bigint } | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIPv6(text);
  if (v6 !== undefined) return { family: 6, value: v6 };
  return undefined;
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

export type PrefixParse = { ok: true; prefix: Prefix } | { ok: false; reason: string };

/** Parses `A/len`; refuses host bits set so that `10.0.0.1/8` is not silently read as 10/8. */
export function parsePrefix(text: string, family?: Family): PrefixParse {
  const m = /^([^/\s]+)\/(\d{1,3})$/.exec(text);
  if (!m) return { ok: false, reason: `"${text}" is not a prefix (expected ADDRESS/LENGTH)` };
  const addr = parseAddress(m[1]);
  if (!addr) return { ok: false, reason: `"${m[1]}" is not an IP address` };
  if (family && addr.family !== family) {
    return { ok: false, reason: `"${text}" is not an IPv${family} prefix` };
  }
  const length = Number(m[2]);
  const total = bits(addr.family);
  if (length > total) {
    return { ok: false, reason: `prefix length ${length} is longer than ${total}` };
  }
  const hostMask = (1n << BigInt(total - length)) - 1n;
  if ((addr.value & hostMask) !== 0n) {
    const fixed = formatAddress(addr.family, addr.value & ~hostMask);
    return { ok: false, reason: `"${text}" has host bits set (did you mean ${fixed}/${length}?)` };
  }
  return { ok: true, prefix: { family: addr.family, network: addr.value, length } };
}

export function mustParsePrefix(text: string): Prefix {
  const r = parsePrefix(text);
  if (!r.ok) throw new Error(r.reason);
  return r.prefix;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.family, p.network)}/${p.length}`;
}

export function prefixSize(p: Prefix): bigint {
  return 1n << BigInt(bits(p.family) - p.length);
}

export function lastAddress(p: Prefix): bigint {
  return p.network + prefixSize(p) - 1n;
}

export function prefixContains(p: Prefix, family: Family, value: bigint): boolean {
  return p.family === family && value >= p.network && value <= lastAddress(p);
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.network <= lastAddress(b) && b.network <= lastAddress(a);
}

/** Netmask in dotted form, for OpenVPN's `ifconfig-push ADDR MASK`. */
export function ipv4Netmask(length: number): string {
  const mask = length === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - length)) - 1n);
  return formatAddress(4, mask);
}

/** Canonical text of an address, or undefined when it does not parse as the given family. */
export function canonicalAddress(text: string, family: Family): string | undefined {
  const v = family === 4 ? parseIPv4(text) : parseIPv6(text);
  return v === undefined ? undefined : formatAddress(family, v);
}
