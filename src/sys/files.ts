/** File writes that never leave a half-written file: temp file, fsync, rename. */
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
  readFileSync,
  existsSync,
  constants as fsConstants,
  fdatasyncSync,
  fstatSync,
  type Stats,
} from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import type { RenderedFile } from '../render/types.js';
import { link, open } from 'node:fs/promises';
import { runSync } from './exec.js';

/** The bundle folder holds keys and hooks: its group (OpenVPN's) may read it, nobody else. */
export const BUNDLE_DIR_MODE = 0o750;
/** Sockets and the pid file the agent signals: root's alone. */
const RUN_DIR_MODE = 0o700;

/**
 * The file ends up with exactly `mode`, whatever the umask: a mode open() narrowed would differ
 * from the one asked for, and secrets are created owner-only before the chmod widens them.
 */
export function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fchmodSync(fd, mode);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Creates `path` as a real directory with exactly `mode`, fixing the mode of one that exists.
 * A symlink there is refused, not followed: writing or cleaning through it would reach
 * whatever it points at (ccd -> /etc).
 */
function ensureRealDir(path: string, mode: number, name: string): void {
  let st = lstatOrUndefined(path);
  if (!st) {
    mkdirSync(path, { mode });
    st = lstatSync(path);
  }
  if (st.isSymbolicLink()) throw new Error(`bundle directory ${name} is a symlink: refused`);
  if (!st.isDirectory()) throw new Error(`bundle directory ${name} is not a directory: refused`);
  if ((st.mode & 0o7777) !== mode) chmodSync(path, mode);
}

/** Names the bundle may not use: the agent's own state, which a bundle must not overwrite. */
const AGENT_OWNED = new Set(['VERSION', 'run']);

/**
 * Why a bundle file path is unsafe to write under the bundle folder, or undefined when it is
 * fine. Pure: the controller is trusted with content, not with where content goes.
 */
export function bundlePathProblem(path: string): string | undefined {
  if (path === '') return 'empty path';
  if (/[\x00-\x1f\x7f]/.test(path)) return 'control character in path';
  if (path.startsWith('/')) return 'absolute path';
  const segments = path.split('/');
  if (segments.some((s) => s === '')) return 'empty path segment';
  if (segments.some((s) => s === '..' || s === '.')) return '"." or ".." segment';
  if (AGENT_OWNED.has(segments[0])) return `${segments[0]} belongs to the agent`;
  if (path === 'ccd') return 'ccd is the client-config folder, not a file';
  const root = resolve('/bundle');
  if (!resolve(root, path).startsWith(root + sep)) return 'resolves outside the bundle';
  return undefined;
}

/**
 * Why this list of files cannot be written as one bundle: an unsafe path, the same path twice,
 * or a path that is both a file and another file's folder. The message names the path.
 */
export function bundleFilesProblem(files: readonly { path: string }[]): string | undefined {
  const paths = new Set<string>();
  const folders = new Set<string>();
  for (const f of files) {
    const problem = bundlePathProblem(f.path);
    if (problem) return `${JSON.stringify(f.path)}: ${problem}`;
    if (paths.has(f.path)) return `${JSON.stringify(f.path)}: listed twice`;
    paths.add(f.path);
    const segments = f.path.split('/');
    for (let i = 1; i < segments.length; i++) folders.add(segments.slice(0, i).join('/'));
  }
  for (const p of paths)
    if (folders.has(p)) return `${JSON.stringify(p)}: both a file and a folder of other files`;
  return undefined;
}

/** A bundle that cannot be written safely; nothing of it was written. */
export class BundleRefused extends Error {
  constructor(readonly problem: string) {
    super(`bundle refused: ${problem}`);
  }
}

/**
 * Why `files` cannot be written into the bundle folder `dir` as it is on disk now, or undefined:
 * every folder on the way must be a real directory (or not exist yet) and no file may land on a
 * directory. Checked for all files before any is written, so a refused bundle changes nothing.
 */
export function bundleWriteProblem(
  dir: string,
  files: readonly { path: string }[],
): string | undefined {
  return inspectBundle(dir, files).problem;
}

/**
 * bundleWriteProblem, and what it learnt on the way: each file's lstat (undefined when there
 * is none), so the write that follows needs no second lstat per file.
 */
function inspectBundle(
  dir: string,
  files: readonly { path: string }[],
): { problem?: string; stats: Map<string, Stats | undefined> } {
  const stats = new Map<string, Stats | undefined>();
  const listed = bundleFilesProblem(files);
  if (listed) return { problem: listed, stats };
  const checked = new Map<string, string | undefined>();
  const folderProblem = (rel: string): string | undefined => {
    if (checked.has(rel)) return checked.get(rel);
    const st = lstatOrUndefined(join(dir, rel));
    const problem =
      st === undefined || st.isDirectory()
        ? undefined
        : `${JSON.stringify(rel)} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`;
    checked.set(rel, problem);
    return problem;
  };
  for (const rel of ['ccd', 'run']) {
    const problem = folderProblem(rel);
    if (problem) return { problem: `${JSON.stringify(rel)}: ${problem}`, stats };
  }
  for (const { path } of files) {
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const problem = folderProblem(segments.slice(0, i).join('/'));
      if (problem) return { problem: `${JSON.stringify(path)}: ${problem}`, stats };
    }
    const st = lstatOrUndefined(join(dir, path));
    if (st?.isDirectory()) return { problem: `${JSON.stringify(path)} is a directory`, stats };
    stats.set(path, st);
  }
  return { stats };
}

/**
 * Regular files under a ccd folder, and whatever else is there that is not a directory.
 * Links are listed as themselves, never followed: their targets are not the agent's.
 */
function ccdEntries(dir: string, rel: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const sub = `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...ccdEntries(dir, sub));
    else out.push(sub);
  }
  return out;
}

/**
 * Updates a live bundle folder in place: each changed file is replaced atomically, unchanged
 * files are left alone (so the CRL's mtime, which OpenVPN watches, moves only on real changes),
 * and ccd files of users no longer in the bundle are removed. Returns the paths that changed:
 * content only, since a file whose mode alone was off is fixed in place and needs no restart.
 * Throws, having written nothing, when a path is unsafe or a folder on the way is a symlink.
 */
export function writeBundleFiles(dir: string, files: RenderedFile[]): string[] {
  mkdirSync(dirname(resolve(dir)), { recursive: true });
  // The bundle folder itself may be a link an admin placed (/etc/ovpn-fleet -> /srv/...): only
  // what is inside it must be real.
  if (!existsSync(dir)) mkdirSync(dir, { mode: BUNDLE_DIR_MODE });
  if (!statSync(dir).isDirectory()) throw new Error(`bundle folder ${dir} is not a directory`);
  const { problem, stats } = inspectBundle(dir, files);
  if (problem) throw new BundleRefused(problem);
  const known = fingerprints(dir);
  if ((statSync(dir).mode & 0o7777) !== BUNDLE_DIR_MODE) chmodSync(dir, BUNDLE_DIR_MODE);
  ensureRealDir(join(dir, 'run'), RUN_DIR_MODE, 'run');
  // OpenVPN refuses to start without its client-config-dir, even with no user in it yet.
  ensureRealDir(join(dir, 'ccd'), BUNDLE_DIR_MODE, 'ccd');
  const wanted = new Set(files.map((f) => f.path));
  const changed: string[] = [];
  // Each folder once per call: a bundle has thousands of files in ccd/.
  const ensured = new Set(['run', 'ccd']);
  for (const f of files) {
    const segments = f.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const sub = segments.slice(0, i).join('/');
      if (ensured.has(sub)) continue;
      ensureRealDir(join(dir, sub), BUNDLE_DIR_MODE, sub);
      ensured.add(sub);
    }
    const path = join(dir, f.path);
    const st = stats.get(f.path);
    if (st?.isFile() && sameContent(path, st, f.content, known.get(f.path))) {
      let now = st;
      if ((st.mode & 0o7777) !== f.mode) {
        chmodSync(path, f.mode);
        now = lstatSync(path); // chmod moved its ctime
      }
      known.set(f.path, fingerprint(now, f.content));
    } else {
      writeFileAtomic(path, f.content, f.mode);
      changed.push(f.path);
      known.set(f.path, fingerprint(lstatSync(path), f.content));
    }
  }
  // A stray link is removed, not kept: OpenVPN would follow it when that user connects, and
  // with ccd-exclusive a ccd entry is what admits a user. unlink removes the link alone.
  for (const rel of ccdEntries(dir, 'ccd')) {
    if (wanted.has(rel)) continue;
    unlinkSync(join(dir, rel));
    known.delete(rel);
    changed.push(rel);
  }
  return changed;
}

/**
 * What this process last wrote or read at a bundle path: while the inode, size, mtime and
 * ctime are still those, the file still holds `content`. ctime moves on every write and cannot
 * be set back from user space, so a file edited behind the agent's back is read again. This
 * spares reading every file on each apply: 1,700 ccd files on each of six agents at once was
 * the larger part of the time from a change to every agent having applied it.
 */
interface Fingerprint {
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  content: string;
}

const fingerprintsByDir = new Map<string, Map<string, Fingerprint>>();

function fingerprints(dir: string): Map<string, Fingerprint> {
  const key = resolve(dir);
  let known = fingerprintsByDir.get(key);
  if (!known) {
    known = new Map<string, Fingerprint>();
    fingerprintsByDir.set(key, known);
  }
  return known;
}

function fingerprint(st: Stats, content: string): Fingerprint {
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, content };
}

/** True when the regular file at `path` (lstat `st`) holds exactly `content`. */
function sameContent(path: string, st: Stats, content: string, known?: Fingerprint): boolean {
  if (
    known &&
    known.content === content &&
    known.ino === st.ino &&
    known.size === st.size &&
    known.mtimeMs === st.mtimeMs &&
    known.ctimeMs === st.ctimeMs
  )
    return true;
  const want = Buffer.from(content);
  if (st.size !== want.length) return false;
  return readFileSync(path).equals(want);
}

/**
 * Puts each bundle at out/<server>: built in a staging folder beside the old one, then swapped
 * in with renames, so a reader sees the old bundle or the new one, never half of either.
 *
 * Creating inodes is the cost here, and ext4 serialises it per directory (≈0.6 ms per file in
 * one folder on this machine: 60,000 ccd files took 20 s). So a file object several bundles
 * share — every ccd file — is created once, in one of SHARDS scratch folders so creations run
 * in parallel, hard-linked into each bundle, and the scratch names are dropped; one syncfs
 * flushes everything before the swap.
 */
export async function publishBundles(
  out: string,
  bundles: { server: string; files: RenderedFile[]; digest: string }[],
): Promise<void> {
  const SHARDS = 16;
  for (const b of bundles) {
    const problem = bundleFilesProblem(b.files);
    if (problem) throw new Error(`bundle of ${b.server} refused: ${problem}`);
  }
  mkdirSync(out, { recursive: true });
  const uses = new Map<RenderedFile, number>();
  for (const b of bundles) for (const f of b.files) uses.set(f, (uses.get(f) ?? 0) + 1);
  const scratch = join(out, '.shared.new');
  rmSync(scratch, { recursive: true, force: true });
  for (let k = 0; k < SHARDS; k++) mkdirSync(join(scratch, String(k)), { recursive: true });
  const sharedPath = new Map<RenderedFile, string>();
  const writes: (() => Promise<void>)[] = [];
  const links: (() => Promise<void>)[] = [];
  const staging = (server: string) => join(out, `.${server}.new`);
  const made = new Set<string>();
  for (const b of bundles) {
    const dir = staging(b.server);
    rmSync(dir, { recursive: true, force: true });
    mkdirExact(dir, BUNDLE_DIR_MODE);
    mkdirExact(join(dir, 'run'), RUN_DIR_MODE);
    mkdirExact(join(dir, 'ccd'), BUNDLE_DIR_MODE);
    made.add(join(dir, 'ccd'));
    const version: RenderedFile = { path: 'VERSION', content: `${b.digest}\n`, mode: 0o644 };
    for (const f of [...b.files, version]) {
      const path = join(dir, f.path);
      const segments = f.path.split('/');
      for (let i = 1; i < segments.length; i++) {
        const parent = join(dir, ...segments.slice(0, i));
        if (made.has(parent)) continue;
        mkdirExact(parent, BUNDLE_DIR_MODE);
        made.add(parent);
      }
      if ((uses.get(f) ?? 1) < 2) {
        writes.push(() => writeExact(path, f.content, f.mode));
        continue;
      }
      let source = sharedPath.get(f);
      if (!source) {
        const src = join(scratch, String(sharedPath.size % SHARDS), String(sharedPath.size));
        sharedPath.set(f, src);
        writes.push(() => writeExact(src, f.content, f.mode));
        source = src;
      }
      const from = source;
      links.push(() => link(from, path));
    }
  }
  // Links need their source: every write first.
  await runLimited(writes, 8);
  await runLimited(links, 8);
  runSync(['sync', '--file-system', out]);
  for (const b of bundles) {
    const final = join(out, b.server);
    const old = join(out, `.${b.server}.old`);
    rmSync(old, { recursive: true, force: true });
    if (existsSync(final)) renameSync(final, old);
    renameSync(staging(b.server), final);
    rmSync(old, { recursive: true, force: true });
  }
  rmSync(scratch, { recursive: true, force: true });
}

/** A fresh directory with exactly `mode`, whatever the umask. */
function mkdirExact(path: string, mode: number): void {
  mkdirSync(path, { mode });
  chmodSync(path, mode);
}

/** A new file with exactly `mode`, whatever the umask (hard links share it). */
async function writeExact(path: string, content: string, mode: number): Promise<void> {
  const file = await open(path, 'wx', 0o600);
  try {
    await file.writeFile(content);
    await file.chmod(mode);
  } finally {
    await file.close();
  }
}

async function runLimited(jobs: (() => Promise<void>)[], parallel: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]();
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/**
 * A log file we only ever append to (the audit log): created with `mode` (0600) when missing,
 * never through a symlink (O_NOFOLLOW: someone who can write the folder cannot point our log
 * at /etc/shadow), and only ever a regular file. `reopen` is for logrotate: after it moved the
 * file away, the next line goes to a new file at the same path.
 */
export class AppendOnlyFile {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    private readonly mode = 0o600,
  ) {}

  /** Opens the file now; throws an Error naming the path when it cannot be used. */
  open(): void {
    if (this.fd !== undefined) return;
    // O_NONBLOCK: a FIFO put at the path fails with ENXIO (no reader) instead of blocking the
    // event loop in open(2) until someone reads it; it changes nothing for a regular file.
    const flags =
      fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NONBLOCK;
    let fd: number;
    try {
      fd = openSync(this.path, flags | fsConstants.O_NOFOLLOW, this.mode);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // O_NOFOLLOW makes open() fail with ELOOP when the last component is a symlink.
      if (code === 'ELOOP') throw new Error(`${this.path} is a symlink: refused`);
      if (code === 'ENXIO') throw new Error(`${this.path} is a FIFO or socket: refused`);
      throw new Error(`cannot open ${this.path}: ${code ?? (err as Error).message}`);
    }
    const stat = fstatSync(fd);
    if (!stat.isFile()) {
      closeSync(fd);
      throw new Error(`${this.path} is not a regular file: refused`);
    }
    // A file someone else owns is refused; ours, readable by group or others (made by hand,
    // or by an older version), gets our mode back before anything is written to it.
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      closeSync(fd);
      throw new Error(`${this.path} is owned by uid ${stat.uid}, not us (${uid}): refused`);
    }
    if ((stat.mode & 0o077) !== 0) fchmodSync(fd, this.mode);
    this.fd = fd;
  }

  /** Appends all of `text` and flushes it to disk before returning. */
  append(text: string): void {
    this.open();
    const fd = this.fd!;
    const bytes = Buffer.from(text);
    for (let done = 0; done < bytes.length;)
      done += writeSync(fd, bytes, done, bytes.length - done);
    fdatasyncSync(fd);
  }

  /** Closes and opens the path again (after logrotate moved the file). */
  reopen(): void {
    this.close();
    this.open();
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
