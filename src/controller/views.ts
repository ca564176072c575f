/**
 * What the API shows of sessions and servers, from the store's rows. Pure: the caller passes
 * `now` and which servers are stale.
 */
import type { HistoryEntry, ServerView, SessionView } from '../api/index.js';
import type { FleetSpec } from '../spec/schema.js';
import type {
  HistoryEntry as StoredHistoryEntry,
  ServerState,
  StoredSession,
} from '../store/types.js';

/** A server whose agent has not reported for this long is stale. */
export const STALE_AFTER_MS = 10_000;

export function isStale(reportedAt: string | undefined, now: Date, staleAfterMs: number): boolean {
  if (!reportedAt) return true;
  return now.getTime() - new Date(reportedAt).getTime() > staleAfterMs;
}

/**
 * Servers whose sessions decide nothing: no report for a while (it may have lost them, and its
 * agent would not hear a directive), or its agent said it could not read them.
 */
export function staleServers(
  names: readonly string[],
  states: readonly ServerState[],
  now: Date,
  staleAfterMs: number,
  unknown: ReadonlySet<string> = new Set(),
): Set<string> {
  const reported = new Map(states.map((s) => [s.name, s.reportedAt]));
  return new Set(
    names.filter((n) => unknown.has(n) || isStale(reported.get(n), now, staleAfterMs)),
  );
}

/** One row of a user's location history as the API and the console show it. */
export function historyView(h: StoredHistoryEntry): HistoryEntry {
  return {
    user: h.user,
    server: h.server,
    realAddress: h.realAddress,
    ipv4: h.ipv4 ?? null,
    ipv6: h.ipv6 ?? null,
    since: h.since,
    until: h.until ?? null,
    bytesIn: h.bytesIn,
    bytesOut: h.bytesOut,
    reason: h.reason ?? null,
  };
}

export function sessionView(s: StoredSession, stale: boolean): SessionView {
  return {
    user: s.user,
    server: s.server,
    ipv4: s.ipv4 ?? null,
    ipv6: s.ipv6 ?? null,
    realAddress: s.realAddress,
    since: s.since,
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
    reportedAt: s.reportedAt,
    stale,
  };
}

export function serverViews(
  spec: FleetSpec,
  states: readonly ServerState[],
  sessions: readonly StoredSession[],
  currentDigest: (server: string) => string,
  stale: ReadonlySet<string>,
): ServerView[] {
  const byName = new Map(states.map((s) => [s.name, s]));
  const counts = new Map<string, number>();
  for (const s of sessions) counts.set(s.server, (counts.get(s.server) ?? 0) + 1);
  return spec.sites.flatMap((site) =>
    site.servers.map((server) => {
      const state = byName.get(server.name);
      const current = currentDigest(server.name);
      return {
        name: server.name,
        site: site.name,
        draining: state?.draining ?? false,
        stale: stale.has(server.name),
        health: (state?.health as ServerView['health'] | undefined) ?? null,
        reportedAt: state?.reportedAt ?? null,
        appliedDigest: state?.bundleDigest ?? null,
        currentDigest: current,
        upToDate: state?.bundleDigest === current,
        sessions: counts.get(server.name) ?? 0,
      };
    }),
  );
}
