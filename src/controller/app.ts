/**
 * The controller: the admin API, the agents' long-poll and report endpoints, and the loop that
 * notices changes (the CLI writing the store, fleet.yaml edits) and wakes the agents.
 *
 * Change detection: every `watchIntervalMs` (200 ms) the controller reads PRAGMA data_version,
 * which moves whenever another connection — a CLI process — commits to fleet.db, and stats
 * fleet.yaml. Either change rebuilds every server's bundle from one snapshot; a directive whose
 * token changed wakes that server's waiting polls at once. The controller's own writes (admin
 * API, agent reports) do not move its data_version, so each such handler rebuilds directly.
 *
 * Stale agents: a server with no report for `staleAfterMs` (10 s) is shown `stale: true`, and
 * its sessions are ignored when deciding evictions (a silent server may have lost them, and its
 * agent would not hear the directive anyway). Its sessions stay in the table and in
 * /v1/sessions, flagged stale, until its agent reports again.
 */
import swagger from '@fastify/swagger';
import fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifySchemaValidationError,
} from 'fastify';
import { statSync } from 'node:fs';
import type { AgentReport, Directive } from '../agent/protocol.js';
import { POLL_WAIT_MS } from '../agent/protocol.js';
import { FleetError, NotFound } from '../errors.js';
import type { Bundle } from '../render/bundle.js';
import { type Clock, Fleet } from '../service/fleet.js';
import { openWatchedFleet } from '../service/open.js';
import { loadSpec } from '../spec/validate.js';
import type { AuditEntry, ChangeFeed, UserStatus } from '../store/types.js';
import { bearerToken, sameToken, tokenDigest } from './auth.js';
import {
  type SessionView,
  STALE_AFTER_MS,
  sessionView,
  directiveToken,
  evictions,
  isStale,
  sessionChanges,
} from './directives.js';
import { Forbidden, Unauthorized, Unavailable } from './http-errors.js';
import { AuditBudget, type KnownUser, admitSessions } from './reports.js';
import * as S from './schemas.js';

export const ADMIN_ACTOR = 'api:admin';

type Scope = 'none' | 'admin' | 'agent';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; routes without it need the admin token. */
    auth?: Scope;
  }
  interface FastifyRequest {
    /** The server whose agent token authenticated this request. */
    agentServer?: string;
  }
}

export interface ControllerOptions {
  fleetDir: string;
  /** Where each server's bundle lives on that server (the rendered config `cd`s there). */
  baseDir: (server: string) => string;
  adminToken: string;
  /** Each server's agent token; default: `Fleet.agentToken`. */
  serverToken?: (server: string) => string;
  clock?: Clock;
  /** How long a poll waits for a change before answering 204. */
  pollWaitMs?: number;
  /** How often to look for changes made by other processes. */
  watchIntervalMs?: number;
  staleAfterMs?: number;
  /** Serve HTTPS (needed for TCP on anything but loopback). */
  https?: { cert: string | Buffer; key: string | Buffer };
  /** One-line log messages; default: standard error. */
  log?: (line: string) => void;
  /** Open connections beyond this are refused (default 1024): a flood cannot exhaust fds. */
  maxConnections?: number;
  /** Time a client has to send its whole request, headers and body (default 10 s). */
  requestTimeoutMs?: number;
  /** Audit entries one server's reports may write at once, and refilled per second. */
  auditBurst?: number;
  auditPerSecond?: number;
}

export interface Controller {
  app: FastifyInstance;
  /** Recomputes bundles and directives now (what the watcher does on a change). */
  refresh(): Promise<void>;
  /** Answers waiting polls with 204, stops the watcher, the server and the store. */
  close(): Promise<void>;
}

export type { SessionView } from './directives.js';

export interface ServerView {
  name: string;
  site: string;
  draining: boolean;
  stale: boolean;
  health: Record<string, unknown> | null;
  reportedAt: string | null;
  appliedDigest: string | null;
  currentDigest: string;
  upToDate: boolean;
  sessions: number;
}

interface Waiter {
  done(directive: Served | undefined): void;
}

/** A directive and its JSON, serialised once per version however many polls it answers. */
export interface Served {
  directive: Directive;
  json: string;
}

const HOUR_MS = 3_600_000;

const systemClock: Clock = { now: () => new Date() };

class ControllerCore {
  fleet: Fleet;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly staleAfterMs: number;
  private readonly adminDigest: Buffer;
  private agentDigests = new Map<string, Buffer>();
  private bundles = new Map<string, Bundle>();
  readonly directives = new Map<string, Served>();
  /** At most one poll per server waits: a newer one answers the older (204). */
  private readonly waiters = new Map<string, Waiter>();
  private readonly auditBudgets = new Map<string, AuditBudget>();
  /** When each server's refused sessions were last logged (one line a minute per server). */
  private readonly refusalLoggedAt = new Map<string, number>();
  private lastPruneAt = 0;
  /** Evictions already written to the audit log (server, user, since). */
  private issuedEvictions = new Set<string>();
  /** The server each user was last seen connecting to, to tell a move from a connect. */
  private readonly lastServer = new Map<string, string>();
  private staleKey = '';
  private readonly changes: ChangeFeed;
  private dataVersion: string | number;
  private lastRefreshAt: number;
  private specStamp: string;
  private lastSpecProblem = '';
  private lastBuildProblem = '';
  private requested = 0;
  private built = 0;
  private building: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  closed = false;

  constructor(private readonly opts: ControllerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? ((line) => process.stderr.write(`controller: ${line}\n`));
    this.staleAfterMs = opts.staleAfterMs ?? STALE_AFTER_MS;
    ({ fleet: this.fleet, changes: this.changes } = openWatchedFleet(opts.fleetDir, {
      clock: this.clock,
      actor: ADMIN_ACTOR,
    }));
    this.lastRefreshAt = this.clock.now().getTime();
    this.adminDigest = tokenDigest(opts.adminToken);
    this.specStamp = this.readSpecStamp();
    this.dataVersion = this.changes.version();
    this.loadAgentTokens();
    const newestFirst = [...this.fleet.store.listSessions()].sort((a, b) =>
      a.since < b.since ? 1 : -1,
    );
    for (const s of newestFirst)
      if (!this.lastServer.has(s.user)) this.lastServer.set(s.user, s.server);
  }

  get store() {
    return this.fleet.store;
  }

  start(): void {
    this.pruneAudit();
    this.timer = setInterval(() => this.tick(), this.opts.watchIntervalMs ?? 200);
    this.timer.unref();
  }

  private loadAgentTokens(): void {
    const tokenOf = this.opts.serverToken ?? ((s: string) => this.fleet.agentToken(s));
    this.agentDigests = new Map(this.fleet.serverNames().map((s) => [s, tokenDigest(tokenOf(s))]));
  }

  // ---- auth ----

  /** Which role a bearer token has; every candidate is compared, in constant time each. */
  identify(header: string | undefined): { admin: boolean; agent?: string } {
    const token = bearerToken(header);
    if (!token) throw new Unauthorized('missing bearer token (Authorization: Bearer TOKEN)');
    const presented = tokenDigest(token);
    const admin = sameToken(presented, this.adminDigest);
    let agent: string | undefined;
    for (const [server, digest] of this.agentDigests)
      if (sameToken(presented, digest)) agent = server;
    if (!admin && agent === undefined) throw new Unauthorized('invalid token');
    return agent === undefined ? { admin } : { admin, agent };
  }

  // ---- change detection ----

  private readSpecStamp(): string {
    try {
      const st = statSync(Fleet.specPath(this.opts.fleetDir));
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  private tick(): void {
    if (this.closed) return;
    try {
      this.checkSpec();
      this.pruneAudit();
      const version = this.changes.version();
      const now = this.clock.now().getTime();
      // Also re-render every hour without any change: the snapshot re-issues the CRL well
      // before its nextUpdate, and an expired CRL would lock every user out.
      if (version !== this.dataVersion || now - this.lastRefreshAt > HOUR_MS) {
        this.dataVersion = version;
        this.lastRefreshAt = now;
        void this.refresh();
      } else if (this.staleSetKey() !== this.staleKey) {
        this.recomputeDirectives();
      }
    } catch (err) {
      this.log(`watcher: ${oneLine(err)}`);
    }
  }

  /** Reloads fleet.yaml when it changed; a broken file keeps the last good spec in service. */
  private checkSpec(): void {
    const stamp = this.readSpecStamp();
    if (stamp === this.specStamp) return;
    this.specStamp = stamp;
    let spec;
    try {
      spec = loadSpec(Fleet.specPath(this.opts.fleetDir));
    } catch (err) {
      const problem = oneLine(err);
      if (problem !== this.lastSpecProblem)
        this.log(`fleet.yaml is invalid, still serving the last good spec: ${problem}`);
      this.lastSpecProblem = problem;
      return;
    }
    this.lastSpecProblem = '';
    this.fleet = this.fleet.withSpec(spec);
    this.loadAgentTokens();
    this.log('fleet.yaml reloaded');
    void this.refresh();
  }

  /** Deletes audit entries older than the spec's retention, at start and then hourly. */
  pruneAudit(): number {
    const now = this.clock.now();
    if (this.lastPruneAt && now.getTime() - this.lastPruneAt < HOUR_MS) return 0;
    this.lastPruneAt = now.getTime();
    const days = this.fleet.spec.audit.retentionDays;
    const removed = this.store.pruneAudit(new Date(now.getTime() - days * 86_400_000));
    if (removed) this.log(`audit: removed ${removed} entries older than ${days} days`);
    return removed;
  }

  get specProblem(): string | undefined {
    return this.lastSpecProblem || undefined;
  }

  /**
   * Rebuilds bundles and directives. Concurrent callers share a build, and a call made while a
   * build runs gets a fresh one after it, so no change is missed.
   */
  async refresh(): Promise<void> {
    const want = ++this.requested;
    while (this.built < want && !this.closed) {
      if (this.building) {
        await this.building;
        continue;
      }
      this.building = this.buildOnce();
      try {
        await this.building;
      } finally {
        this.building = undefined;
      }
    }
  }

  private async buildOnce(): Promise<void> {
    const generation = this.requested;
    try {
      const bundles = await this.fleet.bundlesFor(this.opts.baseDir);
      this.bundles = new Map(bundles.map((b) => [b.server, b]));
      this.lastBuildProblem = '';
    } catch (err) {
      const problem = oneLine(err);
      if (problem !== this.lastBuildProblem)
        this.log(`cannot render bundles, still serving the last ones: ${problem}`);
      this.lastBuildProblem = problem;
    }
    this.built = generation;
    if (!this.closed) this.recomputeDirectives();
  }

  private staleServers(now: Date): Set<string> {
    const reported = new Map(this.store.listServerStates().map((s) => [s.name, s.reportedAt]));
    return new Set(
      this.fleet
        .serverNames()
        .filter((name) => isStale(reported.get(name), now, this.staleAfterMs)),
    );
  }

  private staleSetKey(): string {
    return [...this.staleServers(this.clock.now())].sort().join(',');
  }

  /** Directives from the current bundles, sessions and drain flags; wakes changed servers. */
  recomputeDirectives(): void {
    const now = this.clock.now();
    const servers = this.fleet.serverNames();
    const known = new Set(servers);
    const states = new Map(this.store.listServerStates().map((s) => [s.name, s]));
    const stale = this.staleServers(now);
    this.staleKey = [...stale].sort().join(',');
    const sessions = this.store.listSessions().filter((s) => known.has(s.server));
    const evict = evictions(sessions, stale);
    const issued = new Set<string>();
    const fresh: AuditEntry[] = [];
    for (const server of servers) {
      const bundle = this.bundles.get(server);
      if (!bundle) continue;
      const list = evict.get(server) ?? [];
      for (const e of list) {
        const key = `${server}\0${e.user}\0${e.since}`;
        issued.add(key);
        if (!this.issuedEvictions.has(key))
          fresh.push({
            at: now.toISOString(),
            actor: 'controller',
            action: 'session.evict',
            subject: e.user,
            detail: { server, since: e.since },
          });
      }
      const drain = states.get(server)?.draining ?? false;
      const token = directiveToken(bundle.digest, list, drain);
      if (this.directives.get(server)?.directive.token === token) continue;
      const directive: Directive = {
        token,
        bundle: { digest: bundle.digest, files: bundle.files },
        evict: list,
        drain,
      };
      const served = { directive, json: JSON.stringify(directive) };
      this.directives.set(server, served);
      this.wake(server, served);
    }
    this.issuedEvictions = issued;
    if (fresh.length) this.store.transaction(() => fresh.forEach((e) => this.store.audit(e)));
  }

  // ---- long-poll ----

  private wake(server: string, served: Served | undefined): void {
    this.waiters.get(server)?.done(served);
  }

  /** How many polls wait now (one per server at most). */
  get waitingPolls(): number {
    return this.waiters.size;
  }

  /**
   * Resolves with the next directive of `server`, or undefined after `waitMs` or on close. A
   * real agent holds one poll at a time; a second one (a restarted agent, or a stolen token
   * opening hundreds) answers the one waiting before, so each change is sent once per server.
   */
  waitForChange(server: string, waitMs: number, reply: FastifyReply): Promise<Served | undefined> {
    this.waiters.get(server)?.done(undefined);
    return new Promise((resolve) => {
      const onClose = () => waiter.done(undefined);
      const waiter: Waiter = {
        done: (served) => {
          clearTimeout(timer);
          if (this.waiters.get(server) === waiter) this.waiters.delete(server);
          reply.raw.off('close', onClose);
          resolve(served);
        },
      };
      const timer = setTimeout(() => waiter.done(undefined), waitMs);
      reply.raw.on('close', onClose);
      this.waiters.set(server, waiter);
    });
  }

  // ---- agent reports ----

  /**
   * Records a server's report. Sessions that cannot be real (see admitSessions) are left out
   * and logged; the audit entries a report writes are limited per server (AuditBudget).
   */
  report(server: string, report: AgentReport): void {
    const now = this.clock.now();
    const at = now.toISOString();
    const users = new Map<string, KnownUser>(
      this.fleet
        .listUsers()
        .map((u) => [u.name, { ipv4: u.ipv4, ipv6: u.ipv6, enabled: u.status === 'enabled' }]),
    );
    const { accepted, refused } = admitSessions(report.sessions, (n) => users.get(n), now);
    if (refused.length) this.logRefused(server, refused, now);
    const before = this.store.listSessions(server);
    const { connected, disconnected } = sessionChanges(before, accepted);
    const budget = this.auditBudget(server, now);
    const suppressed = budget.drainSuppressed(now);
    const audit = (action: string, subject: string, detail: Record<string, unknown>) => {
      if (budget.take(1, now))
        this.store.audit({ at, actor: `agent:${server}`, action, subject, detail });
    };
    this.store.transaction(() => {
      if (suppressed)
        this.store.audit({
          at,
          actor: 'controller',
          action: 'audit.suppressed',
          subject: server,
          detail: { entries: suppressed, why: "over the server's audit rate" },
        });
      this.store.recordReport(server, {
        at,
        health: { ...report.health },
        ...(report.bundleDigest ? { bundleDigest: report.bundleDigest } : {}),
        sessions: accepted.map((s) => ({
          user: s.user,
          realAddress: s.realAddress,
          ...(s.ipv4 ? { ipv4: s.ipv4 } : {}),
          ...(s.ipv6 ? { ipv6: s.ipv6 } : {}),
          since: s.since,
          bytesIn: s.bytesIn,
          bytesOut: s.bytesOut,
          clientId: s.clientId,
        })),
      });
      for (const s of disconnected)
        audit('session.disconnect', s.user, {
          server,
          since: s.since,
          realAddress: s.realAddress,
          bytesIn: s.bytesIn,
          bytesOut: s.bytesOut,
        });
      for (const s of connected) {
        audit('session.connect', s.user, {
          server,
          since: s.since,
          realAddress: s.realAddress,
          ...(s.ipv4 ? { ipv4: s.ipv4 } : {}),
          ...(s.ipv6 ? { ipv6: s.ipv6 } : {}),
        });
        const previous = this.lastServer.get(s.user);
        if (previous !== undefined && previous !== server)
          audit('session.move', s.user, { from: previous, to: server, since: s.since });
        this.lastServer.set(s.user, server);
      }
    });
    this.recomputeDirectives();
  }

  private auditBudget(server: string, now: Date): AuditBudget {
    let budget = this.auditBudgets.get(server);
    if (!budget) {
      // 2,000 at once covers a whole server's users moving together; 20/s is ~1.7 M a day.
      budget = new AuditBudget(this.opts.auditBurst ?? 2000, this.opts.auditPerSecond ?? 20, now);
      this.auditBudgets.set(server, budget);
    }
    return budget;
  }

  private logRefused(server: string, refused: { user: string; reason: string }[], now: Date) {
    const last = this.refusalLoggedAt.get(server) ?? 0;
    if (now.getTime() - last < 60_000) return;
    this.refusalLoggedAt.set(server, now.getTime());
    const first = refused[0];
    this.log(
      `report of ${server}: ${refused.length} session(s) refused, e.g. ${JSON.stringify(first.user)}: ${first.reason}`,
    );
  }

  // ---- views ----

  sessions(): SessionView[] {
    const stale = this.staleServers(this.clock.now());
    return this.store.listSessions().map((s) => sessionView(s, stale.has(s.server)));
  }

  servers(): ServerView[] {
    const now = this.clock.now();
    const states = new Map(this.store.listServerStates().map((s) => [s.name, s]));
    const counts = new Map<string, number>();
    for (const s of this.store.listSessions())
      counts.set(s.server, (counts.get(s.server) ?? 0) + 1);
    return this.fleet.spec.sites.flatMap((site) =>
      site.servers.map((server) => {
        const state = states.get(server.name);
        const current = this.bundles.get(server.name)?.digest ?? '';
        return {
          name: server.name,
          site: site.name,
          draining: state?.draining ?? false,
          stale: isStale(state?.reportedAt, now, this.staleAfterMs),
          health: state?.health ?? null,
          reportedAt: state?.reportedAt ?? null,
          appliedDigest: state?.bundleDigest ?? null,
          currentDigest: current,
          upToDate: state?.bundleDigest === current,
          sessions: counts.get(server.name) ?? 0,
        };
      }),
    );
  }

  server(name: string): ServerView {
    const view = this.servers().find((s) => s.name === name);
    if (!view) throw new NotFound(`no server named ${name} in fleet.yaml`);
    return view;
  }

  setDraining(name: string, draining: boolean): ServerView {
    this.server(name);
    this.store.setDraining(name, draining, this.clock.now(), ADMIN_ACTOR);
    this.recomputeDirectives();
    return this.server(name);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const server of this.waiters.keys()) this.wake(server, undefined);
    await this.building;
  }
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const lines = message.split('\n').filter(Boolean);
  return lines.length > 1 ? `${lines[0]} (and ${lines.length - 1} more)` : (lines[0] ?? '');
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
  }
  return new Error(`${field}: ${message}`);
}

export async function buildController(opts: ControllerOptions): Promise<Controller> {
  const core = new ControllerCore(opts);
  try {
    return await assemble(core, opts);
  } catch (err) {
    await core.close();
    core.fleet.close();
    throw err;
  }
}

async function assemble(core: ControllerCore, opts: ControllerOptions): Promise<Controller> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`controller: ${line}\n`));
  const pollWaitMs = opts.pollWaitMs ?? POLL_WAIT_MS;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  // Node checks request and header deadlines only this often (its default: every 30 s).
  const serverOptions = {
    connectionsCheckingInterval: Math.min(1000, requestTimeoutMs),
    headersTimeout: requestTimeoutMs,
  };
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
      if (err.httpStatus >= 500) log(err.stack ?? err.message);
      return reply.code(err.httpStatus).send({ error: oneLine(err) });
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
      const who = core.identify(req.headers.authorization);
      if (scope === 'admin' && !who.admin)
        throw new Forbidden('an agent token can call only /v1/agent/*');
      if (scope === 'agent') {
        if (who.agent === undefined) throw new Forbidden('/v1/agent/* needs a server token');
        req.agentServer = who.agent;
      }
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
          'Admin API (admin token) and agent API (per-server token, see src/agent/protocol.ts). ' +
          'Errors are {"error": "one line"}.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  /**
   * Changes that take something away (revoke, disable, delete, groups) answer only once every
   * server's new bundle is built and the agents are woken: when the call returns, the change is
   * on its way.
   */
  const afterWrite = () => core.refresh();
  /**
   * A new user takes nothing away from anyone: answer once stored and build in the background
   * (requests meanwhile share one build); the servers have the user ~0.2–0.6 s later.
   */
  const afterAdd = () => void core.refresh();
  const users = ['users'];

  // ---- public ----

  app.get(
    '/v1/health',
    {
      config: { auth: 'none' },
      schema: {
        summary: 'liveness; no token needed',
        tags: ['meta'],
        security: [],
        response: {
          200: {
            type: 'object',
            properties: { ok: { type: 'boolean' }, specProblem: { type: 'string' } },
            required: ['ok'],
          },
        },
      },
    },
    // Without a token it says only whether the controller is up: the spec's problems name
    // files, fields and values that are nobody else's business.
    (req) => {
      let admin = false;
      try {
        admin = core.identify(req.headers.authorization).admin;
      } catch {
        // no token, or not the admin's: the short answer
      }
      return admin && core.specProblem ? { ok: true, specProblem: core.specProblem } : { ok: true };
    },
  );

  app.get(
    '/v1/openapi.json',
    {
      config: { auth: 'none' },
      schema: { summary: 'this document', tags: ['meta'], security: [], hide: true },
    },
    () => app.swagger(),
  );

  // ---- users ----

  app.get(
    '/v1/users',
    {
      schema: {
        summary: 'list users',
        tags: users,
        response: { 200: { type: 'array', items: S.userSchema }, ...S.errorResponses },
      },
    },
    () => core.fleet.listUsers(),
  );

  app.post(
    '/v1/users',
    {
      schema: {
        summary:
          'add a user (addresses from the pools unless pinned; a certificate is issued). Answers once the user is stored; the servers get the user within about a second',
        tags: users,
        body: S.newUserBody,
        response: { 201: S.userSchema, ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const body = req.body as { name: string; groups?: string[]; ipv4?: string; ipv6?: string };
      const [user] = await core.fleet.addUsers([
        {
          name: body.name,
          groups: body.groups ?? [],
          ...(body.ipv4 !== undefined ? { ipv4: body.ipv4 } : {}),
          ...(body.ipv6 !== undefined ? { ipv6: body.ipv6 } : {}),
        },
      ]);
      afterAdd();
      return reply.code(201).send(user);
    },
  );

  app.get(
    '/v1/users/:name',
    {
      schema: {
        summary: 'one user',
        tags: users,
        params: S.userNameParams,
        response: { 200: S.userSchema, ...S.errorResponses },
      },
    },
    (req) => core.fleet.getUser((req.params as { name: string }).name),
  );

  const statusVerbs: [string, UserStatus, string][] = [
    ['disable', 'disabled', "refuse the user's connections until enabled again"],
    ['enable', 'enabled', 'allow a disabled user again'],
    ['revoke', 'revoked', "revoke the user's certificate for good"],
  ];
  for (const [verb, status, summary] of statusVerbs) {
    app.post(
      `/v1/users/:name/${verb}`,
      {
        schema: {
          summary,
          tags: users,
          params: S.userNameParams,
          response: { 200: S.userSchema, ...S.errorResponses },
        },
      },
      async (req) => {
        const user = await core.fleet.setStatus((req.params as { name: string }).name, status);
        await afterWrite();
        return user;
      },
    );
  }

  app.put(
    '/v1/users/:name/groups',
    {
      schema: {
        summary: "replace a user's groups",
        tags: users,
        params: S.userNameParams,
        body: S.groupsBody,
        response: { 200: S.userSchema, ...S.errorResponses },
      },
    },
    async (req) => {
      const { groups } = req.body as { groups: string[] };
      const user = core.fleet.setGroups((req.params as { name: string }).name, groups);
      await afterWrite();
      return user;
    },
  );

  app.delete(
    '/v1/users/:name',
    {
      schema: {
        summary: 'delete a user (certificate revoked, addresses quarantined); returns the user',
        tags: users,
        params: S.userNameParams,
        response: { 200: S.userSchema, ...S.errorResponses },
      },
    },
    async (req) => {
      const user = await core.fleet.deleteUser((req.params as { name: string }).name);
      await afterWrite();
      return user;
    },
  );

  app.get(
    '/v1/users/:name/profile',
    {
      schema: {
        summary: "the user's client profile (.ovpn, text) with inline keys",
        tags: users,
        params: S.userNameParams,
        produces: ['text/plain'],
      },
    },
    async (req, reply) => {
      const name = (req.params as { name: string }).name;
      const hadCert = Boolean(core.fleet.getUser(name).certSerial);
      const text = await core.fleet.profile(name);
      // A first profile issues the certificate: a write like any other.
      if (!hadCert) await afterWrite();
      return reply
        .type('text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}.ovpn"`)
        .send(text);
    },
  );

  // ---- sessions, servers, audit ----

  app.get(
    '/v1/sessions',
    {
      schema: {
        summary: 'who is online where (as last reported by each agent)',
        tags: ['sessions'],
        response: { 200: { type: 'array', items: S.sessionSchema }, ...S.errorResponses },
      },
    },
    () => core.sessions(),
  );

  app.get(
    '/v1/servers',
    {
      schema: {
        summary: 'every server: health, last report, bundle digests, drain flag, sessions',
        tags: ['servers'],
        response: { 200: { type: 'array', items: S.serverSchema }, ...S.errorResponses },
      },
    },
    () => core.servers(),
  );

  for (const [verb, draining] of [
    ['drain', true],
    ['undrain', false],
  ] as const) {
    app.post(
      `/v1/servers/:name/${verb}`,
      {
        schema: {
          summary: draining
            ? 'take no new users and move the connected ones to their next remote'
            : 'take users again',
          tags: ['servers'],
          params: S.serverNameParams,
          response: { 200: S.serverSchema, ...S.errorResponses },
        },
      },
      (req) => core.setDraining((req.params as { name: string }).name, draining),
    );
  }

  app.get(
    '/v1/audit',
    {
      schema: {
        summary: 'the newest audit entries first',
        tags: ['audit'],
        querystring: S.auditQuery,
        response: { 200: { type: 'array', items: S.auditSchema }, ...S.errorResponses },
      },
    },
    (req) => core.store.auditLog(Number((req.query as { limit?: string }).limit ?? 100)),
  );

  // ---- agents (src/agent/protocol.ts) ----

  app.get(
    '/v1/agent/poll',
    {
      config: { auth: 'agent' },
      schema: {
        summary:
          "long-poll for this server's directive: at once when it differs from `known`, else 204 after the wait",
        tags: ['agent'],
        querystring: S.pollQuery,
        response: {
          200: S.directiveSchema,
          204: { type: 'null', description: 'nothing changed during the wait' },
          ...S.errorResponses,
        },
      },
    },
    async (req, reply) => {
      const server = req.agentServer!;
      const query = req.query as { known?: string; server?: string };
      if (query.server !== undefined && query.server !== server)
        throw new Forbidden(`this token belongs to server ${server}, not ${query.server}`);
      const current = core.directives.get(server);
      if (!current) throw new Unavailable(`no bundle for ${server} yet: see the controller's log`);
      if (query.known === current.directive.token)
        req.raw.socket?.setTimeout?.(pollWaitMs + requestTimeoutMs);
      const served =
        query.known !== current.directive.token
          ? current
          : await core.waitForChange(server, pollWaitMs, reply);
      if (!served) return reply.code(204).send();
      // The JSON made once per directive: a string with a JSON content type is sent as is.
      return reply.type('application/json; charset=utf-8').send(served.json);
    },
  );

  app.post(
    '/v1/agent/report',
    {
      config: { auth: 'agent' },
      // A server with 20,000 sessions reports ~5 MB; the default 1 MiB would refuse ~5,000.
      bodyLimit: 8 * 1024 * 1024,
      schema: {
        summary: "this server's live sessions and health; replaces its previous report",
        tags: ['agent'],
        body: S.reportBody,
        response: { 204: { type: 'null', description: 'recorded' }, ...S.errorResponses },
      },
    },
    (req, reply) => {
      core.report(req.agentServer!, req.body as AgentReport);
      return reply.code(204).send();
    },
  );

  await core.refresh();
  await app.ready();
  core.start();

  return {
    app,
    refresh: () => core.refresh(),
    async close() {
      await core.close();
      await app.close();
      core.fleet.close();
    },
  };
}
