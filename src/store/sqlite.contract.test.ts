/** The store contract (testing.ts) on SQLite, each test on a fresh file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { SqliteStore } from './sqlite.js';
import { storeContract } from './testing.js';

const dir = mkdtempSync(join(tmpdir(), 'ovf-contract-'));
let n = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

storeContract('SQLite', () => Promise.resolve(new SqliteStore(join(dir, `fleet-${++n}.db`))));
