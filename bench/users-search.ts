/**
 * Users page benchmark: the server time of `GET /v1/users` searches at 10,000 users, through
 * fastify's inject (routing, auth, validation, the SQL, serialisation; no sockets). Target:
 * p95 < 100 ms for each kind of search.
 *
 *   npm run bench:users [-- --users N] [-- --runs N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildController } from '../src/controller/app.js';
import { initFleet } from '../src/service/open.js';
import { intArg, percentile, seededRandom } from './measure.js';

const USERS = intArg('--users', 10_000);
const RUNS = intArg('--runs', 200);
const TARGET_MS = 100;

function csvOf(count: number, groups: string[]): string {
  const random = seededRandom(20260313);
  const lines = ['name,groups'];
  for (let i = 0; i < count; i++) {
    const mine = groups.filter(() => random() < 0.4);
    lines.push(`user${String(i).padStart(5, '0')},${mine.join(';')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** What the console asks for: a page of 50, searched, filtered and sorted in various ways. */
const SEARCHES: [string, string][] = [
  ['first page by name', 'limit=50'],
  ['substring of a name', 'q=ser04&limit=50'],
  ['substring, no match', 'q=nobody-is-called-this&limit=50'],
  ['address prefix', 'q=10.200.1&limit=50'],
  ['group + status', 'group=staff&status=disabled&limit=50'],
  ['newest first, deep page', 'sort=-created&offset=9000&limit=50'],
  ['substring + group, page 3', 'q=9&group=dba&offset=100&limit=50'],
];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-bench-users-'));
  try {
    const fleet = await initFleet(dir);
    try {
      await fleet.importCsv(
        csvOf(
          USERS,
          fleet.spec.groups.map((g) => g.name),
        ),
        'bench.csv',
      );
      const names = (await fleet.listUsers()).map((u) => u.name);
      await fleet.bulkUsers('disable', names.filter((_, i) => i % 10 === 0).slice(0, 1000));
    } finally {
      await fleet.close();
    }
    const ctl = await buildController({
      fleetDir: dir,
      baseDir: (server) => `/etc/ovpn-fleet/${server}`,
      adminToken: 'bench',
      // Not measured: no other process writes, so the watcher has nothing to do.
      watchIntervalMs: 3_600_000,
      log: () => {},
    });
    try {
      process.stdout.write(
        `ovpn-fleet users search: ${USERS} users, ${RUNS} runs per search, node ${process.version}\n`,
      );
      let allMet = true;
      for (const [what, query] of SEARCHES) {
        const ms: number[] = [];
        let total = '';
        for (let i = 0; i < RUNS + 10; i++) {
          const start = performance.now();
          const r = await ctl.app.inject({
            url: `/v1/users?${query}`,
            headers: { authorization: 'Bearer bench' },
          });
          const took = performance.now() - start;
          if (r.statusCode !== 200) throw new Error(`${query}: HTTP ${r.statusCode} ${r.body}`);
          total = String(r.headers['x-total-count']);
          // The first runs warm up the JIT and SQLite's page cache.
          if (i >= 10) ms.push(took);
        }
        ms.sort((a, b) => a - b);
        const p50 = percentile(ms, 50);
        const p95 = percentile(ms, 95);
        const met = p95 < TARGET_MS;
        allMet &&= met;
        process.stdout.write(
          `${what.padEnd(28)} p50 ${p50.toFixed(2).padStart(7)} ms   p95 ${p95.toFixed(2).padStart(7)} ms   ` +
            `matches ${total.padStart(5)}   target p95 < ${TARGET_MS} ms: ${met ? 'met' : 'NOT MET'}\n`,
        );
      }
      process.exitCode = allMet ? 0 : 1;
    } finally {
      await ctl.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
