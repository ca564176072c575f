/**
 * Routes: for each connected user (and each address an agent holds a host route to), the
 * server the session table says, and the servers whose agents hold the /32 and /128. A
 * mismatch — a route missing, a stale route left on a server the user has left, the same route
 * on two servers — is highlighted (class and words) and counted; rows on a server whose routes
 * are not known now are marked unverified. The only view of its kind: it compares where the
 * network sends a user with where the user is.
 */
import type { RouteProblem, RoutesView } from '../../api/index.js';
import { type Html, html, path } from '../html.js';
import type { Page, PageContext } from '../layout.js';
import { badge } from './format.js';

export interface RoutesData {
  /** As `GET /v1/routes` answers. */
  view: RoutesView;
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

function summary(view: RoutesView): Html {
  const { rows, counts, unverifiedServers } = view;
  const bad = rows.filter((r) => r.problems.length).length;
  return html`<p class="summary" data-testid="summary">
    ${rows.length} users or addresses with a session or a host route;
    ${bad ? html`${badge('bad', `${bad} mismatched`)}: ${counts.missing} missing, ${counts.duplicate} on two servers, ${counts.stale} stale` : badge('ok', 'no mismatch')};
    ${
      unverifiedServers.length
        ? html`${badge('warn', 'unverified')} on ${unverifiedServers.join(', ')} (stale, or no
          routes reported).`
        : 'every server reported its routes.'
    }
  </p>`;
}

export function routesPage(_ctx: PageContext, data: RoutesData): Page {
  const rows = data.view.rows;
  const live = html`${summary(data.view)}
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
                  data-user="${r.user ?? ''}"
                  ${r.problems.length ? html` class="mismatch"` : ''}
                >
                  <th scope="row">
                    ${r.user ? html`<a href="${path`/console/users/${r.user}`}">${r.user}</a>` : html`<span class="muted">no user</span>`}
                  </th>
                  <td><code>${r.ipv4 ?? '—'}</code></td>
                  <td><code>${r.ipv6 ?? '—'}</code></td>
                  <td>${r.server ?? html`<span class="muted">no session</span>`}</td>
                  <td>${holders(r.ipv4Servers, r.server)}</td>
                  <td>${holders(r.ipv6Servers, r.server)}</td>
                  <td>
                    ${r.problems.length ? r.problems.map((p) => badge('bad', WORDS[p])) : badge('ok', 'ok')}
                    ${r.unverified && badge('warn', 'unverified')}
                  </td>
                </tr>`,
            )}
          </tbody>
        </table>`
      : html`<p>No user is connected and no server holds a host route.</p>`
  }`;
  return {
    title: 'Routes',
    section: 'routes',
    intro: html`<p>
      Where the network routes each user (the agents' host routes) against where the session table
      says the user is.
    </p>`,
    live,
    liveOn: ['sessions', 'servers'],
  };
}
