/**
 * Several controllers, one at a time: the one place that decides which controller a client
 * talks to and when it moves on. Used by the CLI and API client (ControllerClient: the first
 * that answers) and by the agent (which also watches the one in use and returns to the first).
 *
 * What counts as a controller that is gone, and so a reason to try the next one: no connection
 * (refused, reset, no route, a connect or answer timeout, a certificate that does not verify),
 * or a 5xx answer. A 4xx is a real answer (a refused token, a protocol the controller does not
 * speak, a bad request) and is returned as is: another controller would say the same.
 *
 * A request that may already have been carried out (the connection broke after it was sent, or
 * a 500/502/504) is tried on the next controller only when it is idempotent: GETs, the agent's
 * long-poll and its reports (each report is the server's whole state, which the controller
 * replaces: see ReportIngest.record). A POST that creates or revokes something is retried only
 * when it surely was not carried out (no connection, or 503: the controller says it is
 * unavailable before it does anything).
 *
 * Timers run on the given clock (the agent's), so that tests can drive the agent's failover with
 * a fake one. Requests in flight to a controller the set leaves are aborted and sent again to the
 * next one at once.
 */

/** The clock the set's timers run on (the agent's AgentClock fits). */
export interface FailoverClock {
  now(): number;
  /** Calls `fn` once after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** An HTTP answer, as far as failover looks at it. */
export interface Answer {
  status: number;
  text: string;
}

/** Why a try failed at the transport, and whether the request may have reached a controller. */
export interface TransportFailure {
  reason: string;
  /** The request may have been carried out (it was sent before the connection failed). */
  maybeDone: boolean;
}

/** The set moved to another controller. */
export interface ControllerSwitch {
  from: number;
  to: number;
  /** Name of each (`https://ctl1:8443`), for the log. */
  fromName: string;
  toName: string;
  reason: string;
  /** The agent's clock at the switch. */
  at: number;
}

export interface FailoverOptions {
  clock: FailoverClock;
  /**
   * The transport failure `err` stands for, or undefined when it is none (a bug, a parse error):
   * then it is thrown at once.
   */
  failureOf(err: unknown): TransportFailure | undefined;
  /**
   * Resolves when controller `index` is healthy (GET /v1/health answers 200), rejects with the
   * reason otherwise or when `signal` aborts. Needed with `watch`.
   */
  probe?(index: number, signal: AbortSignal): Promise<void>;
  /**
   * The agent's mode: while requests are in flight, check the controller in use every
   * `heartbeatMs` and, while not on the first one, check the first every `preferredEveryMs` and
   * return to it when it answers. Without it (the CLI) the set only moves when a request fails.
   */
  watch?: boolean;
  heartbeatMs?: number;
  probeTimeoutMs?: number;
  preferredEveryMs?: number;
}

/**
 * The agent's heartbeat. A killed controller resets its connections at once, but a controller
 * host that vanishes (power, network) sends nothing: a long-poll to it would wait for its whole
 * timeout, and TCP keepalive cannot help in time (node's setKeepAlive sets only the idle time;
 * libuv then probes every 1 s, 10 times: >11 s), nor can a request timeout on a long-poll that is
 * meant to wait 25 s. So the agent asks GET /v1/health every 500 ms while it waits, each allowed
 * 1 s: a silent controller is left at most 1.5 s after it fell silent, and the request goes to
 * the next one at once. That is two small keep-alive GETs a second per agent.
 */
export const HEARTBEAT_MS = 500;
export const PROBE_TIMEOUT_MS = 1000;
/** How often an agent away from its first controller asks whether it is back. */
export const PREFERRED_EVERY_MS = 10_000;

interface InFlight {
  index: number;
  controller: AbortController;
  longPoll: boolean;
  /** Aborted because the set moved on: send it again to the controller in use. */
  moved: boolean;
}

export interface SendOptions {
  /** Safe to carry out twice (see the module comment). */
  idempotent: boolean;
  /** A long-poll: moved to the first controller when the set returns to it. */
  longPoll?: boolean;
}

export class EndpointSet {
  private active = 0;
  private readonly inFlight = new Set<InFlight>();
  private cancelHeartbeat?: () => void;
  private cancelPreferred?: () => void;
  private beating = false;
  private closed = false;
  private readonly switchListeners: ((s: ControllerSwitch) => void)[] = [];

  constructor(
    /** How each controller is named in logs and errors, in the order given (first = preferred). */
    readonly names: readonly string[],
    private readonly o: FailoverOptions,
  ) {
    if (!names.length) throw new Error('EndpointSet needs at least one endpoint');
  }

  /** The index of the controller in use. */
  get current(): number {
    return this.active;
  }

  /** Watching makes sense only with somewhere to go. */
  private get watching(): boolean {
    return !!this.o.watch && this.names.length > 1 && !this.closed;
  }

  /** Calls `listener` once at each move from one controller to another. */
  onSwitch(listener: (s: ControllerSwitch) => void): void {
    this.switchListeners.push(listener);
  }

  /** Stops the heartbeat and the return probe (the agent stopped). */
  close(): void {
    this.closed = true;
    this.cancelHeartbeat?.();
    this.cancelPreferred?.();
    this.cancelHeartbeat = this.cancelPreferred = undefined;
  }

  /**
   * Sends with `attempt` to the controller in use and, if it is gone, to the next ones in turn,
   * each at most once. Answers the first real answer; when every controller failed, the last 5xx
   * answer or the last error.
   */
  async send(
    attempt: (index: number, signal: AbortSignal) => Promise<Answer>,
    opts: SendOptions,
  ): Promise<Answer> {
    const tried = new Set<number>();
    let lastAnswer: Answer | undefined;
    let lastError: unknown;
    for (;;) {
      const index = this.active;
      const flight: InFlight = {
        index,
        controller: new AbortController(),
        longPoll: opts.longPoll ?? false,
        moved: false,
      };
      this.inFlight.add(flight);
      this.watch();
      let reason: string;
      try {
        const answer = await attempt(index, flight.controller.signal);
        if (!this.gone(answer, opts.idempotent)) return answer;
        lastAnswer = answer;
        lastError = undefined;
        reason = `answered ${answer.status}`;
      } catch (err) {
        if (flight.moved) continue;
        const failure = this.o.failureOf(err);
        if (!failure || (failure.maybeDone && !opts.idempotent)) throw err;
        lastError = err;
        lastAnswer = undefined;
        reason = failure.reason;
      } finally {
        this.inFlight.delete(flight);
      }
      tried.add(index);
      // Another request may have moved the set already; else this failure moves it.
      if (this.active === index) this.moveOn(index, reason);
      let next = this.active;
      for (let k = 0; k < this.names.length && tried.has(next); k++)
        next = (next + 1) % this.names.length;
      if (tried.has(next)) {
        if (lastAnswer) return lastAnswer;
        throw lastError;
      }
      if (next !== this.active) this.switchTo(next, reason);
    }
  }

  /** A 5xx: the controller cannot serve; a 500/502/504 may have done the work already. */
  private gone(answer: Answer, idempotent: boolean): boolean {
    if (answer.status < 500 || this.names.length < 2) return false;
    return idempotent || answer.status === 503;
  }

  /** Controller `index` failed while in use: on to the next one. */
  private moveOn(index: number, reason: string): void {
    if (this.names.length < 2) return;
    this.switchTo((index + 1) % this.names.length, reason);
  }

  private switchTo(to: number, reason: string, onlyLongPolls = false): void {
    const from = this.active;
    if (to === from) return;
    this.active = to;
    // Whatever waits on the one left goes to the new one now. Returning to the first, only the
    // long-poll moves: a report to a healthy controller may as well finish.
    for (const f of this.inFlight)
      if (f.index === from && (!onlyLongPolls || f.longPoll)) {
        f.moved = true;
        f.controller.abort();
      }
    const event: ControllerSwitch = {
      from,
      to,
      fromName: this.names[from],
      toName: this.names[to],
      reason,
      at: this.o.clock.now(),
    };
    for (const listener of this.switchListeners) listener(event);
    this.watch();
  }

  /** Arms the heartbeat and the return probe while requests are in flight (agent mode). */
  private watch(): void {
    if (!this.watching || !this.inFlight.size) return;
    if (!this.cancelHeartbeat && !this.beating)
      this.cancelHeartbeat = this.o.clock.after(this.o.heartbeatMs ?? HEARTBEAT_MS, () => {
        this.cancelHeartbeat = undefined;
        void this.heartbeat();
      });
    if (this.active !== 0 && !this.cancelPreferred)
      this.cancelPreferred = this.o.clock.after(
        this.o.preferredEveryMs ?? PREFERRED_EVERY_MS,
        () => {
          this.cancelPreferred = undefined;
          void this.tryPreferred();
        },
      );
  }

  private async heartbeat(): Promise<void> {
    const index = this.active;
    this.beating = true;
    try {
      await this.check(index);
    } catch (err) {
      if (this.active === index && !this.closed)
        this.moveOn(index, `no health answer: ${(err as Error).message}`);
    } finally {
      this.beating = false;
      this.watch();
    }
  }

  private async tryPreferred(): Promise<void> {
    if (this.active === 0 || this.closed) return;
    try {
      await this.check(0);
    } catch {
      this.watch();
      return;
    }
    if (this.active !== 0 && !this.closed) this.switchTo(0, 'it answers again', true);
  }

  /** Controller `index`'s health, within the probe timeout on the set's clock. */
  private async check(index: number): Promise<void> {
    if (!this.o.probe) return;
    const controller = new AbortController();
    const timeoutMs = this.o.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
    const cancel = this.o.clock.after(timeoutMs, () =>
      controller.abort(new Error(`no answer within ${timeoutMs} ms`)),
    );
    try {
      await this.o.probe(index, controller.signal);
    } catch (err) {
      // The abort's own reason says more than the request's "aborted".
      if (controller.signal.aborted) throw controller.signal.reason as Error;
      throw err;
    } finally {
      cancel();
    }
  }
}
