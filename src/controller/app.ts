/**
 * The controller, assembled: the state (state.ts) behind the HTTP edge (http.ts) with one
 * route file per resource (routes/). The admin API, the agents' long-poll and report endpoints,
 * and the watcher that notices changes made by other processes and wakes the agents.
 */
import type { FastifyInstance } from 'fastify';
import type { FleetSpec } from '../spec/schema.js';
import { POLL_WAIT_MS } from '../api/index.js';
import { consoleRoutes } from '../console/routes.js';
import { effectiveGroups, ssoMapsGroups } from '../core/session-groups.js';
import { openWatchedFleet } from '../service/open.js';
import { type Clock, realTimers, systemClock, type Timers } from '../sys/time.js';
import { AuditSink, type AuditSinkOptions } from './audit-sink.js';
import { type HttpOptions, createHttp } from './http.js';
import type { IngestOptions } from './ingest.js';
import { OidcWebSignIn, type OidcSettings } from './connect-auth/oidc.js';
import { ControllerMetrics, type MetricsOptions } from './metrics.js';
import type { LoginLimitOptions } from './login-limit.js';
import { agentRoutes } from './routes/agent.js';
import { authRoutes, totpRoutes } from './routes/auth.js';
import { SignIns } from './connect-auth/sign-ins.js';
import type { WebSignIn } from './connect-auth/web-sign-in.js';
import { auditRoutes } from './routes/audit.js';
import { metaRoutes } from './routes/meta.js';
import { rolloutRoutes } from './routes/rollout.js';
import { serverRoutes } from './routes/servers.js';
import { sessionRoutes } from './routes/sessions.js';
import { ssoRoutes } from './routes/sso.js';
import { signInRoutes } from './routes/session.js';
import { userRoutes } from './routes/users.js';
import { ADMIN_ACTOR, ControllerState } from './state.js';

export { ADMIN_ACTOR } from './state.js';

export interface ControllerOptions extends HttpOptions, IngestOptions {
  fleetDir: string;
  /** The browser sign-in of auth.sso (OIDC); absent: web sign-ins at connect are refused. */
  webSignIn?: WebSignIn;
  /** How long GET /v1/agent/auth/wait waits for an outcome (default AUTH_WAIT_MS). */
  authWaitMs?: number;
  /** Where each server's bundle lives on that server (the rendered config `cd`s there). */
  baseDir: (server: string) => string;
  adminToken: string;
  /** Each server's agent token; default: `Fleet.agentToken`. */
  serverToken?: (server: string) => string;
  clock?: Clock;
  timers?: Timers;
  /** How long a poll waits for a change before answering 204. */
  pollWaitMs?: number;
  /** How often to look for changes made by other processes. */
  watchIntervalMs?: number;
  staleAfterMs?: number;
  /** A console session without a request for this long ends (default 30 minutes). */
  consoleIdleTimeoutMs?: number;
  /** A console session ends this long after sign-in, busy or not (default 12 hours). */
  consoleSessionLifetimeMs?: number;
  /** Failed sign-ins allowed per account and per client address (default 5 and 20 in 15 min). */
  loginLimit?: LoginLimitOptions;
  /** One-line log messages; default: standard error. */
  log?: (line: string) => void;
  /** Who besides the admin may read /metrics, and whether series may name users. */
  metrics?: MetricsOptions;
  /** Ship the audit log to a file and/or syslog as it grows (see audit-sink.ts). */
  auditSink?: AuditSinkOptions;
  /** Where OVPN_FLEET_DATABASE_URL(_FILE) is looked for (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * SSO at connect (`auth.sso`): the provider and the controller's URL as browsers reach it.
   * Absent: no /sso routes, and `webSignIn` is undefined.
   */
  sso?: { settings: OidcSettings; publicUrl: string; pendingTtlMs?: number };
}

export interface Controller {
  app: FastifyInstance;
  /** Its Prometheus metrics (also on GET /metrics), for a second listener. */
  metrics: ControllerMetrics;
  /** Recomputes bundles and directives now (what the watcher does on a change). */
  refresh(): Promise<void>;
  /** The web sign-in of SSO at connect, when `sso` is configured. */
  webSignIn?: WebSignIn;
  /** Reopens the audit log file (on SIGHUP, after logrotate moved it). */
  reopenAuditLog(): void;
  /** Answers waiting polls with 204, stops the watcher, the server and the store. */
  close(): Promise<void>;
}

export async function buildController(opts: ControllerOptions): Promise<Controller> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`controller: ${line}\n`));
  const clock = opts.clock ?? systemClock;
  // A PostgreSQL store that cannot be reached fails here (StoreUnavailable): one line, and the
  // controller command exits non-zero. Once running, lost connections are logged by the store.
  const { fleet, changes, leadership } = await openWatchedFleet(opts.fleetDir, {
    clock,
    actor: ADMIN_ACTOR,
    log: (line) => log(`store: ${line}`),
    ...(opts.env ? { env: opts.env } : {}),
  });
  const metrics = new ControllerMetrics(clock, opts.metrics);
  const timers = opts.timers ?? realTimers;
  const state = new ControllerState(fleet, changes, clock, timers, {
    ...opts,
    log,
    events: metrics,
    leadership,
  });
  const sinkOptions = opts.auditSink;
  const sink =
    sinkOptions && (sinkOptions.file !== undefined || sinkOptions.syslog)
      ? new AuditSink(state.store, opts.timers ?? realTimers, log, sinkOptions)
      : undefined;
  let webSignIn: OidcWebSignIn | undefined;
  try {
    const sso = opts.sso ?? ssoFromSpec(state.fleet.spec.auth);
    if (sso)
      webSignIn = new OidcWebSignIn({
        ...sso,
        store: state.store,
        clock,
        timers,
        log,
      });
    const app = await createHttp(
      opts,
      { tokens: state.auth, sessions: state.consoleSessions },
      log,
    );
    metrics.attach(app, state);
    metaRoutes(app, state);
    signInRoutes(app, state, { secure: Boolean(opts.https) });
    userRoutes(app, state);
    serverRoutes(app, state);
    rolloutRoutes(app, state);
    sessionRoutes(app, state);
    auditRoutes(app, state);
    if (webSignIn) ssoRoutes(app, webSignIn);
    agentRoutes(app, state, {
      pollWaitMs: opts.pollWaitMs ?? POLL_WAIT_MS,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
    });
    totpRoutes(app, state);
    const web = opts.webSignIn ?? webSignIn;
    // A sign-in's groups are in the store once its result is out: where they decide groups,
    // every server's sets follow with the next bundle (the agent of the server the user
    // connects to has set its own already). Another controller's sign-in moves the change feed.
    web?.onResult((r) => {
      if (r.ok && ssoMapsGroups(state.fleet.spec)) state.refreshInBackground();
    });
    authRoutes(
      app,
      state,
      new SignIns({
        ...(web ? { web } : {}),
        now: () => clock.now().getTime(),
        audit: (entry) => state.store.audit(entry),
        log: (line) => log(`sign-in: ${line}`),
        pendingMs: () => (state.fleet.spec.auth?.pendingSeconds ?? 180) * 1000,
        groupsFor: (user) => sessionGroupsFor(state, user),
      }),
      {
        ...(opts.authWaitMs !== undefined ? { waitMs: opts.authWaitMs } : {}),
        requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      },
    );
    consoleRoutes(app, state, {
      clock,
      timers,
      // The page's <meta name="csrf-token">: the caller's console session's (none for a token).
      csrfToken: (req) => req.who?.session?.csrfToken,
    });
    await state.refresh();
    await app.ready();
    await sink?.start();
    await state.start(opts.watchIntervalMs ?? 200);
    return {
      app,
      metrics,
      ...(webSignIn ? { webSignIn } : {}),
      refresh: () => state.refresh(),
      reopenAuditLog: () => sink?.reopen(),
      async close() {
        webSignIn?.close();
        await state.close();
        await app.close();
        // After the server: the last requests' entries are shipped too.
        await sink?.stop();
        await state.fleet.close();
      },
    };
  } catch (err) {
    webSignIn?.close();
    await sink?.stop().catch(() => undefined);
    await state.close();
    await state.fleet.close();
    throw err;
  }
}

/**
 * The web sign-in the spec's `auth.sso` asks for, read at start (a changed provider needs a
 * controller restart). A sign-in lives as long as OpenVPN holds the client for it.
 */
function ssoFromSpec(auth: FleetSpec['auth']): ControllerOptions['sso'] {
  const sso = auth?.sso;
  if (!sso) return undefined;
  const { publicUrl, ...settings } = sso;
  return { settings, publicUrl, pendingTtlMs: auth.pendingSeconds * 1000 };
}

/**
 * The groups a user signed in just now is in for the session (core/session-groups.ts), read
 * from the store where the sign-in put them; undefined when sign-ins do not decide groups. A
 * user deleted meanwhile is in none (their server has no ccd file for them either).
 */
async function sessionGroupsFor(
  state: ControllerState,
  user: string,
): Promise<string[] | undefined> {
  const spec = state.fleet.spec;
  if (!ssoMapsGroups(spec)) return undefined;
  const found = await state.store.getUser(user);
  return found ? effectiveGroups(spec, found) : [];
}
