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
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { RenderedFile } from '../render/types.js';

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
 * Writes a bundle into dir: every file atomically, then removes files of ours that are no
 * longer in the bundle (a deleted user's ccd file). `keep` names paths that are not ours.
 */
export function writeBundleFiles(
  dir: string,
  files: RenderedFile[],
  keep: (rel: string) => boolean = () => false,
): void {
  const wanted = new Set(files.map((f) => f.path));
  for (const f of files) writeFileAtomic(join(dir, f.path), f.content, f.mode);
  mkdirSync(join(dir, 'run'), { recursive: true, mode: 0o700 });
  for (const path of listFiles(join(dir, 'ccd'))) {
    const rel = relative(dir, path);
    if (!wanted.has(rel) && !keep(rel)) rmSync(path);
  }
}
