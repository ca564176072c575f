/**
 * Query-string values, checked: ajv sees only strings (no type coercion), so ranges, dates and
 * forbidden characters are checked here, each refusal naming its field (`querystring.limit:
 * must be a whole number from 1 to 500, got "10000"`) and becoming a 400.
 */
import type { AuditQuery, UserListQuery } from '../api/index.js';
import { InputError } from '../errors.js';
import type { AuditFilter, UserSearch, UserSort } from '../store/types.js';

const field = (name: string) => `querystring.${name}`;

/** A whole number in [min, max], or undefined when absent. */
export function intParam(
  raw: string | undefined,
  name: string,
  min: number,
  max: number,
): number | undefined {
  if (raw === undefined) return undefined;
  const n = /^[0-9]{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new InputError(
      field(name),
      `must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  return n;
}

/** Free text without control characters (they have no business in a name or a search). */
export function textParam(raw: string | undefined, name: string): string | undefined {
  if (raw === undefined) return undefined;
  if (/[\x00-\x1f\x7f]/.test(raw))
    throw new InputError(field(name), 'control characters are not allowed');
  return raw;
}

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:T([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d{1,9})?)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d))?$/;

/**
 * An ISO 8601 date (midnight UTC) or date-time with an offset. A time without an offset is
 * refused rather than read in the controller's time zone, and so is a day the month lacks
 * (JavaScript's Date would silently make 2030-02-31 the 3rd of March).
 */
export function dateParam(raw: string | undefined, name: string): Date | undefined {
  if (raw === undefined) return undefined;
  const m = ISO.exec(raw);
  const bad = () =>
    new InputError(
      field(name),
      `${JSON.stringify(raw)} is not an ISO 8601 date or date-time with offset (2030-01-31, 2030-01-31T10:00:00Z)`,
    );
  if (!m) throw bad();
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d)
    throw bad();
  const at = new Date(m[4] === undefined ? `${m[1]}-${m[2]}-${m[3]}T00:00:00Z` : raw);
  if (Number.isNaN(at.getTime())) throw bad();
  return at;
}

export const USERS_PAGE_MAX = 500;
const OFFSET_MAX = 1_000_000;

/** Whether the caller asked for anything but the whole list. */
export function isUserSearch(q: UserListQuery): boolean {
  return Object.values(q).some((v) => v !== undefined);
}

export function userSearchOf(q: UserListQuery): UserSearch {
  const query = textParam(q.q, 'q');
  const group = textParam(q.group, 'group');
  const offset = intParam(q.offset, 'offset', 0, OFFSET_MAX);
  const limit = intParam(q.limit, 'limit', 1, USERS_PAGE_MAX);
  const sort = q.sort ?? 'name';
  return {
    ...(query ? { q: query } : {}),
    ...(q.status !== undefined ? { status: q.status } : {}),
    ...(group !== undefined ? { group } : {}),
    ...(offset !== undefined ? { offset } : {}),
    ...(limit !== undefined ? { limit } : {}),
    sort: sort.replace(/^-/, '') as UserSort,
    descending: sort.startsWith('-'),
  };
}

export type AuditFormat = 'json' | 'jsonl' | 'csv';

export const AUDIT_PAGE_MAX = 9999;
export const AUDIT_EXPORT_MAX = 1_000_000;

export interface AuditRequest {
  /** Without `limit`: the filter alone (the caller pages). */
  filter: Omit<AuditFilter, 'limit'>;
  /** Absent only for an export of everything that matches. */
  limit: number | undefined;
  format: AuditFormat;
}

export function auditRequestOf(q: AuditQuery): AuditRequest {
  const format = q.format ?? 'json';
  const actor = textParam(q.actor, 'actor');
  const subject = textParam(q.user, 'user');
  const kind = q.kind;
  if (kind !== undefined && !/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/.test(kind))
    throw new InputError(
      field('kind'),
      `${JSON.stringify(kind)} is not an action (user.revoke) or a prefix ending in "." (session.)`,
    );
  const since = dateParam(q.since, 'since');
  const until = dateParam(q.until, 'until');
  if (since && until && until <= since)
    throw new InputError(field('until'), `must be later than since (${since.toISOString()})`);
  const before = intParam(q.before, 'before', 1, Number.MAX_SAFE_INTEGER);
  const exporting = format !== 'json';
  const limit =
    intParam(q.limit, 'limit', 1, exporting ? AUDIT_EXPORT_MAX : AUDIT_PAGE_MAX) ??
    (exporting ? undefined : 100);
  return {
    filter: {
      ...(actor !== undefined ? { actor } : {}),
      ...(subject !== undefined ? { subject } : {}),
      ...(kind === undefined ? {} : kind.endsWith('.') ? { actionPrefix: kind } : { action: kind }),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(before !== undefined ? { before } : {}),
    },
    limit,
    format,
  };
}
