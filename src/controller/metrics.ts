/**
 * The controller's Prometheus metrics, on `GET /metrics` (admin or metrics token) and on an
 * optional plain listener (src/sys/metrics-http.ts).
 *
 * One Registry per controller, never prom-client's global one: tests build many controllers in
 * one process, and a global registry would refuse the second set of names. Gauges are filled at
 * scrape time by their `collect` callbacks from one view of the state taken when the scrape
 * starts; counters move where things happen (ControllerEvents, the onResponse hook).
 *
 * Labels are bounded: server and site come from fleet.yaml, route is the route's pattern
 * (`/v1/users/:name`, never the raw URL: a scan of random URLs would otherwise make a series per
 * URL), status and method are HTTP's. Nothing names a user unless the operator asks for it
 * (`perUser`): the OpenVPN exporters' users learnt that a label per user can take a Prometheus
 * down at a few thousand users.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServerView, SessionView } from '../api/index.js';
import type { MetricsText } from '../sys/metrics-http.js';
import type { Clock } from '../sys/time.js';
import { bearerToken, sameToken, tokenDigest } from './auth.js';
import { Forbidden, Unauthorized } from './http-errors.js';
import type { ControllerState } from './state.js';

/** What the state tells the metrics as it happens. */
export interface ControllerEvents {
  /** An eviction the controller decided for the first time (one per user and session). */
  evictionIssued(server: string): void;
  /** A server's drain flag changed. */
  drainChanged(server: string, draining: boolean): void;
}

export interface MetricsOptions {
  /** A bearer token that may read /metrics besides the admin token (--metrics-token-file). */
  token?: string;
  /** Series with a `user` label (--metrics-per-user): one per connected user. */
  perUser?: boolean;
}

/** The route label of a request no route matched (404s of scans, typos). */
export const UNMATCHED_ROUTE = 'unmatched';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const USER_STATUSES = ['enabled', 'disabled', 'revoked'] as const;
const CERT_KINDS = ['ca', 'server', 'client'] as const;
/** The label of each state a user's current certificate can be in (`pki status` words). */
const CLIENT_CERT_STATES = [
  ['valid', 'valid'],
  ['renewal_due', 'renewal due'],
  ['expired', 'EXPIRED'],
] as const;

/** What one scrape reads of the state, once, for every gauge. */
interface ScrapeView {
  nowMs: number;
  servers: ServerView[];
  sessions: SessionView[];
  figures: FleetFigures;
  storeBytes: number;
}

/** Figures of the store that change only with the fleet: cached until the next rebuild. */
interface FleetFigures {
  users: Map<string, number>;
  /**
   * Earliest notAfter of the certificates in use (trusted CAs, servers' and users' current
   * certificates, not revoked), by kind, in Unix seconds.
   */
  earliestExpiry: Map<string, number>;
  /** Users' current certificates by `pki status` state (valid, renewal due, EXPIRED). */
  clientStates: Map<string, number>;
  revoked: Map<string, number>;
  crlNextUpdate?: number;
}

export class ControllerMetrics implements ControllerEvents {
  readonly registry = new Registry();
  private state?: ControllerState;
  private view?: ScrapeView;
  private figures?: Promise<FleetFigures>;
  private readonly tokenDigest?: Buffer;
  private readonly evictions: Counter<'server'>;
  private readonly drains: Counter<'server'>;
  private readonly undrains: Counter<'server'>;
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route' | 'method' | 'status'>;

  constructor(
    private readonly clock: Clock,
    private readonly opts: MetricsOptions = {},
  ) {
    if (opts.token !== undefined) this.tokenDigest = tokenDigest(opts.token);
    const registers = [this.registry];
    const view = () => this.currentView();

    const perServer = (
      name: string,
      help: string,
      value: (s: ServerView, v: ScrapeView) => number,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['server', 'site'],
        registers,
        collect() {
          this.reset();
          const v = view();
          if (!v) return;
          for (const s of v.servers) this.set({ server: s.name, site: s.site }, value(s, v));
        },
      });
    perServer(
      'ovpn_fleet_server_sessions',
      'Sessions on the server, as its agent last reported them',
      (s) => s.sessions,
    );
    perServer(
      'ovpn_fleet_server_last_report_age_seconds',
      "Seconds since the server's agent last reported (+Inf: never)",
      (s, v) =>
        s.reportedAt === null ? Infinity : Math.max(0, (v.nowMs - Date.parse(s.reportedAt)) / 1000),
    );
    perServer(
      'ovpn_fleet_server_up',
      'Whether the server is fresh: its agent reported recently and could read its sessions',
      (s) => Number(!s.stale),
    );
    perServer(
      'ovpn_fleet_server_stale',
      'Whether the server is stale (no report for the stale window, or sessions unreadable)',
      (s) => Number(s.stale),
    );
    perServer('ovpn_fleet_server_draining', "Whether the server's drain flag is set", (s) =>
      Number(s.draining),
    );
    perServer(
      'ovpn_fleet_server_healthy',
      'Whether the server is fresh and its agent says OpenVPN, routing and the ruleset are up',
      (s) =>
        Number(!s.stale && !!s.health && s.health.openvpn && s.health.routing && s.health.ruleset),
    );
    perServer(
      'ovpn_fleet_server_bundle_up_to_date',
      'Whether the bundle the agent applied is the one the controller serves now',
      (s) => Number(s.upToDate),
    );

    new Gauge({
      name: 'ovpn_fleet_users',
      help: 'Users by status',
      labelNames: ['status'],
      registers,
      collect() {
        this.reset();
        const v = view();
        if (!v) return;
        for (const status of USER_STATUSES) this.set({ status }, v.figures.users.get(status) ?? 0);
      },
    });
    new Gauge({
      name: 'ovpn_fleet_crl_next_update_timestamp_seconds',
      help: "The CRL's nextUpdate as a Unix time: OpenVPN refuses every client once it passes",
      registers,
      collect() {
        this.reset();
        const next = view()?.figures.crlNextUpdate;
        if (next !== undefined) this.set(next);
      },
    });
    new Gauge({
      name: 'ovpn_fleet_client_certificates',
      help: "Users' current certificates by state: valid, renewal_due (inside pki.renewBeforeDays, not renewed yet), expired",
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const v = view();
        if (!v) return;
        for (const [label, state] of CLIENT_CERT_STATES)
          this.set({ state: label }, v.figures.clientStates.get(state) ?? 0);
      },
    });
    new Gauge({
      name: 'ovpn_fleet_certificate_earliest_expiry_timestamp_seconds',
      help: "Earliest notAfter of the certificates in use (trusted CAs, servers' and users' current ones), by kind, as a Unix time",
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const v = view();
        if (!v) return;
        for (const [kind, at] of v.figures.earliestExpiry) this.set({ kind }, at);
      },
    });
    new Counter({
      name: 'ovpn_fleet_revocations_total',
      help: 'Certificates revoked, by kind (the store keeps every one, so this only grows)',
      labelNames: ['kind'],
      registers,
      collect() {
        // The store's count, by whichever process revoked (this API or the CLI): a counter
        // can only be reset and increased, which is what this is.
        this.reset();
        const v = view();
        if (!v) return;
        for (const kind of CERT_KINDS) this.inc({ kind }, v.figures.revoked.get(kind) ?? 0);
      },
    });
    new Gauge({
      name: 'ovpn_fleet_store_size_bytes',
      help: 'Size of the store on disk (SQLite: the database file and its write-ahead log; PostgreSQL: the database)',
      registers,
      collect() {
        this.reset();
        const v = view();
        if (v) this.set(v.storeBytes);
      },
    });

    this.evictions = new Counter({
      name: 'ovpn_fleet_evictions_total',
      help: "Sessions the controller told a server's agent to end: the user has a newer one elsewhere",
      labelNames: ['server'],
      registers,
    });
    this.drains = new Counter({
      name: 'ovpn_fleet_drains_total',
      help: 'Times a server was set draining',
      labelNames: ['server'],
      registers,
    });
    this.undrains = new Counter({
      name: 'ovpn_fleet_undrains_total',
      help: 'Times a server was taken out of draining',
      labelNames: ['server'],
      registers,
    });
    this.requests = new Counter({
      name: 'ovpn_fleet_api_requests_total',
      help: `API requests by route pattern ("${UNMATCHED_ROUTE}": no route), method and status`,
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'ovpn_fleet_api_request_duration_seconds',
      help: 'Time to answer an API request (the agents long-poll: up to ~25 s is normal there)',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });

    if (opts.perUser) {
      const perSession = (name: string, help: string, value: (s: SessionView) => number) =>
        new Gauge({
          name,
          help,
          labelNames: ['user', 'server', 'site'],
          registers,
          collect() {
            this.reset();
            const v = view();
            if (!v) return;
            const siteOf = new Map(v.servers.map((s) => [s.name, s.site]));
            for (const s of v.sessions)
              this.set(
                { user: s.user, server: s.server, site: siteOf.get(s.server) ?? '' },
                value(s),
              );
          },
        });
      perSession('ovpn_fleet_user_connected', 'Each connected user (--metrics-per-user)', () => 1);
      perSession(
        'ovpn_fleet_user_received_bytes',
        'Bytes the server received from the user in the current session (--metrics-per-user)',
        (s) => s.bytesIn,
      );
      perSession(
        'ovpn_fleet_user_sent_bytes',
        'Bytes the server sent to the user in the current session (--metrics-per-user)',
        (s) => s.bytesOut,
      );
    }
  }

  evictionIssued(server: string): void {
    this.evictions.inc({ server });
  }

  drainChanged(server: string, draining: boolean): void {
    (draining ? this.drains : this.undrains).inc({ server });
  }

  /**
   * Counts every API request (an onResponse hook) and serves GET /metrics. Call before the
   * routes are added, so that the hook sees them all.
   */
  attach(app: FastifyInstance, state: ControllerState): void {
    this.state = state;
    state.onChange((what) => {
      if (what === 'fleet') this.figures = undefined;
    });
    app.addHook('onResponse', (req, reply, done) => {
      const labels = {
        // The pattern the request matched; a 404 has none, and its URL is never a label.
        route: req.routeOptions.url ?? UNMATCHED_ROUTE,
        method: METHODS.has(req.method) ? req.method : 'other',
        status: String(reply.statusCode),
      };
      this.requests.inc(labels);
      this.latency.observe(labels, reply.elapsedTime / 1000);
      done();
    });
    app.get(
      '/metrics',
      {
        // Checked here rather than by a role: the admin token or the metrics token.
        config: { auth: 'none' },
        schema: { hide: true },
        onRequest: (req: FastifyRequest, _reply, done) => {
          try {
            this.authorize(req.headers.authorization, state);
            done();
          } catch (err) {
            done(err as Error);
          }
        },
      },
      async (_req, reply) => {
        const m = await this.render();
        return reply.type(m.contentType).header('cache-control', 'no-store').send(m.body);
      },
    );
  }

  /** Throws Unauthorized (no or unknown token) or Forbidden (an agent's token). */
  private authorize(header: string | undefined, state: ControllerState): void {
    const token = bearerToken(header);
    if (!token) throw new Unauthorized('missing bearer token (Authorization: Bearer TOKEN)');
    if (this.tokenDigest && sameToken(tokenDigest(token), this.tokenDigest)) return;
    if (!state.auth.identify(header).admin)
      throw new Forbidden('/metrics needs the admin token or the metrics token');
  }

  /** Everything, in Prometheus text format, from one view of the state taken now. */
  async render(): Promise<MetricsText> {
    const state = this.state;
    if (state) {
      this.figures ??= fleetFigures(state);
      const figures = await this.figures.catch((err: unknown) => {
        this.figures = undefined;
        throw err;
      });
      this.view = {
        nowMs: this.clock.now().getTime(),
        servers: await state.servers(),
        sessions: this.opts.perUser ? await state.sessions() : [],
        figures,
        storeBytes: await state.fleet.store.sizeBytes(),
      };
    }
    try {
      return { contentType: this.registry.contentType, body: await this.registry.metrics() };
    } finally {
      this.view = undefined;
    }
  }

  private currentView(): ScrapeView | undefined {
    return this.view;
  }
}

async function fleetFigures(state: ControllerState): Promise<FleetFigures> {
  const users = new Map<string, number>();
  for (const u of await state.fleet.listUsers())
    users.set(u.status, (users.get(u.status) ?? 0) + 1);
  const earliestExpiry = new Map<string, number>();
  const revoked = new Map<string, number>();
  const clientStates = new Map<string, number>();
  let crlNextUpdate: number | undefined;
  for (const row of await state.fleet.pkiStatus()) {
    const at = Date.parse(row.notAfter) / 1000;
    if (row.kind === 'crl') {
      // One CRL per trusted CA: the first to lapse locks out that CA's clients.
      if (!Number.isNaN(at)) crlNextUpdate = Math.min(at, crlNextUpdate ?? Infinity);
    } else if (row.state === 'revoked') {
      revoked.set(row.kind, (revoked.get(row.kind) ?? 0) + 1);
    } else if (row.current && !Number.isNaN(at)) {
      // Superseded certificates expire as planned: only those in use can lock someone out.
      earliestExpiry.set(row.kind, Math.min(at, earliestExpiry.get(row.kind) ?? Infinity));
      if (row.kind === 'client')
        clientStates.set(row.state, (clientStates.get(row.state) ?? 0) + 1);
    }
  }
  return {
    users,
    earliestExpiry,
    revoked,
    clientStates,
    ...(crlNextUpdate !== undefined ? { crlNextUpdate } : {}),
  };
}
