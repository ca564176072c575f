/**
 * What the agents report: live sessions per server, the location history they leave behind,
 * and each server's state (drain flag, health, applied bundle, host routes).
 * `user` is quoted everywhere: in PostgreSQL a bare `user` is CURRENT_USER, not the column.
 */
import { sessionId } from '../api/index.js';
import { insertAudit } from './audit.js';
import type { Sql } from './sql.js';
import type {
  HistoryEntry,
  HostRoutes,
  RestartReport,
  ServerReport,
  ServerState,
  SessionEndReason,
  StoredSession,
} from './types.js';

interface SessionRow {
  server: string;
  user: string;
  real_address: string;
  ipv4: string | null;
  ipv6: string | null;
  since: string;
  bytes_in: number;
  bytes_out: number;
  client_id: number;
  reported_at: string;
  first_seen: string | null;
}

interface ServerRow {
  name: string;
  draining: number;
  health: string | null;
  bundle_digest: string | null;
  reported_at: string | null;
  routes: string | null;
  restart: string | null;
}

interface HistoryRow {
  user: string;
  server: string;
  real_address: string;
  ipv4: string | null;
  ipv6: string | null;
  since: string;
  until: string | null;
  bytes_in: number;
  bytes_out: number;
  reason: SessionEndReason | null;
}

const SESSION_COLUMNS = `server, "user", real_address, ipv4, ipv6, since, bytes_in, bytes_out, client_id, reported_at, first_seen`;

function toHistoryEntry(r: HistoryRow): HistoryEntry {
  return {
    user: r.user,
    server: r.server,
    realAddress: r.real_address,
    ...(r.ipv4 ? { ipv4: r.ipv4 } : {}),
    ...(r.ipv6 ? { ipv6: r.ipv6 } : {}),
    since: r.since,
    ...(r.until ? { until: r.until } : {}),
    bytesIn: r.bytes_in,
    bytesOut: r.bytes_out,
    ...(r.reason ? { reason: r.reason } : {}),
  };
}

function toSession(r: SessionRow): StoredSession {
  return {
    server: r.server,
    user: r.user,
    realAddress: r.real_address,
    ...(r.ipv4 ? { ipv4: r.ipv4 } : {}),
    ...(r.ipv6 ? { ipv6: r.ipv6 } : {}),
    since: r.since,
    bytesIn: r.bytes_in,
    bytesOut: r.bytes_out,
    clientId: r.client_id,
    reportedAt: r.reported_at,
    firstSeen: r.first_seen ?? r.reported_at,
  };
}

function toServerState(r: ServerRow): ServerState {
  return {
    name: r.name,
    draining: r.draining !== 0,
    ...(r.health ? { health: JSON.parse(r.health) as Record<string, unknown> } : {}),
    ...(r.bundle_digest ? { bundleDigest: r.bundle_digest } : {}),
    ...(r.reported_at ? { reportedAt: r.reported_at } : {}),
    ...(r.routes ? { routes: JSON.parse(r.routes) as HostRoutes } : {}),
    ...(r.restart !== null ? { restart: JSON.parse(r.restart) as RestartReport | null } : {}),
  };
}

/** Runs in the caller's write transaction: the session list and the history change together. */
export async function recordReport(sql: Sql, server: string, report: ServerReport): Promise<void> {
  const rows = await sql.all<SessionRow>(
    `SELECT ${SESSION_COLUMNS} FROM sessions WHERE server = ?`,
    [server],
  );
  const previous = new Map(
    rows.map((r) => [sessionId({ user: r.user, since: r.since, clientId: r.client_id }), r]),
  );
  await sql.run('DELETE FROM sessions WHERE server = ?', [server]);
  const live = new Set<string>();
  for (const s of report.sessions) {
    const id = sessionId(s);
    live.add(id);
    const before = previous.get(id);
    // A report may list one session twice: the later line wins, as before.
    await sql.run(
      `INSERT INTO sessions (${SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (server, "user", since) DO UPDATE SET real_address = excluded.real_address,
         ipv4 = excluded.ipv4, ipv6 = excluded.ipv6, bytes_in = excluded.bytes_in,
         bytes_out = excluded.bytes_out, client_id = excluded.client_id,
         reported_at = excluded.reported_at, first_seen = excluded.first_seen`,
      [
        server,
        s.user,
        s.realAddress,
        s.ipv4 ?? null,
        s.ipv6 ?? null,
        s.since,
        s.bytesIn,
        s.bytesOut,
        s.clientId,
        report.at,
        before ? (before.first_seen ?? before.reported_at) : report.at,
      ],
    );
    // A session seen before has its history row open already; a new one opens its row (or
    // opens it again, if it comes back after a report that missed it).
    if (!before)
      await sql.run(
        `INSERT INTO session_history ("user", server, real_address, ipv4, ipv6, since, client_id)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (server, "user", since, client_id) DO UPDATE SET until = NULL, reason = NULL`,
        [s.user, server, s.realAddress, s.ipv4 ?? null, s.ipv6 ?? null, s.since, s.clientId],
      );
  }
  const ends = new Map((report.ended ?? []).map((e) => [sessionId(e), e]));
  for (const [id, r] of previous) {
    if (live.has(id)) continue;
    const end = ends.get(id);
    await sql.run(
      `UPDATE session_history SET until = ?, reason = ?, bytes_in = ?, bytes_out = ?
       WHERE server = ? AND "user" = ? AND since = ? AND client_id = ? AND until IS NULL`,
      [
        end?.at ?? report.at,
        end?.reason ?? 'disconnect',
        r.bytes_in,
        r.bytes_out,
        server,
        r.user,
        r.since,
        r.client_id,
      ],
    );
  }
  await recordHealth(sql, server, report);
}

export async function recordHealth(
  sql: Sql,
  server: string,
  report: Omit<ServerReport, 'sessions'>,
): Promise<void> {
  await sql.run(
    `INSERT INTO servers (name, draining, health, bundle_digest, reported_at, routes, restart) VALUES (?, 0, ?, ?, ?, ?, ?)
     ON CONFLICT(name) DO UPDATE SET health = excluded.health, bundle_digest = excluded.bundle_digest,
       reported_at = excluded.reported_at, routes = excluded.routes, restart = excluded.restart`,
    [
      server,
      JSON.stringify(report.health),
      report.bundleDigest ?? null,
      report.at,
      report.routes ? JSON.stringify({ ipv4: report.routes.ipv4, ipv6: report.routes.ipv6 }) : null,
      JSON.stringify(
        report.restart
          ? { generation: report.restart.generation, pending: report.restart.pending }
          : null,
      ),
    ],
  );
}

export async function sessionHistory(
  sql: Sql,
  user: string,
  opts: { limit: number; after?: string },
): Promise<HistoryEntry[]> {
  // A live row shows the live session's counters; an ended one those it was last seen with.
  return (
    await sql.all<HistoryRow>(
      `SELECT h."user", h.server, h.real_address, h.ipv4, h.ipv6, h.since, h.until, h.reason,
              coalesce(s.bytes_in, h.bytes_in) AS bytes_in, coalesce(s.bytes_out, h.bytes_out) AS bytes_out
       FROM session_history h
       LEFT JOIN sessions s ON h.until IS NULL AND s.server = h.server AND s."user" = h."user" AND s.since = h.since
       WHERE h."user" = ? ${opts.after !== undefined ? 'AND (h.until IS NULL OR h.until >= ?)' : ''}
       ORDER BY h.since DESC, h.id DESC LIMIT ?`,
      opts.after !== undefined ? [user, opts.after, opts.limit] : [user, opts.limit],
    )
  ).map(toHistoryEntry);
}

/** Runs in the caller's write transaction. */
export async function pruneHistory(sql: Sql, before: Date, keepPerUser: number): Promise<number> {
  // `until` is always written by toISOString(), so string order is time order.
  const old = await sql.run('DELETE FROM session_history WHERE until IS NOT NULL AND until < ?', [
    before.toISOString(),
  ]);
  const beyond = await sql.run(
    `DELETE FROM session_history WHERE id IN (
       SELECT id FROM (
         SELECT id, row_number() OVER (PARTITION BY "user" ORDER BY since DESC, id DESC) AS n
         FROM session_history WHERE until IS NOT NULL) ranked
       WHERE n > ?)`,
    [keepPerUser],
  );
  return old + beyond;
}

export async function listSessions(sql: Sql, server?: string): Promise<StoredSession[]> {
  const order = 'ORDER BY server, "user", since';
  const rows = server
    ? await sql.all<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM sessions WHERE server = ? ${order}`,
        [server],
      )
    : await sql.all<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM sessions ${order}`);
  return rows.map(toSession);
}

export async function listServerStates(sql: Sql): Promise<ServerState[]> {
  return (await sql.all<ServerRow>('SELECT * FROM servers ORDER BY name')).map(toServerState);
}

/** Runs in the caller's write transaction. */
export async function setDraining(
  sql: Sql,
  name: string,
  draining: boolean,
  now: Date,
  actor: string,
): Promise<ServerState> {
  await sql.run(
    `INSERT INTO servers (name, draining) VALUES (?, ?)
     ON CONFLICT(name) DO UPDATE SET draining = excluded.draining`,
    [name, draining ? 1 : 0],
  );
  await insertAudit(sql, {
    at: now.toISOString(),
    actor,
    action: draining ? 'server.drain' : 'server.undrain',
    subject: name,
  });
  return toServerState((await sql.get<ServerRow>('SELECT * FROM servers WHERE name = ?', [name]))!);
}
