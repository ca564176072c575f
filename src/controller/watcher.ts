/**
 * Notices what other processes change: the store (a CLI process committing; the store's
 * ChangeFeed) and fleet.yaml (its inode, size and mtime). It calls back on each kind of change
 * and on every tick; it decides nothing else.
 */
import { statSync } from 'node:fs';
import type { ChangeFeed } from '../store/types.js';
import type { Clock, Timers } from '../sys/time.js';

const HOUR_MS = 3_600_000;

export interface WatchHandlers {
  /** fleet.yaml changed on disk (or appeared, or went away). */
  specChanged(): void;
  /**
   * Another process committed to the store, or an hour passed without that: the snapshot
   * re-issues the CRL well before its nextUpdate, and an expired CRL would lock everyone out.
   */
  storeChanged(): void;
  /**
   * Another process committed only agents' reports (where the feed tells: sessionsVersion):
   * directives may change, bundles cannot. Absent: storeChanged() is called instead.
   */
  sessionsChanged?(): void;
  /** Every tick, after the two above: cheap checks (stale servers, audit retention). */
  tick(): void;
  /** A handler threw: the watcher goes on. */
  failed(err: unknown): void;
}

export class ChangeWatcher {
  private specStamp: string;
  private version: string | number;
  private sessionsVersion: string | number | undefined;
  private lastRefreshAt: number;
  private timer: unknown;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly specPath: string,
    private readonly changes: ChangeFeed,
    private readonly clock: Clock,
    private readonly timers: Timers,
    private readonly handlers: WatchHandlers,
  ) {
    this.specStamp = this.readSpecStamp();
    this.version = changes.version();
    this.sessionsVersion = changes.sessionsVersion?.();
    this.lastRefreshAt = clock.now().getTime();
  }

  start(intervalMs: number): void {
    this.timer = this.timers.setInterval(() => this.check(), intervalMs);
    // A feed that pushes (PostgreSQL's NOTIFY) is looked at at once, not at the next tick:
    // a change through another controller reaches the agents polling this one in
    // milliseconds rather than up to an interval later.
    this.unsubscribe = this.changes.onChange?.(() => this.check());
  }

  stop(): void {
    if (this.timer !== undefined) this.timers.clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** One look at everything (what each tick does). */
  check(): void {
    try {
      const stamp = this.readSpecStamp();
      if (stamp !== this.specStamp) {
        this.specStamp = stamp;
        this.handlers.specChanged();
      }
      const version = this.changes.version();
      const now = this.clock.now().getTime();
      if (version !== this.version || now - this.lastRefreshAt > HOUR_MS) {
        // Marked seen only once handled: a handler that throws gets the change again next tick.
        this.handlers.storeChanged();
        this.version = version;
        this.lastRefreshAt = now;
        // A full refresh covers the sessions too.
        this.sessionsVersion = this.changes.sessionsVersion?.();
      } else {
        const sessions = this.changes.sessionsVersion?.();
        if (sessions !== this.sessionsVersion) {
          if (this.handlers.sessionsChanged) this.handlers.sessionsChanged();
          else this.handlers.storeChanged();
          this.sessionsVersion = sessions;
        }
      }
      this.handlers.tick();
    } catch (err) {
      this.handlers.failed(err);
    }
  }

  private readSpecStamp(): string {
    try {
      const st = statSync(this.specPath);
      return `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }
}
