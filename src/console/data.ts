/**
 * Where the console's pages get what they show: the controller's state, its fleet and its
 * store, called directly (never a round trip through the JSON API), typed with the wire
 * contract's types where a page shows what the API would answer.
 *
 * - `findUsers`: the store-side search (`searchUsers`), one page and the total.
 * - `auditFilterOf`, `auditEntries`, `userAudit`: the store's filtered audit query, with the
 *   same filter names and the same checks as `GET /v1/audit`, so the page's export links ask
 *   that route for exactly what the page shows.
 * - `userHistory`: the user's location history, as `GET /v1/users/:name/history` answers it.
 * - `userSignIns`: the user's TOTP and SSO sign-in results, from the audit log (the store's
 *   bounded `auditForSubject`), for the location history.
 * - `totpOf`, `enrolTotp`: the user's TOTP status and whether it is asked at connect; a new
 *   enrolment with its QR code.
 * - `routeRows`: host routes against sessions, as `GET /v1/routes` answers it.
 */
import QRCode from 'qrcode';
import type {
  AuditEntry,
  HistoryEntry,
  RoutesView,
  TotpEnrolment,
  TotpStatus,
  User,
} from '../api/index.js';
import type { ControllerState } from '../controller/state.js';
import { historyView } from '../controller/views.js';
import type { FleetSpec } from '../spec/schema.js';
import type { AuditFilter } from './pages/audit.js';

// The store's own types, through the state's signatures: the console imports no store module.
export type UserSearch = Parameters<ControllerState['fleet']['searchUsers']>[0];
export type UserPage = Awaited<ReturnType<ControllerState['fleet']['searchUsers']>>;
/** The store's audit filter without its limit. */
export type StoreAuditFilter = Omit<Parameters<ControllerState['store']['auditQuery']>[0], 'limit'>;

/** A page of users matching the search, and how many match in all. */
export function findUsers(state: ControllerState, search: UserSearch): Promise<UserPage> {
  return state.fleet.searchUsers({ sort: 'name', ...search });
}

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:T([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.\d{1,9})?)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d))?$/;

/**
 * A date (midnight UTC) or a date-time with an offset, as `GET /v1/audit` takes them (see
 * src/controller/query.ts): a time without an offset, or a day the month lacks, is refused
 * there, so it is refused here too rather than shown as a page the export link would not give.
 */
function instant(raw: string): Date | undefined {
  const m = ISO.exec(raw);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d)
    return undefined;
  const at = new Date(m[4] === undefined ? `${m[1]}-${m[2]}-${m[3]}T00:00:00Z` : raw);
  return Number.isNaN(at.getTime()) ? undefined : at;
}

const KIND = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

/** The page's filter as the store's; a bad value is one line naming the field. */
export function auditFilterOf(f: AuditFilter): StoreAuditFilter | string {
  const out: StoreAuditFilter = {};
  if (f.actor) out.actor = f.actor;
  if (f.user) out.subject = f.user;
  if (f.kind) {
    if (!KIND.test(f.kind))
      return `kind: "${f.kind}" is not an action (user.revoke) or a prefix ending in "." (user.)`;
    if (f.kind.endsWith('.')) out.actionPrefix = f.kind;
    else out.action = f.kind;
  }
  for (const key of ['since', 'until'] as const) {
    const v = f[key];
    if (!v) continue;
    const at = instant(v);
    if (!at)
      return `${key}: "${v}" is not a date (2030-01-31) or a date-time with offset (2030-01-31T10:00:00Z)`;
    out[key] = at;
  }
  if (out.since && out.until && out.until <= out.since)
    return `until: must be later than since (${out.since.toISOString()})`;
  return out;
}

/** The newest `limit` entries matching `filter`, newest first. */
export function auditEntries(
  state: ControllerState,
  filter: StoreAuditFilter,
  limit: number,
): Promise<AuditEntry[]> {
  return state.store.auditQuery({ ...filter, limit });
}

export function userAudit(
  state: ControllerState,
  name: string,
  limit = 200,
): Promise<AuditEntry[]> {
  return auditEntries(state, { subject: name }, limit);
}

/** The user's sessions, newest first, as `GET /v1/users/:name/history` lists them. */
export async function userHistory(
  state: ControllerState,
  name: string,
  limit = 100,
): Promise<HistoryEntry[]> {
  return (await state.fleet.userHistory(name, limit)).map(historyView);
}

/** One TOTP or SSO sign-in at connect, as its audit entry tells it. */
export interface SignInEntry {
  at: string;
  method: 'totp' | 'sso';
  ok: boolean;
  /** Why it was refused (the words the VPN client was shown). */
  reason?: string;
  server?: string;
  /** Where the VPN client connected from. */
  realAddress?: string;
  /** TOTP: "code" or "recovery code". */
  used?: string;
  /** SSO: the identity provider's subject, and the browser's address. */
  idpSubject?: string;
  browser?: string;
}

/**
 * The audit actions of a sign-in result. SSO: the browser side's `sso.sign-in`/`sso.refused`,
 * written once per finished sign-in in the same transaction as its result (oidc.ts), with the
 * provider's subject; not `auth.sso`, the same result as handed to the waiting agent, which
 * would show each sign-in twice (and is missing when the controller that began it is gone).
 */
export const SIGN_IN_ACTIONS = ['auth.totp', 'sso.sign-in', 'sso.refused'] as const;

/** A detail field as text, when it is text (the audit log's details are free-form JSON). */
const textOf = (v: unknown): string | undefined =>
  typeof v === 'string' && v ? v.slice(0, 300) : undefined;

export function signInOf(e: Omit<AuditEntry, 'id'>): SignInEntry {
  const d = e.detail ?? {};
  const totp = e.action === 'auth.totp';
  const ok = totp ? d.ok === true : e.action === 'sso.sign-in';
  const fields = {
    reason: ok ? undefined : textOf(d.reason),
    server: textOf(d.server),
    realAddress: textOf(totp ? d.from : d.remote),
    used: totp ? textOf(d.method) : undefined,
    idpSubject: totp ? undefined : textOf(d.idpSubject),
    browser: totp ? undefined : textOf(d.browser),
  };
  return {
    at: e.at,
    method: totp ? 'totp' : 'sso',
    ok,
    ...(Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<
      Pick<SignInEntry, keyof typeof fields>
    >),
  };
}

/** The user's newest sign-in results (TOTP and SSO), newest first. */
export async function userSignIns(
  state: ControllerState,
  name: string,
  limit = 100,
): Promise<SignInEntry[]> {
  return (await state.store.auditForSubject(name, SIGN_IN_ACTIONS, limit)).map(signInOf);
}

/** Whether the agents ask the user for a TOTP code at connect, and why (or why not). */
export interface TotpAsked {
  asked: boolean;
  why: string;
}

/**
 * The rule of the agents' auth.json (src/render/auth-policy.ts: authPolicy), for one user and
 * in words: with auth.sso nobody answers TOTP; else the members of auth.totp's groups, or all.
 */
export function totpAsked(spec: FleetSpec, user: Pick<User, 'groups'>): TotpAsked {
  const auth = spec.auth;
  const groups = auth?.totp?.groups;
  if (!groups) return { asked: false, why: 'fleet.yaml has no auth.totp' };
  if (auth?.sso)
    return { asked: false, why: 'auth.sso is set (the identity provider does the second factor)' };
  if (groups === 'all') return { asked: true, why: 'auth.totp asks all users' };
  const via = user.groups.filter((g) => groups.includes(g));
  return via.length
    ? { asked: true, why: `member of ${via.join(', ')} (auth.totp.groups)` }
    : { asked: false, why: `in none of auth.totp.groups (${groups.join(', ')})` };
}

export interface TotpView {
  status: TotpStatus;
  asked: TotpAsked;
}

export async function totpOf(state: ControllerState, user: User): Promise<TotpView> {
  return {
    status: await state.fleet.totp.status(user.name),
    asked: totpAsked(state.fleet.spec, user),
  };
}

/**
 * A new enrolment by `actor` (audited by the service), with the URI's QR code as the API's
 * POST /v1/users/{name}/totp makes it (qrcode's SVG renderer).
 */
export async function enrolTotp(
  state: ControllerState,
  actor: string,
  name: string,
): Promise<TotpEnrolment> {
  const e = await state.fleet.as(actor).totp.enroll(name);
  const qrSvg = await QRCode.toString(e.uri, { type: 'svg', errorCorrectionLevel: 'M' });
  return { ...e, qrSvg };
}

/** Host routes against sessions, as `GET /v1/routes` answers. */
export function routeRows(state: ControllerState): Promise<RoutesView> {
  return state.routes();
}

let crlCache: { pem: string; info: { nextUpdate?: string; number?: number } } | undefined;

/** The current CRL's next update and number (parsed once per CRL). */
export async function crlSummary(
  state: ControllerState,
): Promise<{ nextUpdate?: string; number?: number } | undefined> {
  // The setting the PKI lifecycle keeps the CRL in: one row, where revocationState() would
  // also read every revoked serial on each Overview render.
  const pem = await state.store.getSetting('crl.pem');
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
