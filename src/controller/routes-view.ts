/**
 * The Routes page's question, as a pure function: for each connected user and each routed
 * address, which servers hold its /32 and /128 host routes (their agents' reports) and whether
 * that matches the session table. No I/O, no clock: the caller says which servers are stale.
 */
import type { RouteProblem, RouteRow, RoutesView } from '../api/index.js';
import { type Family, canonicalAddress } from '../core/ip.js';
import type { HostRoutes, StoredSession } from '../store/types.js';

export interface RoutesInput {
  /** The servers of fleet.yaml. */
  servers: readonly string[];
  /** Each server's host routes as its agent last reported them (undefined: it reports none). */
  routes: ReadonlyMap<string, HostRoutes | undefined>;
  /** Servers with no recent report (or whose agent cannot read its sessions). */
  stale: ReadonlySet<string>;
  sessions: readonly Pick<
    StoredSession,
    'server' | 'user' | 'ipv4' | 'ipv6' | 'since' | 'firstSeen'
  >[];
  /** Every user's addresses: whose an address is. */
  users: readonly { name: string; ipv4: string; ipv6: string }[];
}

type Session = RoutesInput['sessions'][number];

/** The worst first: a connected user nobody routes to, then two routes, then a leftover. */
const SEVERITY: RouteProblem[] = ['missing', 'duplicate', 'stale'];

interface Row {
  user: string | null;
  ipv4?: string;
  ipv6?: string;
  sessions: Session[];
}

/**
 * Stale servers (no recent report) and servers whose agent reports no routes are left out of
 * the comparison and listed as unverified: their last routes may be long gone (a crashed server
 * takes its routes with its tun device) or never known, so counting them would report
 * mismatches that are only our blindness. A user whose live session is on such a server is
 * flagged `unverified` instead of `missing`; a route a fresh server holds is still judged, since
 * that server's own report is the truth about itself.
 */
export function routesView(input: RoutesInput): RoutesView {
  const unverified = new Set(
    input.servers.filter((s) => input.stale.has(s) || input.routes.get(s) === undefined),
  );
  const known = new Set(input.servers);
  const holders = { 4: new Map<string, Set<string>>(), 6: new Map<string, Set<string>>() };
  for (const server of input.servers) {
    const routes = input.routes.get(server);
    if (!routes || unverified.has(server)) continue;
    for (const [family, list] of [
      [4, routes.ipv4],
      [6, routes.ipv6],
    ] as const) {
      for (const text of list) {
        const address = canonicalAddress(text, family);
        if (address === undefined) continue;
        let set = holders[family].get(address);
        if (!set) holders[family].set(address, (set = new Set()));
        set.add(server);
      }
    }
  }

  const owners = { 4: new Map<string, string>(), 6: new Map<string, string>() };
  const addressesOf = new Map<string, { ipv4?: string; ipv6?: string }>();
  for (const u of input.users) {
    const ipv4 = canonicalAddress(u.ipv4, 4);
    const ipv6 = canonicalAddress(u.ipv6, 6);
    if (ipv4) owners[4].set(ipv4, u.name);
    if (ipv6) owners[6].set(ipv6, u.name);
    addressesOf.set(u.name, { ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) });
  }

  const rows = new Map<string, Row>();
  const userRow = (user: string): Row => {
    let row = rows.get(`u ${user}`);
    if (!row) rows.set(`u ${user}`, (row = { user, ...addressesOf.get(user), sessions: [] }));
    return row;
  };
  for (const s of input.sessions) userRow(s.user).sessions.push(s);
  for (const family of [4, 6] as const) {
    for (const address of holders[family].keys()) {
      const owner = owners[family].get(address);
      if (owner !== undefined) userRow(owner);
      else if (!rows.has(`${family} ${address}`))
        rows.set(`${family} ${address}`, {
          user: null,
          ...(family === 4 ? { ipv4: address } : { ipv6: address }),
          sessions: [],
        });
    }
  }

  const out = [...rows.values()].map((row) => judge(row, holders, unverified, known));
  out.sort(
    (a, b) =>
      Number(a.user === null) - Number(b.user === null) ||
      compare(a.user ?? '', b.user ?? '') ||
      compare(a.ipv4 ?? '', b.ipv4 ?? '') ||
      compare(a.ipv6 ?? '', b.ipv6 ?? ''),
  );
  const counts = { missing: 0, duplicate: 0, stale: 0 };
  for (const r of out) for (const p of r.problems) counts[p]++;
  return { rows: out, counts, unverifiedServers: [...unverified].sort() };
}

function judge(
  row: Row,
  holders: Record<Family, Map<string, Set<string>>>,
  unverified: ReadonlySet<string>,
  known: ReadonlySet<string>,
): RouteRow {
  const newest = [...row.sessions].sort(
    (a, b) => compare(b.since, a.since) || compare(b.firstSeen, a.firstSeen),
  )[0];
  // A session's own addresses, if it reports them, are what its server's hook routed.
  const ipv4 = row.ipv4 ?? (newest?.ipv4 && canonicalAddress(newest.ipv4, 4));
  const ipv6 = row.ipv6 ?? (newest?.ipv6 && canonicalAddress(newest.ipv6, 6));
  const on4 = ipv4 ? [...(holders[4].get(ipv4) ?? [])].sort() : [];
  const on6 = ipv6 ? [...(holders[6].get(ipv6) ?? [])].sort() : [];
  const server = newest?.server ?? null;
  const blind = server !== null && (unverified.has(server) || !known.has(server));
  const withSession = new Set(row.sessions.map((s) => s.server));

  const problems = new Set<RouteProblem>();
  if (server !== null && !blind) {
    const want4 = newest.ipv4 !== undefined && canonicalAddress(newest.ipv4, 4);
    const want6 = newest.ipv6 !== undefined && canonicalAddress(newest.ipv6, 6);
    const held = (family: Family, address: string | false | undefined) =>
      !address || holders[family].get(address)?.has(server);
    if (!held(4, want4) || !held(6, want6)) problems.add('missing');
  }
  if (on4.length > 1 || on6.length > 1) problems.add('duplicate');
  if ([...on4, ...on6].some((s) => !withSession.has(s))) problems.add('stale');
  const list = SEVERITY.filter((p) => problems.has(p));
  return {
    user: row.user,
    ipv4: ipv4 || null,
    ipv6: ipv6 || null,
    server,
    ipv4Servers: on4,
    ipv6Servers: on6,
    problem: list[0] ?? null,
    problems: list,
    unverified: blind,
  };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
