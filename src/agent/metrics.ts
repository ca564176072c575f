/**
 * What an agent counts, and its Prometheus registry. The agent tells an `AgentMetrics` what it
 * decided (a session ended and why, a bundle applied, a ruleset rolled back…); `AgentRegistry`
 * turns that into prom-client series in a registry of its own (never the global one: tests run
 * many agents in one process), served at GET /metrics on the health socket and on the optional
 * `--metrics-listen` listener. Tests hand the agent a recorder instead (testing.ts).
 *
 * No label names a user: reasons, families and the bundle digest's first 12 characters (one
 * series at a time) are the only label values.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SessionReport } from '../api/index.js';
import { type MetricsText, metricsRefusal } from '../sys/metrics-http.js';
import type { HealthAnswer } from './host.js';

/**
 * Why a session ended, as the agent knows it: the client said goodbye (exit notification), it
 * left OpenVPN's status without a word (ping timeout, a client without exit notification,
 * OpenVPN restarted), or the agent ended it: a newer session elsewhere (eviction), the bundle no
 * longer admits the user (disabled, revoked, deleted), or the server drains.
 */
export type DisconnectReason =
  'client' | 'vanished' | 'eviction' | 'killed' | 'disallowed' | 'drain';

/**
 * Why applying a directive failed: refused as unsafe (a path out of the bundle…), an error
 * while applying, nft refused the new ruleset (the previous one stays), or FRR's reload failed.
 */
export type ApplyFailure = 'refused' | 'error' | 'ruleset' | 'frr';

export interface AgentMetrics {
  /** OpenVPN said a client is established (`>CLIENT:ESTABLISHED`). */
  connected(): void;
  disconnected(reason: DisconnectReason, count?: number): void;
  /** Seconds from a client's ESTABLISHED to its host routes being in the route table. */
  routePresent(seconds: number): void;
  /** The bundle in service: applied now (`atMs`), or found on disk at start (no time). */
  bundleApplied(digest: string, atMs?: number): void;
  applyFailed(reason: ApplyFailure): void;
  rulesetRolledBack(): void;
  /** What a reconcile pass changed: routes it added (missing) and removed (orphans). */
  routesReconciled(added: readonly string[], removed: readonly string[]): void;
  /** A long-poll ended: answered (200/204) or not (unreachable, refused, an error status). */
  polled(ok: boolean, atMs: number): void;
  /** The agent moved to the controller given at this index of its --controller list (0 = first). */
  controllerSwitched(index: number): void;
  /** Everything, in Prometheus text format. */
  render(): Promise<MetricsText>;
}

/** Buckets for ESTABLISHED → host route: the hooks take milliseconds, a stuck one seconds. */
const ROUTE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const family = (address: string) => (address.includes(':') ? 'ipv6' : 'ipv4');

export class AgentRegistry implements AgentMetrics {
  readonly registry = new Registry();
  private readonly connects: Counter;
  private readonly disconnects: Counter<'reason'>;
  private readonly routeSeconds: Histogram;
  private readonly appliedAt: Gauge;
  private readonly bundleInfo: Gauge<'digest'>;
  private readonly applyFailures: Counter<'reason'>;
  private readonly rollbacks: Counter;
  private readonly repairs: Counter<'action' | 'family'>;
  private readonly reachable: Gauge;
  private readonly controllerIndex: Gauge;
  private readonly switches: Counter;
  private lastPollOkMs?: number;

  constructor(view: { now(): number; sessions(): number }) {
    const registers = [this.registry];
    this.connects = new Counter({
      name: 'ovpn_fleet_agent_connects_total',
      help: 'Clients OpenVPN reported established',
      registers,
    });
    this.disconnects = new Counter({
      name: 'ovpn_fleet_agent_disconnects_total',
      help: 'Sessions ended, by reason: client, vanished, eviction, killed, disallowed, drain',
      labelNames: ['reason'],
      registers,
    });
    new Gauge({
      name: 'ovpn_fleet_agent_sessions',
      help: 'Sessions on this server now, as the agent reports them',
      registers,
      collect() {
        this.set(view.sessions());
      },
    });
    this.routeSeconds = new Histogram({
      name: 'ovpn_fleet_agent_route_ready_seconds',
      help: "Time from a client's ESTABLISHED to its host routes being in the route table",
      buckets: ROUTE_BUCKETS,
      registers,
    });
    this.appliedAt = new Gauge({
      name: 'ovpn_fleet_agent_bundle_applied_timestamp_seconds',
      help: 'When this agent last applied a bundle, as a Unix time (0: not since it started)',
      registers,
    });
    this.bundleInfo = new Gauge({
      name: 'ovpn_fleet_agent_bundle_info',
      help: 'The bundle in service: 1, with the first 12 characters of its digest',
      labelNames: ['digest'],
      registers,
    });
    this.applyFailures = new Counter({
      name: 'ovpn_fleet_agent_apply_failures_total',
      help: 'Directives not applied, or applied in part, by reason: refused, error, ruleset, frr',
      labelNames: ['reason'],
      registers,
    });
    this.rollbacks = new Counter({
      name: 'ovpn_fleet_agent_ruleset_rollbacks_total',
      help: 'New rulesets rolled back because routing went down within the confirm window',
      registers,
    });
    this.repairs = new Counter({
      name: 'ovpn_fleet_agent_route_mismatches_total',
      help: 'Host routes reconcile found wrong: added (missing for a session), removed (orphans)',
      labelNames: ['action', 'family'],
      registers,
    });
    this.reachable = new Gauge({
      name: 'ovpn_fleet_agent_controller_reachable',
      help: "Whether the agent's last long-poll got an answer from the controller",
      registers,
    });
    this.controllerIndex = new Gauge({
      name: 'ovpn_fleet_agent_controller_index',
      help: 'Which of the --controller endpoints the agent talks to (0: the first, preferred)',
      registers,
    });
    this.switches = new Counter({
      name: 'ovpn_fleet_agent_controller_switches_total',
      help: 'Times the agent moved to another controller (one failed, or the first came back)',
      registers,
    });
    const lastOk = () => this.lastPollOkMs;
    new Gauge({
      name: 'ovpn_fleet_agent_last_poll_success_age_seconds',
      help: 'Seconds since a long-poll last got an answer from the controller (+Inf: never)',
      registers,
      collect() {
        const at = lastOk();
        this.set(at === undefined ? Infinity : Math.max(0, (view.now() - at) / 1000));
      },
    });
  }

  connected(): void {
    this.connects.inc();
  }

  disconnected(reason: DisconnectReason, count = 1): void {
    this.disconnects.inc({ reason }, count);
  }

  routePresent(seconds: number): void {
    this.routeSeconds.observe(seconds);
  }

  bundleApplied(digest: string, atMs?: number): void {
    // One series at a time: the previous digest's goes, or every apply would leave one behind.
    this.bundleInfo.reset();
    this.bundleInfo.set({ digest: digest.slice(0, 12) }, 1);
    if (atMs !== undefined) this.appliedAt.set(atMs / 1000);
  }

  applyFailed(reason: ApplyFailure): void {
    this.applyFailures.inc({ reason });
  }

  rulesetRolledBack(): void {
    this.rollbacks.inc();
  }

  routesReconciled(added: readonly string[], removed: readonly string[]): void {
    for (const a of added) this.repairs.inc({ action: 'added', family: family(a) });
    for (const a of removed) this.repairs.inc({ action: 'removed', family: family(a) });
  }

  controllerSwitched(index: number): void {
    this.controllerIndex.set(index);
    this.switches.inc();
  }

  polled(ok: boolean, atMs: number): void {
    this.reachable.set(Number(ok));
    if (ok) this.lastPollOkMs = atMs;
  }

  async render(): Promise<MetricsText> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** GET /metrics on the health socket: the token when one is set (--metrics-token-file). */
export async function metricsAnswer(
  metrics: AgentMetrics,
  authorization: string | undefined,
  token: string | undefined,
): Promise<HealthAnswer> {
  const refused = metricsRefusal(authorization, token);
  if (refused) return { status: refused.status, body: `${refused.message}\n` };
  const m = await metrics.render();
  return { status: 200, body: m.body, contentType: m.contentType };
}

/** How many sessions of `before` are not in `after` (by client id). */
export function sessionsGone(
  before: readonly SessionReport[],
  after: readonly SessionReport[],
): number {
  const now = new Set(after.map((s) => s.clientId));
  return before.filter((s) => !now.has(s.clientId)).length;
}

/**
 * Times each client from its ESTABLISHED to the moment all its addresses are host routes in the
 * agent's route table. The addresses come with the notification (`ifconfig_pool_remote_ip`,
 * `ifconfig_pool_remote_ip6`, which OpenVPN sets for pool and ccd addresses alike), or else
 * from the next `status`. Usually the route is there already (learn-address runs before
 * OpenVPN announces the client) and the time is how long the table took to show it; a client
 * whose routes do not come within `giveUpMs` is forgotten (reconcile counts it as a mismatch).
 */
export class RouteArrivals {
  private readonly pending = new Map<number, { at: number; addresses: string[] }>();

  constructor(
    private readonly now: () => number,
    private readonly observe: (seconds: number) => void,
    private readonly giveUpMs = 30_000,
  ) {}

  get waiting(): number {
    return this.pending.size;
  }

  established(clientId: number, env: Readonly<Record<string, string>> = {}): void {
    const addresses = [env.ifconfig_pool_remote_ip, env.ifconfig_pool_remote_ip6].filter(
      (a): a is string => !!a,
    );
    this.pending.set(clientId, { at: this.now(), addresses });
  }

  /**
   * Looks again: `routes` gives the host routes now (asked only when someone waits),
   * `sessions` the addresses of clients whose notification had none.
   */
  check(routes: () => readonly string[], sessions?: readonly SessionReport[]): void {
    if (this.pending.size === 0) return;
    const have = new Set(routes());
    const now = this.now();
    for (const [clientId, p] of this.pending) {
      if (p.addresses.length === 0) {
        const s = sessions?.find((x) => x.clientId === clientId);
        if (s) p.addresses = [s.ipv4, s.ipv6].filter((a): a is string => !!a);
      }
      if (p.addresses.length > 0 && p.addresses.every((a) => have.has(a))) {
        this.pending.delete(clientId);
        this.observe(Math.max(0, now - p.at) / 1000);
      } else if (now - p.at > this.giveUpMs) this.pending.delete(clientId);
    }
  }
}
