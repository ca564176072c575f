/**
 * Pure rules for what an agent's report may change. An agent token belongs to one server, and
 * whoever holds it (a compromised server, a stolen token file) can report anything: these rules
 * keep such a report from cutting users off other servers or flooding the audit log.
 * No I/O, no clock: callers pass `now`.
 */
import type { SessionReport } from '../api/index.js';
import type { UserStatus } from '../store/types.js';

/** How far a session's start may lie ahead of the controller's clock (clocks drift a little). */
export const SINCE_SKEW_MS = 60_000;

export interface KnownUser {
  ipv4: string;
  ipv6: string;
  enabled: boolean;
  /** For the location history: why a session of the user ended. */
  status: UserStatus;
}

/** What the rules need to know of a stored user. */
export function knownUser(u: { ipv4: string; ipv6: string; status: UserStatus }): KnownUser {
  return { ipv4: u.ipv4, ipv6: u.ipv6, enabled: u.status === 'enabled', status: u.status };
}

export interface RefusedSession {
  user: string;
  reason: string;
}

/**
 * Accepts a reported session only for an existing, enabled user whose addresses are the ones
 * the store gave them, and whose start is not in the future. A session that starts in the future
 * would rank as the user's newest forever and get the real one evicted everywhere else.
 */
export function admitSessions(
  sessions: readonly SessionReport[],
  users: (name: string) => KnownUser | undefined,
  now: Date,
  skewMs = SINCE_SKEW_MS,
): { accepted: SessionReport[]; refused: RefusedSession[] } {
  const accepted: SessionReport[] = [];
  const refused: RefusedSession[] = [];
  const latest = now.getTime() + skewMs;
  for (const s of sessions) {
    const reason = sessionProblem(s, users(s.user), latest);
    if (reason) refused.push({ user: s.user, reason });
    else accepted.push(s);
  }
  return { accepted, refused };
}

function sessionProblem(
  s: SessionReport,
  user: KnownUser | undefined,
  latestSinceMs: number,
): string | undefined {
  if (!user) return 'no such user';
  if (!user.enabled) return 'user is not enabled';
  if (s.ipv4 !== undefined && s.ipv4 !== user.ipv4) return `ipv4 ${s.ipv4} is not the user's`;
  if (s.ipv6 !== undefined && !sameIpv6(s.ipv6, user.ipv6))
    return `ipv6 ${s.ipv6} is not the user's`;
  const since = Date.parse(s.since);
  if (Number.isNaN(since)) return `since ${s.since} is not a time`;
  if (since > latestSinceMs) return `since ${s.since} is in the future`;
  return undefined;
}

/** OpenVPN prints IPv6 addresses in its own case and compression; the store in ours. */
function sameIpv6(a: string, b: string): boolean {
  return expandIpv6(a) === expandIpv6(b);
}

function expandIpv6(text: string): string {
  const lower = text.toLowerCase();
  const [head, tail] = lower.includes('::') ? lower.split('::', 2) : [lower, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const middle = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right].map((g) => g.replace(/^0+(?=.)/, '')).join(':');
}

/**
 * A token bucket per server for audit entries written on its reports: a burst as large as a
 * whole server's users moving at once fits, a flood of invented connects does not. What does not
 * fit is counted and written as one `audit.suppressed` entry once the bucket refills.
 */
export class AuditBudget {
  private tokens: number;
  private last: number;
  suppressed = 0;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now: Date,
  ) {
    this.tokens = burst;
    this.last = now.getTime();
  }

  /** How many of `wanted` entries may be written now; the rest are counted as suppressed. */
  take(wanted: number, now: Date): number {
    this.refill(now);
    const granted = Math.min(wanted, Math.floor(this.tokens));
    this.tokens -= granted;
    this.suppressed += wanted - granted;
    return granted;
  }

  /** The count of entries dropped so far, once there is room to write the one saying so. */
  drainSuppressed(now: Date): number {
    this.refill(now);
    if (this.suppressed === 0 || this.tokens < 1) return 0;
    this.tokens -= 1;
    const n = this.suppressed;
    this.suppressed = 0;
    return n;
  }

  private refill(now: Date): void {
    const t = now.getTime();
    const elapsed = Math.max(0, t - this.last) / 1000;
    this.tokens = Math.min(this.burst, this.tokens + elapsed * this.perSecond);
    this.last = t;
  }
}
