/** File writes that never leave a half-written file: temp file, fsync, rename. */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
  statSync,
  readFileSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { RenderedFile } from '../render/types.js';
import { runSync } from './exec.js';

export function writeFileAtomic(path: string, content: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

function listFiles(dir: string): string[] {
  let out: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(listFiles(p));
    else out.push(p);
  }
  return out;
}

/**
 * Writes a bundle into dir and removes files of ours (ccd/*) that are no longer in it.
 * - `fresh`: dir is a new staging folder nobody reads until it is renamed into place, so files
 *   are written directly and flushed with one syncfs at the end — per-file fsync made 60,000
 *   ccd files take a minute.
 * - otherwise (a live folder): each changed file is replaced atomically; unchanged files are
 *   left alone, so their mtimes (which OpenVPN watches for the CRL) only move on real changes.
 */
export function writeBundleFiles(
  dir: string,
  files: RenderedFile[],
  opts: { fresh?: boolean } = {},
): void {
  const wanted = new Set(files.map((f) => f.path));
  const made = new Set<string>();
  for (const f of files) {
    const path = join(dir, f.path);
    const parent = dirname(path);
    if (!made.has(parent)) {
      mkdirSync(parent, { recursive: true });
      made.add(parent);
    }
    if (opts.fresh) {
      writeFileSync(path, f.content, { mode: f.mode });
    } else if (!sameFile(path, f.content, f.mode)) {
      writeFileAtomic(path, f.content, f.mode);
    }
  }
  mkdirSync(join(dir, 'run'), { recursive: true, mode: 0o700 });
  for (const path of listFiles(join(dir, 'ccd'))) {
    if (!wanted.has(relative(dir, path))) rmSync(path);
  }
  if (opts.fresh) runSync(['sync', '--file-system', dir]);
}

function sameFile(path: string, content: string, mode: number): boolean {
  try {
    const st = statSync(path);
    return (
      (st.mode & 0o777) === mode &&
      st.size === Buffer.byteLength(content) &&
      readFileSync(path, 'utf8') === content
    );
  } catch {
    return false;
  }
}

/**
 * Puts a bundle at out/<server>: built in a staging folder beside the old one, then swapped in
 * with renames, so a reader sees the old bundle or the new one, never half of either.
 */
export function publishBundle(
  out: string,
  bundle: { server: string; files: RenderedFile[]; digest: string },
): void {
  const final = join(out, bundle.server);
  const staging = join(out, `.${bundle.server}.new`);
  const old = join(out, `.${bundle.server}.old`);
  rmSync(staging, { recursive: true, force: true });
  writeBundleFiles(
    staging,
    [...bundle.files, { path: 'VERSION', content: `${bundle.digest}\n`, mode: 0o644 }],
    { fresh: true },
  );
  rmSync(old, { recursive: true, force: true });
  if (existsSync(final)) renameSync(final, old);
  renameSync(staging, final);
  rmSync(old, { recursive: true, force: true });
}
