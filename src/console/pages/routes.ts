/**
 * Routes: for each connected user (and each host route an agent holds), the server the session
 * table says, and the servers whose agents hold the user's /32 and /128. A mismatch — a route
 * missing, a stale route left on a server the user has left, the same route on two servers —
 * is highlighted (class and words) and counted. The only view of its kind: it compares where
 * the network sends a user with where the user is.
 */
import { type Html, html, path } from '../html.js';
import type { Page, PageContext } from '../layout.js';
import { type Fetched, badge, unavailable } from './format.js';

export type RouteProblem = 'missing' | 'stale' | 'duplicate';

export interface RouteRow {
  user: string;
  ipv4: string | null;
  ipv6: string | null;
  /** The server of the user's session in the session table; null: no session. */
  server: string | null;
  /** Servers whose agents report the user's /32, and its /128. */
  v4Servers: string[];
  v6Servers: string[];
  problems: RouteProblem[];
}

export interface RoutesData {
  rows: Fetched<RouteRow[]>;
}

const WORDS: Record<RouteProblem, string> = {
  missing: 'route missing',
  stale: 'stale route',
  duplicate: 'on two servers',
};

function holders(servers: readonly string[], expected: string | null): Html {
  if (!servers.length) return html`<span class="muted">none</span>`;
  return html`${servers.map((s, i) => html`${i ? ', ' : ''}<span class="${s === expected ? '' : 'odd'}">${s}</span>`)}`;
}

export function routesPage(_ctx: PageContext, data: RoutesData): Page {
  const page = (live: Html): Page => ({
    title: 'Routes',
    section: 'routes',
    intro: html`<p>
      Where the network routes each user (the agents' host routes) against where the session table
      says the user is.
    </p>`,
    live,
    liveOn: ['sessions', 'servers'],
  });
  if (!data.rows.ok) return page(unavailable(data.rows.why));
  const rows = data.rows.value;
  const counts = { missing: 0, stale: 0, duplicate: 0 };
  for (const r of rows) for (const p of r.problems) counts[p]++;
  const bad = rows.filter((r) => r.problems.length).length;
  const live = html`<p class="summary" data-testid="summary">
      ${rows.length} users with a session or a host route;
      ${bad ? html`${badge('bad', `${bad} mismatched`)}: ${counts.missing} missing, ${counts.stale} stale, ${counts.duplicate} on two servers.` : badge('ok', 'no mismatch')}
    </p>
    ${
      rows.length
        ? html`<table class="data" data-testid="routes">
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">IPv4</th>
                <th scope="col">IPv6</th>
                <th scope="col">Session on</th>
                <th scope="col">/32 held by</th>
                <th scope="col">/128 held by</th>
                <th scope="col">Problem</th>
              </tr>
            </thead>
            <tbody>
              ${rows.map(
                (r) =>
                  html`<tr
                    data-user="${r.user}"
                    ${r.problems.length ? html` class="mismatch"` : ''}
                  >
                    <th scope="row"><a href="${path`/console/users/${r.user}`}">${r.user}</a></th>
                    <td><code>${r.ipv4 ?? '—'}</code></td>
                    <td><code>${r.ipv6 ?? '—'}</code></td>
                    <td>${r.server ?? html`<span class="muted">no session</span>`}</td>
                    <td>${holders(r.v4Servers, r.server)}</td>
                    <td>${holders(r.v6Servers, r.server)}</td>
                    <td>
                      ${r.problems.length ? r.problems.map((p) => badge('bad', WORDS[p])) : badge('ok', 'ok')}
                    </td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p>No user is connected.</p>`
    }`;
  return page(live);
}
