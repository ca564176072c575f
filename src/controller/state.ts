/**
 * The controller's state: the fleet, every server's current bundle and directive, the waiting
 * polls, the session table's ingestion, and the watcher that notices other processes' changes.
 * No HTTP here: routes call these methods; the clock and the timers are injected.
 *
 * Change detection: every `watchIntervalMs` (200 ms) the watcher asks the store's ChangeFeed,
 * which moves whenever another connection — a CLI process — commits, and stats fleet.yaml.
 * Either change rebuilds every server's bundle from one snapshot; a directive whose token
 * changed wakes that server's waiting poll at once. The controller's own writes (admin API,
 * agent reports) do not move the feed, so each such handler rebuilds directly.
 *
 * Several controllers on one PostgreSQL store: every one serves the API, the console and the
 * agents, and computes the same bundles and directives from the same store state (a NOTIFY
 * from another controller's commit rebuilds here at once; one carrying only agents' reports
 * recomputes the directives alone, and the rollout is read again from the store on every other
 * change). The decisions that must be taken once — auditing an eviction, advancing or
 * auto-starting a rollout, the hourly PKI step, pruning the audit log and history — are taken
 * by the leader alone (Leadership: PostgreSQL's advisory lock; SQLite's one controller always
 * leads). An operator's own command (a rollout start, a kill) runs on the controller asked.
 *
 * Stale agents: a server with no report for `staleAfterMs` (10 s), or whose agent says it
 * cannot read its sessions, is shown `stale: true`, and its sessions are ignored when deciding
 * evictions (a silent server may have lost them, and its agent would not hear the directive
 * anyway). Its sessions stay in the table and in /v1/sessions, flagged stale, until its agent
 * reports again.
 */
import { createHash } from 'node:crypto';
import {
  type AgentReport,
  type AgentRestart,
  type Eviction,
  RESTART_FILES,
  type RolloutStatusView,
  type RolloutView,
  type KillResult,
  type RoutesView,
  type ServerHealth,
  type ServerView,
  type SessionView,
  sessionId,
} from '../api/index.js';
import { NotFound } from '../errors.js';
import type { Bundle } from '../render/bundle.js';
import { ConsoleSessions } from '../service/console-sessions.js';
import { Fleet } from '../service/fleet.js';
import { loadSpec } from '../service/spec-file.js';
import type {
  AuditEntry,
  ChangeFeed,
  Leadership,
  RolloutRecord,
  ServerState,
  StoredSession,
} from '../store/types.js';
import type { Clock, Timers } from '../sys/time.js';
import { Authenticator } from './auth.js';
import { Coalescer } from './builds.js';
import { directiveToken, evictions } from './directives.js';
import { type IngestOptions, ReportIngest } from './ingest.js';
import type { ControllerEvents } from './metrics.js';
import { PollWaiters, type Served, served } from './polls.js';
import { type KnownUser, knownUser } from './reports.js';
import { type LoginLimitOptions, LoginLimiter } from './login-limit.js';
import {
  type RolloutCommand,
  Rollouts,
  type ServerObservation,
  rolloutOrder,
  rolloutSettings,
} from './rollout.js';
import { routesView } from './routes-view.js';
import { SignIn } from './sign-in.js';
import { STALE_AFTER_MS, isStale, serverViews, sessionView, staleServers } from './views.js';
import { ChangeWatcher } from './watcher.js';

export const ADMIN_ACTOR = 'api:admin';

/**
 * What moved, for whoever shows the cluster live (the console's event stream): `sessions` after
 * an agent's report, `servers` after a drain flag or a server going stale or fresh, `fleet` after
 * a rebuild (users, certificates, spec: anything in the store or fleet.yaml).
 */
export type ChangeKind = 'sessions' | 'servers' | 'fleet';
const HOUR_MS = 3_600_000;
/** Ended sessions kept per user in the location history, however young (a flapping client). */
export const HISTORY_PER_USER = 1000;

/** An operator's kill not yet carried out: one live session of `user` on `server`. */
interface Kill {
  server: string;
  user: string;
  since: string;
  clientId: number;
}

export interface StateOptions extends IngestOptions {
  fleetDir: string;
  /** Where each server's bundle lives on that server (the rendered config `cd`s there). */
  baseDir: (server: string) => string;
  adminToken: string;
  /** Each server's agent token; default: `Fleet.agentToken`. */
  serverToken?: (server: string) => string;
  staleAfterMs?: number;
  /** A console session without a request for this long ends (default 30 minutes). */
  consoleIdleTimeoutMs?: number;
  /** A console session ends this long after sign-in, busy or not (default 12 hours). */
  consoleSessionLifetimeMs?: number;
  /** Failed sign-ins allowed per account and per address (default 5 and 20 in 15 minutes). */
  loginLimit?: LoginLimitOptions;
  log: (line: string) => void;
  /** Told of evictions and drains as they happen (the metrics' counters). */
  events?: ControllerEvents;
  /** Whether this controller takes the decisions taken once; default: always (SQLite). */
  leadership?: Leadership;
}

export class ControllerState {
  fleet: Fleet;
  readonly auth: Authenticator;
  readonly consoleSessions: ConsoleSessions;
  readonly signIn: SignIn;
  readonly polls: PollWaiters;
  readonly directives = new Map<string, Served>();
  private bundles = new Map<string, Bundle>();
  private readonly builds: Coalescer;
  private readonly ingest: ReportIngest;
  private readonly watcher: ChangeWatcher;
  private readonly staleAfterMs: number;
  /** Evictions already written to the audit log (server, user, since). */
  private issuedEvictions = new Set<string>();
  /**
   * Operators' kills, by server and session id, until the session is gone from the table: a
   * reconnect (another session) is not killed again. Kept in memory: a controller restart
   * forgets a kill not yet carried out, and the operator asks again.
   */
  private readonly kills = new Map<string, Kill>();
  private staleKey = '';
  private lastPruneAt = 0;
  private lastPkiStepAt = 0;
  private lastSpecProblem = '';
  private lastBuildProblem = '';
  private lastTickProblem = '';
  private userCache: Promise<Map<string, KnownUser>> | undefined;
  private closed = false;
  private readonly leadership: Leadership;
  /** Whether this controller led at the last look (to log a change of leader once). */
  private wasLeader: boolean | undefined;
  /**
   * Directives are recomputed one at a time: each run reads the store, compares with what the
   * last run issued (issuedEvictions) and audits the difference, so two runs interleaving at
   * an await would audit one eviction twice.
   */
  private recomputing: Promise<void> = Promise.resolve();
  /** A tick still running (the store answers slowly) makes the next one skip. */
  private ticking = false;
  /** The agents' tokens, derived from the store's secret: loading starts at construction. */
  private agentTokens: Promise<void>;
  private readonly listeners = new Set<(what: ChangeKind) => void>();
  /** Rolling restarts of OpenVPN (see rollout.ts). */
  readonly rollouts: Rollouts;
  /**
   * What each agent last said about restarts, as the store last told (an agent may report to
   * another controller): read again whenever another controller's reports move the sessions.
   * Null: its agent says nothing of restarts (older than rollouts); absent: no word yet.
   */
  private restartReports = new Map<string, AgentRestart | null>();
  /** Digest of each server's RESTART_FILES in the last build: a change starts a rollout. */
  private restartDigests = new Map<string, string>();
  /** Each server as the rollout last observed it (see observeServers). */
  private observations = new Map<string, ServerObservation>();

  constructor(
    fleet: Fleet,
    changes: ChangeFeed,
    private readonly clock: Clock,
    timers: Timers,
    private readonly opts: StateOptions,
  ) {
    this.fleet = fleet;
    this.leadership = opts.leadership ?? { isLeader: () => true };
    this.staleAfterMs = opts.staleAfterMs ?? STALE_AFTER_MS;
    this.auth = new Authenticator(opts.adminToken);
    this.consoleSessions = new ConsoleSessions(fleet.store, clock, {
      ...(opts.consoleIdleTimeoutMs !== undefined
        ? { idleTimeoutMs: opts.consoleIdleTimeoutMs }
        : {}),
      ...(opts.consoleSessionLifetimeMs !== undefined
        ? { lifetimeMs: opts.consoleSessionLifetimeMs }
        : {}),
    });
    this.signIn = new SignIn(
      () => this.fleet,
      this.consoleSessions,
      new LoginLimiter(clock, opts.loginLimit),
    );
    this.agentTokens = this.loadAgentTokens();
    // Awaited by start() and refresh(); a failure here must not be an unhandled rejection.
    this.agentTokens.catch(() => undefined);
    this.polls = new PollWaiters(timers);
    this.builds = new Coalescer(() => this.buildOnce());
    this.ingest = new ReportIngest(
      fleet.store,
      async (name) => (await this.knownUsers()).get(name),
      clock,
      opts.log,
      opts,
      (server) => this.directives.get(server)?.directive,
    );
    this.rollouts = new Rollouts({
      store: fleet.store,
      clock,
      log: opts.log,
      order: () => rolloutOrder(this.fleet.spec),
      settings: () => rolloutSettings(this.fleet.spec),
      refresh: () => this.observeServers(),
      observe: (server) => this.observations.get(server),
      restartOf: (server) => this.restartReports.get(server) ?? undefined,
    });
    this.watcher = new ChangeWatcher(Fleet.specPath(opts.fleetDir), changes, clock, timers, {
      specChanged: () => this.reloadSpec(),
      storeChanged: () => {
        // Another controller may have moved the rollout, or heard an agent's restarts: read
        // them again before rebuilding.
        this.rollouts.reload();
        this.readRestartReports().catch((err: unknown) =>
          this.opts.log(`restart reports: ${oneLine(err)}`),
        );
        this.refreshInBackground();
      },
      sessionsChanged: () => {
        this.readRestartReports()
          .then(() => this.recomputeDirectives())
          .then(() => this.changed('sessions'))
          .catch((err: unknown) => this.opts.log(`directives: ${oneLine(err)}`));
      },
      tick: () => {
        if (this.ticking) return;
        this.ticking = true;
        this.tick()
          .then(() => (this.lastTickProblem = ''))
          .catch((err: unknown) => {
            // Five times a second while PostgreSQL is away: said once, not each time.
            const problem = oneLine(err);
            if (problem !== this.lastTickProblem) this.opts.log(`watcher: ${problem}`);
            this.lastTickProblem = problem;
          })
          .finally(() => (this.ticking = false));
      },
      failed: (err) => this.opts.log(`watcher: ${oneLine(err)}`),
    });
  }

  get store() {
    return this.fleet.store;
  }

  /** The controller's clock (injected: tests move it by hand). */
  now(): Date {
    return this.clock.now();
  }

  get specProblem(): string | undefined {
    return this.lastSpecProblem || undefined;
  }

  /** Calls `listener` after each change; returns the function that stops it. */
  onChange(listener: (what: ChangeKind) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(what: ChangeKind): void {
    for (const listener of this.listeners) {
      try {
        listener(what);
      } catch (err) {
        this.opts.log(`change listener failed: ${oneLine(err)}`);
      }
    }
  }

  /** Loads the agents' tokens and prunes the audit log, then starts watching. */
  async start(watchIntervalMs: number): Promise<void> {
    await this.agentTokens;
    // Kept in the store: a restarted controller knows at once what the agents last said.
    await this.readRestartReports();
    await this.rollouts.ready();
    if (this.isLeader()) await this.pruneAudit();
    this.watcher.start(watchIntervalMs);
  }

  /** Whether this controller takes the decisions taken once; logs each change of mind. */
  isLeader(): boolean {
    const leader = this.leadership.isLeader();
    // Said only where there can be several controllers (a store that elects a leader).
    if (leader !== this.wasLeader && this.opts.leadership) {
      this.opts.log(
        leader
          ? 'leading: this controller now takes the decisions taken once (evictions, rollouts, PKI, pruning)'
          : 'not leading: another controller takes the decisions taken once',
      );
      this.wasLeader = leader;
    }
    return leader;
  }

  /** Cheap checks on every watcher tick: audit retention, servers going stale or fresh. */
  private async tick(): Promise<void> {
    const leader = this.isLeader();
    if (leader) await this.pruneAudit();
    if (leader && (await this.rollouts.tick())) {
      await this.recomputeDirectives();
      this.changed('servers');
      return;
    }
    if ((await this.staleSetKey()) === this.staleKey) return;
    await this.recomputeDirectives();
    this.changed('servers');
  }

  private async loadAgentTokens(): Promise<void> {
    const servers = this.fleet.serverNames();
    const tokens = new Map<string, string>();
    for (const s of servers)
      tokens.set(s, this.opts.serverToken?.(s) ?? (await this.fleet.agentToken(s)));
    this.auth.setAgents(servers, (s) => tokens.get(s)!);
  }

  /** Reloads fleet.yaml; a broken file keeps the last good spec in service. */
  private reloadSpec(): void {
    let spec;
    try {
      spec = loadSpec(Fleet.specPath(this.opts.fleetDir));
    } catch (err) {
      const problem = oneLine(err);
      if (problem !== this.lastSpecProblem)
        this.opts.log(`fleet.yaml is invalid, still serving the last good spec: ${problem}`);
      this.lastSpecProblem = problem;
      return;
    }
    this.lastSpecProblem = '';
    this.fleet = this.fleet.withSpec(spec);
    this.opts.log('fleet.yaml reloaded');
    this.agentTokens = this.loadAgentTokens();
    this.agentTokens
      .catch((err: unknown) => this.opts.log(`cannot load the agents' tokens: ${oneLine(err)}`))
      .finally(() => this.refreshInBackground());
  }

  /** A rebuild nobody waits for: a failure is logged, never an unhandled rejection. */
  refreshInBackground(): void {
    this.refresh().catch((err: unknown) => this.opts.log(`rebuild failed: ${oneLine(err)}`));
  }

  /** Deletes audit entries older than the spec's retention, at start and then hourly. */
  async pruneAudit(): Promise<number> {
    const now = this.clock.now();
    if (this.lastPruneAt && now.getTime() - this.lastPruneAt < HOUR_MS) return 0;
    this.lastPruneAt = now.getTime();
    const days = this.fleet.spec.audit.retentionDays;
    const cutoff = new Date(now.getTime() - days * 86_400_000);
    const removed = await this.store.pruneAudit(cutoff);
    if (removed) this.opts.log(`audit: removed ${removed} entries older than ${days} days`);
    // The location history is kept as long as the audit log that tells the same story.
    const sessions = await this.store.pruneHistory(cutoff, HISTORY_PER_USER);
    if (sessions) this.opts.log(`history: removed ${sessions} ended sessions`);
    return removed;
  }

  /** Rebuilds bundles and directives (coalesced: see Coalescer). */
  async refresh(): Promise<void> {
    // Bundles are served only to agents that can authenticate: their tokens come first.
    await this.agentTokens;
    return this.builds.request();
  }

  /**
   * Every user as the report rules need them, read once per build rather than once per report
   * (six agents report every few seconds; reading 10,000 users costs tens of ms). Every change
   * to the users rebuilds, so the cache is dropped at each build's start.
   */
  private knownUsers(): Promise<Map<string, KnownUser>> {
    if (!this.userCache) {
      const loading = this.fleet
        .listUsers()
        .then((users) => new Map(users.map((u) => [u.name, knownUser(u)])));
      // A failed read is not cached: the next report reads again.
      loading.catch(() => {
        if (this.userCache === loading) this.userCache = undefined;
      });
      this.userCache = loading;
    }
    return this.userCache;
  }

  private async buildOnce(): Promise<void> {
    this.userCache = undefined;
    await this.pkiStep();
    let restartChanged: string[] = [];
    try {
      const bundles = await this.fleet.bundlesFor(this.opts.baseDir);
      this.bundles = new Map(bundles.map((b) => [b.server, b]));
      this.lastBuildProblem = '';
      restartChanged = this.noteRestartFiles(bundles);
    } catch (err) {
      const problem = oneLine(err);
      if (problem !== this.lastBuildProblem)
        this.opts.log(`cannot render bundles, still serving the last ones: ${problem}`);
      this.lastBuildProblem = problem;
    }
    if (!this.closed) {
      // All-at-once raises every generation here, so that the new files and the order to
      // restart reach each agent in one directive, as before rollouts.
      // The leader starts it; the others read it from the store when its NOTIFY arrives.
      if (restartChanged.length && this.isLeader()) await this.rollouts.changeBuilt(restartChanged);
      await this.recomputeDirectives();
    }
    this.changed('fleet');
  }

  /**
   * The certificate lifecycle's step (renewals, server rotation, CA rollover, switch and
   * retirement, CRLs), at the first build and then at the first build after each hour: the
   * watcher rebuilds at least hourly, so this runs hourly too. What it changes lands in the
   * bundles this build renders (a rotated server's server.crt and server.key, a rollover's
   * ca.crt and crl.pem). A failure is logged and tried again at the next build.
   */
  private async pkiStep(): Promise<void> {
    // Another controller leads and takes it; this one takes it at its first build as leader.
    if (!this.isLeader()) return;
    const now = this.clock.now().getTime();
    if (this.lastPkiStepAt && now - this.lastPkiStepAt < HOUR_MS) return;
    this.lastPkiStepAt = now;
    try {
      const r = await this.fleet.as('controller').maintainPki();
      for (const event of r.ca) this.opts.log(`pki: CA ${event}`);
      if (r.rotated.length) this.opts.log(`pki: new server certificates: ${r.rotated.join(', ')}`);
      if (r.renewed.length) this.opts.log(`pki: renewed ${r.renewed.length} user certificates`);
    } catch (err) {
      this.lastPkiStepAt = 0;
      this.opts.log(`pki: lifecycle step failed, trying again at the next build: ${oneLine(err)}`);
    }
  }

  /** Servers whose RESTART_FILES differ from the previous build's (none at the first build). */
  private noteRestartFiles(bundles: readonly Bundle[]): string[] {
    const first = this.restartDigests.size === 0;
    const next = new Map<string, string>();
    for (const b of bundles) {
      const h = createHash('sha256');
      for (const f of b.files)
        if (RESTART_FILES.includes(f.path))
          h.update(`${f.path}\0${f.content.length}\0${f.content}`);
      next.set(b.server, h.digest('hex'));
    }
    const changed = first
      ? []
      : [...next].filter(([server, d]) => this.restartDigests.get(server) !== d).map(([s]) => s);
    this.restartDigests = next;
    return changed;
  }

  /** The agents' restart reports as the store holds them (from every controller's agents). */
  private async readRestartReports(): Promise<void> {
    this.restartReports = restartsOf(await this.store.listServerStates());
  }

  /**
   * What the rollout needs to know of every server, read from the store before each of its
   * decisions (Rollouts is synchronous between its reads and its writes; observe() answers
   * from this).
   */
  private async observeServers(): Promise<void> {
    const states = await this.store.listServerStates();
    this.restartReports = restartsOf(states);
    const sessions = new Map<string, number>();
    for (const s of await this.store.listSessions())
      sessions.set(s.server, (sessions.get(s.server) ?? 0) + 1);
    this.observations = new Map(
      states.map((state) => [state.name, this.observation(state, sessions.get(state.name) ?? 0)]),
    );
  }

  private observation(state: ServerState, sessions: number): ServerObservation {
    const server = state.name;
    const restart = this.restartReports.get(server);
    return {
      known: restart !== undefined,
      // Not reporting; an agent that reports it cannot read OpenVPN's sessions is not stale
      // here: its health says openvpn down, which is what the rollout must see.
      stale: isStale(state.reportedAt, this.clock.now(), this.staleAfterMs),
      health: (state.health as ServerHealth | undefined) ?? null,
      ...(state.reportedAt ? { reportedAt: Date.parse(state.reportedAt) } : {}),
      sessions,
      upToDate: !!state.bundleDigest && state.bundleDigest === this.bundles.get(server)?.digest,
      operatorDrained: state.draining,
      ...(restart ? { restart } : {}),
    };
  }

  /** The latest rollout and which servers wait for a restart. */
  rolloutStatus(): RolloutStatusView {
    const r = this.rollouts.current;
    return { rollout: r ? rolloutView(r) : null, pending: this.rollouts.pending() };
  }

  /** Starts a rollout now (`actor`: who asked). */
  async startRollout(
    actor: string,
    opts: { strategy?: RolloutView['strategy']; all?: boolean },
  ): Promise<RolloutView> {
    const r = rolloutView(await this.rollouts.start(actor, opts));
    await this.recomputeDirectives();
    this.changed('servers');
    return r;
  }

  /** Pauses, resumes or aborts the latest rollout. */
  async rolloutCommand(command: RolloutCommand, actor: string): Promise<RolloutView> {
    const r = rolloutView(await this.rollouts.command(command, actor));
    await this.recomputeDirectives();
    this.changed('servers');
    return r;
  }

  private async staleNow(now: Date): Promise<Set<string>> {
    return staleServers(
      this.fleet.serverNames(),
      await this.store.listServerStates(),
      now,
      this.staleAfterMs,
      this.ingest.unknown,
    );
  }

  private async staleSetKey(): Promise<string> {
    return [...(await this.staleNow(this.clock.now()))].sort().join(',');
  }

  /** Directives from the current bundles, sessions and drain flags; wakes changed servers. */
  recomputeDirectives(): Promise<void> {
    const run = this.recomputing.then(() => this.recomputeOnce());
    this.recomputing = run.catch(() => undefined);
    return run;
  }

  private async recomputeOnce(): Promise<void> {
    // The rollouts' drains and generations from the store go into the very first directives.
    await this.rollouts.ready();
    const now = this.clock.now();
    const servers = this.fleet.serverNames();
    const known = new Set(servers);
    const states = new Map((await this.store.listServerStates()).map((s) => [s.name, s]));
    const stale = await this.staleNow(now);
    this.staleKey = [...stale].sort().join(',');
    const sessions = (await this.store.listSessions()).filter((s) => known.has(s.server));
    const evict = evictions(sessions, stale);
    const kills = this.pendingKills(sessions);
    const issued = new Set<string>();
    const fresh: AuditEntry[] = [];
    for (const server of servers) {
      const bundle = this.bundles.get(server);
      if (!bundle) continue;
      const evicted = evict.get(server) ?? [];
      for (const e of evicted) {
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
      const list = [...evicted, ...(kills.get(server) ?? [])].sort((a, b) =>
        a.user < b.user ? -1 : a.user > b.user ? 1 : 0,
      );
      const drain = (states.get(server)?.draining ?? false) || this.rollouts.drains(server);
      const restart = this.rollouts.generation(server);
      const token = directiveToken(bundle.digest, list, drain, restart);
      if (this.directives.get(server)?.directive.token === token) continue;
      const next = served({
        token,
        bundle: { digest: bundle.digest, files: bundle.files },
        evict: list,
        drain,
        restart,
      });
      this.directives.set(server, next);
      this.polls.wake(server, next);
    }
    this.issuedEvictions = issued;
    // Every controller issues the same evictions in its directives (the agent carries out one
    // only while the session is live); only the leader audits them, so each is audited once. A
    // controller that takes over knows what it saw issued while following.
    if (!fresh.length || !this.isLeader()) return;
    await this.auditAll(fresh);
    for (const e of fresh) this.opts.events?.evictionIssued(String(e.detail?.server));
  }

  /**
   * The kills still to carry out, as evict entries per server; kills whose session is gone
   * from the table (ended, by the kill or otherwise) are dropped here.
   */
  private pendingKills(sessions: readonly StoredSession[]): Map<string, Eviction[]> {
    const live = new Set(sessions.map((s) => `${s.server}\0${sessionId(s)}`));
    const out = new Map<string, Eviction[]>();
    for (const [key, k] of this.kills) {
      if (!live.has(key)) {
        this.kills.delete(key);
        continue;
      }
      let list = out.get(k.server);
      if (!list) out.set(k.server, (list = []));
      list.push({ user: k.user, since: k.since, clientId: k.clientId, reason: 'operator' });
    }
    return out;
  }

  /**
   * Asks `server`'s agent, with its next directive, to end the live session(s) of `user` there.
   * Asking again for a session already asked for changes nothing (and audits nothing).
   */
  async killSession(server: string, user: string, actor: string): Promise<KillResult> {
    await this.server(server);
    const stale = (await this.staleNow(this.clock.now())).has(server);
    const targets = (await this.store.listSessions(server)).filter((s) => s.user === user);
    if (!targets.length) throw new NotFound(`no live session of ${user} on ${server}`);
    const at = this.clock.now().toISOString();
    const fresh: AuditEntry[] = [];
    for (const s of targets) {
      const key = `${server}\0${sessionId(s)}`;
      if (this.kills.has(key)) continue;
      this.kills.set(key, { server, user, since: s.since, clientId: s.clientId });
      fresh.push({
        at,
        actor,
        action: 'session.kill',
        subject: user,
        detail: { server, since: s.since, realAddress: s.realAddress },
      });
    }
    if (fresh.length) await this.auditAll(fresh);
    await this.recomputeDirectives();
    return { server, user, sessions: targets.map((s) => sessionView(s, stale)) };
  }

  /** Several entries in one transaction: all of them or none. */
  private auditAll(entries: AuditEntry[]): Promise<void> {
    return this.store.transaction(async (tx) => {
      for (const e of entries) await tx.audit(e);
    });
  }

  /** Each connected user's and each routed address's host routes against the sessions. */
  async routes(): Promise<RoutesView> {
    const states = await this.store.listServerStates();
    return routesView({
      servers: this.fleet.serverNames(),
      routes: new Map(states.map((s) => [s.name, s.routes])),
      stale: await this.staleNow(this.clock.now()),
      sessions: await this.store.listSessions(),
      users: [...(await this.knownUsers())].map(([name, u]) => ({
        name,
        ipv4: u.ipv4,
        ipv6: u.ipv6,
      })),
    });
  }

  /** Records a server's report (see ReportIngest) and decides evictions again. */
  async report(server: string, report: AgentReport): Promise<void> {
    await this.ingest.record(server, report);
    this.restartReports.set(server, report.restart ?? null);
    // The leader drives the rollout; another controller's report reaches it by the store.
    if (this.isLeader()) await this.rollouts.tick();
    await this.recomputeDirectives();
    this.changed('sessions');
  }

  async sessions(): Promise<SessionView[]> {
    const stale = await this.staleNow(this.clock.now());
    return (await this.store.listSessions()).map((s) => sessionView(s, stale.has(s.server)));
  }

  async servers(): Promise<ServerView[]> {
    return serverViews(
      this.fleet.spec,
      await this.store.listServerStates(),
      await this.store.listSessions(),
      (server) => this.bundles.get(server)?.digest ?? '',
      await this.staleNow(this.clock.now()),
    );
  }

  async server(name: string): Promise<ServerView> {
    const view = (await this.servers()).find((s) => s.name === name);
    if (!view) throw new NotFound(`no server named ${name} in fleet.yaml`);
    return view;
  }

  /** `actor`: who asked, for the audit log (`api:admin`, `console:NAME`). */
  async setDraining(name: string, draining: boolean, actor: string): Promise<ServerView> {
    const was = (await this.server(name)).draining;
    await this.store.setDraining(name, draining, this.clock.now(), actor);
    if (was !== draining) this.opts.events?.drainChanged(name, draining);
    await this.recomputeDirectives();
    this.changed('servers');
    return this.server(name);
  }

  /** Answers waiting polls, stops the watcher and lets a running build and recompute finish. */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher.stop();
    this.polls.closeAll();
    await this.builds.stop();
    await this.recomputing;
  }
}

function rolloutView(r: RolloutRecord): RolloutView {
  return {
    id: r.id,
    strategy: r.strategy,
    status: r.status,
    startedBy: r.startedBy,
    startedAt: r.startedAt,
    updatedAt: r.updatedAt,
    steps: r.steps.map((s) => ({ ...s })),
    ...(r.detail ? { detail: r.detail } : {}),
  };
}

export function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const lines = message.split('\n').filter(Boolean);
  return lines.length > 1 ? `${lines[0]} (and ${lines.length - 1} more)` : (lines[0] ?? '');
}

function restartsOf(states: readonly ServerState[]): Map<string, AgentRestart | null> {
  const out = new Map<string, AgentRestart | null>();
  for (const s of states) if (s.restart !== undefined) out.set(s.name, s.restart);
  return out;
}
