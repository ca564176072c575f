/**
 * Failed sign-ins, counted per account name and per client address over a sliding window: past
 * the limit every attempt is refused (429, Retry-After) without even checking the password,
 * until the oldest failure in the window ages out. An unknown name is counted like a known one,
 * so the limiter's answers say nothing about which accounts exist.
 *
 * In memory, per controller process: a restart forgets the counts, and several controllers
 * behind one address (issue 15) would each count on their own — the store would be the place
 * then.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Clock } from '../sys/time.js';

export interface LoginLimitOptions {
  /** Failures of one account name within the window before it is refused (default 5). */
  perAccount?: number;
  /** Failures from one client address within the window, over all names (default 20). */
  perAddress?: number;
  /** Default 15 minutes. */
  windowMs?: number;
  /**
   * Password checks (scrypt) under way at once, over all sign-ins and password changes
   * (default 2): beyond, a 429 at once without hashing, so that a burst cannot fill libuv's
   * thread pool (4 threads, shared with file I/O and DNS).
   */
  maxConcurrentChecks?: number;
}

/** A sign-in attempt under way. */
export interface Attempt {
  /** Whole seconds to wait before trying again; 0 when this attempt may go on. */
  readonly retryAfter: number;
  /**
   * For a refused attempt: true only for the first refusal of an over-limit key since it went
   * over (at most once per key per window), so that a flood of refused requests writes one
   * audit entry, not one each.
   */
  readonly firstRefusal: boolean;
  succeeded(): void;
}

/** Keys kept at most; beyond it the oldest go first (a flood of made-up names cannot fill memory). */
const MAX_KEYS = 10_000;

/**
 * The limiter's key of a client address: an IPv4 address as it is, an IPv6 one by its /64 (one
 * host commonly holds a whole /64, and would otherwise get a fresh count per address), an
 * IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, a dual-stack socket's view) as the IPv4 one.
 */
export function addressKey(address: string): string {
  const a = address.replace(/%.*$/, '');
  if (isIPv4(a) || !isIPv6(a)) return a;
  const groups = ipv6Groups(a);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff)
    return [groups[6] >> 8, groups[6] & 255, groups[7] >> 8, groups[7] & 255].join('.');
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted tail converted). */
function ipv6Groups(a: string): number[] {
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  let text = a;
  if (dotted) {
    const [b0, b1, b2, b3] = dotted.slice(1).map(Number);
    text = `${a.slice(0, dotted.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = part(head);
  const t = part(tail);
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

export class LoginLimiter {
  /**
   * Failures of existing accounts: never evicted (there are only so many accounts), so that a
   * flood of addresses or made-up names cannot make the limiter forget an account's failures.
   */
  private readonly accounts = new Map<string, number[]>();
  /** Failures of unknown names and of addresses: bounded, the oldest go first. */
  private readonly failures = new Map<string, number[]>();
  /** Over-limit keys whose refusal was already reported, and since when. */
  private readonly reported = new Map<string, number>();
  private readonly perAccount: number;
  private readonly perAddress: number;
  readonly windowMs: number;
  readonly maxConcurrentChecks: number;

  constructor(
    private readonly clock: Clock,
    opts: LoginLimitOptions = {},
  ) {
    this.perAccount = opts.perAccount ?? 5;
    this.perAddress = opts.perAddress ?? 20;
    this.windowMs = opts.windowMs ?? 15 * 60_000;
    this.maxConcurrentChecks = opts.maxConcurrentChecks ?? 2;
  }

  /**
   * Starts a sign-in attempt: refused (`retryAfter` > 0, nothing counted) when the account or
   * the address is over its limit; else counted as a failure at once — so that concurrent
   * attempts, all waiting on scrypt, see each other — until `succeeded` takes it back.
   * `known` says whether the account exists: it only chooses where the count is kept (an
   * unknown name still has a count of its own, so 429s do not tell which names exist).
   */
  begin(name: string, address: string | undefined, known: boolean): Attempt {
    const now = this.clock.now().getTime();
    const nameKey = `${known ? 'account' : 'name'}:${name}`;
    const addrKey = address !== undefined ? `addr:${addressKey(address)}` : undefined;
    const keys = [{ key: nameKey, limit: this.perAccount }];
    if (addrKey !== undefined) keys.push({ key: addrKey, limit: this.perAddress });
    const waits = keys.map(({ key, limit }) => ({ key, ms: this.waitMs(key, limit, now) }));
    let firstRefusal = false;
    for (const { key, ms } of waits) {
      const since = this.reported.get(key);
      if (ms === 0 || (since !== undefined && now - since >= this.windowMs)) {
        this.reported.delete(key);
        if (ms === 0) continue;
      }
      if (this.reported.has(key)) continue;
      firstRefusal = true;
      this.reported.set(key, now);
      // Bounded like the counts: a key forgotten here is at worst reported once more.
      while (this.reported.size > MAX_KEYS) {
        const oldest = this.reported.keys().next().value;
        if (oldest === undefined) break;
        this.reported.delete(oldest);
      }
    }
    const waitMs = Math.max(...waits.map((w) => w.ms));
    if (waitMs > 0)
      return { retryAfter: Math.ceil(waitMs / 1000), firstRefusal, succeeded: () => {} };
    for (const { key } of keys) this.add(key, now);
    return {
      retryAfter: 0,
      firstRefusal: false,
      // A correct password clears the account's failures, and takes back this attempt's
      // count of the address (its other failures stay).
      succeeded: () => {
        this.mapOf(nameKey).delete(nameKey);
        if (addrKey === undefined) return;
        const list = this.failures.get(addrKey);
        const i = list?.lastIndexOf(now) ?? -1;
        if (i >= 0) list!.splice(i, 1);
      },
    };
  }

  private mapOf(key: string): Map<string, number[]> {
    return key.startsWith('account:') ? this.accounts : this.failures;
  }

  private recent(key: string, now: number): number[] {
    const map = this.mapOf(key);
    const list = (map.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) map.set(key, list);
    else map.delete(key);
    return list;
  }

  private waitMs(key: string, limit: number, now: number): number {
    const list = this.recent(key, now);
    if (list.length < limit) return 0;
    // Allowed again once only limit-1 failures remain in the window.
    return list[list.length - limit] + this.windowMs - now;
  }

  private add(key: string, now: number): void {
    const list = this.recent(key, now);
    list.push(now);
    if (this.mapOf(key) === this.accounts) {
      this.accounts.set(key, list);
      return;
    }
    this.failures.delete(key);
    this.failures.set(key, list);
    while (this.failures.size > MAX_KEYS) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }
}
