/** Audit: the log filtered by actor, user, kind and time, with export links for the same filter. */
import type { AuditEntry } from '../../api/index.js';
import { type Html, html, query } from '../html.js';
import type { Page, PageContext } from '../layout.js';
import { time } from './format.js';

/** The page's filter: the names and meanings of `GET /v1/audit`'s query (the export links). */
export interface AuditFilter {
  /** Exactly this actor (`console:ann`, `api:admin`). */
  actor?: string;
  /** The entry's subject (a user, a server…), exactly. */
  user?: string;
  /** The action (`user.revoke`), or a prefix ending in "." (`user.`). */
  kind?: string;
  /** A date, or an ISO time with offset: entries at or after. */
  since?: string;
  /** A date, or an ISO time with offset: entries before. */
  until?: string;
}

export interface AuditData {
  entries: AuditEntry[];
  filter: AuditFilter;
  /** How many entries were read at most (the page says when it may have cut some). */
  limit: number;
}

function detailText(detail: AuditEntry['detail']): string {
  if (!detail) return '';
  return Object.entries(detail)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function auditTable(entries: readonly AuditEntry[]): Html {
  return html`<table class="data" data-testid="audit">
    <thead>
      <tr>
        <th scope="col">When</th>
        <th scope="col">Actor</th>
        <th scope="col">Action</th>
        <th scope="col">Subject</th>
        <th scope="col">Detail</th>
      </tr>
    </thead>
    <tbody>
      ${entries.map(
        (e) =>
          html`<tr>
            <td>${time(e.at)}</td>
            <td>${e.actor}</td>
            <td><code>${e.action}</code></td>
            <td>${e.subject}</td>
            <td class="detail">${detailText(e.detail)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function field(name: keyof AuditFilter, label: string, value: string | undefined, hint = ''): Html {
  return html`<div class="field">
    <label for="${`f-${name}`}">${label}</label>
    <input
      id="${`f-${name}`}"
      name="${name}"
      value="${value ?? ''}"
      placeholder="${hint}"
      autocomplete="off"
    />
  </div>`;
}

/** The query string of a filter (export links and the form share it). */
export function auditQuery(f: AuditFilter, extra: Record<string, string> = {}): string {
  return query({
    ...extra,
    actor: f.actor,
    user: f.user,
    kind: f.kind,
    since: f.since,
    until: f.until,
  });
}

export function auditPage(_ctx: PageContext, data: AuditData): Page {
  const f = data.filter;
  const controls = html`<form
      class="filters"
      method="get"
      action="/console/audit"
      role="search"
      aria-label="Filter the audit log"
    >
      ${field('actor', 'Actor', f.actor)} ${field('user', 'User or subject', f.user)}
      ${field('kind', 'Kind', f.kind, 'user.revoke or user.')}
      ${field('since', 'From', f.since, '2030-01-31 or 2030-01-31T10:00:00Z')}
      ${field('until', 'Until', f.until, '2030-02-01 or ISO time with offset')}
      <button type="submit">Filter</button>
      <a href="/console/audit">Clear</a>
    </form>
    <p class="exports">
      Export with this filter:
      <a href="${`/v1/audit${auditQuery(f, { format: 'jsonl' })}`}" data-testid="export-jsonl"
        >JSON lines</a
      >,
      <a href="${`/v1/audit${auditQuery(f, { format: 'csv' })}`}" data-testid="export-csv">CSV</a>.
    </p>`;
  const live = html`<p class="summary" data-testid="summary">
      ${data.entries.length}
      entries${
        data.entries.length >= data.limit
          ? ` (the newest ${data.limit}: narrow the filter to see older ones)`
          : ''
      }.
    </p>
    ${data.entries.length ? auditTable(data.entries) : html`<p>No entry matches.</p>`}`;
  return { title: 'Audit log', section: 'audit', controls, live, liveOn: ['fleet', 'servers'] };
}
