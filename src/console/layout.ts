/**
 * The page shell every console page shares: navigation, who is signed in with which role, the
 * logout button, the CSRF token for the browser script, one stylesheet and one script. A page
 * supplies its title, its controls (forms, filters: left alone by live updates) and its live
 * region, the part the browser script swaps when the controller says something moved.
 */
import { type Role, roleAtLeast } from '../api/index.js';
import type { ChangeKind } from '../controller/state.js';
import { type Html, html } from './html.js';

export interface Viewer {
  actor: string;
  role: Role;
}

/** What every page may use about the request it answers. */
export interface PageContext {
  /** Absent only on the login page. */
  who?: Viewer;
  csrfToken?: string;
  now: Date;
}

export type Section = 'overview' | 'sessions' | 'users' | 'routes' | 'policy' | 'pki' | 'audit';

export interface Page {
  title: string;
  section?: Section;
  /** Above the controls: a line or two that does not change. */
  intro?: Html;
  /** Forms and filters: kept as the user left them when the live region is swapped. */
  controls?: Html;
  /** The live region (`?fragment=1` answers only this). */
  live: Html;
  /** Which changes re-fetch the live region; none: the page is not live. */
  liveOn?: readonly ChangeKind[];
  status?: number;
}

const SECTIONS: [Section, string, string][] = [
  ['overview', 'Overview', '/console'],
  ['sessions', 'Sessions', '/console/sessions'],
  ['users', 'Users', '/console/users'],
  ['routes', 'Routes', '/console/routes'],
  ['policy', 'Policy', '/console/policy'],
  ['pki', 'PKI', '/console/pki'],
  ['audit', 'Audit', '/console/audit'],
];

export const STYLESHEET = '/console/assets/console.css';
export const SCRIPT = '/console/assets/console.js';

/** True when the signed-in person may do what `need` may (the server checks again). */
export function may(ctx: PageContext, need: Role): boolean {
  return ctx.who !== undefined && roleAtLeast(ctx.who.role, need);
}

function nav(current: Section | undefined): Html {
  return html`<nav aria-label="Console">
    <ul>
      ${SECTIONS.map(
        ([key, label, href]) =>
          html`<li>
            <a href="${href}" ${key === current ? html` aria-current="page"` : ''}>${label}</a>
          </li>`,
      )}
    </ul>
  </nav>`;
}

function whoBox(who: Viewer): Html {
  return html`<div class="who">
    <span data-testid="who">${who.actor}</span>
    <span class="role role-${who.role}" data-testid="role">${who.role}</span>
    <button type="button" data-action="logout" data-testid="logout">Log out</button>
  </div>`;
}

function shell(ctx: PageContext, title: string, header: Html, main: Html): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="csrf-token" content="${ctx.csrfToken ?? ''}" />
        <title>${title} · ovpn-fleet</title>
        <link rel="stylesheet" href="${STYLESHEET}" />
        <script type="module" src="${SCRIPT}"></script>
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header class="top">
          <a class="brand" href="/console">ovpn-fleet</a>
          ${header}
        </header>
        <main id="main" tabindex="-1">${main}</main>
      </body>
    </html> `;
}

/** The live region's content alone: what `?fragment=1` answers. */
export function fragment(page: Page): Html {
  return page.live;
}

export function layout(ctx: PageContext, page: Page): Html {
  const header = html`${nav(page.section)}${ctx.who && whoBox(ctx.who)}`;
  const liveOn = page.liveOn?.join(' ') ?? '';
  const main = html`<h1>${page.title}</h1>
    ${page.intro}
    <p id="flash" class="flash" role="status"></p>
    ${page.controls}
    <div id="live" class="live" aria-live="polite" data-live-on="${liveOn}">${page.live}</div>`;
  return shell(ctx, page.title, header, main);
}
