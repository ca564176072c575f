/**
 * Compiler benchmark: import 10,000 users from CSV into a fresh fleet, then render and write
 * all six servers' bundles the way `ovpn-fleet render` does. Target: under 5 s each.
 *
 *   npm run bench:compiler [-- USERS]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fleet } from '../src/service/fleet.js';
import { initFleet } from '../src/service/open.js';
import { publishBundles } from '../src/sys/files.js';
import { type PhaseResult, measure, seededRandom } from './measure.js';

const USERS = Number(process.argv[2] ?? 10_000);
const TARGET_MS = 5_000;

function csvOf(count: number, groups: string[]): string {
  const random = seededRandom(20260301);
  const lines = ['name,groups'];
  for (let i = 0; i < count; i++) {
    const mine = groups.filter(() => random() < 0.4);
    lines.push(`user${String(i).padStart(5, '0')},${mine.join(';')}`);
  }
  return `${lines.join('\n')}\n`;
}

function report(r: PhaseResult): boolean {
  const met = r.wallMs < TARGET_MS;
  process.stdout.write(
    `${r.name.padEnd(28)} wall ${(r.wallMs / 1000).toFixed(2).padStart(6)} s   ` +
      `peak RSS (sampled) ${r.peakRssMiB.toFixed(0).padStart(5)} MiB   ` +
      `maxRSS ${r.maxRssMiB.toFixed(0).padStart(5)} MiB   ` +
      `target < ${TARGET_MS / 1000} s: ${met ? 'met' : 'NOT MET'}\n`,
  );
  return met;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-bench-'));
  let fleet: Fleet | undefined;
  try {
    fleet = await initFleet(dir);
    const f = fleet;
    const csv = csvOf(
      USERS,
      f.spec.groups.map((g) => g.name),
    );
    process.stdout.write(
      `ovpn-fleet compiler benchmark: ${USERS} users, ${f.spec.sites.flatMap((s) => s.servers).length} servers, node ${process.version}\n`,
    );

    const imported = await measure(`import ${USERS} users (CSV)`, async () => {
      const users = await f.importCsv(csv, 'bench.csv');
      if (users.length !== USERS) throw new Error(`imported ${users.length} users`);
    });
    report(imported);

    const out = join(dir, 'out');
    let files = 0;
    let renderMs = 0;
    const rendered = await measure('render + write 6 bundles', async () => {
      const start = performance.now();
      const bundles = await f.bundles();
      renderMs = performance.now() - start;
      await publishBundles(out, bundles);
      for (const b of bundles) files += b.files.length + 1;
    });
    report(rendered);
    process.stdout.write(
      `  of which fleet.bundles() ${(renderMs / 1000).toFixed(2)} s, write ${((rendered.wallMs - renderMs) / 1000).toFixed(2)} s\n`,
    );
    process.stdout.write(`(${files} files written)\n`);
  } finally {
    await fleet?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
