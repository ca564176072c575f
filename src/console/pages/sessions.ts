/**
 * Sessions: who is online where, filtered on the server by user, server and site (query
 * string), with "End session" for operators. One plain row per session and no per-row script
 * (the buttons share one delegated listener), so 1,000 rows stay cheap to render and to swap
 * (~0.6 kB a row). No "N s ago" column: it would make every refresh differ from the last, and
 * the browser script skips the swap when the region has not changed.
 */
import type { SessionView } from '../../api/index.js';
import { type Html, html, path } from '../html.js';
import { type Page, type PageContext, may } from '../layout.js';
import { badge, bytes, time } from './format.js';

export interface SessionFilter {
  user?: string;
  server?: string;
  site?: string;
}

export interface SessionsData {
  sessions: SessionView[];
  /** Server → site, for the site column and filter. */
  siteOf: Map<string, string>;
  sites: string[];
  servers: string[];
  filter: SessionFilter;
}

/** Sessions that pass the filter: user is a case-insensitive substring, server and site exact. */
export function filterSessions(
  sessions: readonly SessionView[],
  siteOf: ReadonlyMap<string, string>,
  f: SessionFilter,
): SessionView[] {
  const user = f.user?.toLowerCase();
  return sessions.filter(
    (s) =>
      (!user || s.user.toLowerCase().includes(user)) &&
      (!f.server || s.server === f.server) &&
      (!f.site || siteOf.get(s.server) === f.site),
  );
}

function select(id: string, label: string, all: string, options: string[], value?: string): Html {
  return html`<div class="field">
    <label for="${id}">${label}</label>
    <select id="${id}" name="${id.replace('f-', '')}">
      <option value="">${all}</option>
      ${options.map((o) => html`<option${o === value ? html` selected` : ''}>${o}</option>`)}
    </select>
  </div>`;
}

export function sessionFilterForm(data: Pick<SessionsData, 'sites' | 'servers' | 'filter'>): Html {
  return html`<form
    class="filters"
    method="get"
    action="/console/sessions"
    role="search"
    aria-label="Filter sessions"
  >
    <div class="field">
      <label for="f-user">User</label>
      <input
        id="f-user"
        name="user"
        type="search"
        value="${data.filter.user ?? ''}"
        autocomplete="off"
      />
    </div>
    ${select('f-server', 'Server', 'all servers', data.servers, data.filter.server)}
    ${select('f-site', 'Site', 'all sites', data.sites, data.filter.site)}
    <button type="submit">Filter</button>
    <a href="/console/sessions">Clear</a>
  </form>`;
}

/** The table; also used on a user's page. */
export function sessionTable(
  ctx: PageContext,
  sessions: readonly SessionView[],
  siteOf: ReadonlyMap<string, string>,
): Html {
  const operator = may(ctx, 'operator');
  return html`<table class="data" data-testid="sessions">
    <thead>
      <tr>
        <th scope="col">User</th>
        <th scope="col">Server</th>
        <th scope="col">Site</th>
        <th scope="col">IPv4</th>
        <th scope="col">IPv6</th>
        <th scope="col">Real address</th>
        <th scope="col">Since</th>
        <th scope="col" class="num">In</th>
        <th scope="col" class="num">Out</th>
        ${operator && html`<th scope="col">Actions</th>`}
      </tr>
    </thead>
    <tbody>
      ${sessions.map(
        (s) =>
          html`<tr
            data-testid="session-row"
            data-user="${s.user}"
            data-server="${s.server}"
            ${s.stale ? html` class="stale"` : ''}
          >
            <th scope="row"><a href="${path`/console/users/${s.user}`}">${s.user}</a></th>
            <td>${s.server}${s.stale ? html` ${badge('warn', 'no recent report')}` : ''}</td>
            <td>${siteOf.get(s.server) ?? ''}</td>
            <td><code>${s.ipv4 ?? '—'}</code></td>
            <td><code>${s.ipv6 ?? '—'}</code></td>
            <td><code>${s.realAddress}</code></td>
            <td>${time(s.since)}</td>
            <td class="num">${bytes(s.bytesIn)}</td>
            <td class="num">${bytes(s.bytesOut)}</td>
            ${
              operator &&
              html`<td>
                <button
                  type="button"
                  class="danger"
                  data-action="kill"
                  data-user="${s.user}"
                  data-server="${s.server}"
                  data-testid="kill"
                >
                  End session<span class="sr"> of ${s.user} on ${s.server}</span>
                </button>
              </td>`
            }
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function sessionsPage(ctx: PageContext, data: SessionsData): Page {
  const shown = filterSessions(data.sessions, data.siteOf, data.filter);
  const filtered = shown.length !== data.sessions.length;
  const live = html`<p class="summary" data-testid="summary">
      ${shown.length}
      ${shown.length === 1 ? 'session' : 'sessions'}${
        filtered ? ` of ${data.sessions.length}` : ''
      }.
    </p>
    ${shown.length ? sessionTable(ctx, shown, data.siteOf) : html`<p>No session matches.</p>`}`;
  return {
    title: 'Sessions',
    section: 'sessions',
    controls: sessionFilterForm(data),
    live,
    liveOn: ['sessions', 'servers'],
  };
}
