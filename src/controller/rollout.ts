/**
 * Rolling restarts of OpenVPN: the controller's state machine for a change that needs OpenVPN
 * restarted (a file in RESTART_FILES), one server at a time.
 *
 *   waiting ──▶ draining ──▶ restarting ──▶ checking ──▶ done ──▶ next server
 *      │   (users sent to     (restart       (OpenVPN, its management
 *      │    their next         generation     interface, routing and
 *      ▼    remote)            raised)        ruleset up)
 *   skipped (nothing pending)                      └─▶ failed: the rollout stops
 *
 * The agents hold the new files already but restart OpenVPN only when their directive's
 * `restart` generation passes the one they last carried out; the rollout raises one server's
 * generation at a time. The rollout and every server's generation are in the store, so a
 * controller restart picks the rollout up where it was; every step is audited (`rollout.*`).
 *
 * Order: the reverse of the order in which users' profiles list the servers (profileRemotes:
 * every load balancer, then every server by site). A drained user goes to its *next* remote,
 * which is then a server (or a site's load balancer whose servers are) already restarted: each
 * user moves once, and only the users of the first server restarted (whose next remote wraps
 * around to the first load balancer) move twice. In profile order instead, users would snowball
 * ahead of the rollout: the first site's users would be moved by every site's drain. One site
 * after another (rather than interleaved) keeps a site's load balancer pointing at restarted
 * servers as soon as possible; one server at a time leaves every user's next remote healthy.
 *
 * A server that does not come back healthy stops the rollout and stays drained: its users are
 * elsewhere already, and a server that answers but misbehaves would otherwise take new users
 * the moment it flaps up. The servers after it keep running their old OpenVPN with the new files
 * on disk (pending). The operator fixes it and resumes (the step is tried again, from its
 * restart) or aborts (the rollout's drain is lifted).
 *
 * Pure decisions with an injected clock; the store, the observations and the directives come
 * from ControllerState. The decisions are synchronous over what ControllerState observed just
 * before (`observe` reads its snapshot); what they change is written afterwards, the rollout,
 * the generations raised and the audit entries in one store transaction. The public operations
 * run one at a time (a queue), so a tick, a report and an operator's command never interleave
 * at those writes.
 */
import type { AgentRestart, RolloutStrategy, ServerHealth } from '../api/index.js';
import { Conflict } from '../errors.js';
import type { FleetSpec } from '../spec/schema.js';
import type { AuditEntry, FleetStore, RolloutRecord, RolloutStepRecord } from '../store/types.js';
import type { Clock } from '../sys/time.js';

/** What the controller knows of one server when the rollout looks. */
export interface ServerObservation {
  /**
   * A report of its agent's restarts is in the store (to any controller, since the store keeps
   * them): until then `restart` is unknown, not absent.
   */
  known: boolean;
  /** No report for a while (its agent is down or cut off). */
  stale: boolean;
  health: ServerHealth | null;
  /** When its agent last reported (ms since the epoch). */
  reportedAt?: number;
  sessions: number;
  /** Whether its agent has applied the bundle the controller serves now. */
  upToDate: boolean;
  /** Drained by an operator (outside the rollout): left drained after its restart. */
  operatorDrained: boolean;
  /** What its agent last said about restarts; absent: an agent older than rollouts. */
  restart?: AgentRestart;
}

export interface RolloutSettings {
  strategy: RolloutStrategy;
  auto: boolean;
  drainMs: number;
  healthMs: number;
}

export function rolloutSettings(spec: FleetSpec): RolloutSettings {
  return {
    strategy: spec.rollout.strategy,
    auto: spec.rollout.auto,
    drainMs: spec.rollout.drainSeconds * 1000,
    healthMs: spec.rollout.healthSeconds * 1000,
  };
}

/** The servers in the order a rollout visits them: the reverse of the profiles' remotes. */
export function rolloutOrder(spec: FleetSpec): string[] {
  return spec.sites.flatMap((s) => s.servers.map((v) => v.name)).reverse();
}

export interface RolloutDeps {
  store: FleetStore;
  /** Called before each operation decides: observe() then answers from what it gathered. */
  refresh: () => Promise<void>;
  clock: Clock;
  log: (line: string) => void;
  order: () => string[];
  settings: () => RolloutSettings;
  observe: (server: string) => ServerObservation | undefined;
  /** What the server's agent last said about restarts (cheap: asked at every tick, from memory). */
  restartOf: (server: string) => AgentRestart | undefined;
}

const IN_PROGRESS = new Set<RolloutStepRecord['state']>(['draining', 'restarting', 'checking']);
const FINISHED = new Set<RolloutStepRecord['state']>(['done', 'skipped']);

/** What an operator can ask of the rollout in progress. */
export type RolloutCommand = 'pause' | 'resume' | 'abort';

export class Rollouts {
  private rollout: RolloutRecord | undefined;
  private generations = new Map<string, number>();
  /** Generations raised by the decision running now: written with the rollout. */
  private readonly raised = new Map<string, number>();
  private loading: Promise<void> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * An aborted rollout is not started again by the servers' pending restarts: only a new change
   * (or an operator) starts the next one. Kept in memory: a controller restart forgets it.
   */
  private suppressAuto = false;

  constructor(private readonly d: RolloutDeps) {}

  /**
   * Reads the latest rollout and the generations from the store (once; again after a failure).
   * Await it before the first directive is computed: until then no server is drained by a
   * rollout and every generation is 0.
   */
  ready(): Promise<void> {
    this.loading ??= this.load().catch((err: unknown) => {
      this.loading = undefined;
      throw err;
    });
    return this.loading;
  }

  /**
   * Reads the rollout and the generations from the store again, after the operations queued
   * (another controller changed them). Generations raised here and not yet saved are kept.
   */
  reload(): void {
    // ready() answers with this load from now on: a directive computed after the change
    // waits for it rather than using what was read before.
    const loading: Promise<void> = this.queue
      .then(() => this.load())
      .catch((err: unknown) => {
        if (this.loading === loading) this.loading = undefined;
        throw err;
      });
    loading.catch(() => undefined);
    this.loading = loading;
    this.queue = loading.catch(() => undefined);
  }

  private async load(): Promise<void> {
    const [rollout, generations] = await Promise.all([
      this.d.store.latestRollout(),
      this.d.store.restartGenerations(),
    ]);
    this.rollout = rollout;
    this.generations = generations;
    for (const [server, generation] of this.raised)
      if (generation > this.generation(server)) this.generations.set(server, generation);
  }

  /** One operation at a time, each on fresh observations. */
  private serial<T>(fn: () => Promise<T> | T, observe: () => boolean = () => true): Promise<T> {
    const run = this.queue.then(async () => {
      await this.ready();
      // Reading every server and session costs the store a query per agent report: skipped
      // when there is nothing to decide (no open rollout, none to start).
      if (observe()) await this.d.refresh();
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The latest rollout (running or not), or undefined before the first. */
  get current(): RolloutRecord | undefined {
    return this.rollout;
  }

  /** The restart generation `server`'s directive carries. */
  generation(server: string): number {
    return this.generations.get(server) ?? 0;
  }

  /**
   * Whether the rollout keeps `server` drained: its step is in progress, or it failed after its
   * drain (it stays drained until an operator resumes or aborts). A server found unhealthy at
   * its turn was never drained and is not.
   */
  drains(server: string): boolean {
    const r = this.rollout;
    if (!r || r.strategy !== 'rolling' || r.status === 'done' || r.status === 'aborted')
      return false;
    const step = r.steps.find((s) => s.server === server);
    return !!step && (IN_PROGRESS.has(step.state) || wasDrained(step));
  }

  /** Servers whose agent holds files that wait for a restart. */
  pending(): string[] {
    return this.d.order().filter((s) => this.d.restartOf(s)?.pending === true);
  }

  /**
   * Starts a rollout. `all`: every server restarts, not only those with a pending change.
   * Conflict while another one is running, paused or failed: resume or abort that one first.
   */
  start(
    actor: string,
    opts: { strategy?: RolloutStrategy; all?: boolean; servers?: readonly string[] } = {},
  ): Promise<RolloutRecord> {
    return this.serial(() => this.startNow(actor, opts));
  }

  private async startNow(
    actor: string,
    opts: { strategy?: RolloutStrategy; all?: boolean; servers?: readonly string[] },
  ): Promise<RolloutRecord> {
    const r = this.rollout;
    if (r && (r.status === 'running' || r.status === 'paused' || r.status === 'failed'))
      throw new Conflict(
        `rollout ${r.id} is ${r.status}: resume or abort it first ("ovpn-fleet rollout resume|abort")`,
      );
    const strategy = opts.strategy ?? this.d.settings().strategy;
    const at = this.now();
    const only = opts.servers ? new Set(opts.servers) : undefined;
    const steps: RolloutStepRecord[] = this.d
      .order()
      .map((server) =>
        only && !only.has(server)
          ? { server, state: 'skipped', since: at, detail: 'no change for this server' }
          : { server, state: 'waiting', ...(opts.all ? { force: true } : {}) },
      );
    this.suppressAuto = false;
    this.rollout = await this.d.store.saveRollout(
      {
        strategy,
        status: 'running',
        startedBy: actor,
        startedAt: at,
        updatedAt: at,
        steps,
      },
      [],
    );
    const started = this.rollout;
    const audit = [
      this.entry(actor, 'rollout.start', `rollout ${started.id}`, {
        strategy,
        all: opts.all === true,
        order: steps.filter((s) => s.state === 'waiting').map((s) => s.server),
      }),
    ];
    this.d.log(`rollout ${started.id} started by ${actor} (${strategy})`);
    this.decide(audit);
    await this.save(audit);
    return this.rollout;
  }

  /** Pause, resume or abort the latest rollout (Conflict when that makes no sense now). */
  command(command: RolloutCommand, actor: string): Promise<RolloutRecord> {
    return this.serial(() => this.commandNow(command, actor));
  }

  private async commandNow(command: RolloutCommand, actor: string): Promise<RolloutRecord> {
    const r = this.rollout;
    if (!r) throw new Conflict('there is no rollout: start one with "ovpn-fleet rollout start"');
    const open = r.status === 'running' || r.status === 'paused' || r.status === 'failed';
    if (!open) throw new Conflict(`rollout ${r.id} is ${r.status} already`);
    if (command === 'pause') {
      if (r.status !== 'running') throw new Conflict(`rollout ${r.id} is ${r.status}, not running`);
      r.status = 'paused';
    } else if (command === 'resume') {
      if (r.status === 'running') throw new Conflict(`rollout ${r.id} is running already`);
      // A failed server that was drained is tried again from its drain (empty already, so on
      // to its restart at once); one found unhealthy at its turn is looked at again.
      for (const s of r.steps)
        if (s.state === 'failed')
          this.enter(r, s, wasDrained(s) ? 'draining' : 'waiting', 'resumed by an operator');
      r.status = 'running';
      delete r.detail;
    } else {
      r.status = 'aborted';
      r.detail = `aborted by ${actor}`;
      this.suppressAuto = true;
    }
    const audit = [this.entry(actor, `rollout.${command}`, `rollout ${r.id}`, {})];
    this.d.log(`rollout ${r.id}: ${command} by ${actor}`);
    if (command === 'resume') this.decide(audit);
    await this.save(audit);
    return this.rollout!;
  }

  /**
   * A build changed the restart files of these servers' bundles: with `auto`, start a rollout
   * (all-at-once: in the very directives that carry the new files, as before rollouts).
   */
  changeBuilt(servers: readonly string[]): Promise<void> {
    return this.serial(async () => {
      this.suppressAuto = false;
      if (!servers.length || !this.d.settings().auto || this.busy()) return;
      await this.startNow('controller', { servers });
    });
  }

  /**
   * Moves the rollout on as far as the observations allow; true when a directive must change
   * (a drain set or lifted, a generation raised). Safe to call any number of times.
   */
  tick(): Promise<boolean> {
    return this.serial(
      async () => {
        const r = this.rollout;
        if (!r || r.status === 'done' || r.status === 'aborted') return await this.autoStart();
        const before = this.directiveKey();
        const was = JSON.stringify(r);
        const audit: AuditEntry[] = [];
        this.decide(audit);
        if (audit.length || this.raised.size || JSON.stringify(r) !== was) await this.save(audit);
        return this.directiveKey() !== before;
      },
      () => this.busy() || this.wouldAutoStart(),
    );
  }

  /** autoStart's conditions before it starts anything. */
  private wouldAutoStart(): boolean {
    return (
      !this.suppressAuto && this.d.settings().auto && !this.busy() && this.pending().length > 0
    );
  }

  /** Moves the open rollout on as far as the observations allow (in memory; save() writes). */
  private decide(audit: AuditEntry[]): void {
    const r = this.rollout;
    if (!r || r.status === 'done' || r.status === 'aborted') return;
    if (r.strategy === 'all-at-once') this.tickAllAtOnce(r, audit);
    else this.tickRolling(r, audit);
  }

  // ---------------------------------------------------------------- the steps

  private tickRolling(r: RolloutRecord, audit: AuditEntry[]): void {
    for (;;) {
      const step = r.steps.find((s) => !FINISHED.has(s.state));
      if (!step) return this.finish(r, audit);
      if (step.state === 'failed') return;
      // Paused: the step in progress finishes, no next one starts.
      if (r.status === 'paused' && step.state === 'waiting') return;
      if (!this.advance(r, step, audit)) return;
    }
  }

  private tickAllAtOnce(r: RolloutRecord, audit: AuditEntry[]): void {
    for (const step of r.steps) {
      if (FINISHED.has(step.state) || step.state === 'failed') continue;
      if (step.state === 'waiting') {
        const o = this.d.observe(step.server);
        // Only an agent heard from since this controller started is known to be older.
        if (o?.known && !o.restart) {
          this.enter(
            r,
            step,
            'skipped',
            'its agent restarts OpenVPN by itself (older agent)',
            audit,
          );
          continue;
        }
        // Every server at once, no drain: its users drop and come back (today's behaviour).
        this.raiseGeneration(r, step, audit);
        continue;
      }
      while (this.advance(r, step, audit) && unfinished(step));
    }
    if (r.steps.every((s) => FINISHED.has(s.state) || s.state === 'failed')) {
      const failed = r.steps.filter((s) => s.state === 'failed');
      if (!failed.length) return this.finish(r, audit);
      if (r.status !== 'failed') {
        r.status = 'failed';
        r.detail = `${failed.map((s) => s.server).join(', ')} did not come back healthy`;
        audit.push(
          this.entry('controller', 'rollout.failed', `rollout ${r.id}`, { detail: r.detail }),
        );
      }
    }
  }

  /** One transition of `step`, if its condition holds; true when it moved. */
  private advance(r: RolloutRecord, step: RolloutStepRecord, audit: AuditEntry[]): boolean {
    const o = this.d.observe(step.server);
    // A waiting step's clock starts when it becomes the one looked at.
    step.since ??= this.now();
    const since = Date.parse(step.since);
    const waited = this.nowMs() - since;
    const { drainMs, healthMs } = this.d.settings();
    switch (step.state) {
      case 'waiting': {
        // Not heard from since this controller started: wait for its next report (seconds).
        if (o && !o.known && !o.stale && waited < healthMs) return false;
        if (!o || o.stale || !usable(o.health)) {
          this.fail(r, step, audit, `unhealthy before its turn (${describe(o)}): not touched`);
          return false;
        }
        if (!o.restart) {
          this.enter(
            r,
            step,
            'skipped',
            'its agent restarts OpenVPN by itself (older agent)',
            audit,
          );
          return true;
        }
        if (!step.force && !o.restart.pending) {
          // Its agent may not have the new bundle yet: it says pending once it has.
          if (!o.upToDate && waited < healthMs) return false;
          this.enter(r, step, 'skipped', 'nothing to restart', audit);
          return true;
        }
        // The server restarted before this one is the next remote of this one's users (see the
        // order): drain only once its agent has lifted its own drain, or they would be refused
        // there and lose a server-poll-timeout or more on the way to the one after.
        const stillDrained = r.steps.find(
          (s) => s.state === 'done' && this.stillDraining(s.server),
        );
        if (stillDrained && waited < healthMs) return false;
        this.enter(r, step, 'draining', undefined, audit);
        return true;
      }
      case 'draining': {
        // Only a report made after the drain began says the server is empty.
        const reportedSince = o?.reportedAt !== undefined && o.reportedAt > since;
        const empty = o?.operatorDrained || (reportedSince && o.sessions === 0);
        if (!empty && waited < drainMs) return false;
        const left = empty ? undefined : `drain timed out with ${o?.sessions ?? '?'} sessions`;
        this.raiseGeneration(r, step, audit, left);
        return true;
      }
      case 'restarting': {
        const done = (o?.restart?.generation ?? -1) >= (step.generation ?? 0);
        if (done) {
          this.enter(r, step, 'checking', undefined, audit);
          return true;
        }
        if (waited >= healthMs)
          this.fail(
            r,
            step,
            audit,
            `its agent did not restart OpenVPN within ${healthMs / 1000} s`,
          );
        return false;
      }
      case 'checking': {
        // The report that says the restart is done was made after OpenVPN came back: it counts.
        const fresh = o?.reportedAt !== undefined && o.reportedAt >= since && !o.stale;
        if (fresh && usable(o.health)) {
          this.enter(r, step, 'done', undefined, audit);
          return true;
        }
        if (waited >= healthMs)
          this.fail(
            r,
            step,
            audit,
            `not healthy ${healthMs / 1000} s after its restart (${describe(o)})`,
          );
        return false;
      }
      default:
        return false;
    }
  }

  /** Its agent still reports a drain that neither the rollout nor an operator wants. */
  private stillDraining(server: string): boolean {
    const o = this.d.observe(server);
    return !!o?.health?.draining && !o.operatorDrained && !this.drains(server);
  }

  private raiseGeneration(
    r: RolloutRecord,
    step: RolloutStepRecord,
    audit: AuditEntry[],
    detail?: string,
  ): void {
    // Above what the agent has carried out too: a store restored from a backup (or a new one)
    // must not hand out a generation the agent thinks it has reached already.
    const reported = this.d.observe(step.server)?.restart?.generation ?? 0;
    const generation = Math.max(this.generation(step.server), reported) + 1;
    this.generations.set(step.server, generation);
    this.raised.set(step.server, generation);
    step.generation = generation;
    this.enter(r, step, 'restarting', detail, audit);
  }

  private fail(r: RolloutRecord, step: RolloutStepRecord, audit: AuditEntry[], why: string): void {
    this.enter(r, step, 'failed', why, audit);
    if (r.strategy === 'all-at-once') return;
    r.status = 'failed';
    r.detail = `stopped at ${step.server}: ${why}`;
    audit.push(this.entry('controller', 'rollout.failed', `rollout ${r.id}`, { detail: r.detail }));
    this.d.log(`rollout ${r.id} ${r.detail}`);
  }

  private finish(r: RolloutRecord, audit: AuditEntry[]): void {
    if (r.status === 'done') return;
    r.status = 'done';
    const restarted = r.steps.filter((s) => s.state === 'done').map((s) => s.server);
    audit.push(this.entry('controller', 'rollout.done', `rollout ${r.id}`, { restarted }));
    this.d.log(`rollout ${r.id} done: ${restarted.join(', ') || 'nothing'} restarted`);
  }

  private enter(
    r: RolloutRecord,
    step: RolloutStepRecord,
    state: RolloutStepRecord['state'],
    detail: string | undefined,
    audit?: AuditEntry[],
  ): void {
    step.state = state;
    step.since = this.now();
    if (detail) step.detail = detail;
    else delete step.detail;
    audit?.push(
      this.entry('controller', 'rollout.step', step.server, {
        rollout: r.id,
        state,
        ...(step.generation !== undefined ? { generation: step.generation } : {}),
        ...(detail ? { detail } : {}),
      }),
    );
  }

  // ---------------------------------------------------------------- helpers

  private busy(): boolean {
    const s = this.rollout?.status;
    return s === 'running' || s === 'paused' || s === 'failed';
  }

  /** Servers report files waiting for a restart and no rollout is open: start one. */
  private async autoStart(): Promise<boolean> {
    if (this.suppressAuto || !this.d.settings().auto || this.busy()) return false;
    const pending = this.pending();
    if (!pending.length) return false;
    const before = this.directiveKey();
    // Over every server: one whose agent has not said so yet is skipped at its turn if it
    // still has nothing pending then.
    await this.startNow('controller', {});
    return this.directiveKey() !== before;
  }

  /** What the directives depend on: every drain and generation. */
  private directiveKey(): string {
    return this.d
      .order()
      .map((s) => `${s}:${this.drains(s) ? 1 : 0}:${this.generation(s)}`)
      .join(',');
  }

  /**
   * Writes the rollout, the generations raised since the last save and the audit entries in
   * one transaction. A failed write leaves memory ahead of the store (the directives already
   * carry a raised generation): the next save writes the generations again.
   */
  private async save(audit: AuditEntry[]): Promise<void> {
    const r = this.rollout;
    if (!r) return;
    r.updatedAt = this.now();
    const raised = [...this.raised];
    this.rollout = await this.d.store.transaction(async (tx) => {
      for (const [server, generation] of raised) await tx.setRestartGeneration(server, generation);
      return tx.saveRollout(r, audit);
    });
    for (const [server, generation] of raised)
      if (this.raised.get(server) === generation) this.raised.delete(server);
  }

  private entry(
    actor: string,
    action: string,
    subject: string,
    detail: Record<string, unknown>,
  ): AuditEntry {
    return { at: this.now(), actor, action, subject, detail };
  }

  private now(): string {
    return this.d.clock.now().toISOString();
  }

  private nowMs(): number {
    return this.d.clock.now().getTime();
  }
}

/** A failed step whose server the rollout had drained (it had been told to restart). */
function wasDrained(step: RolloutStepRecord): boolean {
  return step.state === 'failed' && step.generation !== undefined;
}

/** Neither finished nor failed (a function: the state changes under TypeScript's narrowing). */
function unfinished(step: RolloutStepRecord): boolean {
  return !FINISHED.has(step.state) && step.state !== 'failed';
}

/** OpenVPN up with its management interface answering, routing up, the ruleset in place. */
function usable(h: ServerHealth | null | undefined): boolean {
  return !!h && h.openvpn && h.routing && h.ruleset;
}

function describe(o: ServerObservation | undefined): string {
  if (!o) return 'never reported';
  if (o.stale) return 'its agent is not reporting';
  const h = o.health;
  if (!h) return 'no health reported';
  const down = (['openvpn', 'routing', 'ruleset'] as const).filter((k) => !h[k]);
  return down.length ? `${down.join(', ')} down` : 'healthy';
}
