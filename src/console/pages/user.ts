/**
 * One user: addresses, groups, status, certificate, TOTP, current sessions, where they have been
 * (location history: sessions and sign-ins) and what the audit log says about them.
 */
import type {
  AuditEntry,
  HistoryEntry,
  SessionView,
  User,
  UserCertificate,
  UserSessionGroups,
} from '../../api/index.js';
import type { SignInEntry, TotpView } from '../data.js';
import { type Html, html, path, query } from '../html.js';
import { type Page, type PageContext, may } from '../layout.js';
import { auditTable } from './audit.js';
import { badge, bytes, daysUntil, time } from './format.js';
import { sessionTable } from './sessions.js';
import { totpCard, totpFacts } from './totp.js';
import { statusBadge, userActions } from './users.js';

export interface UserData {
  user: User;
  sessions: SessionView[];
  siteOf: ReadonlyMap<string, string>;
  /** Newest first, as `GET /v1/users/:name/history` lists them. */
  history: HistoryEntry[];
  /** TOTP and SSO sign-in results, newest first (data.ts: userSignIns). */
  signIns: SignInEntry[];
  /** How many of each were asked for: a full list may reach back less far than the other. */
  historyLimit: number;
  totp: TotpView;
  audit: AuditEntry[];
  /** The current certificate's renewal state, as `GET /v1/users/:name` tells it. */
  certificate?: UserCertificate;
  /** Groups an SSO sign-in put the user in instead of `groups`, as `GET /v1/users/:name` tells it. */
  sessionGroups?: UserSessionGroups;
}

type HistoryRow = { at: string; session: HistoryEntry } | { at: string; signIn: SignInEntry };

/**
 * Sessions and sign-ins in one time order, newest first. Each list is the newest `limit` of
 * its kind, so a full one may reach back less far than the other: rows older than the oldest
 * of a full list are cut, or the page would show connects without their sign-ins (or the
 * reverse) for a stretch of time. `cutAt`: where the merged list stops being complete.
 */
export function mergeHistory(
  sessions: readonly HistoryEntry[],
  signIns: readonly SignInEntry[],
  limit: number,
): { rows: HistoryRow[]; cutAt?: string } {
  const oldest = (times: string[]) => (times.length >= limit ? times.at(-1) : undefined);
  const bounds = [oldest(sessions.map((h) => h.since)), oldest(signIns.map((s) => s.at))].filter(
    (t): t is string => t !== undefined,
  );
  const cutAt = bounds.length ? bounds.reduce((a, b) => (a > b ? a : b)) : undefined;
  const rows: HistoryRow[] = [
    ...sessions.map((session) => ({ at: session.since, session })),
    ...signIns.map((signIn) => ({ at: signIn.at, signIn })),
  ]
    // ISO times written by toISOString: string order is time order. Stable: ties keep sessions
    // first, and a sign-in (its connect's first step) below the session it let in.
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))
    .filter((r) => cutAt === undefined || r.at >= cutAt);
  return cutAt === undefined ? { rows } : { rows, cutAt };
}

function sessionRow(h: HistoryEntry): Html {
  return html`<tr data-testid="history-row" data-server="${h.server}">
    <td>${h.server}</td>
    <td><code>${h.realAddress}</code></td>
    <td><code>${h.ipv4 ?? '—'}</code></td>
    <td><code>${h.ipv6 ?? '—'}</code></td>
    <td>${time(h.since)}</td>
    <td>${h.until ? time(h.until) : badge('ok', 'connected')}</td>
    <td class="num">${bytes(h.bytesIn)}</td>
    <td class="num">${bytes(h.bytesOut)}</td>
    <td>${h.reason ?? ''}</td>
  </tr>`;
}

function signInRow(s: SignInEntry): Html {
  const what =
    s.method === 'totp'
      ? html`TOTP sign-in${s.used ? html` (${s.used})` : ''}`
      : html`SSO
        sign-in${s.idpSubject ? html`, subject <code>${s.idpSubject}</code>` : ''}${
          s.browser ? html`, browser at <code>${s.browser}</code>` : ''
        }`;
  return html`<tr
    class="signin"
    data-testid="signin-row"
    data-server="${s.server ?? ''}"
    data-method="${s.method}"
    data-ok="${s.ok ? 'yes' : 'no'}"
  >
    <td>${s.server ?? '—'}</td>
    <td><code>${s.realAddress ?? '—'}</code></td>
    <td colspan="2">${what}</td>
    <td>${time(s.at)}</td>
    <td>${s.ok ? badge('ok', 'signed in') : badge('bad', 'refused')}</td>
    <td colspan="2"></td>
    <td>${s.reason ?? ''}</td>
  </tr>`;
}

function historyTable(user: string, data: UserData): Html {
  const { rows, cutAt } = mergeHistory(data.history, data.signIns, data.historyLimit);
  if (!rows.length) return html`<p>No session or sign-in recorded yet.</p>`;
  return html`<table class="data" data-testid="history">
      <thead>
        <tr>
          <th scope="col">Server</th>
          <th scope="col">Real address</th>
          <th scope="col">IPv4</th>
          <th scope="col">IPv6</th>
          <th scope="col">From</th>
          <th scope="col">Until</th>
          <th scope="col" class="num">In</th>
          <th scope="col" class="num">Out</th>
          <th scope="col">Why it ended, or was refused</th>
        </tr>
      </thead>
      <tbody>
        ${rows.map((r) => ('session' in r ? sessionRow(r.session) : signInRow(r.signIn)))}
      </tbody>
    </table>
    ${
      cutAt &&
      html`<p class="muted" data-testid="history-cut">
        Shown back to ${time(cutAt)}; older connects and sign-ins are in the
        <a href="${`/console/audit${query({ user })}`}">audit log</a>.
      </p>`
    }`;
}

function certificate(ctx: PageContext, u: User, cert?: UserCertificate): Html {
  if (!u.certSerial)
    return html`<span class="muted">not issued yet (issued with the first profile)</span>`;
  const days = u.certNotAfter ? daysUntil(ctx.now, u.certNotAfter) : undefined;
  // The previous certificate expires first: that is the date the user must act by.
  const until = cert?.previous.map((p) => p.notAfter).sort()[0];
  return html`serial <code data-testid="cert-serial">${u.certSerial}</code>, expires
    ${time(u.certNotAfter)}${
      days !== undefined && days < 30
        ? html` ${badge(days < 0 ? 'bad' : 'warn', days < 0 ? 'EXPIRED' : `${days} days left`)}`
        : ''
    }${cert?.issuer ? html`, signed by ${cert.issuer}` : ''}${
      cert?.renewalDue
        ? html` <span data-testid="cert-renewal"
            >${badge('warn', 'renewal due')} the controller renews it within the hour</span
          >`
        : ''
    }${
      cert?.newProfileAvailable
        ? html`<br /><span data-testid="new-profile"
              >${badge('warn', 'new profile available')} the certificate was renewed: the user's
              current profile works until ${time(until)}, then only the new one does</span
            >`
        : ''
    }`;
}

export function userPage(ctx: PageContext, data: UserData): Page {
  const u = data.user;
  const admin = may(ctx, 'admin');
  const intro = html`<dl class="facts" data-testid="user-facts" data-user="${u.name}">
      <dt>Status</dt>
      <dd data-testid="user-status">${statusBadge(u.status)}</dd>
      <dt>IPv4</dt>
      <dd><code>${u.ipv4}</code></dd>
      <dt>IPv6</dt>
      <dd><code>${u.ipv6}</code></dd>
      <dt>Groups</dt>
      <dd>${u.groups.length ? u.groups.join(', ') : html`<span class="muted">none</span>`}</dd>
      ${
        data.sessionGroups &&
        html`<dt>From sign-in</dt>
          <dd data-testid="user-session-groups">
            ${data.sessionGroups.groups.join(', ') || 'none'} (the firewall applies these, since
            ${time(data.sessionGroups.at)})
          </dd>`
      }
      <dt>Certificate</dt>
      <dd>${certificate(ctx, u, data.certificate)}</dd>
      <dt>TOTP</dt>
      <dd>${totpFacts(data.totp.status, data.totp.asked)}</dd>
      <dt>Created</dt>
      <dd>${time(u.createdAt)}</dd>
    </dl>
    ${
      admin &&
      html`<p class="actions">
        ${userActions(u)}
        ${u.status !== 'revoked' && html`<a href="${path`/v1/users/${u.name}/profile`}" download="${`${u.name}.ovpn`}">Download profile</a>`}
      </p>`
    }`;
  // Kept as it is across live refreshes (data-keep): an enrolment's codes, a half-typed code.
  const live = html`${intro} ${admin && totpCard(u.name, data.totp.status)}
    <section aria-labelledby="now-title">
      <h2 id="now-title">Current sessions</h2>
      ${
        data.sessions.length
          ? sessionTable(ctx, data.sessions, data.siteOf)
          : html`<p data-testid="offline">${u.name} is not connected.</p>`
      }
    </section>
    <section aria-labelledby="history-title">
      <h2 id="history-title">Location history</h2>
      ${historyTable(u.name, data)}
    </section>
    <section aria-labelledby="audit-title">
      <h2 id="audit-title">Audit entries</h2>
      ${data.audit.length ? auditTable(data.audit) : html`<p>No audit entry names ${u.name}.</p>`}
    </section>`;
  return {
    title: `User ${u.name}`,
    section: 'users',
    live,
    liveOn: ['sessions', 'fleet'],
  };
}

export function noSuchUserPage(name: string): Page {
  return {
    title: 'No such user',
    section: 'users',
    live: html`<p>
      There is no user named <code>${name}</code>. <a href="/console/users">All users</a>
    </p>`,
    status: 404,
  };
}
