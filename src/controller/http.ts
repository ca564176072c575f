/**
 * The controller's HTTP edge: fastify with its limits, the auth hook (who may call which
 * route), and the one place where errors become HTTP statuses. Routes live in routes/, state in
 * state.ts.
 */
import swagger from '@fastify/swagger';
import fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifySchemaValidationError,
} from 'fastify';
import {
  Conflict,
  FleetError,
  InputError,
  NotFound,
  SpecError,
  StoreUnavailable,
  Timeout,
} from '../errors.js';
import {
  CSRF_FIELD,
  CSRF_HEADER,
  type Role,
  roleAtLeast,
  sessionCookieName,
} from '../api/index.js';
import type { ConsoleSession, SessionLookup } from '../service/console-sessions.js';
import { type Authenticator, clearedCookie, cookieValue, sameCsrfToken } from './auth.js';
import { Forbidden, TooManyRequests, Unauthorized, Unavailable } from './http-errors.js';
import { ADMIN_ACTOR, oneLine } from './state.js';
import { validationLine } from './validation-messages.js';

/** Who may call a route: nobody needs to authenticate, a server's agent, or at least a role. */
type Scope = 'none' | 'agent' | Role;

/** The person (or the admin token) behind a request, once authenticated. */
export interface Caller {
  /** What the audit log records as the actor: `api:admin` (the token) or `console:NAME`. */
  actor: string;
  role: Role;
  /** The console session, when the session cookie (not a bearer token) authenticated it. */
  session?: ConsoleSession;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; routes without it need the `admin` role. */
    auth?: Scope;
    /**
     * A page for a browser: an unauthenticated request is sent to the login page
     * (`303 See Other`, `Location: /console/login?next=<this path>`) instead of a JSON 401.
     */
    html?: boolean;
    /** Open to an admin who signed in with a one-time password and has not changed it yet. */
    duringPasswordChange?: boolean;
  }
  interface FastifyRequest {
    /** The server whose agent token authenticated this request. */
    agentServer?: string;
    /** Who is calling, for routes of a role scope. */
    who?: Caller;
    /** A form post's CSRF token still to be checked once its body is parsed. */
    csrfExpected?: string;
  }
}

/** Finds the console session of a cookie's value (src/service/console-sessions.ts). */
export interface SessionFinder {
  find(id: string): Promise<SessionLookup>;
}

/** What the auth hook checks credentials with. */
export interface Credentials {
  tokens: Authenticator;
  sessions: SessionFinder;
}

/** Who called a role-scoped route (the auth hook sets it before any such handler runs). */
export function callerOf(req: { who?: Caller }): Caller {
  if (!req.who) throw new Error('route has no caller: is it declared with a role scope?');
  return req.who;
}

const FORM = 'application/x-www-form-urlencoded';
/** Forms carry a few fields; a large body here is a mistake or an attack. */
export const FORM_BODY_LIMIT = 16 * 1024;

/**
 * A form body as an object: a repeated field (or one named `x[]`) becomes an array, everything
 * else a string. No prototype, so a field named `__proto__` is just a field.
 */
export function parseForm(text: string): Record<string, string | string[]> {
  const out = Object.create(null) as Record<string, string | string[]>;
  for (const [raw, value] of new URLSearchParams(text)) {
    const many = raw.endsWith('[]');
    const key = many ? raw.slice(0, -2) : raw;
    const prev = out[key];
    if (prev === undefined) out[key] = many ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[key] = [prev, value];
  }
  return out;
}

const LOGIN_PAGE = '/console/login';

/**
 * Where a browser is sent to sign in: the login page, with the path it asked for as `next`
 * when that is a same-origin path (not `//host/…`, `/\\host`, an absolute URL or anything
 * with control characters), so the login page can never be made to send anyone elsewhere.
 */
export function loginRedirect(url: string): string {
  const safe =
    url.length <= 2048 &&
    url.startsWith('/') &&
    !url.startsWith('//') &&
    !url.startsWith('/\\') &&
    !/[\u0000-\u0020\u007f-\u009f\\]/.test(url);
  return safe ? `${LOGIN_PAGE}?next=${encodeURIComponent(url)}` : LOGIN_PAGE;
}

export interface HttpOptions {
  /** Serve HTTPS (needed for TCP on anything but loopback). */
  https?: { cert: string | Buffer; key: string | Buffer };
  /** Open connections beyond this are refused (default 1024): a flood cannot exhaust fds. */
  maxConnections?: number;
  /** Time a client has to send its whole request, headers and body (default 10 s). */
  requestTimeoutMs?: number;
}

/**
 * The HTTP status of an error thrown by a route: the only such mapping of the API. Every status
 * here is in the routes' `errorResponses`, so the OpenAPI document lists it.
 */
export function httpStatusOf(err: unknown): number {
  if (err instanceof Unauthorized) return 401;
  if (err instanceof Forbidden) return 403;
  if (err instanceof TooManyRequests) return 429;
  // The store's database away (PostgreSQL restarting, failing over): try again shortly.
  if (err instanceof Unavailable || err instanceof StoreUnavailable) return 503;
  if (err instanceof InputError) return 400;
  if (err instanceof NotFound) return 404;
  if (err instanceof Conflict) return 409;
  if (err instanceof SpecError) return 422;
  if (err instanceof Timeout) return 504;
  // Everything else, NeedsPrivilege and CommandError included, is the controller's own
  // problem: it runs no privileged command on a client's behalf.
  return 500;
}

/** The first problem of a request as one line, the field first (validation-messages.ts). */
function formatValidation(errors: FastifySchemaValidationError[], dataVar: string): Error {
  return new Error(validationLine(errors, dataVar));
}

/**
 * The Node server options every listener of the controller shares (the first is fastify's own,
 * more come from listen.ts): request and header deadlines.
 */
export function nodeServerOptions(opts: HttpOptions) {
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  return {
    // Node checks request and header deadlines only this often (its default: every 30 s).
    connectionsCheckingInterval: Math.min(1000, requestTimeoutMs),
    headersTimeout: requestTimeoutMs,
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: 5_000,
  };
}

export async function createHttp(
  opts: HttpOptions,
  credentials: Credentials,
  log: (line: string) => void,
): Promise<FastifyInstance> {
  const secure = Boolean(opts.https);
  const cookieName = sessionCookieName(secure);
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  const { connectionsCheckingInterval, headersTimeout } = nodeServerOptions(opts);
  const serverOptions = { connectionsCheckingInterval, headersTimeout };
  const app = fastify({
    logger: false,
    ...(opts.https ? { https: { ...opts.https, ...serverOptions } } : { http: serverOptions }),
    // Node's request timeout covers receiving the request (headers and body), not the answer:
    // a long-poll has its whole request in at once and then waits for as long as it likes,
    // while a client that trickles a body in is cut off after this.
    requestTimeout: requestTimeoutMs,
    // A socket that says nothing for this long is closed (a connection opened and left idle
    // holds a file descriptor); the long-poll route lengthens it for its own wait.
    connectionTimeout: requestTimeoutMs,
    keepAliveTimeout: 5_000,
    // Unknown fields and wrong types are errors, not silently dropped or converted.
    // `verbose`: errors carry the value and its schema, for a message naming both.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, verbose: true } },
    schemaErrorFormatter: formatValidation,
  }) as unknown as FastifyInstance;

  app.server.maxConnections = opts.maxConnections ?? 1024;

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof Unauthorized) {
      // A stale or unknown session cookie is dropped, so the browser stops sending it.
      if (cookieValue(req.headers.cookie, cookieName) !== undefined)
        reply.header('set-cookie', clearedCookie(cookieName, secure));
      if (req.routeOptions.config?.html)
        return reply.code(303).header('location', loginRedirect(req.url)).send();
      // Whoever failed to authenticate gets no kept-alive connection to try again on, and a
      // body still on its way is not waited for.
      reply.header('connection', 'close');
    }
    if (err instanceof TooManyRequests) reply.header('retry-after', String(err.retryAfterSeconds));
    if (err instanceof FleetError) {
      const status = httpStatusOf(err);
      // The store's loss is logged once by the store itself, not once per request.
      if (status >= 500 && !(err instanceof StoreUnavailable)) log(err.stack ?? err.message);
      return reply.code(status).send({ error: oneLine(err) });
    }
    if (err.validation) return reply.code(400).send({ error: oneLine(err) });
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
      return reply.code(err.statusCode).send({ error: oneLine(err) });
    log(`internal error: ${err.stack ?? String(err)}`);
    return reply.code(500).send({ error: 'internal error (logged by the controller)' });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` }),
  );

  // Forms of the console: posted with the session cookie and the `_csrf` field.
  app.addContentTypeParser(
    FORM,
    { parseAs: 'string', bodyLimit: FORM_BODY_LIMIT },
    (_req, body, done) => done(null, parseForm(body as string)),
  );

  app.addHook('onRequest', async (req) => {
    const config = req.routeOptions.config ?? {};
    const scope = config.auth ?? 'admin';
    if (scope === 'none') return;
    const cookie = cookieValue(req.headers.cookie, cookieName);
    // A bearer token wins over a cookie; agents always use their token.
    if (req.headers.authorization !== undefined || cookie === undefined || scope === 'agent') {
      const who = credentials.tokens.identify(req.headers.authorization);
      if (scope === 'agent') {
        if (who.agent === undefined) throw new Forbidden('/v1/agent/* needs a server token');
        req.agentServer = who.agent;
        return;
      }
      if (!who.admin) throw new Forbidden('an agent token can call only /v1/agent/*');
      req.who = { actor: ADMIN_ACTOR, role: 'admin' };
    } else {
      const found = await credentials.sessions.find(cookie);
      if ('problem' in found) throw new Unauthorized(found.problem);
      const session = found.session;
      req.who = { actor: `console:${session.name}`, role: session.role, session };
      if (session.mustChangePassword && !config.duringPasswordChange)
        throw new Forbidden(
          'signed in with a one-time password: change it first (POST /v1/session/password)',
        );
      if (req.method !== 'GET' && req.method !== 'HEAD') checkCsrf(req, session.csrfToken);
    }
    const caller = req.who;
    if (!roleAtLeast(caller.role, scope))
      throw new Forbidden(`needs the ${scope} role (${caller.actor} is ${caller.role})`);
  });

  // A form post's `_csrf` field, once the body is parsed; removed before the route's schema
  // sees the body (it is no field of any resource).
  app.addHook('preValidation', (req, _reply, done) => {
    const expected = req.csrfExpected;
    if (expected === undefined) return done();
    const body = req.body as Record<string, unknown> | undefined;
    const presented = body?.[CSRF_FIELD];
    if (typeof presented !== 'string' || !sameCsrfToken(presented, expected))
      return done(
        new Forbidden(`missing or wrong ${CSRF_FIELD} field (the csrfToken of GET /v1/session)`),
      );
    delete body![CSRF_FIELD];
    done();
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ovpn-fleet controller',
        version: '1',
        description:
          'Admin API (admin token or a console session of an admin account) and agent API ' +
          '(per-server token). The schemas come from ' +
          'src/api, the one wire contract. Errors are {"error": "one line"}.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer' },
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: cookieName,
            description: `console session (POST /v1/session; named __Host-ovpn_fleet_session under TLS); changes also need the ${CSRF_HEADER} header`,
          },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  return app;
}

/**
 * A change made with a session cookie must carry the session's CSRF token: in the header, or
 * for a form post in its `_csrf` field (checked once the body is parsed). SameSite=Strict
 * already keeps the cookie off requests other sites start, in browsers that honour it; the
 * token holds in the others too: another site's page can make a browser send a request, but it
 * can never read the token to put in it.
 */
function checkCsrf(
  req: { headers: Record<string, string | string[] | undefined>; csrfExpected?: string },
  expected: string,
): void {
  const header = req.headers[CSRF_HEADER];
  if (typeof header === 'string') {
    if (!sameCsrfToken(header, expected))
      throw new Forbidden(`wrong ${CSRF_HEADER} header (the csrfToken of GET /v1/session)`);
    return;
  }
  const type = req.headers['content-type'];
  if (typeof type === 'string' && type.toLowerCase().startsWith(FORM)) {
    req.csrfExpected = expected;
    return;
  }
  throw new Forbidden(
    `missing ${CSRF_HEADER} header: a change made with a session cookie needs the csrfToken of GET /v1/session`,
  );
}
