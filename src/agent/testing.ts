/**
 * A fake AgentHost for tests: nothing touches the machine, everything is recorded or scripted.
 * Commands are recorded as argv and answered from a script (Tailscale's fake runner); OpenVPN's
 * management socket serves the sessions a test sets; time moves only when a test advances it.
 * `ip route replace|del` act on the fake route table, so a test can look at the routes as the
 * network would see them.
 */
import { EventEmitter } from 'node:events';
import { CommandError } from '../errors.js';
import type { RenderedFile } from '../render/types.js';
import type { RunOptions, RunResult } from '../sys/exec.js';
import { BundleRefused, bundleFilesProblem } from '../sys/files.js';
import type {
  AgentClock,
  AgentHost,
  BundleFolder,
  ControllerAnswer,
  ControllerLink,
  HealthAnswer,
  HealthRequest,
  Management,
  Routes,
} from './host.js';
import { AgentReport, type Directive, POLL_WAIT_MS, type SessionReport } from '../api/index.js';
import type { AgentMetrics, ApplyFailure, DisconnectReason } from './metrics.js';
import type { ClientAuthRequest } from './management.js';
import { Agent, type AgentOptions } from './agent.js';

/** Lets every promise chain that can run now run (the fakes do no I/O, so this is all of them). */
export const settle = () => new Promise<void>((r) => setImmediate(r));

interface Timer {
  at: number;
  fire: () => void;
}

export class FakeClock implements AgentClock {
  private timers: Timer[] = [];
  constructor(private t = Date.parse('2026-03-01T12:00:00Z')) {}

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((r) => this.after(ms, r));
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.t + ms, fire: fn };
    this.timers.push(timer);
    return () => (this.timers = this.timers.filter((x) => x !== timer));
  }

  /**
   * Moves time forward by `ms`, firing each timer due on the way in order and letting the agent
   * run after each, as if that much time had passed.
   */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fire();
    }
    this.t = end;
    await settle();
  }
}

export class FakeManagement implements Management {
  /** What `status 3` lists. A killed client stays here until the test removes it, as in OpenVPN. */
  sessions: SessionReport[] = [];
  /** OpenVPN down or restarting: connect and status fail. */
  down = false;
  /** `status` fails on a live connection (a command timeout): the connection stays. */
  statusFails = false;
  /** What the log history says about clients that announced their exit. */
  exiting: { commonName: string; realAddress: string }[] = [];
  readonly kills: { clientId: number; restartToNext: boolean }[] = [];
  connected = false;
  /** What `state` answers (a test moves it through a restart). */
  openvpnState = { at: Math.floor(Date.parse('2026-03-01T11:00:00Z') / 1000), name: 'CONNECTED' };
  private readonly events = new EventEmitter();

  connect(): Promise<void> {
    if (this.down) return Promise.reject(new Error('management: connect ENOENT'));
    this.connected = true;
    return Promise.resolve();
  }

  close(): void {
    this.connected = false;
  }

  status(): Promise<SessionReport[]> {
    if (this.down || !this.connected) {
      this.connected = false;
      return Promise.reject(new Error('management status 3: connection lost'));
    }
    if (this.statusFails) return Promise.reject(new Error('management status 3: no answer'));
    return Promise.resolve(this.sessions.map((s) => ({ ...s })));
  }

  kill(clientId: number, opts: { restartToNext?: boolean } = {}): Promise<void> {
    this.kills.push({ clientId, restartToNext: opts.restartToNext ?? false });
    return Promise.resolve();
  }

  exitingClients(): Promise<{ commonName: string; realAddress: string }[]> {
    return Promise.resolve(this.exiting);
  }

  state(): Promise<{ at: number; name: string }> {
    if (this.down || !this.connected) {
      this.connected = false;
      return Promise.reject(new Error('management state: connection lost'));
    }
    return Promise.resolve({ ...this.openvpnState });
  }

  on(
    event: 'client-established' | 'remote-exit',
    listener: (clientId: number, commonName: string, env: Record<string, string>) => void,
  ): void {
    this.events.on(event, listener);
  }

  /** Answers to held keys (management-client-auth), as the commands would be sent. */
  readonly authAnswers: string[] = [];
  private readonly authEvents = new EventEmitter();
  readonly clientAuth = {
    authorize: (cid: number, kid: number) => this.answer(`client-auth-nt ${cid} ${kid}`),
    deny: (cid: number, kid: number, _reason: string, clientReason: string) =>
      this.answer(`client-deny ${cid} ${kid} ${clientReason}`),
    pendingAuth: (cid: number, kid: number, extra: string, timeout: number) =>
      this.answer(`client-pending-auth ${cid} ${kid} ${extra} ${timeout}`),
    onRequest: (listener: (r: ClientAuthRequest) => void) =>
      void this.authEvents.on('request', listener),
    onResponse: (listener: (cid: number, kid: number, b64: string) => void) =>
      void this.authEvents.on('response', listener),
    onForget: (listener: (cid: number | undefined) => void) =>
      void this.authEvents.on('forget', listener),
  };

  /** `>CLIENT:DISCONNECT` of a held client, or (undefined) the management connection lost. */
  forgetKeys(clientId?: number): void {
    this.authEvents.emit('forget', clientId);
  }

  /** `>CLIENT:CONNECT|REAUTH` from OpenVPN. */
  holdKey(request: ClientAuthRequest): void {
    this.authEvents.emit('request', request);
  }

  private answer(command: string): Promise<void> {
    this.authAnswers.push(command);
    return Promise.resolve();
  }

  /** A real-time notification from OpenVPN (ESTABLISHED: client id, common name, env). */
  notify(
    event: 'client-established' | 'remote-exit',
    ...args: [clientId?: number, commonName?: string, env?: Record<string, string>]
  ): void {
    this.events.emit(event, ...args);
  }
}

export class FakeRoutes implements Routes {
  /** Host routes on the tun device with the hooks' protocol. */
  readonly hostRoutes = new Set<string>();
  /** Whether routes learnt from a routing protocol are in the table (OSPF adjacency up). */
  routingUp = true;

  start = () => Promise.resolve();
  stop = () => undefined;
  on = () => [...this.hostRoutes].sort();
  hasProto = () => this.routingUp;
  resync = () => Promise.resolve();
  private readonly listeners: (() => void)[] = [];
  watch = (listener: () => void) => void this.listeners.push(listener);

  /** Tells the watchers the table changed, as `ip monitor` would. */
  changed(): void {
    for (const l of this.listeners) l();
  }

  /** A host route appears (a hook ran `ip route replace`). */
  learn(address: string): void {
    this.hostRoutes.add(address);
    this.changed();
  }
}

/** An in-memory bundle folder, with `writeBundleFiles`' rules: content decides, stray ccd goes. */
export class FakeBundle implements BundleFolder {
  readonly files = new Map<string, string>();
  /** Every path written or removed, in order. */
  readonly writes: string[] = [];

  writeBundle(files: RenderedFile[]): string[] {
    const problem = bundleFilesProblem(files);
    if (problem) throw new BundleRefused(problem);
    const changed: string[] = [];
    for (const f of files) {
      if (this.files.get(f.path) === f.content) continue;
      this.files.set(f.path, f.content);
      changed.push(f.path);
    }
    const wanted = new Set(files.map((f) => f.path));
    for (const path of [...this.files.keys()]) {
      if (!path.startsWith('ccd/') || wanted.has(path)) continue;
      this.files.delete(path);
      changed.push(path);
    }
    this.writes.push(...changed);
    return changed;
  }

  writeFile(path: string, content: string): void {
    this.files.set(path, content);
    this.writes.push(path);
  }

  readFile = (path: string) => this.files.get(path);
  isRegularFile = (path: string) => this.files.has(path);
  absolute = (path: string) => `/fake/bundle/${path}`;
}

/** The controller's side of the long-poll and the reports, as a test sees it. */
export class FakeController implements ControllerLink {
  readonly reports: AgentReport[] = [];
  /** The `known` token of every poll, in order. */
  readonly polls: string[] = [];
  private queued: Directive[] = [];
  private answerPoll?: (a: ControllerAnswer) => void;

  constructor(private readonly clock: AgentClock) {}

  poll(known: string): Promise<ControllerAnswer> {
    this.polls.push(known);
    const d = this.queued.shift();
    if (d) return Promise.resolve({ status: 200, text: JSON.stringify(d) });
    return new Promise((resolve) => {
      this.answerPoll = resolve;
      void this.clock.sleep(POLL_WAIT_MS).then(() => resolve({ status: 204, text: '' }));
    });
  }

  /** Hands the agent a directive: at once to a waiting poll, else to the next one. */
  send(d: Directive): void {
    if (this.answerPoll) this.answerPoll({ status: 200, text: JSON.stringify(d) });
    else this.queued.push(d);
    this.answerPoll = undefined;
  }

  report(body: AgentReport): Promise<ControllerAnswer> {
    // Refused as the real controller would (its schema is strict): the agent logs it, and the
    // report a test looks for is missing.
    const parsed = AgentReport.safeParse(structuredClone(body));
    if (!parsed.success) return Promise.resolve({ status: 400, text: parsed.error.message });
    this.reports.push(parsed.data);
    return Promise.resolve({ status: 204, text: '' });
  }

  get lastReport(): AgentReport | undefined {
    return this.reports.at(-1);
  }
}

export interface Command {
  argv: string[];
  input?: string;
}

export class FakeHost implements AgentHost {
  readonly clock = new FakeClock();
  readonly management = new FakeManagement();
  readonly routes = new FakeRoutes();
  readonly bundle = new FakeBundle();
  readonly controller = new FakeController(this.clock);
  /** Every command the agent ran, in order. */
  readonly commands: Command[] = [];
  readonly signals: NodeJS.Signals[] = [];
  private readonly answers = new Map<string, Partial<RunResult>>();
  private healthAnswer?: (req: HealthRequest) => HealthAnswer | Promise<HealthAnswer>;

  constructor() {
    // A server as the agent usually finds it: our ruleset loaded, not draining.
    this.answer('nft list table inet ovpn_fleet', { stdout: 'table inet ovpn_fleet { }\n' });
    this.answer('nft list table inet ovpn_fleet_drain', {
      code: 1,
      stderr: 'Error: No such file or directory\n',
    });
  }

  /** What the command with exactly this argv (joined by spaces) answers; others exit 0. */
  answer(argv: string, result: Partial<RunResult>): void {
    this.answers.set(argv, result);
  }

  run = (argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> => {
    this.commands.push({
      argv: [...argv],
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
    const r: RunResult = { code: 0, stdout: '', stderr: '', ...this.answers.get(argv.join(' ')) };
    if (r.code === 0 && argv[0] === 'ip' && argv[1] === 'route') {
      if (argv[2] === 'replace') this.routes.hostRoutes.add(argv[3]);
      if (argv[2] === 'del') this.routes.hostRoutes.delete(argv[3]);
      this.routes.changed();
    }
    if (r.code !== 0 && !opts.allowFailure)
      return Promise.reject(new CommandError(argv, r.code, r.stderr));
    return Promise.resolve(r);
  };

  /** The commands run so far, as lines, that start with `prefix`. */
  ran(prefix = ''): string[] {
    return this.commands.map((c) => c.argv.join(' ')).filter((l) => l.startsWith(prefix));
  }

  /** Whether OpenVPN's pid file names a live process. */
  openvpnRunning = true;
  /**
   * What a SIGHUP does to the fake OpenVPN: by default it comes back at once (state CONNECTED
   * from now on); `'dies'` makes it exit instead (a config it refuses), `'hangs'` leaves it
   * restarting.
   */
  onSighup: 'restarts' | 'dies' | 'hangs' = 'restarts';
  /** The running OpenVPN's pid: a full restart gives the next one. */
  pid = 1000;
  /**
   * What a SIGTERM does: by default OpenVPN exits and its supervisor (systemd) starts a new one
   * at once, CONNECTED; `'stays-down'`: nothing starts it again (the lab without startOpenvpn);
   * `'ignores'`: it does not exit until SIGKILL.
   */
  onSigterm: 'respawns' | 'stays-down' | 'ignores' = 'respawns';
  /** How often startOpenvpn ran (a test sets `startOpenvpn` to fake the lab's start argv). */
  starts = 0;
  startOpenvpn?: () => void;

  openvpnAlive(): boolean {
    return this.openvpnRunning;
  }

  openvpnPid(): number | undefined {
    return this.openvpnRunning ? this.pid : undefined;
  }

  /** A new OpenVPN process (new pid) is up and CONNECTED, as after a start by its supervisor. */
  startNewOpenvpn(): void {
    this.starts++;
    this.pid++;
    this.openvpnRunning = true;
    this.management.down = false;
    this.management.openvpnState = { at: Math.floor(this.clock.now() / 1000), name: 'CONNECTED' };
  }

  signalOpenvpn(signal: NodeJS.Signals): boolean {
    if (!this.openvpnRunning) return false;
    this.signals.push(signal);
    if (signal === 'SIGKILL' || (signal === 'SIGTERM' && this.onSigterm !== 'ignores')) {
      this.openvpnRunning = false;
      this.management.down = true;
      this.management.connected = false;
      if (this.onSigterm === 'respawns') this.startNewOpenvpn();
    }
    if (signal === 'SIGHUP') {
      const at = Math.floor(this.clock.now() / 1000) + 1;
      if (this.onSighup === 'restarts') this.management.openvpnState = { at, name: 'CONNECTED' };
      else if (this.onSighup === 'hangs')
        this.management.openvpnState = { at, name: 'RECONNECTING' };
      else {
        this.openvpnRunning = false;
        this.management.down = true;
        this.management.connected = false;
      }
    }
    return true;
  }

  serveHealth(
    answer: (req: HealthRequest) => HealthAnswer | Promise<HealthAnswer>,
  ): Promise<() => Promise<void>> {
    this.healthAnswer = answer;
    return Promise.resolve(() => Promise.resolve());
  }

  /** What GET /health on run/agent.sock would answer (at once: load balancers ask often). */
  health(): HealthAnswer | undefined {
    const answer = this.healthAnswer?.({ path: '/health' });
    if (answer instanceof Promise) throw new Error('GET /health should answer at once');
    return answer;
  }

  /** What GET `path` on run/agent.sock would answer. */
  async get(path: string, authorization?: string): Promise<HealthAnswer | undefined> {
    return this.healthAnswer?.({ path, ...(authorization ? { authorization } : {}) });
  }
}

/**
 * Metrics that remember what the agent told them, as lines (`disconnected drain`), for tests
 * that look at the agent's decisions rather than at Prometheus' text.
 */
export class RecordedMetrics implements AgentMetrics {
  readonly events: string[] = [];
  readonly routeSeconds: number[] = [];

  connected(): void {
    this.events.push('connected');
  }

  disconnected(reason: DisconnectReason, count = 1): void {
    for (let i = 0; i < count; i++) this.events.push(`disconnected ${reason}`);
  }

  routePresent(seconds: number): void {
    this.routeSeconds.push(seconds);
  }

  bundleApplied(digest: string, atMs?: number): void {
    this.events.push(`bundle ${digest.slice(0, 12)}${atMs === undefined ? ' (on disk)' : ''}`);
  }

  applyFailed(reason: ApplyFailure): void {
    this.events.push(`apply failed ${reason}`);
  }

  rulesetRolledBack(): void {
    this.events.push('ruleset rolled back');
  }

  routesReconciled(added: readonly string[], removed: readonly string[]): void {
    for (const a of added) this.events.push(`route added ${a}`);
    for (const a of removed) this.events.push(`route removed ${a}`);
  }

  polled(ok: boolean): void {
    this.events.push(ok ? 'poll ok' : 'poll failed');
  }

  controllerSwitched(index: number): void {
    this.events.push(`controller ${index}`);
  }

  render(): Promise<{ contentType: string; body: string }> {
    return Promise.resolve({ contentType: 'text/plain', body: `${this.events.join('\n')}\n` });
  }

  /** The events of one kind (`disconnected`, `apply failed`…), without the kind. */
  of(kind: string): string[] {
    return this.events.filter((e) => e.startsWith(`${kind} `)).map((e) => e.slice(kind.length + 1));
  }
}

/** An Agent of server vpn1 over `host`, as the unit tests build it; `log` hears its lines. */
export function agentOn(
  host: FakeHost,
  log: (line: string) => void = () => undefined,
  more: Partial<AgentOptions> = {},
): Agent {
  return new Agent({
    server: 'vpn1',
    bundleDir: '/fake/bundle',
    controller: 'unix:/nowhere/controller.sock',
    token: 'x',
    tunDevice: 'vpn0',
    routeProtocol: 201,
    log,
    host,
    ...more,
  });
}

/** agent.handle(d), with the fake clock moving `ms` while the agent waits for OpenVPN. */
export async function handleWhileTimePasses(
  agent: Agent,
  host: FakeHost,
  d: Directive,
  ms = 1000,
): Promise<boolean> {
  const done = agent.handle(d);
  await host.clock.advance(ms);
  return done;
}
