/**
 * Pure decisions of the controller: who must be evicted where, the directive token, and what
 * changed between two session lists of one server. No I/O, no clock: callers pass `now`.
 */
import { createHash } from 'node:crypto';
import { type Eviction, type SessionReport, sessionId } from '../api/index.js';
import type { StoredSession } from '../store/types.js';

export type { Eviction } from '../api/index.js';

/**
 * For every user with sessions on several servers, every server except the one holding the
 * newest session must end that user's session(s) there. Sessions of stale servers are left out:
 * a server that stopped reporting may have lost them already, and its agent would not hear the
 * directive anyway. Ties on `since` go to the server whose name sorts first, so the answer is
 * the same on every run.
 */
export function evictions(
  sessions: readonly Pick<StoredSession, 'server' | 'user' | 'since' | 'firstSeen'>[],
  staleServers: ReadonlySet<string>,
): Map<string, Eviction[]> {
  // user → server → that user's newest session on that server
  const newest = new Map<string, Map<string, Age>>();
  for (const s of sessions) {
    if (staleServers.has(s.server)) continue;
    let perServer = newest.get(s.user);
    if (!perServer) newest.set(s.user, (perServer = new Map<string, Age>()));
    const prev = perServer.get(s.server);
    if (prev === undefined || newer(s, prev) < 0) perServer.set(s.server, s);
  }
  const out = new Map<string, Eviction[]>();
  for (const [user, perServer] of newest) {
    if (perServer.size < 2) continue;
    const ranked = [...perServer].sort(
      ([aServer, a], [bServer, b]) => newer(a, b) || (aServer < bServer ? -1 : 1),
    );
    for (const [server, { since }] of ranked.slice(1)) {
      let list = out.get(server);
      if (!list) out.set(server, (list = []));
      list.push({ user, since });
    }
  }
  for (const list of out.values()) list.sort((a, b) => (a.user < b.user ? -1 : 1));
  return out;
}

/**
 * Negative when `a` is the newer session. OpenVPN's `since` has one-second resolution: within
 * the same second (a quick move), the session the controller heard of later is the newer one.
 */
type Age = Pick<StoredSession, 'since' | 'firstSeen'>;

function newer(a: Age, b: Age): number {
  return sinceMs(b.since) - sinceMs(a.since) || sinceMs(b.firstSeen) - sinceMs(a.firstSeen);
}

function sinceMs(since: string): number {
  const t = Date.parse(since);
  return Number.isNaN(t) ? 0 : t;
}

/** Changes iff the bundle, the evictions, the drain flag or the restart generation change. */
export function directiveToken(
  digest: string,
  evict: readonly Eviction[],
  drain: boolean,
  restart = 0,
): string {
  return createHash('sha256')
    .update(JSON.stringify([digest, evict, drain, restart]))
    .digest('hex');
}

/** Sessions that appeared and disappeared between two reports of one server. */
export function sessionChanges(
  before: readonly StoredSession[],
  after: readonly SessionReport[],
): { connected: SessionReport[]; disconnected: StoredSession[] } {
  const old = new Set(before.map(sessionId));
  const now = new Set(after.map(sessionId));
  return {
    connected: after.filter((s) => !old.has(sessionId(s))),
    disconnected: before.filter((s) => !now.has(sessionId(s))),
  };
}
