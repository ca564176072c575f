/**
 * Processes we started, stopped by pid — never by name. A pid is only signalled while
 * /proc/PID/stat still shows the start time we recorded, so a recycled pid is never hit.
 */
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { sleep } from './time.js';

export interface TrackedProcess {
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot): tells a recycled pid apart. */
  startTime: string;
}

function statOf(pid: number): { state: string; startTime: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ")".
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], startTime: rest[19] };
  } catch {
    return undefined;
  }
}

export function track(pid: number): TrackedProcess | undefined {
  const s = statOf(pid);
  return s ? { pid, startTime: s.startTime } : undefined;
}

/** Alive and still the same process (zombies count as gone: they are only waiting to be reaped). */
export function isAlive(p: TrackedProcess): boolean {
  const s = statOf(p.pid);
  return s !== undefined && s.startTime === p.startTime && s.state !== 'Z' && s.state !== 'X';
}

export function readPidFile(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Resolves once the process is gone. */
export async function stopProcess(
  p: TrackedProcess,
  graceMs = 5000,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (!isAlive(p)) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (isAlive(p) && Date.now() < deadline) await sleep(25);
  if (isAlive(p)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      return;
    }
    while (isAlive(p)) await sleep(25);
  }
}

export function killNow(p: TrackedProcess, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (!isAlive(p)) return false;
  process.kill(p.pid, signal);
  return true;
}

/**
 * Starts a long-running process detached from us (own session, output to a log file), so it
 * outlives the CLI; `ip netns exec` execs in place, so the pid is the program's own.
 */
export function spawnDetached(
  argv: string[],
  opts: { netns?: string; logFile: string; env?: Record<string, string> },
): TrackedProcess {
  const full = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
  const out = openSync(opts.logFile, 'a');
  const child = spawn(full[0], full.slice(1), {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, LC_ALL: 'C', ...opts.env },
  });
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${full.join(' ')}`);
  return track(child.pid) ?? { pid: child.pid, startTime: '' };
}
