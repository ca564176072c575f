/**
 * The package as a platform team gets it: `npm pack` in the checkout, then a global install of
 * the tarball into an empty prefix with the npm of this machine, and the installed command run
 * from its own bin directory, far from the checkout. It lives in the slow tier with the lab's
 * tests, though it needs no lab and no root.
 *
 * better-sqlite3's install script (`prebuild-install || node-gyp rebuild`) downloads a prebuilt
 * binary from GitHub on a machine with internet; here only the npm registry is reachable, so it
 * would compile from source (two to ten minutes). The test hands prebuild-install the binary this
 * checkout's own install built, as the tarball GitHub serves, through prebuild-install's local
 * prebuilds directory (`npm_config_<package>_local_prebuilds`): the install takes the same path as
 * on a user's machine. Should the registry offer a newer 12.x than the checkout's, its name does
 * not match and the install compiles: slower, same result.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { afterAll, describe, expect } from 'vitest';
import { itNeeds } from '../../src/testing.js';
import { ROOT, buildOnce } from './helpers.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a person's shell, not of the npm that may have started vitest: its
 * `npm_config_*` (prefix, global, ignore-scripts …) and `npm_*` variables would steer the
 * install, and `PATH` starts with the prefix's bin, then this node.
 */
function cleanEnv(prefix: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  env.PATH = [join(prefix, 'bin'), dirname(process.execPath), process.env.PATH ?? ''].join(
    delimiter,
  );
  env.LC_ALL = 'C';
  env.OVPN_FLEET_DIR = '';
  return env;
}

function run(argv: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What building better-sqlite3 from source needs (node-gyp: python3, make, a C++ compiler). */
function buildToolsMissing(): string | undefined {
  const missing = ['/usr/bin/python3', '/usr/bin/make', '/usr/bin/g++'].filter(
    (p) => !existsSync(p),
  );
  return missing.length ? `${missing.join(', ')} missing (run npm run setup)` : undefined;
}

/**
 * A directory holding this checkout's better-sqlite3 binary under the name prebuild-install asks
 * GitHub for: {name}-v{version}-{runtime}-v{abi}-{platform}{libc}-{arch}.tar.gz (glibc: no libc part).
 */
function localPrebuilds(dir: string): string {
  const pkg = join(ROOT, 'node_modules', 'better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')) as {
    version: string;
  };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-czf', join(dir, name), '-C', pkg, 'build/Release/better_sqlite3.node']);
  return dir;
}

const work = mkdtempSync(join(tmpdir(), 'ovf-install-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm pack, then npm i -g of the tarball into an empty prefix', () => {
  itNeeds(
    buildToolsMissing(),
    'installs without any script of ours and runs: --version, init, validate',
    async () => {
      const prefix = join(work, 'prefix');
      const env = cleanEnv(prefix);
      const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
        version: string;
      };

      // dist/ as the test line built it: `prepack` would build it again from nothing (a minute
      // on this machine) — that it does, for a fresh clone, test/package.test.ts checks.
      await buildOnce();
      const pack = await run(
        ['npm', 'pack', '--json', '--ignore-scripts', '--pack-destination', work],
        ROOT,
        cleanEnv(work),
      );
      expect(pack.code, pack.stderr).toBe(0);
      const [{ filename }] = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as [
        { filename: string },
      ];
      expect(filename).toBe(`ovpn-fleet-${version}.tgz`);

      env.npm_config_better_sqlite3_local_prebuilds = localPrebuilds(join(work, 'prebuilds'));
      const install = await run(
        [
          'npm',
          'install',
          '--global',
          '--prefix',
          prefix,
          '--allow-scripts=better-sqlite3',
          '--no-audit',
          '--no-fund',
          join(work, filename),
        ],
        work,
        env,
      );
      expect(install.code, install.stderr).toBe(0);
      // npm 11 lists packages whose install scripts the command line did not allow; the README's
      // line allows better-sqlite3's only, so ours must have none (`prepare` would count: for a
      // tarball it is an install script, and it would need the devDependencies to build).
      expect(`${install.stdout}${install.stderr}`).not.toMatch(/not yet covered by allowScripts/);
      const installed = join(prefix, 'lib', 'node_modules', 'ovpn-fleet');
      expect(existsSync(join(installed, 'node_modules', 'typescript'))).toBe(false);

      const fleet = join(work, 'fleet');
      const cli = (args: string[]) => run(['ovpn-fleet', '--dir', fleet, ...args], work, env);
      for (const flag of ['--version', '-V']) {
        const r = await cli([flag]);
        expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: `${version}\n` });
      }
      const init = await cli(['init', '--example']);
      expect(init.code, init.stderr).toBe(0);
      expect(init.stdout).toMatch(/initialised fleet "acme"/);
      const validate = await cli(['validate']);
      expect(validate.code, validate.stderr).toBe(0);
      expect(validate.stdout).toMatch(/fleet\.yaml: ok\n$/);
    },
    1_800_000,
  );
});
