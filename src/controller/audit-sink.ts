/**
 * The audit log, shipped as it grows: every entry as one JSON line appended to a file
 * (`controller --audit-log FILE`) and/or sent to syslog (`--audit-syslog`), for a SIEM.
 *
 * The sink tails the audit table by id instead of hooking the controller's own writes, so
 * entries that other processes write (the CLI's user commands) are shipped too. Each
 * destination remembers the last id it shipped in a store setting, written after the lines
 * are out: a restart neither repeats nor skips what was shipped before a clean stop. A crash
 * between writing lines and recording their id repeats those lines once (each carries its id,
 * so a receiver can drop the repeat); nothing is ever skipped.
 *
 * Syslog: Node cannot write datagrams to /dev/log (no unix datagram sockets), so the lines go
 * through a long-running util-linux `logger` reading its standard input, started again with
 * back-off whenever it dies. Lines still in the pipe when it dies are lost to syslog (the file
 * does not have that gap). Measured with logger 2.38: a stdin line longer than `--size`
 * (default 1 KiB) is split into several messages, which would break each JSON line apart, so
 * the default command raises it.
 */
import type { FleetStore } from '../store/types.js';
import { type StdinSink, spawnStdinSink } from '../sys/exec.js';
import { AppendOnlyFile } from '../sys/files.js';
import type { Timers } from '../sys/time.js';
import { auditJsonLine } from './audit-format.js';
import { oneLine } from './state.js';

export interface AuditSinkOptions {
  /** Append every entry as one JSON line to this file (created 0600; a symlink is refused). */
  file?: string;
  /** Send every entry as one line to syslog (authpriv.info) through `logger`. */
  syslog?: boolean;
  /** The syslog command reading lines on stdin; default: defaultSyslogArgv(). */
  syslogArgv?: string[];
  /** How often to look for new entries (default 1000 ms). */
  intervalMs?: number;
  /** First wait before starting a dead syslog command again (default 1000 ms, doubling to 60 s). */
  restartMs?: number;
}

/** `logger` tagged ovpn-fleet with the controller's pid, authpriv.info, one message per line. */
export function defaultSyslogArgv(pid = process.pid): string[] {
  return ['logger', '-t', 'ovpn-fleet', `--id=${pid}`, '-p', 'authpriv.info', '--size', '65536'];
}

/** Rows read per query; a backlog is shipped in batches of this many. */
const BATCH = 500;
const RESTART_MAX_MS = 60_000;

interface Destination {
  /** Names the store setting (`audit.sink.NAME.lastId`) and log lines. */
  readonly name: string;
  /** False while it cannot take lines (its process is being restarted). */
  ready(): boolean;
  write(text: string): Promise<void> | void;
  close(): void;
}

class FileDestination implements Destination {
  readonly name = 'file';
  readonly file: AppendOnlyFile;

  constructor(path: string) {
    this.file = new AppendOnlyFile(path, 0o600);
  }

  ready(): boolean {
    return true;
  }

  write(text: string): void {
    this.file.append(text);
  }

  close(): void {
    this.file.close();
  }
}

class SyslogDestination implements Destination {
  readonly name = 'syslog';
  private proc: StdinSink | undefined;
  private restartTimer: unknown;
  private delayMs: number;
  private closed = false;

  constructor(
    private readonly argv: string[],
    private readonly timers: Timers,
    private readonly log: (line: string) => void,
    private readonly firstDelayMs: number,
  ) {
    this.delayMs = firstDelayMs;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  start(): void {
    if (this.closed) return;
    this.restartTimer = undefined;
    const proc = spawnStdinSink(this.argv, (code, stderr) => {
      if (this.proc !== proc) return;
      this.proc = undefined;
      const why = stderr.trim().split('\n').filter(Boolean).pop() ?? '';
      const how = code === null ? why : `exit ${code}${why ? `: ${why}` : ''}`;
      this.log(
        `audit syslog: ${this.argv[0]} ended (${how}); starting it again in ${this.delayMs / 1000} s`,
      );
      this.restartTimer = this.timers.setTimeout(() => this.start(), this.delayMs);
      this.delayMs = Math.min(this.delayMs * 2, RESTART_MAX_MS);
    });
    this.proc = proc;
  }

  ready(): boolean {
    return this.proc !== undefined;
  }

  async write(text: string): Promise<void> {
    await this.proc!.write(text);
    this.delayMs = this.firstDelayMs;
  }

  close(): void {
    this.closed = true;
    if (this.restartTimer !== undefined) this.timers.clearTimeout(this.restartTimer);
    this.proc?.stop();
    this.proc = undefined;
  }
}

export class AuditSink {
  private readonly destinations: Destination[] = [];
  private readonly syslog: SyslogDestination | undefined;
  private readonly fileDest: FileDestination | undefined;
  private interval: unknown;
  private running: Promise<void> | undefined;
  private again = false;
  /** The last problem logged per destination: a lasting failure is logged once. */
  private problems = new Map<string, string>();

  constructor(
    private readonly store: FleetStore,
    private readonly timers: Timers,
    private readonly log: (line: string) => void,
    private readonly opts: AuditSinkOptions,
  ) {
    if (opts.file !== undefined) {
      this.fileDest = new FileDestination(opts.file);
      this.destinations.push(this.fileDest);
    }
    if (opts.syslog) {
      this.syslog = new SyslogDestination(
        opts.syslogArgv ?? defaultSyslogArgv(),
        timers,
        log,
        opts.restartMs ?? 1000,
      );
      this.destinations.push(this.syslog);
    }
  }

  /** The pid of the running syslog command, if any (tests stop it to see it restarted). */
  get syslogPid(): number | undefined {
    return this.syslog?.pid;
  }

  /** Opens the file (a bad path throws here, before the controller serves), starts logger. */
  async start(): Promise<void> {
    this.fileDest?.file.open();
    this.syslog?.start();
    const newest = await this.store.lastAuditId();
    for (const d of this.destinations) {
      const last = await this.lastId(d);
      // The store went back in time (restored from a backup): its new entries will get ids we
      // think were shipped. Go on from its newest entry rather than skip them all.
      if (last > newest) {
        this.log(
          `audit ${d.name}: last shipped entry ${last} is beyond the newest in the store (${newest}): shipping from ${newest} on`,
        );
        await this.setLastId(d, newest);
      }
    }
    this.interval = this.timers.setInterval(() => void this.pump(), this.opts.intervalMs ?? 1000);
  }

  /** Reopens the file (SIGHUP after logrotate). */
  reopen(): void {
    if (!this.fileDest) return;
    try {
      this.fileDest.file.reopen();
      this.problems.delete('file');
    } catch (err) {
      this.problem('file', oneLine(err));
    }
  }

  /** Ships everything new now; concurrent calls share one run (and one more after it). */
  pump(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        for (const d of this.destinations) await this.ship(d);
      } while (this.again);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Ships what is left, then stops the timer, the file and the syslog command. */
  async stop(): Promise<void> {
    if (this.interval !== undefined) this.timers.clearInterval(this.interval);
    this.interval = undefined;
    try {
      await this.pump();
    } finally {
      for (const d of this.destinations) d.close();
    }
  }

  private key(d: Destination): string {
    return `audit.sink.${d.name}.lastId`;
  }

  private async lastId(d: Destination): Promise<number> {
    const n = Number((await this.store.getSetting(this.key(d))) ?? '0');
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  }

  private setLastId(d: Destination, id: number): Promise<void> {
    return this.store.setSetting(this.key(d), String(id));
  }

  private async ship(d: Destination): Promise<void> {
    for (;;) {
      if (!d.ready()) return;
      const entries = await this.store.auditSince(await this.lastId(d), BATCH);
      if (entries.length === 0) return;
      try {
        await d.write(entries.map((e) => `${auditJsonLine(e)}\n`).join(''));
      } catch (err) {
        // Not recorded as shipped: the same entries are tried again on the next round.
        this.problem(d.name, oneLine(err));
        return;
      }
      this.problems.delete(d.name);
      await this.setLastId(d, entries[entries.length - 1].id);
      if (entries.length < BATCH) return;
      // A backlog: let requests in between batches.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private problem(name: string, what: string): void {
    if (this.problems.get(name) === what) return;
    this.problems.set(name, what);
    this.log(`audit ${name}: ${what}; will try again`);
  }
}
