/**
 * Host routes: which /32 and /128 routes each server's agent holds (its report) and how they
 * compare with the session table (`GET /v1/routes`).
 */
import { z } from 'zod';

/** As many as a report may carry sessions: one /32 and one /128 per session. */
export const MAX_HOST_ROUTES = 20_000;

/**
 * The host routes an agent holds: the routes on its tun device with its routing protocol —
 * exactly what its routing daemon announces to the network. Addresses without a prefix length.
 */
export const HostRoutes = z.strictObject({
  ipv4: z.array(z.ipv4()).max(MAX_HOST_ROUTES),
  ipv6: z.array(z.ipv6()).max(MAX_HOST_ROUTES),
});
export type HostRoutes = z.infer<typeof HostRoutes>;

/**
 * `missing`: the user has a live session but its server holds no route to (one of) the
 * session's addresses. `duplicate`: two servers hold a route to the same address. `stale`: a
 * server holds a route to the address but has no live session of its user.
 */
export const RouteProblem = z.enum(['missing', 'duplicate', 'stale']);
export type RouteProblem = z.infer<typeof RouteProblem>;

export const RouteRow = z.object({
  user: z.string().nullable().describe('null: a routed address no user owns'),
  ipv4: z.string().nullable(),
  ipv6: z.string().nullable(),
  server: z.string().nullable().describe("the server of the user's live session (the newest)"),
  ipv4Servers: z.array(z.string()).describe('the servers that hold its /32'),
  ipv6Servers: z.array(z.string()).describe('the servers that hold its /128'),
  problem: RouteProblem.nullable().describe('the worst of `problems`: missing, duplicate, stale'),
  problems: z.array(RouteProblem),
  unverified: z
    .boolean()
    .describe('its live session is on a server whose routes are not known now (stale)'),
});
export type RouteRow = z.infer<typeof RouteRow>;

export const RoutesView = z.object({
  rows: z.array(RouteRow),
  counts: z.object({
    missing: z.number().int(),
    duplicate: z.number().int(),
    stale: z.number().int(),
  }),
  unverifiedServers: z
    .array(z.string())
    .describe('servers left out of the comparison: stale, or their agent reports no routes'),
});
export type RoutesView = z.infer<typeof RoutesView>;
