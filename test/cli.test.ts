/**
 * The built CLI, run as a user runs it: argv in, exit code, stdout and stderr out.
 * Builds dist/ first when any source file is newer than it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_FLEET_YAML } from '../src/spec/example.js';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'ovpn-fleet.js');
const BUILT = join(ROOT, 'dist', 'cli', 'main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function buildIfStale(): void {
  if (existsSync(BUILT) && statSync(BUILT).mtimeMs >= newestMtime(join(ROOT, 'src'))) return;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' });
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;

function cli(args: string[], opts: { cwd?: string } = {}): Run {
  const r = spawnSync(process.execPath, [BIN, '--dir', dir, ...args], {
    cwd: opts.cwd ?? dir,
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C', OVPN_FLEET_DIR: '' },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like cli() but without blocking, so independent runs share the machine's cores. */
function cliAsync(args: string[], fleetDir = dir): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, '--dir', fleetDir, ...args], {
      cwd: fleetDir,
      env: { ...process.env, LC_ALL: 'C', OVPN_FLEET_DIR: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

/** Runs and expects success; a failure shows the CLI's own stderr. */
function ok(args: string[]): string {
  const r = cli(args);
  expect({ args, status: r.status, stderr: r.stderr }).toEqual({ args, status: 0, stderr: '' });
  return r.stdout;
}

const userNames = () =>
  (JSON.parse(ok(['user', 'list', '--json'])) as { name: string }[]).map((u) => u.name);

beforeAll(() => {
  buildIfStale();
  dir = mkdtempSync(join(tmpdir(), 'ovf-cli-'));
  ok(['init', '--example']);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ovpn-fleet CLI', () => {
  it('init --example writes fleet.yaml and a 0600 store', () => {
    expect(readFileSync(join(dir, 'fleet.yaml'), 'utf8')).toContain('fleet: acme');
    expect(statSync(join(dir, 'fleet.db')).mode & 0o777).toBe(0o600);
    const again = cli(['init', '--example']);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already holds a fleet/);
  });

  it('adds a user with groups and lists it as JSON', () => {
    ok(['user', 'add', 'alice', '-g', 'staff', '--group', 'engineering']);
    ok(['user', 'add', 'bob', '-g', 'staff,dba']);
    const users = JSON.parse(ok(['user', 'list', '--json'])) as Record<string, unknown>[];
    expect(users.map((u) => u.name)).toEqual(['alice', 'bob']);
    expect(users[0]).toMatchObject({
      name: 'alice',
      ipv4: '10.200.0.2',
      ipv6: 'fd7a:6ca6:e640:8000::2',
      groups: ['engineering', 'staff'],
      status: 'enabled',
    });
    expect(users[1]).toMatchObject({ ipv4: '10.200.0.3', groups: ['dba', 'staff'] });
  });

  it('refuses bad user names and unknown groups with one line naming the problem', async () => {
    const cases: [string[], string][] = [
      [['../x'], '"../x" is not a valid user name'],
      [['john smith'], '"john smith" is not a valid user name'],
      [['o"brien'], '"o\\"brien" is not a valid user name'],
      [["o'brien"], `"o'brien" is not a valid user name`],
      [['two\nlines'], '"two\\nlines" is not a valid user name'],
      [['DEFAULT'], '"DEFAULT" is reserved by OpenVPN'],
      [['default'], '"DEFAULT" is reserved by OpenVPN'],
      [['carol', '-g', 'staff,wizards'], 'unknown group "wizards"'],
    ];
    const runs = await Promise.all(
      cases.map(([[name, ...rest]]) =>
        cliAsync(['user', 'add', name, ...(rest.length ? rest : ['-g', 'staff'])]),
      ),
    );
    runs.forEach((r, i) => {
      const [args, problem] = cases[i];
      expect.soft(r.status, args[0]).not.toBe(0);
      expect.soft(r.stderr.endsWith('\n'), args[0]).toBe(true);
      expect.soft(r.stderr.trimEnd().split('\n'), args[0]).toHaveLength(1);
      expect.soft(r.stderr, args[0]).toContain(problem);
    });
    expect(userNames()).toEqual(['alice', 'bob']);
  });

  it('imports a CSV all or nothing; a bad row names file:line', async () => {
    const bad1 = join(dir, 'bad-group.csv');
    const bad2 = join(dir, 'bad-name.csv');
    writeFileSync(bad1, 'name,groups\ncarol,staff;dba\ndan,staff\nerin,staff;nobody\nfrank,\n');
    writeFileSync(bad2, 'name,groups\ncarol,staff;dba\n\nbad name,staff\n');
    const [r1, r2] = await Promise.all([
      cliAsync(['user', 'import', bad1]),
      cliAsync(['user', 'import', bad2]),
    ]);
    expect(r1.status).not.toBe(0);
    expect(r1.stderr).toContain(`${bad1}:4: unknown group "nobody"`);
    expect(r2.status).not.toBe(0);
    expect(r2.stderr).toContain(`${bad2}:4: "bad name" is not a valid user name`);
    expect(userNames()).toEqual(['alice', 'bob']);

    const good = join(dir, 'good.csv');
    writeFileSync(good, 'name,groups\ncarol, staff ; dba\ndan,\n');
    expect(ok(['user', 'import', good])).toMatch(/^imported 2 users /);
    const users = JSON.parse(ok(['user', 'list', '--json'])) as {
      name: string;
      groups: string[];
    }[];
    expect(users.map((u) => [u.name, u.groups])).toEqual([
      ['alice', ['engineering', 'staff']],
      ['bob', ['dba', 'staff']],
      ['carol', ['dba', 'staff']],
      ['dan', []],
    ]);
  });

  it('renders no ccd file for a disabled user', () => {
    ok(['user', 'add', 'gina', '-g', 'staff']);
    ok(['user', 'disable', 'gina']);
    const out = join(dir, 'out');
    ok(['render', '--out', out]);
    expect(readdirSync(out).sort()).toEqual(['vpn11', 'vpn12', 'vpn21', 'vpn22', 'vpn31', 'vpn32']);
    for (const server of readdirSync(out)) {
      expect(existsSync(join(out, server, 'ccd', 'alice'))).toBe(true);
      expect(existsSync(join(out, server, 'ccd', 'gina'))).toBe(false);
    }
  });

  it("revoking puts the user's serial into the rendered CRL", () => {
    const serial = (
      JSON.parse(ok(['user', 'add', 'henry', '-g', 'staff', '--json'])) as { certSerial: string }
    ).certSerial;
    expect(serial).toMatch(/^[0-9a-f]+$/);
    const out = join(dir, 'out-revoke');
    const crlSerials = () => {
      ok(['render', '--out', out, '--server', 'vpn21']);
      const text = execFileSync(
        'openssl',
        ['crl', '-noout', '-text', '-in', join(out, 'vpn21', 'crl.pem')],
        { encoding: 'utf8' },
      );
      return [...text.matchAll(/Serial Number: ([0-9A-Fa-f]+)/g)].map((m) =>
        m[1].toLowerCase().replace(/^0+(?=.)/, ''),
      );
    };
    expect(crlSerials()).not.toContain(serial);
    ok(['user', 'revoke', 'henry']);
    expect(crlSerials()).toContain(serial);
    expect(existsSync(join(out, 'vpn21', 'ccd', 'henry'))).toBe(false);
  });

  it('pki status --json lists the CA, every server, the users and the CRL', () => {
    const rows = JSON.parse(ok(['pki', 'status', '--json'])) as {
      kind: string;
      subject: string;
      state: string;
      daysLeft: number;
    }[];
    expect(rows.filter((r) => r.kind === 'ca')).toHaveLength(1);
    expect(rows.filter((r) => r.kind === 'server').map((r) => r.subject)).toEqual([
      'vpn11',
      'vpn12',
      'vpn21',
      'vpn22',
      'vpn31',
      'vpn32',
    ]);
    expect(rows.find((r) => r.subject === 'henry')?.state).toBe('revoked');
    expect(rows.find((r) => r.subject === 'alice')).toMatchObject({ kind: 'client', state: 'ok' });
    const crl = rows.find((r) => r.kind === 'crl');
    expect(crl).toMatchObject({ subject: '1 revoked', state: 'ok' });
    expect(crl!.daysLeft).toBeGreaterThan(15);
  });

  it('profile --out writes a 0600 file with everything inline, load balancers first', () => {
    const file = join(dir, 'alice.ovpn');
    ok(['profile', 'alice', '--out', file]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    for (const tag of ['ca', 'cert', 'key', 'tls-crypt']) {
      expect(text).toContain(`<${tag}>\n-----BEGIN `);
      expect(text).toContain(`-----\n</${tag}>`);
    }
    expect([...text.matchAll(/^remote (\S+) 1194$/gm)].map((m) => m[1])).toEqual([
      '198.51.100.10',
      '203.0.113.10',
      '198.51.100.11',
      '198.51.100.12',
      '203.0.113.11',
      '203.0.113.12',
      '192.0.2.31',
      '192.0.2.32',
    ]);
    const revoked = cli(['profile', 'henry']);
    expect(revoked.status).not.toBe(0);
    expect(revoked.stderr).toContain('henry is revoked');
  });

  it('group add changes only its own line of fleet.yaml, keeping comments and layout', () => {
    const before = readFileSync(join(dir, 'fleet.yaml'), 'utf8').split('\n');
    ok(['group', 'add', 'contractors', '--description', 'external: "people"']);
    const after = readFileSync(join(dir, 'fleet.yaml'), 'utf8').split('\n');
    const at = before.indexOf('  - { name: dba }') + 1;
    expect(at).toBeGreaterThan(0);
    expect(after).toEqual([
      ...before.slice(0, at),
      '  - { name: contractors, description: "external: \\"people\\"" }',
      ...before.slice(at),
    ]);
    const groups = JSON.parse(ok(['group', 'list', '--json'])) as { name: string }[];
    expect(groups).toContainEqual({
      name: 'contractors',
      description: 'external: "people"',
      members: 0,
    });
  });
});

describe('ovpn-fleet validate', () => {
  it('prints every error of a broken fleet.yaml with its path and exits non-zero', async () => {
    const text = EXAMPLE_FLEET_YAML.replace(
      'address: 203.0.113.11,',
      'address: 10.200.3.4,',
    ).replace(
      '{ from: dba, to: databases, proto: [tcp]',
      '{ from: dbas, to: databases, proto: [tcp]',
    );
    expect(text).toContain('10.200.3.4');
    expect(text).toContain('from: dbas');
    const dirs = [false, true].map((withStore) => {
      const d = mkdtempSync(join(tmpdir(), 'ovf-cli-broken-'));
      writeFileSync(join(d, 'fleet.yaml'), text);
      if (withStore) writeFileSync(join(d, 'fleet.db'), '');
      return d;
    });
    try {
      const runs = await Promise.all(dirs.map((d) => cliAsync(['validate'], d)));
      for (const r of runs) {
        expect(r.status).not.toBe(0);
        expect(r.stderr).toContain(
          'fleet.yaml: sites[1].servers[0].address: 10.200.3.4 is inside the user pool 10.200.0.0/16\n',
        );
        expect(r.stderr).toContain('fleet.yaml: policy[4].from: unknown group "dbas"\n');
      }
    } finally {
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });

  it('says ok for a good fleet.yaml', () => {
    expect(ok(['validate'])).toMatch(/fleet\.yaml: ok\n$/);
  });
});
