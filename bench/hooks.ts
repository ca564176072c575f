/**
 * Hook benchmark: how long OpenVPN stalls per learn-address call, ours vs the seed article's.
 * Runs inside a throwaway network namespace with a veth named like the tun device (root).
 * Each run is timed alone: process.hrtime around spawnSync('/bin/sh', [script, …]).
 * Target: our hook ≤ 1.2 × the seed's.
 *
 *   npm run bench:hooks [-- ITERATIONS] [--json FILE]   (FILE gets the raw samples, ms)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderLearnAddress } from '../src/render/hooks.js';
import { DEFAULT_RENDER_OPTIONS } from '../src/render/types.js';
import { percentile } from './measure.js';

const ITERATIONS = Number(/^\d+$/.test(process.argv[2] ?? '') ? process.argv[2] : 1000);
const jsonAt = process.argv.indexOf('--json');
const JSON_OUT = jsonAt > 0 ? process.argv[jsonAt + 1] : undefined;
const WARMUP = 20;
const TARGET_RATIO = 1.2;
const DEV = DEFAULT_RENDER_OPTIONS.tunDevice;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The seed's learn-address script as the article meant it: the listing lost its closing `fi`
 * (verbatim, /bin/sh rejects it). It ignores its operation argument and adds both routes.
 */
const SEED_LEARN_ADDRESS = `#!/bin/sh
if [ ! -z "$ifconfig_pool_remote_ip" ]; then
ip route add "$ifconfig_pool_remote_ip" dev $dev
ip route add "::$ifconfig_pool_remote_ip" dev $dev
fi
exit 0
`;

function sh(script: string, args: string[], env: Record<string, string>): number {
  const start = process.hrtime.bigint();
  const r = spawnSync('/bin/sh', [script, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0)
    throw new Error(`${script} ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return ms;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe' });
}

function routeCount(): number {
  const out = (family: string) =>
    execFileSync('ip', [family, 'route', 'show', 'dev', DEV], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => /^(10\.200\.|fd7a:|::10\.200\.)/.test(l)).length;
  return out('-4') + out('-6');
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

function line(label: string, s: ReturnType<typeof stats>): string {
  const f = (n: number) => `${n.toFixed(2).padStart(6)} ms`;
  return `${label.padEnd(36)} p50 ${f(s.p50)}  p95 ${f(s.p95)}  p99 ${f(s.p99)}  mean ${f(s.mean)}`;
}

/** Runs in the namespace: the device exists, nothing else does. */
function inside(dir: string): void {
  const ours = join(dir, 'learn-address');
  const seed = join(dir, 'seed-learn-address');
  writeFileSync(ours, renderLearnAddress(DEFAULT_RENDER_OPTIONS));
  writeFileSync(seed, SEED_LEARN_ADDRESS);
  chmodSync(ours, 0o755);
  chmodSync(seed, 0o755);
  const v4 = '10.200.0.2';
  const v6 = 'fd7a:6ca6:e640:8000::2';
  // learn-address add/update run with OpenVPN's environment; delete with none at all.
  const addEnv = { PATH, dev: DEV, ifconfig_pool_remote_ip: v4, common_name: 'alice' };

  const ourAdd4: number[] = [];
  const ourAdd6: number[] = [];
  const ourDel4: number[] = [];
  const seedAdd: number[] = [];
  for (let i = 0; i < WARMUP + ITERATIONS; i++) {
    const keep = i >= WARMUP;
    const a4 = sh(ours, ['add', v4, 'alice'], addEnv);
    const a6 = sh(ours, ['add', v6, 'alice'], addEnv);
    if (i === 0 && routeCount() !== 2) throw new Error('our hook did not add both routes');
    const d4 = sh(ours, ['delete', v4], {});
    sh(ours, ['delete', v6], {});
    if (i === 0 && routeCount() !== 0) throw new Error('our hook did not delete both routes');

    const s = sh(seed, ['add', v4, 'alice'], addEnv);
    if (i === 0 && routeCount() !== 2) throw new Error("the seed's hook did not add both routes");
    // Outside the timed section: the seed never removes its routes, so the next add would fail.
    ip(['route', 'del', v4, 'dev', DEV]);
    ip(['-6', 'route', 'del', `::${v4}`, 'dev', DEV]);
    if (keep) {
      ourAdd4.push(a4);
      ourAdd6.push(a6);
      ourDel4.push(d4);
      seedAdd.push(s);
    }
  }
  const perUser = ourAdd4.map((a, i) => a + ourAdd6[i]);
  if (JSON_OUT)
    writeFileSync(
      JSON_OUT,
      `${JSON.stringify({ ours: ourAdd4, seed: seedAdd, oursPerUser: perUser })}\n`,
    );
  const oursS = stats(ourAdd4);
  const seedS = stats(seedAdd);
  const userS = stats(perUser);
  process.stdout.write(
    [
      `learn-address benchmark: ${ITERATIONS} runs each (after ${WARMUP} warm-up), /bin/sh -> ${execFileSync('readlink', ['-f', '/bin/sh'], { encoding: 'utf8' }).trim()}`,
      line('ours: add IPv4 (one call)', oursS),
      line('ours: add IPv6 (one call)', stats(ourAdd6)),
      line('ours: delete IPv4 (empty env)', stats(ourDel4)),
      line('ours: add IPv4 + IPv6 (two calls)', userS),
      line('seed: add (one call, both routes)', seedS),
      `ratio ours/seed per call, p50 ${(oursS.p50 / seedS.p50).toFixed(2)}  p95 ${(oursS.p95 / seedS.p95).toFixed(2)}  p99 ${(oursS.p99 / seedS.p99).toFixed(2)}` +
        `   target <= ${TARGET_RATIO}: ${oursS.p50 / seedS.p50 <= TARGET_RATIO ? 'met' : 'NOT MET'} (p50)`,
      // OpenVPN runs learn-address once per learned address, the seed's script included (its
      // second run re-adds both routes and fails with "File exists"): per call is the fair unit.
      `per user (OpenVPN calls learn-address for the IPv4 and the IPv6 address): ours p50 ${userS.p50.toFixed(2)} ms, seed p50 ${(2 * seedS.p50).toFixed(2)} ms`,
      '',
    ].join('\n'),
  );
}

function outside(): void {
  if (process.getuid?.() !== 0) throw new Error('bench:hooks needs root (ip netns)');
  const ns = `ovf-hookbench-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'ovf-hookbench-'));
  ip(['netns', 'add', ns]);
  try {
    const inNs = (args: string[]) => ip(['-n', ns, ...args]);
    inNs(['link', 'set', 'lo', 'up']);
    inNs(['link', 'add', DEV, 'type', 'veth', 'peer', 'name', `${DEV}-peer`]);
    inNs(['link', 'set', DEV, 'up']);
    inNs(['link', 'set', `${DEV}-peer`, 'up']);
    // The same process, started inside the namespace, so each timed spawn is just /bin/sh.
    const self = fileURLToPath(import.meta.url);
    const r = spawnSync(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        ...process.execArgv,
        self,
        String(ITERATIONS),
        '--inside',
        dir,
        ...(JSON_OUT ? ['--json', JSON_OUT] : []),
      ],
      { stdio: 'inherit' },
    );
    if (r.status !== 0) process.exitCode = r.status ?? 1;
  } finally {
    ip(['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const at = process.argv.indexOf('--inside');
if (at > 0) inside(process.argv[at + 1]);
else outside();
