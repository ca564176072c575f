/**
 * Making FRR's running configuration equal to a file, and saying whether it is.
 *
 * `vtysh -f FILE` only ever adds: it runs the file's lines as commands, so a neighbour, a key or
 * a prefix-list entry the new file no longer has stays in the daemons. We use FRR's own
 * `frr-reload.py` (Debian's frr-pythontools) instead of computing the difference ourselves: it
 * parses both sides with vtysh's own command tree (`vtysh -m` marks the contexts), knows which
 * `no` forms FRR accepts (it retries `no ip ospf message-digest-key 1 md5 K` word by word down to
 * one that works), that a BGP neighbour goes with `no neighbor X remote-as`, that `no router bgp`
 * drops its address families, the order deletes and adds must run in, and it is maintained
 * with FRR's grammar release by release. A diff of our own against `show running-config` would
 * have to learn each of those per FRR version, and would get the rare ones wrong silently.
 *
 * What we add around it: a syntax check first (`vtysh --dryrun -f`, which parses every line
 * against vtysh's command tree without sending anything to the daemons), and a rollback: a
 * file that parses but a daemon rejects (`ip ospf area` beside `network … area`) fails half way
 * — frr-reload.py has run its deletes and the adds before the failing line — so the running
 * config taken before the reload is reloaded the same way, and FRR is as it was.
 *
 * frr-reload.py as called here (FRR 8.4, /usr/lib/frr/frr-reload.py; read in its source):
 * - `--reload` applies, `--test` prints the difference ("Lines To Delete" / "Lines To Add")
 *   and changes nothing. Both need the daemons running: they read `show running-config`.
 * - `-N NAME` (`--pathspace`) is vtysh's `-N`: the instance's sockets under /var/run/frr/NAME/
 *   and its vtysh.conf under /etc/frr/NAME/.
 * - `--stdout` logs to stderr instead of /var/log/frr/frr-reload.log (a file we do not own);
 *   `--log-level warning` keeps only the failures. vtysh's own answers ("% Can not configure
 *   the local system as neighbor", "Please remove all network commands first.") go to stdout.
 * - `--rundir` is where it writes the commands it then feeds to `vtysh -f` (default
 *   /var/run/frr): ours is a folder the caller owns, as the file holds the keys.
 * - After a reload it runs `vtysh write` whenever FILE is not `--confdir`/frr.conf, so the
 *   instance's frr.conf (/etc/frr/frr.conf, /etc/frr/NAME/frr.conf) holds what now runs: FRR
 *   restarted by its own unit comes back with the last applied config.
 * - `--bindir` (vtysh's folder, /usr/bin), `--confdir` (/etc/frr) and `--vty_socket` keep their
 *   Debian defaults.
 */
import type { RunOptions, RunResult } from './exec.js';

export const FRR_RELOAD = '/usr/lib/frr/frr-reload.py';

export type FrrRunner = (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;

export interface FrrTarget {
  /** The named instance (`vtysh -N`), when FRR runs as one; else the system's FRR. */
  instance?: string;
  /** Runs the commands (src/sys/exec.ts `run`, or a test's fake). */
  run: FrrRunner;
}

/** What a reload needs besides the target: a folder of ours for scratch files. */
export interface FrrReloadOptions extends FrrTarget {
  /** frr-reload.py's `--rundir`: it writes its command files (keys included) here. */
  scratchDir: string;
  /**
   * Keeps the running config taken before the reload (it holds the keys: 0600); returns its
   * path, which a failed reload is rolled back to.
   */
  keepRunning(text: string): string;
}

/**
 * How the running config differs from a file, as frr-reload.py would change it: `remove` are
 * the commands it would run to take lines out, `add` those that put lines in. Each is one
 * command with its context, on one line (`interface eth1 / ip ospf message-digest-key 2 md5 K`).
 */
export interface FrrDiff {
  remove: string[];
  add: string[];
}

export type FrrReloadResult =
  | {
      ok: true;
      /** What still differs after the reload (normally nothing: see frrDiff). */
      drift: FrrDiff;
    }
  | {
      ok: false;
      /** `check`: the file did not parse, nothing ran. `reload`: a daemon refused a line. */
      stage: 'check' | 'reload';
      problem: string;
      /** After a failed reload: whether the running config from before was put back. */
      restored?: boolean;
    };

const vtysh = (t: FrrTarget) => ['vtysh', ...(t.instance ? ['-N', t.instance] : [])];
const pathspace = (t: FrrTarget) => (t.instance ? ['-N', t.instance] : []);

const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

function lines(text: string): string[] {
  return stripAnsi(text)
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '');
}

/**
 * The first problem vtysh reports for a file: `line 2: % Unknown command[41]:  bogus 1` (the
 * dry run), or which daemon refused which line and why (a reload).
 */
export function frrProblem(r: RunResult): string {
  const err = lines(r.stderr);
  const out = lines(r.stdout);
  const refused = err
    .map((l) => /Failure to communicate\[\d+\] to (\S+), line:\s*(.*)$/.exec(l))
    .find((m) => m);
  const why = out.find(
    (l) => !/^(Building configuration|Current configuration|Lines To (Delete|Add)$|=+$)/.test(l),
  );
  if (refused) return `${refused[1]} refused "${refused[2].trim()}"${why ? `: ${why.trim()}` : ''}`;
  const first = err.find((l) => /^line \d+:/.test(l)) ?? why ?? err.at(-1);
  return first?.trim() ?? `exit ${r.code}`;
}

/** Checks a file's syntax against vtysh's command tree; nothing reaches the daemons. */
export async function checkFrrConf(file: string, t: FrrTarget): Promise<string | undefined> {
  const r = await t.run([...vtysh(t), '--dryrun', '-f', file], { allowFailure: true });
  return r.code === 0 ? undefined : frrProblem(r);
}

/** `show running-config` without its "Building configuration…" header: a loadable file. */
export async function frrRunningConfig(t: FrrTarget): Promise<string> {
  const r = await t.run([...vtysh(t), '-c', 'show running-config no-header'], {
    allowFailure: true,
  });
  if (r.code !== 0) throw new Error(`FRR's running config cannot be read: ${frrProblem(r)}`);
  return r.stdout;
}

/** Splits frr-reload.py --test output into its two sections, one command per entry. */
export function parseFrrReloadTest(stdout: string): FrrDiff {
  const diff: FrrDiff = { remove: [], add: [] };
  let section: string[] | undefined;
  let block: string[] = [];
  const flush = () => {
    if (section && block.length) section.push(block.join(' / '));
    block = [];
  };
  for (const line of stripAnsi(stdout).split('\n')) {
    if (/^Lines To (Delete|Add)$/.test(line) || /^=+$/.test(line) || !line.trim()) {
      flush();
      if (line === 'Lines To Delete') section = diff.remove;
      if (line === 'Lines To Add') section = diff.add;
      continue;
    }
    // A command without indentation starts the next entry; indented ones are inside it.
    if (!/^\s/.test(line)) flush();
    block.push(line.trim());
  }
  flush();
  return withoutNoise(diff);
}

/**
 * Leaves out what frr-reload.py always reports and no reload can change, found by reloading a
 * file and asking again:
 * - `frr version 8.4` to add: the running config says `frr version 8.4.4` (the build's own),
 *   and frr-reload.py refuses to remove a version line ("cannot be removed").
 * - `service integrated-vtysh-config` to add: vtysh's own setting, shown in the running config
 *   only when vtysh.conf states it; integrated is the default either way.
 * - `hostname <machine name>` to remove while the file's hostname is in place: vtysh appends
 *   its own `hostname` after the daemons' (vtysh_write_terminal → vtysh_config_write), which is
 *   the machine's name unless vtysh.conf sets one. Removing it changes nothing.
 */
function withoutNoise(d: FrrDiff): FrrDiff {
  const fileHostnameRunning = !d.add.some((l) => l.startsWith('hostname '));
  return {
    remove: d.remove.filter((l) => !(fileHostnameRunning && /^no hostname \S+$/.test(l))),
    add: d.add.filter((l) => !/^frr version /.test(l) && l !== 'service integrated-vtysh-config'),
  };
}

/**
 * How FRR's running config differs from `file`, by frr-reload.py's own comparison (its
 * normalisation: contexts, line order and whitespace do not matter). Empty both ways: the
 * running config is the file.
 */
export async function frrDiff(file: string, t: FrrTarget): Promise<FrrDiff> {
  const r = await t.run([FRR_RELOAD, '--test', ...pathspace(t), file], {
    allowFailure: true,
    timeoutMs: 60_000,
  });
  if (r.code !== 0) throw new Error(`frr-reload.py --test ${file}: ${frrProblem(r)}`);
  return parseFrrReloadTest(r.stdout);
}

export function isEmptyDiff(d: FrrDiff): boolean {
  return d.remove.length === 0 && d.add.length === 0;
}

/** One line for a log: `-no neighbor … +ip prefix-list …`. */
export function describeDiff(d: FrrDiff): string {
  return [...d.remove.map((l) => `-${l}`), ...d.add.map((l) => `+${l}`)].join('; ');
}

function runReload(file: string, o: FrrReloadOptions): Promise<RunResult> {
  const argv = [
    FRR_RELOAD,
    '--reload',
    '--stdout',
    '--log-level',
    'warning',
    ...pathspace(o),
    '--rundir',
    o.scratchDir,
    file,
  ];
  return o.run(argv, { allowFailure: true, timeoutMs: 120_000 });
}

/**
 * Makes FRR's running config equal to `file`. A file that does not parse is refused before
 * anything runs; one a daemon refuses half way is rolled back to the running config from
 * before. Either way FRR is left as it was, and the result says why.
 */
export async function reloadFrr(file: string, o: FrrReloadOptions): Promise<FrrReloadResult> {
  let keptAt: string;
  let r: RunResult;
  try {
    const syntax = await checkFrrConf(file, o);
    if (syntax) return { ok: false, stage: 'check', problem: syntax };
    // Without the config from before there is no way back: no reload starts without it. It is
    // kept on disk first (the caller's folder, which is then also there for --rundir).
    keptAt = o.keepRunning(await frrRunningConfig(o));
    r = await runReload(file, o);
  } catch (err) {
    // A tool that cannot start (vtysh, or frr-reload.py without frr-pythontools), or the running
    // config cannot be kept: nothing ran.
    return { ok: false, stage: 'check', problem: (err as Error).message };
  }
  if (r.code === 0) {
    let drift: FrrDiff = { remove: [], add: [] };
    try {
      drift = await frrDiff(file, o);
    } catch {
      // The reload said it succeeded; not being able to compare again is no reason to doubt it.
    }
    return { ok: true, drift };
  }
  const problem = frrProblem(r);
  let restored = false;
  try {
    restored = (await runReload(keptAt, o)).code === 0;
  } catch {
    // Reported as not restored.
  }
  return { ok: false, stage: 'reload', problem, restored };
}
