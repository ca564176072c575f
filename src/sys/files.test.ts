import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RenderedFile } from '../render/types.js';
import {
  AppendOnlyFile,
  bundleFilesProblem,
  bundlePathProblem,
  bundleWriteProblem,
  publishBundles,
  writeBundleFiles,
  writeFileAtomic,
} from './files.js';

const modeOf = (path: string) => statSync(path).mode & 0o7777;

const bundle = (users: string[] = ['alice', 'bob']): RenderedFile[] => [
  { path: 'server.conf', content: 'port 1194\n', mode: 0o644 },
  { path: 'server.key', content: 'KEY\n', mode: 0o600 },
  { path: 'hooks/learn-address', content: '#!/bin/sh\n', mode: 0o755 },
  ...users.map((u) => ({ path: `ccd/${u}`, content: `ifconfig-push ${u}\n`, mode: 0o644 })),
];

let root: string;
let dir: string;
let outside: string;
let savedUmask: number;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'files-test-'));
  dir = join(root, 'bundle');
  outside = join(root, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'precious'), 'keep me\n');
  savedUmask = process.umask();
});

afterEach(() => {
  process.umask(savedUmask);
  rmSync(root, { recursive: true, force: true });
});

describe('modes under a umask other than 022', () => {
  it('writeFileAtomic gives exactly the mode asked for', () => {
    process.umask(0o077);
    for (const mode of [0o644, 0o755, 0o600, 0o640]) {
      const path = join(root, `f${mode.toString(8)}`);
      writeFileAtomic(path, 'x', mode);
      expect(modeOf(path)).toBe(mode);
    }
  });

  it('a second identical bundle write changes nothing under umask 027', () => {
    process.umask(0o027);
    const first = writeBundleFiles(dir, bundle());
    expect(first.sort()).toEqual(
      bundle()
        .map((f) => f.path)
        .sort(),
    );
    for (const f of bundle()) expect(modeOf(join(dir, f.path))).toBe(f.mode);
    expect(writeBundleFiles(dir, bundle())).toEqual([]);
  });

  it('a file with the right content but the wrong mode is fixed in place, not reported', () => {
    writeBundleFiles(dir, bundle());
    chmodSync(join(dir, 'server.conf'), 0o600);
    chmodSync(join(dir, 'hooks/learn-address'), 0o644);
    const inode = statSync(join(dir, 'server.conf')).ino;
    expect(writeBundleFiles(dir, bundle())).toEqual([]);
    expect(modeOf(join(dir, 'server.conf'))).toBe(0o644);
    expect(modeOf(join(dir, 'hooks/learn-address'))).toBe(0o755);
    expect(statSync(join(dir, 'server.conf')).ino).toBe(inode);
  });

  it('a content change is reported', () => {
    writeBundleFiles(dir, bundle());
    const next = bundle().map((f) =>
      f.path === 'server.conf' ? { ...f, content: 'port 1195\n' } : f,
    );
    expect(writeBundleFiles(dir, next)).toEqual(['server.conf']);
  });

  it('publishBundles gives exact file and folder modes under umask 027', async () => {
    process.umask(0o027);
    const files = bundle();
    await publishBundles(join(root, 'out'), [
      { server: 'a', files, digest: 'd1' },
      { server: 'b', files, digest: 'd1' },
    ]);
    for (const server of ['a', 'b']) {
      const b = join(root, 'out', server);
      for (const f of files) expect(modeOf(join(b, f.path))).toBe(f.mode);
      expect(modeOf(join(b, 'VERSION'))).toBe(0o644);
      expect(modeOf(b)).toBe(0o750);
      expect(modeOf(join(b, 'ccd'))).toBe(0o750);
      expect(modeOf(join(b, 'hooks'))).toBe(0o750);
      expect(modeOf(join(b, 'run'))).toBe(0o700);
    }
  });
});

describe('what an apply reads again', () => {
  it('rewrites a file edited behind its back, even to the same size and mtime', () => {
    writeBundleFiles(dir, bundle());
    const path = join(dir, 'ccd', 'alice');
    const before = statSync(path);
    // Same length, and the old mtime put back: only the inode's ctime tells.
    writeFileSync(path, 'ifconfig-push XXXXX\n');
    utimesSync(path, before.atime, before.mtime);
    expect(statSync(path).size).toBe(before.size);
    expect(writeBundleFiles(dir, bundle())).toEqual(['ccd/alice']);
    expect(readFileSync(path, 'utf8')).toBe('ifconfig-push alice\n');
  });

  it('reports nothing for a second identical write, and a real change once', () => {
    writeBundleFiles(dir, bundle());
    expect(writeBundleFiles(dir, bundle())).toEqual([]);
    const changed = bundle().map((f) =>
      f.path === 'server.conf' ? { ...f, content: `${f.content}# more\n` } : f,
    );
    expect(writeBundleFiles(dir, changed)).toEqual(['server.conf']);
    expect(writeBundleFiles(dir, changed)).toEqual([]);
  });
});

describe('bundle folder modes', () => {
  it('creates the bundle and ccd 0750 and run 0700', () => {
    process.umask(0o022);
    writeBundleFiles(dir, bundle());
    expect(modeOf(dir)).toBe(0o750);
    expect(modeOf(join(dir, 'ccd'))).toBe(0o750);
    expect(modeOf(join(dir, 'hooks'))).toBe(0o750);
    expect(modeOf(join(dir, 'run'))).toBe(0o700);
  });

  it('fixes the mode of folders that already exist', () => {
    for (const sub of ['', 'ccd', 'hooks', 'run']) mkdirSync(join(dir, sub), { recursive: true });
    for (const sub of ['', 'ccd', 'hooks', 'run']) chmodSync(join(dir, sub), 0o777);
    writeBundleFiles(dir, bundle());
    expect(modeOf(dir)).toBe(0o750);
    expect(modeOf(join(dir, 'ccd'))).toBe(0o750);
    expect(modeOf(join(dir, 'hooks'))).toBe(0o750);
    expect(modeOf(join(dir, 'run'))).toBe(0o700);
  });
});

describe('ccd cleanup and symlinks', () => {
  it('removes a link to an outside folder without touching what is in it', () => {
    writeBundleFiles(dir, bundle());
    symlinkSync(outside, join(dir, 'ccd', 'evil'));
    const changed = writeBundleFiles(dir, bundle(['alice']));
    expect(changed.sort()).toEqual(['ccd/bob', 'ccd/evil']);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
    expect(existsSync(join(dir, 'ccd', 'evil'))).toBe(false);
    expect(existsSync(join(dir, 'ccd', 'alice'))).toBe(true);
  });

  it('removes a link to an outside file, which survives', () => {
    writeBundleFiles(dir, bundle());
    symlinkSync(join(outside, 'precious'), join(dir, 'ccd', 'mallory'));
    expect(writeBundleFiles(dir, bundle())).toEqual(['ccd/mallory']);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
  });

  it('a dangling link neither throws nor stops the apply', () => {
    writeBundleFiles(dir, bundle());
    symlinkSync(join(root, 'nowhere'), join(dir, 'ccd', 'ghost'));
    expect(writeBundleFiles(dir, bundle())).toEqual(['ccd/ghost']);
    expect(() => lstatSync(join(dir, 'ccd', 'ghost'))).toThrow();
  });

  it('replaces a link where a bundle file belongs instead of writing through it', () => {
    writeBundleFiles(dir, bundle());
    rmSync(join(dir, 'ccd', 'alice'));
    symlinkSync(join(outside, 'precious'), join(dir, 'ccd', 'alice'));
    expect(writeBundleFiles(dir, bundle())).toEqual(['ccd/alice']);
    expect(lstatSync(join(dir, 'ccd', 'alice')).isFile()).toBe(true);
    expect(readFileSync(join(dir, 'ccd', 'alice'), 'utf8')).toBe('ifconfig-push alice\n');
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
  });

  it('refuses a ccd folder that is a link, writing and removing nothing', () => {
    mkdirSync(dir);
    symlinkSync(outside, join(dir, 'ccd'));
    expect(() => writeBundleFiles(dir, bundle())).toThrow(/"ccd".*symlink/);
    // Even with no ccd file to write, cleaning must not walk through the link.
    expect(() => writeBundleFiles(dir, bundle([]))).toThrow(/"ccd".*symlink/);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
    expect(existsSync(join(dir, 'server.conf'))).toBe(false);
    expect(readlinkSync(join(dir, 'ccd'))).toBe(outside);
  });

  it('refuses a hooks folder that is a link', () => {
    mkdirSync(dir);
    symlinkSync(outside, join(dir, 'hooks'));
    expect(bundleWriteProblem(dir, bundle())).toMatch(
      /"hooks\/learn-address": "hooks" is a symlink/,
    );
    expect(() => writeBundleFiles(dir, bundle())).toThrow(/hooks/);
    expect(existsSync(join(outside, 'learn-address'))).toBe(false);
  });

  it('refuses a whole bundle with one bad path, writing nothing of it', () => {
    const files = [...bundle(), { path: '../outside/precious', content: 'pwned', mode: 0o644 }];
    expect(() => writeBundleFiles(dir, files)).toThrow(/"\.\.\/outside\/precious"/);
    expect(existsSync(join(dir, 'server.conf'))).toBe(false);
    expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
  });
});

describe('bundlePathProblem', () => {
  it.each([
    ['/etc/passwd', 'absolute'],
    ['../x', '".." segment'],
    ['ccd/../../x', '".." segment'],
    ['./server.conf', '".." segment'],
    ['ccd//alice', 'empty path segment'],
    ['ccd/', 'empty path segment'],
    ['', 'empty path'],
    ['ccd/al\0ice', 'control character'],
    ['ccd/alice\nroute 0.0.0.0', 'control character'],
    ['ccd/\x1b[2J', 'control character'],
    ['run/openvpn.pid', 'belongs to the agent'],
    ['VERSION', 'belongs to the agent'],
    ['ccd', 'client-config folder'],
  ])('refuses %j', (path, why) => {
    expect(bundlePathProblem(path)).toContain(why);
  });

  it.each(['server.conf', 'hooks/learn-address', 'ccd/alice', "ccd/o'brien $x"])(
    'accepts %j',
    (path) => {
      expect(bundlePathProblem(path)).toBeUndefined();
    },
  );

  it('refuses a path twice and a path that is also a folder', () => {
    expect(bundleFilesProblem([{ path: 'a' }, { path: 'a' }])).toContain('listed twice');
    expect(bundleFilesProblem([{ path: 'hooks' }, { path: 'hooks/x' }])).toContain('"hooks"');
  });
});

describe('AppendOnlyFile', () => {
  it('refuses a FIFO at its path at once instead of blocking in open()', () => {
    const path = join(root, 'audit.log');
    execFileSync('mkfifo', [path]);
    const log = new AppendOnlyFile(path);
    expect(() => log.open()).toThrow(`${path} is a FIFO or socket: refused`);
  });

  it('takes group and other access away from an existing log of ours, then appends', () => {
    const path = join(root, 'audit.log');
    writeFileSync(path, 'old line\n');
    chmodSync(path, 0o644);
    const log = new AppendOnlyFile(path);
    log.append('new line\n');
    log.close();
    expect(modeOf(path)).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toBe('old line\nnew line\n');
  });
});
