/**
 * The agent on one VPN server. It applies the controller's bundle (files, nftables with a
 * confirm window, FRR, OpenVPN), is the only client of OpenVPN's management socket, reports
 * sessions, keeps host routes equal to live sessions, ends sessions that must end (user no
 * longer allowed, a newer session elsewhere, drain) and answers health checks.
 *
 * The data plane never depends on the agent or the controller being up: OpenVPN's hooks add
 * and remove routes by themselves, and the last good bundle stays on disk.
 */
import { createHash } from 'node:crypto';
import { coalesced } from '../sys/coalesce.js';
import { describeDiff, isEmptyDiff, reloadFrr } from '../sys/frr-reload.js';
import { BundleRefused } from '../sys/files.js';
import type { RunOptions, RunResult } from '../sys/exec.js';
import {
  type AgentReport,
  type Directive,
  HostRoutes,
  MAX_HOST_ROUTES,
  RESTART_FILES,
  type ServerHealth,
  type SessionReport,
  sessionId,
} from '../api/index.js';
import { NFT_TABLE } from '../render/nftables.js';
import { AUTH_POLICY_FILE, type AuthPolicy } from '../render/auth-policy.js';
import { AnswerTiming } from './answer-timing.js';
import { directiveProblem, parseDirective } from './bundle-paths.js';
import { type AuthController, ConnectAuth, UNREADABLE_POLICY } from './connect-auth.js';
import { type AgentHost, realHost } from './host.js';
import {
  type AgentMetrics,
  AgentRegistry,
  type DisconnectReason,
  RouteArrivals,
  metricsAnswer,
  sessionsGone,
} from './metrics.js';
import { planRoutes } from './reconcile.js';
import { applySessionGroups } from './session-groups.js';

export interface AgentOptions {
  server: string;
  /** Where the bundle lives (server.conf's `cd`); holds run/management.sock and VERSION. */
  bundleDir: string;
  /**
   * `unix:/path` or `https://host:port`; several: the first preferred, the next taken over
   * within 2 s when the one in use fails, and the first again once it answers (client/failover.ts).
   */
  controller: string | readonly string[];
  /** PEM of the CA the controller's certificate must chain to (https only). */
  ca?: string | Buffer;
  token: string;
  tunDevice: string;
  routeProtocol: number;
  /** FRR instance to reload (`vtysh -N`), when FRR runs as a named instance; else the system FRR. */
  frrInstance?: string;
  /** Seconds the agent waits for routing to stay up after a new ruleset before it keeps it. */
  confirmSeconds?: number;
  log?: (line: string) => void;
  /** Every side effect of the agent; the real machine unless a test hands in a fake. */
  host?: AgentHost;
  /** What the agent counts; default: its own Prometheus registry. */
  metrics?: AgentMetrics;
  /** Bearer token GET /metrics on the health socket needs (--metrics-token-file); none: open. */
  metricsToken?: string;
  /** How to start OpenVPN where no supervisor does (the lab: --openvpn-start-argv-file). */
  openvpnStartArgv?: readonly string[];
}

const DRAIN_TABLE = 'ovpn_fleet_drain';
/** A controller link without sign-ins (an older one, a test): every sign-in is refused. */
const NO_SIGN_IN: AuthController = {
  begin: () => Promise.reject(new Error('this controller link has no sign-ins')),
  wait: () => Promise.reject(new Error('this controller link has no sign-ins')),
  answer: () => Promise.reject(new Error('this controller link has no sign-ins')),
};
/** FRR's running config before a reload, kept for the rollback (bundle-relative). */
const FRR_BEFORE_RELOAD = 'run/frr-before-reload.conf';
/** FRR's running config from before the last bundle, put back when that bundle cuts routing. */
const FRR_ROLLBACK = 'run/frr-rollback.conf';
/** In the bundle folder: the restart generation carried out and the files OpenVPN runs with. */
const RESTART_RECORD = 'RESTART';
/** How long a restarted OpenVPN has to say CONNECTED again before the agent stops waiting. */
const RESTART_WAIT_MS = 30_000;
/** How long an OpenVPN told to stop (SIGTERM) has to exit before it is killed (SIGKILL). */
const STOP_WAIT_MS = 10_000;
const ROUTING_PROTOS = new Set(['ospf', 'bgp', 'rip', 'ripng', 'ospf6', '188', '186', '189']);

/** Whether OpenVPN started with this server.conf holds every connect for the agent. */
export function hasClientAuth(serverConf: string | undefined): boolean {
  return serverConf !== undefined && /^management-client-auth[ \t]*$/m.test(serverConf);
}

const onOff = (on: boolean) => (on ? 'on' : 'off');

/** How a restart of OpenVPN ended. */
type RestartOutcome = 'back' | 'not running' | 'exited' | 'timeout';

/** A session as reported: which session, and the addresses it holds. */
function reportedAs(s: SessionReport): string {
  return `${sessionId(s)}\0${s.ipv4 ?? ''}\0${s.ipv6 ?? ''}`;
}

export class Agent {
  /** Served at GET /metrics on the health socket (and by `agent --metrics-listen`). */
  readonly metrics: AgentMetrics;
  private readonly arrivals: RouteArrivals;
  private readonly host: AgentHost;
  private readonly log: (line: string) => void;
  private running = false;
  /** stop() was called: a restart in progress stops waiting for OpenVPN. */
  private stopped = false;
  private sessions: SessionReport[] = [];
  /**
   * The last `status` read failed: `sessions` are the last known ones, reported as such
   * (`sessionsUnknown`) and not acted on, instead of an empty list that would read as
   * "everyone left".
   */
  private sessionsUnknown = false;
  private statusAt = 0;
  private lastReportKey = '';
  private lastReportAt = 0;
  private known = '';
  private applied?: string;
  /**
   * The restart generation last carried out (or adopted from the first directive that had one),
   * and the digest of RESTART_FILES as OpenVPN last (re)started with them. Kept in RESTART so
   * that an agent restart neither restarts OpenVPN again nor forgets a pending change.
   */
  private restartDone?: number;
  private restartedFiles?: string;
  /**
   * The OpenVPN process the agent knows (its pid) and whether it was started with
   * management-client-auth. OpenVPN opens its management interface once, at its first start
   * (init.c: open_management only when no management is there yet; manage.c man_settings_init),
   * so a SIGHUP re-reads server.conf but keeps `management-client-auth` as it was: what this
   * process does is what server.conf said when this pid appeared. Kept in RESTART too: an agent
   * restarted while a change is pending must not take the new server.conf for the running one.
   */
  private openvpnRuns: { pid: number | undefined; clientAuth: boolean } = {
    pid: undefined,
    clientAuth: false,
  };
  /** The fail-closed kill (auth on, OpenVPN not asking) was logged for this OpenVPN. */
  private unaskedLoggedFor?: number;
  /** The controller sends `restart`: report `restart` back (an older one would refuse it). */
  private controllerRestarts = false;
  private draining = false;
  /** The last failure logged: the same directive failing again is not logged again. */
  private lastFailure = '';
  private rulesetOk = false;
  /** The last bundle's FRR reload, and the running config from before it when it succeeded. */
  private frrReload: Promise<void> = Promise.resolve();
  private frrRollback: string | undefined;
  /** Routes without a session at the previous pass: removed if still orphaned now. */
  private orphanCandidates = new Set<string>();
  private closeHealth?: () => Promise<void>;
  private confirming?: Promise<void>;
  /**
   * Sessions we killed (by sessionId): OpenVPN keeps a killed client in `status` for its ~5 s
   * delayed exit; they are gone as far as everyone else is concerned. Keyed by the whole
   * session, not the client id: a restarted OpenVPN numbers its clients from 0 again, and a new
   * session with a killed one's id must not be hidden (measured in the lab: a user arriving on a
   * server restarted seconds earlier lost its host route to the reconcile for ~6 s).
   */
  private readonly killed = new Map<string, number>();
  private readonly loops: Promise<void>[] = [];
  /** Cancels the reconcile pass asked for sooner than the 2 s loop (after a delayed exit). */
  private cancelReconcileSoon?: () => void;
  /** The pass in progress: passes run one at a time. */
  private reconciling: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: AgentOptions) {
    this.log =
      o.log ??
      ((line) =>
        process.stdout.write(`${new Date(this.host.clock.now()).toISOString()} ${line}\n`));
    this.host = o.host ?? realHost({ ...o, log: this.log });
    this.metrics =
      o.metrics ??
      new AgentRegistry({ now: () => this.now(), sessions: () => this.sessions.length });
    this.arrivals = new RouteArrivals(
      () => this.now(),
      (seconds) => this.metrics.routePresent(seconds),
    );
    this.routeView.watch?.(() => this.arrivals.check(() => this.routes()));
    // A burst of connects (a server restart brings all its users back at once) costs one
    // status + report after another, not one per client.
    this.mgmt.on('client-established', (clientId, commonName, env) => {
      if (this.letInUnasked()) {
        void this.endUnasked(clientId, commonName, env);
        return;
      }
      this.metrics.connected();
      this.arrivals.established(clientId, env);
      this.arrivals.check(() => this.routes());
      this.sessionsChanged().catch((err: Error) =>
        this.log(`session refresh failed: ${err.message}`),
      );
    });
    this.mgmt.on('remote-exit', () => void this.onRemoteExit());
    // With `auth` OpenVPN holds every connect for the agent (management-client-auth): answered
    // from the bundle at once, the controller asked only for a sign-in (connect-auth.ts).
    const clientAuth = this.mgmt.clientAuth;
    if (clientAuth) {
      // Each held key's first answer is logged with the time it took: what the hold costs.
      const timing = new AnswerTiming(
        clientAuth,
        () => performance.now(),
        (line) => this.log(`auth: ${line}`),
      );
      const auth = new ConnectAuth({
        management: timing,
        controller: this.host.controller.auth ?? NO_SIGN_IN,
        policy: () => this.authPolicy(),
        applyGroups: (user, groups, all) =>
          applySessionGroups(
            { readFile: (path) => this.host.bundle.readFile(path), run: (a, o) => this.run(a, o) },
            all,
            user,
            groups,
          ),
        now: () => this.now(),
        sleep: (ms) => this.sleep(ms),
        log: (line) => this.log(`auth: ${line}`),
      });
      clientAuth.onRequest((r) => {
        timing.arrived(r);
        void auth.onRequest(r);
      });
      clientAuth.onResponse((cid, kid, b64) => void auth.onResponse(cid, kid, b64));
      clientAuth.onForget((cid) => {
        auth.forget(cid);
        timing.forget(cid);
      });
    }
    this.host.controller.onSwitch?.((s) => {
      this.log(`controller ${s.fromName} -> ${s.toName}: ${s.reason}`);
      this.metrics.controllerSwitched(s.to);
    });
    this.applied = this.host.bundle.readFile('VERSION')?.trim();
    if (this.applied) this.metrics.bundleApplied(this.applied);
    this.readRestartRecord();
  }

  /** auth.json of the applied bundle, read once per bundle (every connect asks for it). */
  private authPolicyOf?: {
    bundle: string | undefined;
    policy: AuthPolicy | typeof UNREADABLE_POLICY | undefined;
  };

  private authPolicy(): AuthPolicy | typeof UNREADABLE_POLICY | undefined {
    if (this.authPolicyOf && this.authPolicyOf.bundle === this.applied)
      return this.authPolicyOf.policy;
    const text = this.host.bundle.readFile(AUTH_POLICY_FILE);
    let policy: AuthPolicy | typeof UNREADABLE_POLICY | undefined;
    try {
      const p = text === undefined ? undefined : (JSON.parse(text) as Partial<AuthPolicy>);
      if (
        p &&
        typeof p.sso === 'boolean' &&
        Array.isArray(p.totpUsers) &&
        p.totpUsers.every((u) => typeof u === 'string') &&
        (p.pendingSeconds === undefined || Number.isInteger(p.pendingSeconds)) &&
        (p.groups === undefined ||
          (Array.isArray(p.groups) && p.groups.every((g) => typeof g === 'string')))
      )
        policy = {
          sso: p.sso,
          totpUsers: p.totpUsers,
          pendingSeconds: p.pendingSeconds ?? 180,
          ...(p.groups ? { groups: p.groups } : {}),
        };
      else if (p) {
        this.log(`${AUTH_POLICY_FILE} has an unknown shape: connects refused until a good bundle`);
        policy = UNREADABLE_POLICY;
      }
    } catch {
      this.log(`${AUTH_POLICY_FILE} is not JSON: connects refused until a good bundle`);
      policy = UNREADABLE_POLICY;
    }
    this.authPolicyOf = { bundle: this.applied, policy };
    return policy;
  }

  private readRestartRecord(): void {
    const text = this.host.bundle.readFile(RESTART_RECORD);
    const pid = this.host.openvpnPid();
    let known = false;
    try {
      const r = text
        ? (JSON.parse(text) as { generation?: unknown; files?: unknown; openvpn?: unknown })
        : {};
      if (Number.isSafeInteger(r.generation)) this.restartDone = r.generation as number;
      if (typeof r.files === 'string') this.restartedFiles = r.files;
      const o = r.openvpn as { pid?: unknown; clientAuth?: unknown } | undefined;
      if (pid !== undefined && o?.pid === pid && typeof o.clientAuth === 'boolean') {
        this.openvpnRuns = { pid, clientAuth: o.clientAuth };
        known = true;
      }
    } catch {
      this.log(`${RESTART_RECORD} is not JSON: starting without a restart record`);
    }
    // No record (first start, or an agent older than rollouts): OpenVPN runs what is on disk.
    this.restartedFiles ??= this.restartFilesDigest();
    if (!known)
      this.openvpnRuns = {
        pid,
        clientAuth: hasClientAuth(this.host.bundle.readFile('server.conf')),
      };
  }

  private writeRestartRecord(): void {
    this.host.bundle.writeFile(
      RESTART_RECORD,
      `${JSON.stringify({
        // Without a generation yet the first directive's is adopted, not taken for a new one.
        ...(this.restartDone !== undefined ? { generation: this.restartDone } : {}),
        files: this.restartedFiles,
        openvpn: this.openvpnRuns,
      })}\n`,
    );
  }

  /**
   * An OpenVPN the agent has not seen before (a new pid: systemd restarted it, an admin did)
   * read server.conf as it is now. The agent writes server.conf only before it restarts
   * OpenVPN itself, so the window where a new process and a newer file cross is a crash during
   * an apply.
   */
  private noticeOpenvpn(): void {
    const pid = this.host.openvpnPid();
    if (pid === undefined || pid === this.openvpnRuns.pid) return;
    this.openvpnRuns = { pid, clientAuth: hasClientAuth(this.host.bundle.readFile('server.conf')) };
    this.writeRestartRecord();
  }

  /**
   * The bundle has `auth` (auth.json, readable or not) but the running OpenVPN was started
   * without management-client-auth: it asks the agent nothing, and a TOTP or SSO user would get
   * in on the certificate alone. Lasts until OpenVPN restarts fully (the rollout's restart).
   */
  private letInUnasked(): boolean {
    this.noticeOpenvpn();
    return !this.openvpnRuns.clientAuth && this.authPolicy() !== undefined;
  }

  /** Fail closed: a client OpenVPN let in without asking is killed before it is served. */
  private async endUnasked(
    clientId: number,
    commonName: string,
    env: Readonly<Record<string, string>>,
  ): Promise<void> {
    if (this.unaskedLoggedFor !== this.openvpnRuns.pid) {
      this.unaskedLoggedFor = this.openvpnRuns.pid;
      this.log(
        'auth is on but this OpenVPN was started without management-client-auth (it asks nothing): every new client is killed until OpenVPN restarts fully',
      );
    }
    this.metrics.disconnected('disallowed');
    try {
      await this.mgmt.kill(clientId);
    } catch (err) {
      this.log(`client-kill ${commonName} failed: ${(err as Error).message}`);
    }
    // Gone for everyone else at once, as any session the agent ends: not reported, no host
    // route kept through OpenVPN's delayed exit. time_unix is the session's start, the
    // "Connected Since" that `status` lists (multi.c multi_client_connect_setenv sets it from
    // mi->created into the env ESTABLISHED carries).
    const started = Number(env.time_unix);
    if (!Number.isSafeInteger(started)) return;
    await this.withdraw({
      user: commonName,
      realAddress: '',
      since: new Date(started * 1000).toISOString(),
      bytesIn: 0,
      bytesOut: 0,
      clientId,
      ...(env.ifconfig_pool_remote_ip ? { ipv4: env.ifconfig_pool_remote_ip } : {}),
      ...(env.ifconfig_pool_remote_ip6 ? { ipv6: env.ifconfig_pool_remote_ip6 } : {}),
    });
  }

  /** sha256 over RESTART_FILES as they are on disk now. */
  private restartFilesDigest(): string {
    const h = createHash('sha256');
    for (const path of RESTART_FILES) {
      // A file the bundle does not have (auth-token.key without `auth`) leaves the digest as it
      // was before that file existed: an upgraded agent sees no restart pending.
      const content = this.host.bundle.readFile(path);
      if (content === undefined) continue;
      h.update(`${path}\0${content.length}\0${content}`);
    }
    return h.digest('hex');
  }

  /** Files that need OpenVPN restarted changed since it last (re)started. */
  private restartPending(): boolean {
    return this.restartFilesDigest() !== this.restartedFiles;
  }

  /** OpenVPN's management socket, of which the agent is the only client. */
  private get mgmt() {
    return this.host.management;
  }

  /** The main routing table, kept current by `ip monitor`: no spawn per question. */
  private get routeView() {
    return this.host.routes;
  }

  private run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return this.host.run(argv, opts);
  }

  private now(): number {
    return this.host.clock.now();
  }

  private sleep(ms: number): Promise<void> {
    return this.host.clock.sleep(ms);
  }

  async start(): Promise<void> {
    this.running = true;
    await this.routeView.start();
    this.rulesetOk = await this.tableExists(NFT_TABLE);
    this.draining = await this.tableExists(DRAIN_TABLE);
    await this.restoreRuleset();
    await this.startHealthServer();
    this.log(
      `agent for ${this.o.server} started; last good bundle ${this.applied?.slice(0, 12) ?? 'none'}`,
    );
    this.loops.push(this.pollLoop(), this.sessionLoop(), this.reconcileLoop());
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
    this.cancelReconcileSoon?.();
    this.routeView.stop();
    this.host.controller.close?.();
    this.mgmt.close();
    await this.closeHealth?.();
    await Promise.race([Promise.all([...this.loops, this.confirming]), this.sleep(2000)]);
  }

  // ------------------------------------------------------------ controller

  private async pollLoop(): Promise<void> {
    let backoff = 250;
    while (this.running) {
      try {
        const r = await this.host.controller.poll(this.known);
        this.metrics.polled(r.status === 200 || r.status === 204, this.now());
        if (r.status === 200) {
          const parsed = parseDirective(r.text);
          let done = false;
          try {
            done =
              'problem' in parsed ? this.refuse(parsed.problem) : await this.act(parsed.directive);
          } catch (err) {
            this.metrics.applyFailed('error');
            this.logOnce(`applying directive failed: ${(err as Error).message}`);
          }
          if (done && 'directive' in parsed) {
            this.known = parsed.directive.token;
            backoff = 250;
          } else {
            // Asked again after a pause, not at once: a directory an admin fixes is picked up,
            // and a controller that keeps sending the same bad directive is not hammered.
            await this.sleep(backoff);
            backoff = Math.min(backoff * 2, 5000);
          }
        } else if (r.status !== 204) {
          // Once until something succeeds: a controller that refuses this agent's protocol
          // refuses every poll, and one line says why.
          this.logOnce(`controller answered ${r.status}: ${r.text.slice(0, 200)}`);
          await this.sleep(backoff);
          backoff = Math.min(backoff * 2, 5000);
        }
      } catch (err) {
        // Controller gone: keep serving with the last good bundle, try again.
        this.metrics.polled(false, this.now());
        if (backoff === 250) this.log(`controller unreachable: ${(err as Error).message}`);
        await this.sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  private async report(force = false): Promise<void> {
    const routes = this.hostRoutes();
    const body: AgentReport = {
      ...(this.applied ? { bundleDigest: this.applied } : {}),
      sessions: this.sessions,
      ...(this.sessionsUnknown ? { sessionsUnknown: true } : {}),
      health: this.healthNow(),
      routes,
      ...(this.controllerRestarts
        ? { restart: { generation: this.restartDone ?? 0, pending: this.restartPending() } }
        : {}),
    };
    const key = `${this.sessions.map(reportedAs).sort().join(',')}|${this.sessionsUnknown}|${JSON.stringify(body.health)}|${this.applied}|${routes.ipv4.join(',')}|${routes.ipv6.join(',')}|${JSON.stringify(body.restart)}`;
    if (!force && key === this.lastReportKey && this.now() - this.lastReportAt < 5000) return;
    try {
      const r = await this.host.controller.report(body);
      if (r.status >= 300) this.log(`report refused: ${r.status} ${r.text.slice(0, 200)}`);
      else {
        this.lastReportKey = key;
        this.lastReportAt = this.now();
      }
    } catch {
      // The next pass retries; the controller being away is not the data plane's problem.
    }
  }

  /**
   * Everything a directive asks, safe to repeat. A directive with an unsafe bundle (a path out
   * of the bundle, a folder that is a link) is refused whole, evictions and drain included:
   * false, with one log line, and the last good bundle stays.
   */
  async handle(d: Directive): Promise<boolean> {
    const problem = directiveProblem(d);
    return problem ? this.refuse(problem) : this.act(d);
  }

  /**
   * handle() for a directive whose shape and paths are checked already (parseDirective). A new
   * bundle's files are written first: writing checks the folder once and refuses, having
   * written nothing, when it is unsafe, before anything else of the directive is done.
   */
  private async act(d: Directive): Promise<boolean> {
    let changed: string[] | undefined;
    if (d.bundle.digest !== this.applied) {
      try {
        changed = this.host.bundle.writeBundle(d.bundle.files);
      } catch (err) {
        if (err instanceof BundleRefused) return this.refuse(err.problem);
        throw err;
      }
    }
    this.lastFailure = '';
    // Evictions and operators' kills alike: the sessions of `user` that started at or before
    // `since` (and have that client id, when the entry names one).
    for (const e of d.evict) {
      const named = (x: SessionReport) =>
        x.user === e.user &&
        x.since <= e.since &&
        (e.clientId === undefined || x.clientId === e.clientId);
      const operator = e.reason === 'operator';
      const why = operator
        ? 'ended by an operator'
        : `newer session of ${e.user} on another server`;
      for (const s of this.live().filter(named))
        await this.endSession(s, why, operator ? 'killed' : 'eviction');
    }
    if (changed) await this.apply(d.bundle, changed, d.restart === undefined);
    if (d.restart !== undefined) await this.restartWhenTold(d.restart);
    if (d.drain !== this.draining) await this.setDraining(d.drain);
    await this.report(true);
    return true;
  }

  private refuse(problem: string): false {
    this.metrics.applyFailed('refused');
    this.logOnce(
      `directive refused, last good bundle ${this.applied?.slice(0, 12) ?? 'none'} kept: ${problem}`,
    );
    return false;
  }

  private logOnce(line: string): void {
    if (line !== this.lastFailure) this.log(line);
    this.lastFailure = line;
  }

  // ------------------------------------------------------------ apply

  /**
   * The rest of a bundle's apply, once its files are written (`changed`: what moved).
   * `restartNow`: a controller older than rollouts: restart OpenVPN at once for a file that
   * needs it, as agents always did; otherwise that waits for the controller's word.
   */
  private async apply(
    bundle: Directive['bundle'],
    changed: string[],
    restartNow: boolean,
  ): Promise<void> {
    const files = this.host.bundle;
    // Who may be connected changes first: a revoked or disabled user is cut off before anything
    // slower (the ruleset's confirm window) runs.
    await this.refreshSessions(false);
    await this.endDisallowedSessions();
    this.frrRollback = undefined;
    if (changed.includes('nftables.nft')) await this.applyRuleset(files.absolute('nftables.nft'));
    if (changed.includes('frr.conf')) {
      // The ruleset's confirm window waits for this: a bundle that cuts routing off is rolled
      // back whole, its FRR config with its ruleset.
      this.frrReload = this.reloadFrr();
      await this.frrReload;
    }
    const restartFiles = changed.filter((p) => RESTART_FILES.includes(p));
    if (restartFiles.length && restartNow && this.clientAuthChanges()) {
      this.restartedFiles = this.restartFilesDigest();
      const outcome = await this.restartFully();
      if (outcome !== 'back') this.logRestartFailed(outcome);
      await this.refreshSessions(false);
    } else if (restartFiles.length && restartNow) {
      // SIGHUP with explicit-exit-notify 2 sends every client to its next remote first.
      this.restartedFiles = this.restartFilesDigest();
      this.signalOpenvpnSafely('SIGHUP');
      this.log(`${restartFiles.join(', ')} changed: OpenVPN restarted (clients told to move)`);
    } else if (restartFiles.length) {
      this.log(
        `${restartFiles.join(', ')} changed: OpenVPN restarts when the controller's rollout reaches this server`,
      );
    }
    files.writeFile('VERSION', `${bundle.digest}\n`);
    this.applied = bundle.digest;
    this.metrics.bundleApplied(bundle.digest, this.now());
    this.log(`applied bundle ${bundle.digest.slice(0, 12)} (${changed.length} files changed)`);
  }

  /**
   * FRR's running config becomes frr.conf, removals included (`vtysh -f` only ever added), with
   * the adjacencies kept: no daemon restarts. A file FRR refuses, whether vtysh cannot parse it
   * or a daemon rejects a line half way, leaves the running config as it was.
   */
  private async reloadFrr(file = this.host.bundle.absolute('frr.conf')): Promise<void> {
    const files = this.host.bundle;
    let before: string | undefined;
    const r = await reloadFrr(file, {
      ...(this.o.frrInstance ? { instance: this.o.frrInstance } : {}),
      run: (argv, opts) => this.run(argv, opts),
      scratchDir: files.absolute('run'),
      keepRunning: (text) => {
        // The running config holds the routing keys, as frr.conf does.
        files.writeFile(FRR_BEFORE_RELOAD, text, 0o600);
        before = text;
        return files.absolute(FRR_BEFORE_RELOAD);
      },
    });
    if (r.ok) {
      this.frrRollback = before;
      const drift = isEmptyDiff(r.drift) ? '' : ` (still differs: ${describeDiff(r.drift)})`;
      this.log(`FRR reloaded: running config is frr.conf${drift}`);
      return;
    }
    this.metrics.applyFailed('frr');
    this.log(
      r.stage === 'check'
        ? `frr.conf refused, FRR left as it was: ${r.problem}`
        : r.restored
          ? `frr.conf refused by FRR, its running config restored: ${r.problem}`
          : `frr.conf refused by FRR, and its running config could NOT be restored: ${r.problem}`,
    );
  }

  private signalOpenvpnSafely(signal: NodeJS.Signals): boolean {
    try {
      return this.host.signalOpenvpn(signal);
    } catch (err) {
      this.log(`cannot signal OpenVPN: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * The controller's restart generation: the first one is adopted (OpenVPN runs already), a
   * higher one restarts OpenVPN, once, whatever changed.
   */
  private async restartWhenTold(generation: number): Promise<void> {
    const first = !this.controllerRestarts;
    this.controllerRestarts = true;
    if (this.restartDone === undefined) {
      this.restartDone = generation;
      this.writeRestartRecord();
      return;
    }
    if (generation <= this.restartDone) {
      if (first) this.writeRestartRecord();
      return;
    }
    await this.restartOpenvpn(generation);
  }

  /**
   * SIGHUP, then wait until OpenVPN says CONNECTED again (its management interface lives through
   * the restart); a full restart instead when management-client-auth changes (restartFully).
   * Whether it came back or not, the generation counts as carried out: the controller judges
   * the server by its health, and a dead OpenVPN is not signalled again and again. Sessions are
   * read again at once, so the next report shows the server as it is.
   */
  private async restartOpenvpn(generation: number): Promise<void> {
    const files = this.restartFilesDigest();
    this.log(`restarting OpenVPN (restart generation ${generation})`);
    const outcome = this.clientAuthChanges() ? await this.restartFully() : await this.sighup();
    this.restartDone = generation;
    this.restartedFiles = files;
    this.writeRestartRecord();
    if (outcome === 'back') this.log(`OpenVPN restarted (restart generation ${generation})`);
    else this.logRestartFailed(outcome);
    await this.refreshSessions(false);
  }

  /** Whether server.conf on disk sets management-client-auth otherwise than OpenVPN runs it. */
  private clientAuthChanges(): boolean {
    this.noticeOpenvpn();
    return hasClientAuth(this.host.bundle.readFile('server.conf')) !== this.openvpnRuns.clientAuth;
  }

  private async sighup(): Promise<RestartOutcome> {
    const before = await this.openvpnState();
    if (!this.signalOpenvpnSafely('SIGHUP')) return 'not running';
    const deadline = this.now() + RESTART_WAIT_MS;
    let left = false;
    while (!this.stopped && this.now() < deadline) {
      await this.sleep(200);
      // Exited (a config it refuses): no use waiting; the controller sees openvpn down.
      if (!this.host.openvpnAlive()) return 'exited';
      const st = await this.openvpnState();
      if (!st) continue;
      if (st.name !== 'CONNECTED') left = true;
      else if (left || !before || st.at > before.at) return 'back';
    }
    return 'timeout';
  }

  /**
   * SIGTERM (explicit-exit-notify sends every client to its next remote, as a SIGHUP does), wait
   * for the process to exit, and for a new one (a new pid) to say CONNECTED: a SIGHUP would
   * keep the management settings of OpenVPN's first start (see openvpnRuns). The new one is
   * started by systemd (Restart=always in ovpn-fleet-openvpn.service) or, where nothing
   * supervises OpenVPN (the lab), by the agent from --openvpn-start-argv-file.
   */
  private async restartFully(): Promise<RestartOutcome> {
    const from = onOff(this.openvpnRuns.clientAuth);
    const to = onOff(!this.openvpnRuns.clientAuth);
    const old = this.host.openvpnPid();
    if (old === undefined || !this.signalOpenvpnSafely('SIGTERM')) return 'not running';
    const deadline = this.now() + RESTART_WAIT_MS;
    const killAt = this.now() + STOP_WAIT_MS;
    let killed = false;
    while (!this.stopped && this.now() < deadline && this.host.openvpnPid() === old) {
      await this.sleep(200);
      if (!killed && this.now() >= killAt && this.host.openvpnPid() === old) {
        killed = true;
        this.log(`OpenVPN did not exit within ${STOP_WAIT_MS / 1000} s of SIGTERM: SIGKILL`);
        this.signalOpenvpnSafely('SIGKILL');
      }
    }
    if (this.host.openvpnPid() === old) return 'timeout';
    if (this.host.startOpenvpn && this.host.openvpnPid() === undefined) {
      try {
        this.host.startOpenvpn();
      } catch (err) {
        this.log(`cannot start OpenVPN: ${(err as Error).message}`);
        return 'exited';
      }
    }
    while (!this.stopped && this.now() < deadline) {
      await this.sleep(200);
      const pid = this.host.openvpnPid();
      if (pid === undefined || pid === old) continue;
      const st = await this.openvpnState();
      if (st?.name !== 'CONNECTED') continue;
      this.noticeOpenvpn();
      this.log(
        `management-client-auth changed (${from} → ${to}): OpenVPN restarted fully (SIGHUP keeps management settings)`,
      );
      return 'back';
    }
    return 'timeout';
  }

  private logRestartFailed(outcome: Exclude<RestartOutcome, 'back'>): void {
    this.metrics.applyFailed('error');
    this.log(
      outcome === 'not running'
        ? 'OpenVPN is not running: nothing to restart'
        : outcome === 'timeout'
          ? `OpenVPN did not come back within ${RESTART_WAIT_MS / 1000} s of its restart`
          : 'OpenVPN exited on its restart (see its log)',
    );
  }

  /** OpenVPN's state, or undefined while it cannot be read (restarting, down). */
  private async openvpnState(): Promise<{ at: number; name: string } | undefined> {
    try {
      if (!this.mgmt.connected) await this.mgmt.connect();
      return await this.mgmt.state();
    } catch {
      return undefined;
    }
  }

  /**
   * After a reboot the kernel has no ruleset while the last good bundle has one, and the
   * controller sends nothing new for a bundle the agent has applied already: the group policy
   * would stay off until the next change. Put the bundle's ruleset back before anything else.
   * (FRR needs nothing: frr-reload.py's `vtysh write` left the applied config in
   * /etc/frr/frr.conf, which FRR's unit loads; OpenVPN starts from the bundle's server.conf.)
   */
  private async restoreRuleset(): Promise<void> {
    const files = this.host.bundle;
    if (this.rulesetOk || !this.applied || files.readFile('nftables.nft') === undefined) return;
    this.log("no ruleset in the kernel (a reboot?): loading the last good bundle's");
    await this.applyRuleset(files.absolute('nftables.nft'));
  }

  private async tableExists(table: string): Promise<boolean> {
    return (
      (await this.run(['nft', 'list', 'table', 'inet', table], { allowFailure: true })).code === 0
    );
  }

  /**
   * One `nft -f` transaction, then a confirm window: if routing does not stay up (a ruleset
   * that cuts the server off its routers), the previous ruleset comes back by itself.
   */
  private async applyRuleset(file: string): Promise<void> {
    const before = await this.run(['nft', 'list', 'table', 'inet', NFT_TABLE], {
      allowFailure: true,
    });
    const routingBefore = this.routingUp();
    const applied = await this.run(['nft', '-f', file], { allowFailure: true });
    if (applied.code !== 0) {
      this.metrics.applyFailed('ruleset');
      this.log(
        `ruleset refused by nft, previous one kept: ${applied.stderr.trim().split('\n')[0]}`,
      );
      return;
    }
    this.rulesetOk = true;
    // The confirm window runs beside the agent's other work: if routing goes down within it (a
    // ruleset that cuts the server off its routers), the previous ruleset comes back by itself.
    if (routingBefore && before.code === 0) {
      this.confirming = this.confirmRuleset(before.stdout, (this.o.confirmSeconds ?? 6) * 1000);
    }
  }

  private async confirmRuleset(previous: string, windowMs: number): Promise<void> {
    const deadline = this.now() + windowMs;
    while (this.now() < deadline && this.running) {
      await this.sleep(500);
      if (this.routingUp()) continue;
      const restore = `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${previous}`;
      await this.run(['nft', '-f', '-'], { input: restore });
      // Health says so until a bundle with a good ruleset arrives.
      this.rulesetOk = false;
      this.metrics.rulesetRolledBack();
      this.log('new ruleset cut routing off: rolled back to the previous ruleset');
      // The same bundle's FRR config may be what cut it off (a wrong backbone interface makes
      // frr-reload.py remove the real one's OSPF settings): put FRR back as it ran before too.
      await this.frrReload;
      const frrBefore = this.frrRollback;
      this.frrRollback = undefined;
      if (frrBefore !== undefined) {
        this.host.bundle.writeFile(FRR_ROLLBACK, frrBefore, 0o600);
        await this.reloadFrr(this.host.bundle.absolute(FRR_ROLLBACK));
        this.log("and FRR's config from before that bundle is running again");
      }
      return;
    }
  }

  // ------------------------------------------------------------ sessions

  private async sessionLoop(): Promise<void> {
    while (this.running) {
      await this.refreshSessions(false);
      await this.report();
      await this.sleep(1000);
    }
  }

  private readonly sessionsChanged = coalesced(() => this.refreshSessions(true));

  private async refreshSessions(reportNow: boolean): Promise<void> {
    try {
      if (!this.mgmt.connected) await this.mgmt.connect();
      const now = this.now();
      for (const [id, at] of this.killed) if (now - at > 15_000) this.killed.delete(id);
      const listed = (await this.mgmt.status()).filter((x) => !this.killed.has(sessionId(x)));
      // Sessions that left without the agent hearing why (ended ones are not listed already).
      const gone = sessionsGone(this.sessions, listed);
      if (gone) this.metrics.disconnected('vanished', gone);
      this.sessions = listed;
      this.arrivals.check(() => this.routes(), listed);
      this.statusAt = now;
      this.sessionsUnknown = false;
    } catch {
      // OpenVPN down or restarting: we do not know who is connected, which is not "nobody".
      // The last known sessions stay and the next report says they are unknown, so the
      // controller keeps its table instead of auditing every user here as disconnected.
      this.sessionsUnknown = true;
      return;
    }
    if (reportNow) await this.report();
  }

  /**
   * The sessions to act on (end, evict, drain, withdraw): none while they cannot be read, as
   * before they were kept for the report. Acting on a stale list would withdraw routes of users
   * OpenVPN may still be serving, and no client-kill would get through.
   */
  private live(): SessionReport[] {
    return this.sessionsUnknown ? [] : [...this.sessions];
  }

  private async endSession(
    s: SessionReport,
    why: string,
    reason: DisconnectReason,
    restartToNext = false,
  ): Promise<void> {
    this.killed.set(sessionId(s), this.now());
    this.metrics.disconnected(reason);
    try {
      await this.mgmt.kill(s.clientId, { restartToNext });
    } catch (err) {
      this.log(`client-kill ${s.user} failed: ${(err as Error).message}`);
    }
    await this.withdraw(s);
    this.log(`ended ${s.user}'s session (${why})`);
  }

  /**
   * A session that is over as far as the network is concerned: OpenVPN keeps it ~5 s for its
   * delayed exit (and only then runs client-disconnect), so remove its host routes now and stop
   * reporting it. Addresses a newer session on this server holds are left alone.
   */
  private async withdraw(s: SessionReport): Promise<void> {
    this.killed.set(sessionId(s), this.now());
    this.sessions = this.sessions.filter((x) => x.clientId !== s.clientId);
    const held = new Set(this.sessions.flatMap((x) => [x.ipv4, x.ipv6]));
    await this.deleteRoutes([s.ipv4, s.ipv6].filter((a) => !held.has(a)));
  }

  /**
   * A client said goodbye (explicit-exit-notify): withdraw its routes now instead of after
   * OpenVPN's 5 s delayed exit. This is what makes a graceful disconnect leave the core in
   * milliseconds. The notification names no client: the log history does.
   */
  private async onRemoteExit(): Promise<void> {
    let leaving: { commonName: string; realAddress: string }[];
    try {
      leaving = await this.mgmt.exitingClients();
    } catch (err) {
      this.log(`cannot read who left: ${(err as Error).message}`);
      return;
    }
    const find = (l: { commonName: string; realAddress: string }) =>
      this.live().find(
        (x) =>
          x.user === l.commonName &&
          x.realAddress === l.realAddress &&
          !this.killed.has(sessionId(x)),
      );
    // A session younger than the last status poll is not in the list yet.
    if (leaving.some((l) => !find(l))) await this.refreshSessions(false);
    let withdrawn = 0;
    for (const l of leaving) {
      const s = find(l);
      if (!s) continue;
      await this.withdraw(s);
      this.metrics.disconnected('client');
      withdrawn++;
      this.log(`${s.user} left (exit notification): routes withdrawn`);
    }
    if (!withdrawn) return;
    await this.report(true);
    // When OpenVPN finally ends the session its client-disconnect hook deletes the user's
    // routes, even if the user is back on this server in a newer session: put them back.
    this.reconcileSoon(5500);
  }

  private reconcileSoon(delayMs: number): void {
    if (this.cancelReconcileSoon || !this.running) return;
    this.cancelReconcileSoon = this.host.clock.after(delayMs, () => {
      this.cancelReconcileSoon = undefined;
      this.reconcile().catch((err: Error) => this.log(`reconcile failed: ${err.message}`));
    });
  }

  /** Sessions of users the bundle no longer admits (disabled, revoked, deleted). */
  private async endDisallowedSessions(): Promise<void> {
    for (const s of this.live()) {
      if (!this.admits(s.user)) await this.endSession(s, 'no longer allowed', 'disallowed');
    }
  }

  /**
   * Whether the bundle has a ccd file for this common name, as OpenVPN looks it up (`/` becomes
   * `_`). Only a regular file counts: a CN of `..` or a stray link is not an admitted user.
   */
  private admits(commonName: string): boolean {
    return this.host.bundle.isRegularFile(`ccd/${commonName.replaceAll('/', '_')}`);
  }

  private async setDraining(drain: boolean): Promise<void> {
    if (drain) {
      // New clients are refused at once; connected ones are sent to their next remote.
      const rules = `table inet ${DRAIN_TABLE} {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n\t\tiifname != "${this.o.tunDevice}" meta l4proto { udp, tcp } th dport ${this.openvpnPort()} ct state new reject\n\t}\n}\n`;
      await this.run(['nft', '-f', '-'], {
        input: `table inet ${DRAIN_TABLE}\ndelete table inet ${DRAIN_TABLE}\n${rules}`,
      });
      this.draining = true;
      await this.refreshSessions(false);
      await Promise.all(this.live().map((s) => this.endSession(s, 'drain', 'drain', true)));
      this.log(`draining: ${this.sessions.length} sessions left`);
    } else {
      await this.run(['nft', 'delete', 'table', 'inet', DRAIN_TABLE], { allowFailure: true });
      this.draining = false;
      this.log('undrained: taking new users again');
    }
  }

  private openvpnPort(): number {
    const conf = this.host.bundle.readFile('server.conf');
    if (conf === undefined) throw new Error('cannot read server.conf for its port');
    return Number(/^port (\d+)$/m.exec(conf)?.[1] ?? 1194);
  }

  // ------------------------------------------------------------ routes

  /** The users' host routes: on the tun device, with the hooks' protocol number. */
  private routes(): string[] {
    return this.routeView.on(this.o.tunDevice, String(this.o.routeProtocol));
  }

  /**
   * The host routes as the report carries them: the /32 and /128 destinations of `routes()`,
   * exactly what the routing daemon announces. Anything else a hand may have put on the device
   * with our protocol (a wider prefix, `default`) is no user's route and is left out, as is
   * anything beyond the report's bound. Addresses are checked with the report's own schema
   * (node's isIPv6 would pass a zone id the controller refuses).
   */
  private hostRoutes(): HostRoutes {
    const v4 = HostRoutes.shape.ipv4.element;
    const v6 = HostRoutes.shape.ipv6.element;
    const ipv4: string[] = [];
    const ipv6: string[] = [];
    for (const dst of this.routes()) {
      const [address, length] = dst.split('/', 2);
      if (length === undefined || length === '32' || length === '128') {
        if (length !== '128' && v4.safeParse(address).success) ipv4.push(address);
        else if (length !== '32' && v6.safeParse(address).success) ipv6.push(address);
      }
    }
    return {
      ipv4: ipv4.sort().slice(0, MAX_HOST_ROUTES),
      ipv6: ipv6.sort().slice(0, MAX_HOST_ROUTES),
    };
  }

  private async deleteRoutes(addresses: (string | undefined)[]): Promise<void> {
    let failed = false;
    for (const a of addresses) {
      if (!a) continue;
      const r = await this.run(
        ['ip', 'route', 'del', a, 'dev', this.o.tunDevice, 'proto', String(this.o.routeProtocol)],
        { allowFailure: true },
      );
      failed ||= r.code !== 0;
    }
    // Already gone without the kernel saying so (its interface went away): re-read the table.
    if (failed) await this.routeView.resync();
  }

  /**
   * No route for a user who is not connected, no connected user without a route. Passes run one
   * at a time: an orphan must be seen by two passes that are really apart.
   */
  reconcile(): Promise<{ added: string[]; removed: string[] }> {
    const next = this.reconciling.catch(() => undefined).then(() => this.reconcileOnce());
    this.reconciling = next;
    return next;
  }

  private async reconcileOnce(): Promise<{ added: string[]; removed: string[] }> {
    const have = this.routes();
    await this.refreshSessions(false);
    if (!this.mgmt.connected || this.sessionsUnknown || this.now() - this.statusAt > 3000)
      return { added: [], removed: [] };
    const want = new Set(
      this.sessions.flatMap((s) => [s.ipv4, s.ipv6].filter((a): a is string => !!a)),
    );
    const plan = planRoutes(have, want, this.orphanCandidates);
    this.orphanCandidates = plan.orphans;
    await this.deleteRoutes(plan.remove);
    for (const a of plan.add) {
      await this.run(
        [
          'ip',
          'route',
          'replace',
          a,
          'dev',
          this.o.tunDevice,
          'proto',
          String(this.o.routeProtocol),
        ],
        {
          allowFailure: true,
        },
      );
    }
    const { add: added, remove: removed } = plan;
    this.metrics.routesReconciled(added, removed);
    if (added.length || removed.length)
      this.log(`routes reconciled: +${added.join(',') || '-'} -${removed.join(',') || '-'}`);
    return { added, removed };
  }

  private async reconcileLoop(): Promise<void> {
    while (this.running) {
      try {
        await this.reconcile();
      } catch (err) {
        this.log(`reconcile failed: ${(err as Error).message}`);
      }
      await this.sleep(2000);
    }
  }

  // ------------------------------------------------------------ health

  /** Routing is up when the kernel has any route learnt through a routing protocol. */
  private routingUp(): boolean {
    return this.routeView.hasProto(ROUTING_PROTOS);
  }

  healthNow(): ServerHealth {
    const openvpn =
      this.mgmt.connected && !this.sessionsUnknown && this.now() - this.statusAt < 5000;
    const routing = this.routingUp();
    const ruleset = this.rulesetOk;
    return {
      openvpn,
      routing,
      ruleset,
      draining: this.draining,
      ok: openvpn && routing && ruleset && !this.draining,
    };
  }

  /**
   * GET /health on run/agent.sock: 200 when the server should get new users, else 503.
   * GET /metrics there: Prometheus text (with the metrics token, when one is set).
   */
  private async startHealthServer(): Promise<void> {
    this.closeHealth = await this.host.serveHealth((req) => {
      if (req.path === '/metrics')
        return metricsAnswer(this.metrics, req.authorization, this.o.metricsToken);
      const h = this.healthNow();
      return {
        status: h.ok ? 200 : 503,
        body: `${JSON.stringify({ server: this.o.server, sessions: this.sessions.length, ...h })}\n`,
      };
    });
  }
}
