import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeChangeFeed, FakeTimers, ManualClock } from './testing.js';
import { ChangeWatcher, type WatchHandlers } from './watcher.js';

const HOUR_MS = 3_600_000;
const EVERY_MS = 200;

let dir: string;
let specFile: string;
let feed: FakeChangeFeed;
let clock: ManualClock;
let timers: FakeTimers;
let calls: string[];
let failures: unknown[];
let handlers: WatchHandlers;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ovf-watch-'));
  specFile = join(dir, 'fleet.yaml');
  writeFileSync(specFile, 'version: 1\n');
  feed = new FakeChangeFeed();
  // The clock stands still while the timers fire, so a test moves each on its own.
  clock = new ManualClock();
  timers = new FakeTimers(new ManualClock());
  calls = [];
  failures = [];
  handlers = {
    specChanged: () => calls.push('spec'),
    storeChanged: () => calls.push('store'),
    tick: () => calls.push('tick'),
    failed: (err) => failures.push(err),
  };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const watcher = () => new ChangeWatcher(specFile, feed, clock, timers, handlers);

describe('ChangeWatcher', () => {
  it('only ticks while nothing changed', () => {
    const w = watcher();
    w.check();
    w.check();
    expect(calls).toEqual(['tick', 'tick']);
  });

  it('calls specChanged once when fleet.yaml changes on disk, and when it goes away', () => {
    const w = watcher();
    writeFileSync(specFile, 'version: 1\nsites: []\n');
    w.check();
    w.check();
    rmSync(specFile);
    w.check();
    expect(calls).toEqual(['spec', 'tick', 'tick', 'spec', 'tick']);
  });

  it('calls storeChanged once each time the change feed moves', () => {
    const w = watcher();
    feed.bump();
    w.check();
    w.check();
    feed.bump();
    feed.bump();
    w.check();
    expect(calls).toEqual(['store', 'tick', 'tick', 'store', 'tick']);
  });

  it('calls storeChanged after an hour without any change, so the CRL is re-issued', () => {
    const w = watcher();
    clock.advance(HOUR_MS);
    w.check();
    expect(calls).toEqual(['tick']);
    clock.advance(1);
    w.check();
    w.check();
    expect(calls).toEqual(['tick', 'store', 'tick', 'tick']);
  });

  it('counts the hour from the last store change', () => {
    const w = watcher();
    clock.advance(HOUR_MS / 2);
    feed.bump();
    w.check();
    clock.advance(HOUR_MS / 2 + 1);
    w.check();
    expect(calls).toEqual(['store', 'tick', 'tick']);
    clock.advance(HOUR_MS / 2);
    w.check();
    expect(calls).toEqual(['store', 'tick', 'tick', 'store', 'tick']);
  });

  it('reports a throwing handler to failed() and goes on', () => {
    let specThrows = true;
    handlers.specChanged = () => {
      if (specThrows) throw new Error('broken spec handler');
      calls.push('spec');
    };
    const w = watcher();
    writeFileSync(specFile, 'version: 2 # longer\n');
    feed.bump();
    w.check();
    expect(failures).toEqual([new Error('broken spec handler')]);
    expect(calls).toEqual([]);
    specThrows = false;
    // The store change is not lost: the next look sees it.
    w.check();
    expect(calls).toEqual(['store', 'tick']);

    handlers.tick = () => {
      throw new Error('broken tick');
    };
    w.check();
    expect(failures).toHaveLength(2);
  });

  it('checks on the injected timers between start and stop', async () => {
    const w = watcher();
    w.start(EVERY_MS);
    expect(timers.pending).toBe(1);
    await timers.advance(EVERY_MS - 1);
    expect(calls).toEqual([]);
    await timers.advance(1);
    expect(calls).toEqual(['tick']);
    feed.bump();
    await timers.advance(2 * EVERY_MS);
    expect(calls).toEqual(['tick', 'store', 'tick', 'tick']);
    w.stop();
    expect(timers.pending).toBe(0);
    feed.bump();
    await timers.advance(10 * EVERY_MS);
    expect(calls).toHaveLength(4);
    w.stop();
  });
});

/** A feed that pushes and tells agents' reports apart, as PostgreSQL's does. */
class PushingFeed {
  fleet = 0;
  sessions = 0;
  private listener: (() => void) | undefined;
  version = () => this.fleet;
  sessionsVersion = () => this.sessions;
  onChange = (listener: () => void) => {
    this.listener = listener;
    return () => (this.listener = undefined);
  };
  push(kind: 'fleet' | 'sessions'): void {
    this[kind]++;
    this.listener?.();
  }
  get listening(): boolean {
    return this.listener !== undefined;
  }
}

describe('ChangeWatcher on a pushing feed', () => {
  it('looks at once when the feed pushes, tells reports from other changes, and stops listening when stopped', () => {
    const pushing = new PushingFeed();
    handlers.sessionsChanged = () => calls.push('sessions');
    const w = new ChangeWatcher(specFile, pushing, clock, timers, handlers);
    w.start(EVERY_MS);
    pushing.push('fleet');
    pushing.push('sessions');
    expect(calls).toEqual(['store', 'tick', 'sessions', 'tick']);
    // Both at once: one full refresh covers the sessions too.
    pushing.fleet++;
    pushing.push('sessions');
    expect(calls.slice(4)).toEqual(['store', 'tick']);
    w.stop();
    expect(pushing.listening).toBe(false);
  });
});
