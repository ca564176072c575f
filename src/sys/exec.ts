/**
 * The one place processes are run: argv arrays, never a shell string; LC_ALL=C so output
 * parses the same everywhere; failures become CommandError with argv, exit code and stderr.
 */
import { spawn, spawnSync } from 'node:child_process';
import { CommandError } from '../errors.js';

export interface RunOptions {
  input?: string;
  /** Run inside this network namespace (`ip netns exec NS …`). */
  netns?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Do not throw on a non-zero exit. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function fullArgv(argv: readonly string[], netns?: string): string[] {
  return netns ? ['ip', 'netns', 'exec', netns, ...argv] : [...argv];
}

const baseEnv = (extra?: Record<string, string>) => ({
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  ...process.env,
  LC_ALL: 'C',
  ...extra,
});

export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = fullArgv(argv, opts.netns);
  return new Promise((resolve, reject) => {
    const child = spawn(full[0], full.slice(1), {
      env: baseEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          stderr += `\n(timed out after ${opts.timeoutMs} ms)`;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new CommandError(full, null, err.message));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0 && !opts.allowFailure) reject(new CommandError(full, code, stderr));
      else resolve({ code, stdout, stderr });
    });
    if (child.stdin) {
      // A command that exits without reading its input is judged by its exit code, not EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

export function runSync(argv: readonly string[], opts: RunOptions = {}): RunResult {
  const full = fullArgv(argv, opts.netns);
  const r = spawnSync(full[0], full.slice(1), {
    env: baseEnv(opts.env),
    input: opts.input ?? '',
    encoding: 'utf8',
    timeout: opts.timeoutMs,
  });
  if (r.error) throw new CommandError(full, null, r.error.message);
  if (r.status !== 0 && !opts.allowFailure) throw new CommandError(full, r.status, r.stderr);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface LineStream {
  stop(): void;
}

/**
 * A long-running command whose stdout is consumed line by line (`ip monitor`). `onExit` runs
 * once when the process ends by itself (not after stop()), with its exit code and stderr.
 */
export function streamLines(
  argv: readonly string[],
  onLine: (line: string) => void,
  onExit: (code: number | null, stderr: string) => void,
  opts: { netns?: string } = {},
): LineStream {
  const full = fullArgv(argv, opts.netns);
  const child = spawn(full[0], full.slice(1), {
    env: baseEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stopped = false;
  let rest = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  let exited = false;
  const exit = (code: number | null, why: string) => {
    if (exited || stopped) return;
    exited = true;
    onExit(code, why);
  };
  child.on('error', (err) => exit(null, err.message));
  child.on('close', (code) => exit(code, stderr));
  return {
    stop() {
      stopped = true;
      child.kill('SIGTERM');
    },
  };
}

/** A long-running command we feed lines on its standard input (`logger`). */
export interface StdinSink {
  readonly pid: number | undefined;
  /** Resolves once the text is handed to the pipe; rejects when the process is gone. */
  write(text: string): Promise<void>;
  /** Closes its input (it flushes and exits); SIGTERM if it has not exited a second later. */
  stop(): void;
}

/**
 * Starts `argv` with a pipe on its standard input. `onExit` runs once when the process ends by
 * itself or cannot start (not after stop()): with its exit code and the end of its stderr, or
 * with no code and why (`killed by SIGKILL`, `spawn … ENOENT`).
 */
export function spawnStdinSink(
  argv: readonly string[],
  onExit: (code: number | null, stderr: string) => void,
): StdinSink {
  const child = spawn(argv[0], argv.slice(1), {
    env: baseEnv(),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  let gone = false;
  let stopped = false;
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  // Writing to a process that died fails with EPIPE; its exit is reported through onExit.
  child.stdin.on('error', () => undefined);
  const exit = (code: number | null, why: string) => {
    if (gone) return;
    gone = true;
    if (!stopped) onExit(code, why);
  };
  child.on('error', (err) => exit(null, err.message));
  child.on('close', (code, signal) => exit(code, signal ? `killed by ${signal}` : stderr));
  return {
    pid: child.pid,
    write(text: string): Promise<void> {
      return new Promise((resolve, reject) => {
        if (gone || stopped) return reject(new Error(`${argv[0]} is not running`));
        child.stdin.write(text, (err) => (err ? reject(err) : resolve()));
      });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      child.stdin.end();
      const kill = setTimeout(() => {
        if (!gone) child.kill('SIGTERM');
      }, 1000);
      kill.unref();
      child.once('close', () => clearTimeout(kill));
    },
  };
}
