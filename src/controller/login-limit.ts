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
import type { Clock } from '../sys/time.js';

export interface LoginLimitOptions {
  /** Failures of one account name within the window before it is refused (default 5). */
  perAccount?: number;
  /** Failures from one client address within the window, over all names (default 20). */
  perAddress?: number;
  /** Default 15 minutes. */
  windowMs?: number;
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

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  /** Over-limit keys whose refusal was already reported, and since when. */
  private readonly reported = new Map<string, number>();
  private readonly perAccount: number;
  private readonly perAddress: number;
  readonly windowMs: number;

  constructor(
    private readonly clock: Clock,
    opts: LoginLimitOptions = {},
  ) {
    this.perAccount = opts.perAccount ?? 5;
    this.perAddress = opts.perAddress ?? 20;
    this.windowMs = opts.windowMs ?? 15 * 60_000;
  }

  /**
   * Starts a sign-in attempt: refused (`retryAfter` > 0, nothing counted) when the account or
   * the address is over its limit; else counted as a failure at once — so that concurrent
   * attempts, all waiting on scrypt, see each other — until `succeeded` takes it back.
   */
  begin(name: string, address: string | undefined): Attempt {
    const now = this.clock.now().getTime();
    const keys = [{ key: `name:${name}`, limit: this.perAccount }];
    if (address !== undefined) keys.push({ key: `addr:${address}`, limit: this.perAddress });
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
        this.failures.delete(`name:${name}`);
        if (address === undefined) return;
        const list = this.failures.get(`addr:${address}`);
        const i = list?.lastIndexOf(now) ?? -1;
        if (i >= 0) list!.splice(i, 1);
      },
    };
  }

  private recent(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
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
    this.failures.delete(key);
    this.failures.set(key, list);
    while (this.failures.size > MAX_KEYS) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }
}
