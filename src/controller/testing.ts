/**
 * Fakes for the controller's unit tests: time that moves only when a test moves it, timers a
 * test fires by hand, a change feed a test bumps, and a temp fleet opened the way the
 * controller opens it. Not part of the build (see tsconfig.build.json).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '../service/fleet.js';
import { initFleet, openFleet, openWatchedFleet } from '../service/open.js';
import type { ChangeFeed } from '../store/types.js';
import type { Clock, Timers } from '../sys/time.js';
import { FIXED_NOW } from '../testing.js';

/** Lets every promise chain that can run now run. */
export const settle = () => new Promise<void>((r) => setImmediate(r));

/** A clock that shows one instant until a test moves it. */
export class ManualClock implements Clock {
  private ms: number;

  constructor(at: Date = FIXED_NOW) {
    this.ms = at.getTime();
  }

  now(): Date {
    return new Date(this.ms);
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
  everyMs?: number;
}

/**
 * Timers that fire only in `advance`. Each advance also moves the clock it was given by the
 * same amount, so time read by the code under test agrees with the timers that fired.
 */
export class FakeTimers implements Timers {
  private timers: FakeTimer[] = [];
  private nextId = 1;
  private elapsed = 0;

  constructor(readonly clock: ManualClock = new ManualClock()) {}

  /** Timers and intervals waiting to fire. */
  get pending(): number {
    return this.timers.length;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    return this.add({ id: this.nextId++, at: this.elapsed + ms, fn });
  }

  setInterval(fn: () => void, ms: number): unknown {
    return this.add({ id: this.nextId++, at: this.elapsed + ms, fn, everyMs: ms });
  }

  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  clearInterval(handle: unknown): void {
    this.clearTimeout(handle);
  }

  /** Moves time forward by `ms`, firing what falls due in order, letting promises run after each. */
  async advance(ms: number): Promise<void> {
    const end = this.elapsed + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id);
      const next = due[0];
      if (!next) break;
      this.clock.advance(next.at - this.elapsed);
      this.elapsed = next.at;
      if (next.everyMs !== undefined) next.at += next.everyMs;
      else this.timers = this.timers.filter((t) => t !== next);
      next.fn();
    }
    this.clock.advance(end - this.elapsed);
    this.elapsed = end;
    await settle();
  }

  private add(timer: FakeTimer): number {
    this.timers.push(timer);
    return timer.id;
  }
}

/** A change feed whose version moves when the test says another process committed. */
export class FakeChangeFeed implements ChangeFeed {
  private v = 0;

  version(): number {
    return this.v;
  }

  bump(): void {
    this.v += 1;
  }
}

export interface ControllerFleet {
  dir: string;
  /** Opened as the controller opens it (openWatchedFleet, actor api:admin). */
  fleet: Fleet;
  changes: ChangeFeed;
  clock: ManualClock;
  /** Another process on the same fleet directory (a CLI), opened on first use. */
  other(): Promise<Fleet>;
  /** Closes every store opened here and removes the directory. */
  cleanup(): Promise<void>;
}

/** The example fleet initialised in a fresh temp dir, on a ManualClock. */
export async function controllerFleet(clock = new ManualClock()): Promise<ControllerFleet> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-ctl-'));
  const opened: Fleet[] = [];
  try {
    await (await initFleet(dir, { clock })).close();
    const { fleet, changes } = await openWatchedFleet(dir, { clock, actor: 'api:admin' });
    opened.push(fleet);
    let other: Fleet | undefined;
    return {
      dir,
      fleet,
      changes,
      clock,
      async other() {
        if (!other) opened.push((other = await openFleet(dir, { clock, actor: 'cli:test' })));
        return other;
      },
      async cleanup() {
        for (const f of opened) await f.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
