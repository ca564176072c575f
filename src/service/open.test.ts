import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Conflict, NotFound, SpecError, StoreUnavailable } from '../errors.js';
import { exitCodeOf } from '../cli/exit-codes.js';
import { EXAMPLE_FLEET_YAML } from '../spec/example.js';
import { fixedClock } from '../testing.js';
import { specPath, storePath } from './layout.js';
import { initFleet, openFleet, openWatchedFleet } from './open.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ovf-open-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('composing a fleet with its store', () => {
  it('says what to run when fleet.yaml or the store is missing', async () => {
    await expect(openFleet(dir)).rejects.toThrow(NotFound);
    await expect(openFleet(dir)).rejects.toThrow(/init --example/);
    await (await initFleet(dir)).close();
    rmSync(storePath(dir));
    await expect(openFleet(dir)).rejects.toThrow(/run "ovpn-fleet init" in/);
  });

  it('init writes the example, refuses a second init and a broken fleet.yaml', async () => {
    const fleet = await initFleet(dir, { clock: fixedClock() });
    await fleet.close();
    expect(readFileSync(specPath(dir), 'utf8')).toBe(EXAMPLE_FLEET_YAML);
    await expect(initFleet(dir)).rejects.toThrow(Conflict);

    const other = mkdtempSync(join(tmpdir(), 'ovf-open-'));
    try {
      await expect(initFleet(other, { yaml: 'fleet: [' })).rejects.toThrow(SpecError);
      expect(readdirSync(other)).toEqual([]);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("hands the controller a change feed that sees another process's writes", async () => {
    await (await initFleet(dir)).close();
    const { fleet, changes } = await openWatchedFleet(dir, { actor: 'api:admin' });
    const cli = await openFleet(dir);
    try {
      const start = changes.version();
      await fleet.users.add([{ name: 'ann' }]);
      expect(changes.version()).toBe(start);
      await cli.users.add([{ name: 'bob' }]);
      expect(changes.version()).not.toBe(start);
      expect((await fleet.store.auditLog(2)).map((e) => [e.actor, e.subject])).toEqual([
        [expect.stringMatching(/^cli/), 'bob'],
        ['api:admin', 'ann'],
      ]);
    } finally {
      await fleet.close();
      await cli.close();
    }
  });

  it('opens PostgreSQL when the environment names it, and one that refuses is one line without the password', async () => {
    await (await initFleet(dir)).close();
    const env = { OVPN_FLEET_DATABASE_URL: 'postgresql://ovpn:pa55word@127.0.0.1:1/fleet' };
    const err = await openFleet(dir, { env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailable);
    expect((err as Error).message).toMatch(/^cannot use PostgreSQL ovpn@127\.0\.0\.1:1\/fleet: /);
    expect((err as Error).message).not.toContain('pa55word');
    expect(exitCodeOf(err)).toBe(69);
    const other = mkdtempSync(join(tmpdir(), 'ovf-open-'));
    try {
      // Refused before fleet.yaml is written: nothing is left behind.
      await expect(initFleet(other, { env })).rejects.toThrow(StoreUnavailable);
      expect(readdirSync(other)).toEqual([]);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('keeps the store implementation out of every service but the composition', () => {
    const here = import.meta.dirname;
    const importers = readdirSync(here)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'open.ts')
      .filter((f) => /from '\.\.\/store\/(?!types\.js')/.test(readFileSync(join(here, f), 'utf8')));
    expect(importers).toEqual([]);
    expect(existsSync(join(here, 'open.ts'))).toBe(true);
  });
});
