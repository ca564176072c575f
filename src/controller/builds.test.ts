import { describe, expect, it } from 'vitest';
import { Coalescer } from './builds.js';
import { settle } from './testing.js';

/** A build the test finishes by hand; counts the builds started. */
class ManualBuilds {
  started = 0;
  private finishers: { resolve: () => void; reject: (err: Error) => void }[] = [];

  readonly build = (): Promise<void> => {
    this.started += 1;
    return new Promise<void>((resolve, reject) => this.finishers.push({ resolve, reject }));
  };

  get running(): number {
    return this.finishers.length;
  }

  async finish(err?: Error): Promise<void> {
    const f = this.finishers.shift();
    if (!f) throw new Error('no build is running');
    if (err) f.reject(err);
    else f.resolve();
    await settle();
  }
}

function track(p: Promise<void>): { done: boolean; failed?: unknown } {
  const state: { done: boolean; failed?: unknown } = { done: false };
  p.then(
    () => (state.done = true),
    (err: unknown) => {
      state.done = true;
      state.failed = err;
    },
  );
  return state;
}

describe('Coalescer', () => {
  it('runs one build for one request', async () => {
    const builds = new ManualBuilds();
    const c = new Coalescer(builds.build);
    const r = track(c.request());
    await settle();
    expect(builds.started).toBe(1);
    expect(r.done).toBe(false);
    await builds.finish();
    expect(r.done).toBe(true);
    expect(builds.started).toBe(1);
  });

  it('lets requests made during a build share exactly one more build after it', async () => {
    const builds = new ManualBuilds();
    const c = new Coalescer(builds.build);
    const first = track(c.request());
    await settle();
    const during = [track(c.request()), track(c.request()), track(c.request())];
    await settle();
    expect(builds.running).toBe(1);

    await builds.finish();
    // The first caller's change is built; the later ones wait for a build that starts after it.
    expect(first.done).toBe(true);
    expect(during.map((r) => r.done)).toEqual([false, false, false]);
    expect(builds.started).toBe(2);

    await builds.finish();
    expect(during.map((r) => r.done)).toEqual([true, true, true]);
    expect(builds.started).toBe(2);
    expect(builds.running).toBe(0);
  });

  it('stop lets the running build finish and starts no other', async () => {
    const builds = new ManualBuilds();
    const c = new Coalescer(builds.build);
    const first = track(c.request());
    await settle();
    const waiting = track(c.request());
    const stopped = track(c.stop());
    await settle();
    expect(stopped.done).toBe(false);

    await builds.finish();
    expect([first.done, waiting.done, stopped.done]).toEqual([true, true, true]);
    await c.request();
    expect(builds.started).toBe(1);
  });

  it('rejects the callers of a failed build and builds again on the next request', async () => {
    const builds = new ManualBuilds();
    const c = new Coalescer(builds.build);
    const first = track(c.request());
    await settle();
    await builds.finish(new Error('render failed'));
    expect(first.failed).toEqual(new Error('render failed'));

    const again = track(c.request());
    await settle();
    expect(builds.started).toBe(2);
    await builds.finish();
    expect(again).toEqual({ done: true });
  });
});
