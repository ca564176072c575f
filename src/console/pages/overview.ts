/**
 * Overview: sites → servers with their health, drain flag, sessions, bundle and last report;
 * the load balancers; the CRL's next update; and the cluster drawn as an inline SVG.
 */
import type { ServerView } from '../../api/index.js';
import { type Html, html, path } from '../html.js';
import { type Page, type PageContext, may } from '../layout.js';
import { age, badge, daysUntil, shortDigest, time, upDown } from './format.js';

export interface SiteOverview {
  name: string;
  loadBalancer?: string;
  servers: ServerView[];
}

export interface OverviewData {
  fleet: string;
  sites: SiteOverview[];
  /** Absent when the store has no CRL yet. */
  crl?: { nextUpdate?: string; number?: number };
}

type Condition = { kind: 'ok' | 'bad' | 'warn' | 'off'; text: string };

/** One word (and a class) for a server's state: the picture and the table say the same. */
export function condition(s: ServerView): Condition {
  if (s.stale) return { kind: 'warn', text: s.reportedAt ? 'no recent report' : 'never reported' };
  if (!s.health) return { kind: 'off', text: 'unknown' };
  if (s.draining) return { kind: 'warn', text: 'draining' };
  if (s.health.ok) return { kind: 'ok', text: 'healthy' };
  const down = (['openvpn', 'routing', 'ruleset'] as const).filter((k) => !s.health![k]);
  return { kind: 'bad', text: `DOWN: ${down.join(', ') || 'not ok'}` };
}

const SITE_W = 230;
const GAP = 20;
const BOX_W = 190;
const HEAD = 34;

function boxHeight(sessions: number): number {
  return 44 + Math.min(60, Math.round(6 * Math.sqrt(sessions)));
}

/** The cluster as a picture: a column per site, a box per server sized by its sessions. */
export function clusterPicture(sites: SiteOverview[]): Html {
  const heights = sites.map(
    (site) => HEAD + site.servers.reduce((h, s) => h + boxHeight(s.sessions) + 10, 0) + 6,
  );
  const height = Math.max(80, ...heights) + 2 * GAP;
  const width = Math.max(1, sites.length) * (SITE_W + GAP) + GAP;
  const total = sites.reduce((n, site) => n + site.servers.reduce((m, s) => m + s.sessions, 0), 0);
  const columns = sites.map((site, i) => {
    const x = GAP + i * (SITE_W + GAP);
    let y = GAP + HEAD;
    const boxes = site.servers.map((s) => {
      const h = boxHeight(s.sessions);
      const c = condition(s);
      const bx = x + (SITE_W - BOX_W) / 2;
      const box = html`<g class="server server-${c.kind}" data-server="${s.name}">
        <rect x="${bx}" y="${y}" width="${BOX_W}" height="${h}" rx="6"></rect>
        <text x="${bx + 10}" y="${y + 18}" class="server-name">${s.name}</text>
        <text x="${bx + 10}" y="${y + 34}"
          >${s.sessions} ${s.sessions === 1 ? 'session' : 'sessions'}</text
        >
        <text x="${bx + BOX_W - 10}" y="${y + 18}" class="server-state">${c.text}</text>
      </g>`;
      y += h + 10;
      return box;
    });
    return html`<g class="site">
      <rect x="${x}" y="${GAP}" width="${SITE_W}" height="${heights[i]}" rx="8"></rect>
      <text x="${x + 12}" y="${GAP + 22}" class="site-name"
        >${site.name}${site.loadBalancer ? ` · LB ${site.loadBalancer}` : ''}</text
      >
      ${boxes}
    </g>`;
  });
  return html`<figure class="picture">
    <svg
      class="cluster"
      role="img"
      aria-labelledby="cluster-title"
      viewBox="0 0 ${width} ${height}"
      width="${width}"
      height="${height}"
    >
      <title id="cluster-title">The cluster: ${sites.length} sites, ${total} sessions</title>
      ${columns}
    </svg>
    <figcaption>
      Each column is a site, each box a server; its height grows with its sessions. The state is
      written in the box.
    </figcaption>
  </figure>`;
}

function bundle(s: ServerView): Html {
  if (!s.appliedDigest) return badge('off', 'none applied');
  return s.upToDate
    ? html`${badge('ok', 'current')} <code>${shortDigest(s.appliedDigest)}</code>`
    : html`${badge('warn', 'behind')} <code>${shortDigest(s.appliedDigest)}</code> →
        <code>${shortDigest(s.currentDigest)}</code>`;
}

function drainButton(s: ServerView): Html {
  const verb = s.draining ? 'undrain' : 'drain';
  return html`<button
    type="button"
    data-action="${verb}"
    data-server="${s.name}"
    data-testid="${verb}"
  >
    ${s.draining ? 'Undrain' : 'Drain'}<span class="sr"> ${s.name}</span>
  </button>`;
}

function siteTable(ctx: PageContext, site: SiteOverview): Html {
  const operator = may(ctx, 'operator');
  return html`<section class="site-block" aria-labelledby="site-${site.name}">
    <h2 id="site-${site.name}">${site.name}</h2>
    <table class="data">
      <thead>
        <tr>
          <th scope="col">Server</th>
          <th scope="col">State</th>
          <th scope="col">OpenVPN</th>
          <th scope="col">Routing</th>
          <th scope="col">Ruleset</th>
          <th scope="col">Draining</th>
          <th scope="col" class="num">Sessions</th>
          <th scope="col">Bundle</th>
          <th scope="col">Last report</th>
          ${operator && html`<th scope="col">Actions</th>`}
        </tr>
      </thead>
      <tbody>
        ${site.servers.map((s) => {
          const c = condition(s);
          return html`<tr data-server="${s.name}">
            <th scope="row"><a href="${path`/console/sessions?server=${s.name}`}">${s.name}</a></th>
            <td>${badge(c.kind, c.text)}</td>
            <td>${upDown(s.health?.openvpn)}</td>
            <td>${upDown(s.health?.routing)}</td>
            <td>${upDown(s.health?.ruleset)}</td>
            <td>${s.draining ? badge('warn', 'yes') : 'no'}</td>
            <td class="num">${s.sessions}</td>
            <td>${bundle(s)}</td>
            <td>${age(ctx.now, s.reportedAt)}</td>
            ${operator && html`<td>${drainButton(s)}</td>`}
          </tr>`;
        })}
      </tbody>
    </table>
  </section>`;
}

function crlLine(ctx: PageContext, crl: OverviewData['crl']): Html {
  if (!crl?.nextUpdate) return html`<p>${badge('bad', 'no CRL')} The store holds no CRL yet.</p>`;
  const days = daysUntil(ctx.now, crl.nextUpdate);
  const kind = days < 0 ? 'bad' : days < 7 ? 'warn' : 'ok';
  return html`<p data-testid="crl">
    CRL ${crl.number !== undefined ? html`#${crl.number} ` : ''}next update ${time(crl.nextUpdate)}
    (${badge(kind, days < 0 ? 'EXPIRED' : `${days} days left`)}).
  </p>`;
}

export function overviewPage(ctx: PageContext, data: OverviewData): Page {
  const servers = data.sites.flatMap((s) => s.servers);
  const sessions = servers.reduce((n, s) => n + s.sessions, 0);
  const healthy = servers.filter((s) => condition(s).kind === 'ok').length;
  const balancers = data.sites.filter((s) => s.loadBalancer);
  const live = html`<p class="summary" data-testid="summary">
      ${sessions} sessions on ${servers.length} servers in ${data.sites.length} sites; ${healthy} of
      ${servers.length} healthy.
    </p>
    ${clusterPicture(data.sites)} ${data.sites.map((site) => siteTable(ctx, site))}
    <section aria-labelledby="lb-title">
      <h2 id="lb-title">Load balancers</h2>
      ${
        balancers.length
          ? html`<table class="data">
              <thead>
                <tr>
                  <th scope="col">Site</th>
                  <th scope="col">Address</th>
                  <th scope="col">Servers behind it</th>
                </tr>
              </thead>
              <tbody>
                ${balancers.map(
                  (s) =>
                    html`<tr>
                      <th scope="row">${s.name}</th>
                      <td><code>${s.loadBalancer ?? ''}</code></td>
                      <td>${s.servers.map((v) => v.name).join(', ')}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
          : html`<p>No site has a load balancer in fleet.yaml.</p>`
      }
    </section>
    <section aria-labelledby="crl-title">
      <h2 id="crl-title">Certificate revocation list</h2>
      ${crlLine(ctx, data.crl)}
    </section>`;
  return {
    title: `Overview of ${data.fleet}`,
    section: 'overview',
    live,
    liveOn: ['sessions', 'servers', 'fleet'],
  };
}
