/**
 * Carries out a plan of plan.ts on a host, or under a root directory (`--root DIR`: files only,
 * no commands, which is how the tests run it where systemd is not PID 1). Files are written
 * temp + rename with their exact mode; the plan already knows what is unchanged.
 */
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  rmdirSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { CommandError, NeedsPrivilege } from '../errors.js';
import { run as runCommand, type RunOptions, type RunResult } from '../sys/exec.js';
import { writeFileAtomic } from '../sys/files.js';
import { type Existing, type Look, type Plan, type Step, digestOf } from './plan.js';

export type Runner = (argv: readonly string[], opts?: RunOptions) => Promise<RunResult>;

export interface ApplyOptions {
  /** `/` on a real host; anything else: a directory standing for it, and no commands run. */
  root: string;
  dryRun: boolean;
  print: (line: string) => void;
  run?: Runner;
}

const octal = (mode: number) => `0${(mode & 0o7777).toString(8)}`;

function ioFailure(path: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM')
    return new NeedsPrivilege(`cannot read ${path} (${code}): run as root`);
  return err as Error;
}

/** What is at each path under `root`; links are reported, never followed. */
export function lookUnder(root: string): Look {
  return (path) => {
    const at = join(root, path);
    let st;
    try {
      st = lstatSync(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioFailure(at, err);
    }
    if (st.isSymbolicLink()) return { kind: 'other', what: 'a symbolic link' };
    if (st.isDirectory()) return { kind: 'dir', mode: st.mode & 0o7777 };
    if (!st.isFile()) return { kind: 'other', what: 'not a regular file' };
    try {
      return {
        kind: 'file',
        content: readFileSync(at, 'utf8'),
        mode: st.mode & 0o7777,
      } satisfies Existing;
    } catch (err) {
      throw ioFailure(at, err);
    }
  };
}

/**
 * The packages of `names` that are not installed (dpkg's status `ii`), under `root` when it is
 * not `/` (dpkg-query --root reads DIR/var/lib/dpkg).
 */
export async function missingPackages(
  names: readonly string[],
  root: string,
  run: Runner = runCommand,
): Promise<string[]> {
  const r = await run(
    [
      'dpkg-query',
      ...(root !== '/' ? ['--root', root] : []),
      '--show',
      '--showformat',
      '${Package}\t${db:Status-Abbrev}\n',
      ...names,
    ],
    // It exits 1 when any name is unknown to dpkg; the output still lists the others.
    { allowFailure: true },
  );
  if (r.code !== 0 && r.code !== 1) throw new CommandError(['dpkg-query'], r.code, r.stderr);
  const installed = new Set(
    r.stdout
      .split('\n')
      .map((l) => l.split('\t'))
      .filter(([, status]) => status?.startsWith('ii'))
      .map(([name]) => name),
  );
  return names.filter((n) => !installed.has(n));
}

function describeStep(s: Step, dryRun: boolean): string {
  const would = (done: string, todo: string) => (dryRun ? `would ${todo}` : done);
  switch (s.kind) {
    case 'dir':
      return s.state === 'unchanged'
        ? `unchanged ${s.path}/ (${octal(s.mode)})`
        : s.state === 'create'
          ? `${would('created', 'create')} ${s.path}/ (${octal(s.mode)})`
          : `${would('set mode of', 'set mode of')} ${s.path}/ to ${octal(s.mode)}`;
    case 'file': {
      const what = `${s.file.path} (${octal(s.file.mode)}${s.file.secret ? `, secret ${digestOf(s.file.content)}` : ''})`;
      return s.state === 'unchanged'
        ? `unchanged ${what}`
        : `${s.state === 'create' ? would('created', 'create') : would('updated', 'update')} ${what}`;
    }
    case 'delete':
      return s.state === 'absent' ? `absent ${s.path}` : `${would('deleted', 'delete')} ${s.path}`;
    case 'rmdir':
      return s.state === 'absent'
        ? `absent ${s.path}/`
        : `${would('removed', 'remove')} ${s.path}/ (if empty)`;
    case 'run':
      return `${dryRun ? 'would run' : 'run'}: ${s.argv.join(' ')}  # ${s.why}`;
  }
}

function writeStep(root: string, s: Step & { kind: 'file' }): void {
  const at = join(root, s.file.path);
  // The owner is read before the write: the renamed-in file is root's.
  const owner = s.file.ownerFrom ? statSync(join(root, s.file.ownerFrom)) : undefined;
  writeFileAtomic(at, s.file.content, s.file.mode);
  if (owner) chownSync(at, owner.uid, owner.gid);
}

export async function applyPlan(plan: Plan, o: ApplyOptions): Promise<void> {
  const run = o.run ?? runCommand;
  for (const s of plan.steps) {
    if (s.kind === 'run' && !o.dryRun && o.root !== '/') {
      o.print(`skipped under --root: ${s.argv.join(' ')}  # ${s.why}`);
      continue;
    }
    o.print(describeStep(s, o.dryRun));
    if (o.dryRun) {
      // Every file's content, so the dry run shows all that would be written; secrets by digest.
      if (s.kind === 'file' && !s.file.secret)
        for (const line of s.file.content.replace(/\n$/, '').split('\n')) o.print(`    | ${line}`);
      continue;
    }
    const at = 'path' in s ? join(o.root, s.path) : '';
    switch (s.kind) {
      case 'dir':
        if (s.state === 'create') mkdirSync(at, { recursive: true });
        // mkdir's mode goes through the umask; chmod is exact.
        if (s.state !== 'unchanged') chmodSync(at, s.mode);
        break;
      case 'file':
        if (s.state !== 'unchanged') writeStep(o.root, s);
        break;
      case 'delete':
        if (s.state === 'delete') rmSync(at, { force: true });
        break;
      case 'rmdir':
        if (s.state === 'rmdir') {
          try {
            rmdirSync(at);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw err;
            o.print(`kept ${s.path}/: it holds files of someone else`);
          }
        }
        break;
      case 'run':
        await run(s.argv);
        break;
    }
  }
  for (const note of plan.notes) o.print(`note: ${note}`);
}
