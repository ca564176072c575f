/**
 * One user: addresses, groups, status, certificate, current sessions, where they have been
 * (location history) and what the audit log says about them.
 */
import type {
  AuditEntry,
  HistoryEntry,
  SessionView,
  User,
  UserCertificate,
  UserSessionGroups,
} from '../../api/index.js';
import { type Html, html, path } from '../html.js';
import { type Page, type PageContext, may } from '../layout.js';
import { auditTable } from './audit.js';
import { badge, bytes, daysUntil, time } from './format.js';
import { sessionTable } from './sessions.js';
import { statusBadge, userActions } from './users.js';

export interface UserData {
  user: User;
  sessions: SessionView[];
  siteOf: ReadonlyMap<string, string>;
  /** Newest first, as `GET /v1/users/:name/history` lists them. */
  history: HistoryEntry[];
  audit: AuditEntry[];
  /** The current certificate's renewal state, as `GET /v1/users/:name` tells it. */
  certificate?: UserCertificate;
  /** Groups an SSO sign-in put the user in instead of `groups`, as `GET /v1/users/:name` tells it. */
  sessionGroups?: UserSessionGroups;
}

function historyTable(entries: readonly HistoryEntry[]): Html {
  if (!entries.length) return html`<p>No session recorded yet.</p>`;
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
        <th scope="col">Why it ended</th>
      </tr>
    </thead>
    <tbody>
      ${entries.map(
        (h) =>
          html`<tr data-testid="history-row" data-server="${h.server}">
            <td>${h.server}</td>
            <td><code>${h.realAddress}</code></td>
            <td><code>${h.ipv4 ?? '—'}</code></td>
            <td><code>${h.ipv6 ?? '—'}</code></td>
            <td>${time(h.since)}</td>
            <td>${h.until ? time(h.until) : badge('ok', 'connected')}</td>
            <td class="num">${bytes(h.bytesIn)}</td>
            <td class="num">${bytes(h.bytesOut)}</td>
            <td>${h.reason ?? ''}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
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
  const live = html`${intro}
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
      ${historyTable(data.history)}
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
