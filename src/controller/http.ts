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
import { Conflict, FleetError, InputError, NotFound, SpecError, Timeout } from '../errors.js';
import { type Role, roleAtLeast } from '../api/index.js';
import type { Authenticator } from './auth.js';
import { Forbidden, Unauthorized, Unavailable } from './http-errors.js';
import { ADMIN_ACTOR, oneLine } from './state.js';

/** Who may call a route: nobody needs to authenticate, a server's agent, or at least a role. */
type Scope = 'none' | 'agent' | Role;

/** The person (or the admin token) behind a request, once authenticated. */
export interface Caller {
  /** What the audit log records as the actor. */
  actor: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; routes without it need the `admin` role. */
    auth?: Scope;
  }
  interface FastifyRequest {
    /** The server whose agent token authenticated this request. */
    agentServer?: string;
    /** Who is calling, for routes of a role scope. */
    who?: Caller;
  }
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
  if (err instanceof Unavailable) return 503;
  if (err instanceof InputError) return 400;
  if (err instanceof NotFound) return 404;
  if (err instanceof Conflict) return 409;
  if (err instanceof SpecError) return 422;
  if (err instanceof Timeout) return 504;
  // Everything else, NeedsPrivilege and CommandError included, is the controller's own
  // problem: it runs no privileged command on a client's behalf.
  return 500;
}

/** "body.groups: must be array", "body.name: is required": the field first, on one line. */
function formatValidation(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const e = errors[0];
  const params = e.params;
  let field = `${dataVar}${e.instancePath.replaceAll('/', '.')}`;
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'required') {
    field += `.${String(params.missingProperty)}`;
    message = 'is required';
  } else if (e.keyword === 'additionalProperties') {
    field += `.${String(params.additionalProperty)}`;
    message = 'is not a known field';
  } else if (e.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    message = `must be one of ${params.allowedValues.map(String).join(', ')}`;
  }
  return new Error(`${field}: ${message}`);
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
  auth: Authenticator,
  log: (line: string) => void,
): Promise<FastifyInstance> {
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
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    schemaErrorFormatter: formatValidation,
  }) as unknown as FastifyInstance;

  app.server.maxConnections = opts.maxConnections ?? 1024;

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    // Whoever failed to authenticate gets no kept-alive connection to try again on, and a body
    // still on its way is not waited for.
    if (err instanceof Unauthorized) reply.header('connection', 'close');
    if (err instanceof FleetError) {
      const status = httpStatusOf(err);
      if (status >= 500) log(err.stack ?? err.message);
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

  app.addHook('onRequest', (req, _reply, done) => {
    const scope = req.routeOptions.config?.auth ?? 'admin';
    if (scope === 'none') return done();
    try {
      const who = auth.identify(req.headers.authorization);
      if (scope === 'agent') {
        if (who.agent === undefined) throw new Forbidden('/v1/agent/* needs a server token');
        req.agentServer = who.agent;
        return done();
      }
      if (!who.admin) throw new Forbidden('an agent token can call only /v1/agent/*');
      const caller: Caller = { actor: ADMIN_ACTOR, role: 'admin' };
      if (!roleAtLeast(caller.role, scope))
        throw new Forbidden(`needs the ${scope} role (${caller.actor} is ${caller.role})`);
      req.who = caller;
      done();
    } catch (err) {
      done(err as Error);
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ovpn-fleet controller',
        version: '1',
        description:
          'Admin API (admin token) and agent API (per-server token). The schemas come from ' +
          'src/api, the one wire contract. Errors are {"error": "one line"}.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  return app;
}
