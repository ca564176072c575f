import { describe, expect, it } from 'vitest';
import { coalesced } from './coalesce.js';

describe('coalesced', () => {
  it('runs once more after the current run for any number of calls made during it', async () => {
    let runs = 0;
    let release!: () => void;
    const f = coalesced(async () => {
      runs++;
      if (runs === 1) await new Promise<void>((r) => (release = r));
    });
    const first = f();
    const during = [f(), f(), f()];
    expect(runs).toBe(1);
    release();
    await Promise.all([first, ...during]);
    expect(runs).toBe(2);
    await f();
    expect(runs).toBe(3);
  });

  it('starts afresh after a failed run', async () => {
    let runs = 0;
    const f = coalesced(async () => {
      runs++;
      if (runs === 1) throw new Error('boom');
      await Promise.resolve();
    });
    await expect(f()).rejects.toThrow('boom');
    await f();
    expect(runs).toBe(2);
  });
});
