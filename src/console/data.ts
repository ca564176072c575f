/**
 * Where the console's pages get what they show. Every read that another part of the
 * controller is about to provide better goes through one function here, so switching to it
 * touches this file only:
 *
 * - `findUsers`: scans `listUsers()`; switch to the store-side search when it lands.
 * - `auditEntries`, `userAudit`: filter the newest entries of `auditLog()`; switch to the
 *   store's filtered audit query when it lands.
 * - `userHistory`, `routeRows`: ask the JSON API itself (`GET /v1/users/:name/history`,
 *   `GET /v1/routes`) with the caller's own credentials, through fastify's `inject` (no
 *   socket). While a route is not registered the page says so in one line.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditEntry, User } from '../api/index.js';
import type { ControllerState } from '../controller/state.js';
import type { AuditFilter } from './pages/audit.js';
import type { Fetched } from './pages/format.js';
import type { RouteProblem, RouteRow } from './pages/routes.js';
import type { HistoryEntry } from './pages/user.js';

export interface UserSearch {
  q: string;
  offset: number;
  limit: number;
}

/** Users whose name contains `q` (any case), whose address starts with it, or in group `q`. */
export function findUsers(state: ControllerState, s: UserSearch): { users: User[]; total: number } {
  const q = s.q.trim().toLowerCase();
  const all = state.fleet.listUsers();
  const hits = q
    ? all.filter(
        (u) =>
          u.name.toLowerCase().includes(q) ||
          u.ipv4.startsWith(q) ||
          u.ipv6.startsWith(q) ||
          u.groups.some((g) => g.toLowerCase() === q),
      )
    : all;
  return { users: hits.slice(s.offset, s.offset + s.limit), total: hits.length };
}

/** How many of the newest entries the filters below look through. */
export const AUDIT_SCAN = 5000;

/** A filter's bounds as times; a bad value is an error naming the field. */
export function auditBounds(f: AuditFilter): { since?: number; until?: number } | string {
  const out: { since?: number; until?: number } = {};
  for (const key of ['since', 'until'] as const) {
    const v = f[key];
    if (!v) continue;
    const t = Date.parse(v);
    if (Number.isNaN(t)) return `${key}: "${v}" is not a date (2024-05-01) or an ISO time`;
    out[key] = t;
  }
  return out;
}

export function auditEntries(state: ControllerState, f: AuditFilter, limit: number): AuditEntry[] {
  const bounds = auditBounds(f);
  if (typeof bounds === 'string') return [];
  const actor = f.actor?.toLowerCase();
  const user = f.user?.toLowerCase();
  const kind = f.kind?.toLowerCase();
  const out: AuditEntry[] = [];
  for (const e of state.store.auditLog(AUDIT_SCAN)) {
    const at = Date.parse(e.at);
    if (actor && !e.actor.toLowerCase().includes(actor)) continue;
    if (user && e.subject.toLowerCase() !== user) continue;
    if (kind && e.action !== kind && !e.action.startsWith(`${kind}.`)) continue;
    if (bounds.since !== undefined && at < bounds.since) continue;
    if (bounds.until !== undefined && at >= bounds.until) continue;
    out.push(e);
    if (out.length >= limit) break;
  }
  return out;
}

export function userAudit(state: ControllerState, name: string): AuditEntry[] {
  return auditEntries(state, { user: name }, 200);
}

/** GET `url` from the API as the caller, when `pattern` is a registered route. */
async function apiGet(
  app: FastifyInstance,
  req: FastifyRequest,
  pattern: string,
  url: string,
): Promise<Fetched<unknown>> {
  if (!app.hasRoute({ method: 'GET', url: pattern }))
    return { ok: false, why: `This controller does not serve GET ${pattern} yet.` };
  const headers: Record<string, string> = {};
  if (req.headers.cookie) headers.cookie = req.headers.cookie;
  if (req.headers.authorization) headers.authorization = req.headers.authorization;
  const res = await app.inject({ method: 'GET', url, headers });
  if (res.statusCode !== 200) {
    let why = `GET ${url} answered ${res.statusCode}`;
    try {
      const body = res.json<{ error?: unknown }>();
      if (typeof body.error === 'string') why += `: ${body.error}`;
    } catch {
      // not JSON: the status says enough
    }
    return { ok: false, why };
  }
  return { ok: true, value: res.json<unknown>() };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const strOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** A list from an answer that is a list, or an object holding one under `key`. */
function listIn(body: unknown, key: string): unknown[] | undefined {
  if (Array.isArray(body)) return body as unknown[];
  if (isObject(body) && Array.isArray(body[key])) return body[key] as unknown[];
  return undefined;
}

export async function userHistory(
  app: FastifyInstance,
  req: FastifyRequest,
  name: string,
): Promise<Fetched<HistoryEntry[]>> {
  const got = await apiGet(
    app,
    req,
    '/v1/users/:name/history',
    `/v1/users/${encodeURIComponent(name)}/history`,
  );
  if (!got.ok) return got;
  const list = listIn(got.value, 'history');
  if (!list) return { ok: false, why: 'The history answer is not a list.' };
  return {
    ok: true,
    value: list.filter(isObject).map((h) => ({
      server: str(h.server),
      realAddress: str(h.realAddress),
      ipv4: strOrNull(h.ipv4),
      ipv6: strOrNull(h.ipv6),
      from: str(h.from),
      until: strOrNull(h.until),
      bytesIn: num(h.bytesIn),
      bytesOut: num(h.bytesOut),
      ended: strOrNull(h.ended),
    })),
  };
}

const PROBLEMS: readonly string[] = ['missing', 'stale', 'duplicate'];

/**
 * Rows of `GET /v1/routes`: a list (or `{routes: [...]}`) of per-user entries. Field names
 * taken: user, ipv4, ipv6, server (the session's), v4Servers and v6Servers (the agents holding
 * the /32 and /128), problem (one word or null) or problems (a list).
 */
export async function routeRows(
  app: FastifyInstance,
  req: FastifyRequest,
): Promise<Fetched<RouteRow[]>> {
  const got = await apiGet(app, req, '/v1/routes', '/v1/routes');
  if (!got.ok) return got;
  const list = listIn(got.value, 'routes');
  if (!list) return { ok: false, why: 'The routes answer is not a list.' };
  return {
    ok: true,
    value: list.filter(isObject).map((r) => ({
      user: str(r.user),
      ipv4: strOrNull(r.ipv4),
      ipv6: strOrNull(r.ipv6),
      server: strOrNull(r.server),
      v4Servers: strings(r.v4Servers),
      v6Servers: strings(r.v6Servers),
      problems: [...strings(r.problems), ...strings([r.problem])].filter((p): p is RouteProblem =>
        PROBLEMS.includes(p),
      ),
    })),
  };
}

let crlCache: { pem: string; info: { nextUpdate?: string; number?: number } } | undefined;

/** The current CRL's next update and number (parsed once per CRL). */
export async function crlSummary(
  state: ControllerState,
): Promise<{ nextUpdate?: string; number?: number } | undefined> {
  // The setting the PKI lifecycle keeps the CRL in: one row, where revocationState() would
  // also read every revoked serial on each Overview render.
  const pem = state.store.getSetting('crl.pem');
  if (!pem) return undefined;
  if (crlCache?.pem !== pem) {
    // Loaded on first use, as the services do: the x509 library is heavy to import.
    const { crlInfo } = await import('../core/pki.js');
    const info = crlInfo(pem);
    crlCache = {
      pem,
      info: {
        ...(info.nextUpdate ? { nextUpdate: info.nextUpdate.toISOString() } : {}),
        ...(info.crlNumber !== undefined ? { number: info.crlNumber } : {}),
      },
    };
  }
  return crlCache.info;
}
