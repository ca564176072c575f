/** Wall time and memory of one benchmark phase. */
export interface PhaseResult {
  name: string;
  wallMs: number;
  /** Highest RSS seen by sampling every 5 ms during the phase (sync work hides from sampling). */
  peakRssMiB: number;
  /** process.resourceUsage().maxRSS at the end of the phase: the process-lifetime high mark. */
  maxRssMiB: number;
}

const MiB = 1024 * 1024;

export async function measure(name: string, fn: () => Promise<void> | void): Promise<PhaseResult> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  const start = process.hrtime.bigint();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  peak = Math.max(peak, process.memoryUsage().rss);
  return {
    name,
    wallMs,
    peakRssMiB: peak / MiB,
    maxRssMiB: (process.resourceUsage().maxRSS * 1024) / MiB,
  };
}

/** A small seeded PRNG (mulberry32) so every run imports the same users. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** `--name N` from the command line: a positive whole number, or `fallback` when absent. */
export function intArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const n = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number`);
  return n;
}
