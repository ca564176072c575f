/**
 * The console's routes on the controller's fastify app: the pages under `/console`, their
 * assets, and the event stream. Pages are server-rendered HTML (html.ts escapes by
 * construction); every state change goes through the JSON API from the browser script, with
 * the `x-csrf-token` header. Every answer carries a strict Content-Security-Policy: no inline
 * script or style anywhere, so an injected tag could not run even if escaping ever failed.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { compilePolicy } from '../core/policy.js';
import { differingSessionGroups, effectiveGroups } from '../core/session-groups.js';
import type { ControllerState } from '../controller/state.js';
import { NotFound } from '../errors.js';
import { UserStatus } from '../api/index.js';
import {
  auditEntries,
  auditFilterOf,
  crlSummary,
  enrolTotp,
  findUsers,
  routeRows,
  totpOf,
  userAudit,
  userHistory,
  userSignIns,
} from './data.js';
import { type EventStreams, type StreamTimers, eventRoutes } from './events.js';
import type { Html } from './html.js';
import { type Page, type PageContext, fragment, layout } from './layout.js';
import { type AuditFilter, auditPage } from './pages/audit.js';
import { unavailable } from './pages/format.js';
import { loginPage } from './pages/login.js';
import { overviewPage } from './pages/overview.js';
import { policyPage } from './pages/policy.js';
import { pkiPage } from './pages/pki.js';
import { routesPage } from './pages/routes.js';
import { sessionsPage } from './pages/sessions.js';
import { totpCard } from './pages/totp.js';
import { noSuchUserPage, userPage } from './pages/user.js';
import { usersPage } from './pages/users.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A page for people: an unauthenticated request is sent to the login page, not given 401. */
    html?: boolean;
  }
}

export interface ConsoleOptions {
  clock: { now(): Date };
  timers: StreamTimers;
  /** The CSRF token of the request's session, for the page's `<meta name="csrf-token">`. */
  csrfToken?: (req: FastifyRequest) => string | undefined;
  maxStreams?: number;
  coalesceMs?: number;
  heartbeatMs?: number;
  /** Where console.css and the compiled console.js are (default: beside this module). */
  assetDirs?: { css: string; js: string };
  usersPageSize?: number;
  /** Most certificates listed on the PKI page. */
  pkiLimit?: number;
}

/** The policy every console answer carries. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

const here = (dir: string) => fileURLToPath(new URL(dir, import.meta.url));

/** The files under /console/assets/: a fixed list, so no request path ever reaches the disk. */
function assetTable(dirs: {
  css: string;
  js: string;
}): Map<string, { file: string; type: string }> {
  return new Map([
    ['console.css', { file: `${dirs.css}/console.css`, type: 'text/css; charset=utf-8' }],
    ['console.js', { file: `${dirs.js}/console.js`, type: 'text/javascript; charset=utf-8' }],
    [
      'console.js.map',
      { file: `${dirs.js}/console.js.map`, type: 'application/json; charset=utf-8' },
    ],
  ]);
}

/** One query parameter as a trimmed string (the first, if repeated); '' when absent. */
function param(req: FastifyRequest, key: string): string {
  const q = req.query as Record<string, string | string[] | undefined>;
  const v = q[key];
  const s = Array.isArray(v) ? v[0] : v;
  return (s ?? '').trim().slice(0, 200);
}

const opt = (s: string): string | undefined => s || undefined;

/** Sessions, and sign-ins, the user page's location history asks for (each). */
const HISTORY_LIMIT = 100;

export function consoleRoutes(
  app: FastifyInstance,
  state: ControllerState,
  opts: ConsoleOptions,
): EventStreams {
  const pageSize = opts.usersPageSize ?? 50;
  const assets = assetTable(opts.assetDirs ?? { css: here('./assets'), js: here('./browser') });

  const context = (req: FastifyRequest): PageContext => {
    const token = opts.csrfToken?.(req);
    return {
      ...(req.who ? { who: { actor: req.who.actor, role: req.who.role } } : {}),
      ...(token ? { csrfToken: token } : {}),
      now: opts.clock.now(),
    };
  };

  const send = (req: FastifyRequest, reply: FastifyReply, ctx: PageContext, page: Page) => {
    const body = param(req, 'fragment') === '1' ? fragment(page) : layout(ctx, page);
    return reply
      .code(page.status ?? 200)
      .headers({ ...SECURITY_HEADERS, 'cache-control': 'no-store' })
      .type('text/html; charset=utf-8')
      .send(body.text);
  };

  /** A page: viewers and up, sent to the login page when not signed in. */
  const view = (
    url: string,
    build: (req: FastifyRequest, ctx: PageContext) => Page | Promise<Page>,
  ) =>
    app.get(
      url,
      { config: { auth: 'viewer', html: true }, schema: { hide: true } },
      async (req, reply) => {
        const ctx = context(req);
        return send(req, reply, ctx, await build(req, ctx));
      },
    );

  app.get(
    '/console/assets/:file',
    { config: { auth: 'none' }, schema: { hide: true } },
    async (req, reply) => {
      const asset = assets.get((req.params as { file: string }).file);
      let body: Buffer | undefined;
      if (asset) body = await readFile(asset.file).catch(() => undefined);
      if (!asset || !body)
        return reply.code(404).headers(SECURITY_HEADERS).send({ error: 'no such console asset' });
      // Revalidated on each load: a new build is picked up at once, an unchanged one costs a 304.
      return reply
        .headers({ ...SECURITY_HEADERS, 'cache-control': 'no-cache' })
        .type(asset.type)
        .send(body);
    },
  );

  app.get(
    '/console/login',
    { config: { auth: 'none', html: true }, schema: { hide: true } },
    (req, reply) => send(req, reply, context(req), loginPage(param(req, 'next'))),
  );

  const siteOf = () =>
    new Map(state.fleet.spec.sites.flatMap((site) => site.servers.map((s) => [s.name, site.name])));

  view('/console', async (_req, ctx) => {
    const servers = await state.servers();
    const crl = await crlSummary(state);
    const spec = state.fleet.spec;
    return overviewPage(ctx, {
      fleet: spec.fleet,
      sites: spec.sites.map((site) => ({
        name: site.name,
        ...(site.loadBalancer ? { loadBalancer: site.loadBalancer } : {}),
        servers: servers.filter((s) => s.site === site.name),
      })),
      ...(crl ? { crl } : {}),
    });
  });

  view('/console/sessions', async (req, ctx) => {
    const spec = state.fleet.spec;
    return sessionsPage(ctx, {
      sessions: await state.sessions(),
      siteOf: siteOf(),
      sites: spec.sites.map((s) => s.name),
      servers: state.fleet.serverNames(),
      filter: {
        ...(param(req, 'user') ? { user: param(req, 'user') } : {}),
        ...(param(req, 'server') ? { server: param(req, 'server') } : {}),
        ...(param(req, 'site') ? { site: param(req, 'site') } : {}),
      },
    });
  });

  view('/console/users', async (req, ctx) => {
    // Control characters have no business in a search (the API refuses them too).
    const q = param(req, 'q').replace(/[\x00-\x1f\x7f]/g, '');
    const asked = Number.parseInt(param(req, 'page') || '1', 10);
    const parsed = UserStatus.safeParse(param(req, 'status'));
    const status = parsed.success ? parsed.data : '';
    const groups = state.fleet.spec.groups.map((g) => g.name);
    const group = groups.includes(param(req, 'group')) ? param(req, 'group') : '';
    const search = (p: number) =>
      findUsers(state, {
        ...(q ? { q } : {}),
        ...(status ? { status } : {}),
        ...(group ? { group } : {}),
        offset: (p - 1) * pageSize,
        limit: pageSize,
      });
    let page = Number.isSafeInteger(asked) && asked > 0 ? Math.min(asked, 1_000_000) : 1;
    let found = await search(page);
    const pages = Math.max(1, Math.ceil(found.total / pageSize));
    if (page > pages) {
      // Past the end (the list shrank since the link was made): show the last page.
      page = pages;
      found = await search(page);
    }
    return usersPage(ctx, {
      ...found,
      q,
      status,
      group,
      page,
      pageSize,
      groups,
      online: new Set((await state.sessions()).map((s) => s.user)),
    });
  });

  view('/console/users/:name', async (req, ctx) => {
    const name = (req.params as { name: string }).name;
    const user = await state.store.getUser(name);
    if (!user) return noSuchUserPage(name);
    const certificate = await state.fleet.userCertificate(name);
    const differing = differingSessionGroups(state.fleet.spec, user);
    return userPage(ctx, {
      user,
      sessions: (await state.sessions()).filter((s) => s.user === name),
      siteOf: siteOf(),
      history: await userHistory(state, name, HISTORY_LIMIT),
      signIns: await userSignIns(state, name, HISTORY_LIMIT),
      historyLimit: HISTORY_LIMIT,
      totp: await totpOf(state, user),
      audit: await userAudit(state, name),
      ...(certificate ? { certificate } : {}),
      ...(differing && user.sessionGroups
        ? { sessionGroups: { groups: differing, at: user.sessionGroups.at } }
        : {}),
    });
  });

  /** The admin's TOTP card of the user page alone (pages/totp.ts), never cached. */
  const sendCard = (reply: FastifyReply, card: Html) =>
    reply
      .headers({ ...SECURITY_HEADERS, 'cache-control': 'no-store' })
      .type('text/html; charset=utf-8')
      .send(card.text);

  // The card as it is now: what the browser script swaps in after a confirm or a reset.
  app.get(
    '/console/users/:name/totp',
    { config: { auth: 'admin', html: true }, schema: { hide: true } },
    async (req, reply) => {
      const name = (req.params as { name: string }).name;
      const user = await state.store.getUser(name);
      if (!user) throw new NotFound(`no user named ${name}`);
      return sendCard(reply, totpCard(name, (await totpOf(state, user)).status));
    },
  );

  // A new enrolment (audited by the service as user.totp.enroll): the card with the QR code,
  // the URI and the recovery codes, this once. A change: the session's CSRF header is checked
  // (http.ts) like every other change; admins only, like POST /v1/users/{name}/totp.
  app.post(
    '/console/users/:name/totp',
    { config: { auth: 'admin' }, schema: { hide: true } },
    async (req, reply) => {
      const name = (req.params as { name: string }).name;
      // Set by http.ts for every route with a role scope.
      if (!req.who) throw new Error('the TOTP enrolment route has no caller');
      const enrolment = await enrolTotp(state, req.who.actor, name);
      return sendCard(reply, totpCard(name, await state.fleet.totp.status(name), enrolment));
    },
  );

  view('/console/routes', async (_req, ctx) => routesPage(ctx, { view: await routeRows(state) }));

  view('/console/policy', async (_req, ctx) => {
    const spec = state.fleet.spec;
    const users = await state.fleet.listUsers();
    // The groups the servers enforce: a sign-in's where auth.sso maps them (as bundles.ts).
    const grouped = users.map((u) => ({
      ...u,
      groups: effectiveGroups(spec, u),
      enabled: u.status === 'enabled',
    }));
    const compiled = compilePolicy(spec, grouped);
    const members = new Map<string, string[]>(spec.groups.map((g) => [g.name, []]));
    for (const u of grouped) if (u.enabled) for (const g of u.groups) members.get(g)?.push(u.name);
    for (const list of members.values()) list.sort();
    return policyPage(ctx, { groups: spec.groups, compiled, members });
  });

  view('/console/pki', async (_req, ctx) => {
    const certs = await state.store.listCerts();
    const subjects = new Map(certs.map((c) => [c.serial, c.subject]));
    const crl = await crlSummary(state);
    return pkiPage(ctx, {
      // Only what the page shows: never a key or a PEM.
      certs: certs.map((c) => ({
        kind: c.kind,
        subject: c.subject,
        serial: c.serial,
        notAfter: c.notAfter,
        ...(c.revokedAt ? { revokedAt: c.revokedAt } : {}),
        ...(c.caState ? { caState: c.caState } : {}),
      })),
      ...(crl ? { crl } : {}),
      revoked: (await state.store.revokedCerts()).map((r) => ({
        ...r,
        ...(subjects.has(r.serial) ? { subject: subjects.get(r.serial) } : {}),
      })),
      limit: opts.pkiLimit ?? 500,
    });
  });

  view('/console/audit', async (req, ctx) => {
    const filter: AuditFilter = {};
    for (const key of ['actor', 'user', 'kind', 'since', 'until'] as const) {
      const v = opt(param(req, key));
      if (v) filter[key] = v;
    }
    const limit = 500;
    const query = auditFilterOf(filter);
    if (typeof query === 'string') {
      const page = auditPage(ctx, { entries: [], filter, limit });
      return { ...page, live: unavailable(query), status: 400 };
    }
    return auditPage(ctx, { entries: await auditEntries(state, query, limit), filter, limit });
  });

  return eventRoutes(app, state, {
    timers: opts.timers,
    headers: SECURITY_HEADERS,
    ...(opts.maxStreams !== undefined ? { maxStreams: opts.maxStreams } : {}),
    ...(opts.coalesceMs !== undefined ? { coalesceMs: opts.coalesceMs } : {}),
    ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
  });
}
