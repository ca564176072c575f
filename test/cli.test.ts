/**
 * The built CLI, run as a user runs it: argv in, exit code, stdout and stderr out.
 * Builds dist/ first when any source file is newer than it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { adminTokenPath } from '../src/controller/auth.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { openFleet } from '../src/service/open.js';
import { EXAMPLE_FLEET_YAML } from '../src/spec/example.js';
import { selfSignedCert } from '../src/testing.js';

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

/** The fleet of the running test: a fresh copy of the template, see beforeEach. */
let dir: string;

function cli(args: string[], opts: { cwd?: string; input?: string } = {}): Run {
  const r = spawnSync(process.execPath, [BIN, '--dir', dir, ...args], {
    cwd: opts.cwd ?? dir,
    encoding: 'utf8',
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    env: { ...process.env, LC_ALL: 'C', OVPN_FLEET_DIR: '' },
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Like cli() but without blocking, so independent runs share the machine's cores (and a server
 * in this process can answer). `nodeArgs` go to node before the script.
 */
function cliAsync(
  args: string[],
  fleetDir = dir,
  nodeArgs: string[] = [],
  input = '',
): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...nodeArgs, BIN, '--dir', fleetDir, ...args], {
      cwd: fleetDir,
      env: { ...process.env, LC_ALL: 'C', OVPN_FLEET_DIR: '' },
      // A command that should have been refused may instead run on (a controller, an agent).
      timeout: 25_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr }));
    child.stdin.end(input);
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

/**
 * Every test starts from its own copy of one `init --example` fleet (no users), so that each
 * runs alone or in any order: what a test needs beyond that, it makes itself.
 */
let template: string;
const made: string[] = [];

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

beforeAll(() => {
  buildIfStale();
  template = mkdtempSync(join(tmpdir(), 'ovf-cli-template-'));
  dir = template;
  ok(['init', '--example']);
}, 120_000);
beforeEach(() => {
  dir = tempDir('ovf-cli-');
  cpSync(template, dir, { recursive: true });
});
afterEach(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});
afterAll(() => rmSync(template, { recursive: true, force: true }));

/** Adds users with `user add NAME -g staff` and revokes those listed in `revoked`. */
function given(users: string[], revoked: string[] = []): void {
  for (const name of users) ok(['user', 'add', name, '-g', 'staff']);
  for (const name of revoked) ok(['user', 'revoke', name]);
}

// Each test spawns node several times: 5 s is not enough on a busy machine.
describe('ovpn-fleet CLI', { timeout: 120_000 }, () => {
  it('init --example writes fleet.yaml and a 0600 store', () => {
    dir = tempDir('ovf-cli-init-');
    ok(['init', '--example']);
    expect(readFileSync(join(dir, 'fleet.yaml'), 'utf8')).toContain('fleet: acme');
    expect(statSync(join(dir, 'fleet.db')).mode & 0o777).toBe(0o600);
    const again = cli(['init', '--example']);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/already holds a fleet/);
  });

  it('--version and -V print the version of the package.json it was installed with', () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V']) {
      const r = cli([flag]);
      expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
        status: 0,
        stdout: `${version}\n`,
        stderr: '',
      });
    }
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

  it("user history prints the user's sessions newest first, as a table or JSON", async () => {
    given(['alice']);
    // Sessions as the controller records agents' reports.
    const store = new SqliteStore(join(dir, 'fleet.db'));
    const health = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };
    const s = (since: string, clientId: number) => ({
      user: 'alice',
      realAddress: `198.51.100.${clientId}:1194`,
      since,
      bytesIn: 100 * clientId,
      bytesOut: 200 * clientId,
      clientId,
    });
    const later = new Date(Date.now() + 60_000);
    const at = (minutes: number) => new Date(later.getTime() + minutes * 60_000).toISOString();
    try {
      await store.recordReport('vpn11', { at: at(1), health, sessions: [s(at(0), 1)] });
      await store.recordReport('vpn11', { at: at(2), health, sessions: [] });
      await store.recordReport('vpn21', { at: at(3), health, sessions: [s(at(3), 2)] });
    } finally {
      await store.close();
    }
    const rows = JSON.parse(ok(['user', 'history', 'alice', '--json']));
    expect(rows).toEqual([
      expect.objectContaining({ server: 'vpn21', since: at(3), until: null, reason: null }),
      expect.objectContaining({
        server: 'vpn11',
        realAddress: '198.51.100.1:1194',
        until: at(2),
        bytesIn: 100,
        reason: 'disconnect',
      }),
    ]);
    const table = ok(['user', 'history', 'alice', '--limit', '1']).trimEnd().split('\n');
    expect(table).toHaveLength(2);
    expect(table[0]).toMatch(/^SERVER +REALADDRESS +SINCE +UNTIL +BYTESIN +BYTESOUT +REASON$/);
    expect(table[1]).toMatch(/^vpn21 +198\.51\.100\.2:1194 +\S+ +live +200 +400 +-$/);

    const unknown = cli(['user', 'history', 'zed']);
    expect(unknown.status).toBe(3);
    expect(unknown.stderr).toMatch(/zed/);
    const bad = cli(['user', 'history', 'alice', '--limit', '0']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--limit: "0" is not a number/);
  });

  it('refuses bad user names and unknown groups with one line naming the problem', async () => {
    given(['alice']);
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
    expect(userNames()).toEqual(['alice']);
  });

  it('imports a CSV all or nothing; a bad row names file:line', async () => {
    given(['alice']);
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
    expect(userNames()).toEqual(['alice']);

    const good = join(dir, 'good.csv');
    writeFileSync(good, 'name,groups\ncarol, staff ; dba\ndan,\n');
    expect(ok(['user', 'import', good])).toMatch(/^imported 2 users /);
    const users = JSON.parse(ok(['user', 'list', '--json'])) as {
      name: string;
      groups: string[];
    }[];
    expect(users.map((u) => [u.name, u.groups])).toEqual([
      ['alice', ['staff']],
      ['carol', ['dba', 'staff']],
      ['dan', []],
    ]);
  });

  it('renders no ccd file for a disabled user', () => {
    given(['alice', 'gina']);
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
    given(['alice', 'henry'], ['henry']);
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
    expect(rows.find((r) => r.subject === 'alice')).toMatchObject({
      kind: 'client',
      state: 'valid',
      issuer: 'acme VPN CA',
      current: true,
    });
    const crl = rows.find((r) => r.kind === 'crl');
    expect(crl).toMatchObject({ subject: '1 revoked', state: 'ok' });
    expect(crl!.daysLeft).toBeGreaterThan(15);
  });

  it('pki renew, user show and pki ca rollover/switch: a new profile is offered, both CAs trusted', () => {
    given(['alice']);
    expect(ok(['pki', 'renew', 'alice', '--force'])).toMatch(/renewed alice/);
    const shown = JSON.parse(ok(['user', 'show', 'alice', '--json'])) as {
      certSerial: string;
      certificate: { serial: string; newProfileAvailable: boolean; previous: unknown[] };
    };
    expect(shown.certificate).toMatchObject({
      serial: shown.certSerial,
      newProfileAvailable: true,
    });
    expect(shown.certificate.previous).toHaveLength(1);
    expect(ok(['user', 'show', 'alice'])).toMatch(/newProfile\s+available/);
    ok(['profile', 'alice', '--out', join(dir, 'alice.ovpn')]);
    expect(ok(['user', 'show', 'alice'])).not.toMatch(/newProfile/);

    expect(ok(['pki', 'ca', 'rollover'])).toMatch(/added acme VPN CA 2 \(next\)/);
    const status = ok(['pki', 'status']);
    expect(status).toMatch(/^ca +acme VPN CA +acme VPN CA .* active/m);
    expect(status).toMatch(/^ca +acme VPN CA 2 .* next +trusted; signs from/m);
    const profile = ok(['profile', 'alice']);
    expect(profile.match(/BEGIN CERTIFICATE/g)).toHaveLength(3);
    expect(ok(['pki', 'ca', 'switch'])).toMatch(/acme VPN CA 2 signs from now on/);
    expect(ok(['pki', 'renew'])).toMatch(/renewed 0 user certificates/);
  }, 120_000);

  it('profile --out writes a 0600 file with everything inline, load balancers first', () => {
    given(['alice', 'henry'], ['henry']);
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

describe('ovpn-fleet admin', { timeout: 60_000 }, () => {
  const admins = () =>
    JSON.parse(ok(['admin', 'list', '--json'])) as {
      name: string;
      role: string;
      mustChangePassword: boolean;
    }[];

  it('adds with a one-time password printed once, or a password from stdin; lists, changes, removes', async () => {
    const added = ok(['admin', 'add', 'ann', '--role', 'operator']);
    const otp = /one-time password .*: (\S+)\n$/.exec(added)?.[1];
    expect(added).toMatch(/^added admin ann \(operator\)\n/);
    expect(otp).toMatch(/^\S{20}$/);
    const chosen = 'a passphrase of mine';
    const r = cli(['admin', 'add', 'bob', '--role', 'viewer', '--password-stdin'], {
      input: `${chosen}\n`,
    });
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', 'added admin bob (viewer)\n']);
    expect(admins()).toMatchObject([
      { name: 'ann', role: 'operator', mustChangePassword: true },
      { name: 'bob', role: 'viewer', mustChangePassword: false },
    ]);
    const table = ok(['admin', 'list']).split('\n');
    expect(table[0]).toMatch(/^NAME\s+ROLE\s+MUSTCHANGEPASSWORD/);
    expect(table[1]).toMatch(/^ann\s+operator\s+true/);

    const fleet = await openFleet(dir);
    try {
      expect(await fleet.admins.authenticate('ann', otp!)).toMatchObject({ name: 'ann' });
      expect(await fleet.admins.authenticate('bob', chosen)).toMatchObject({ name: 'bob' });
    } finally {
      await fleet.close();
    }
    // Neither password is anywhere in the store's files.
    for (const f of readdirSync(dir).filter((n) => n.startsWith('fleet.db'))) {
      const bytes = readFileSync(join(dir, f));
      expect(bytes.includes(chosen)).toBe(false);
      expect(bytes.includes(otp!)).toBe(false);
    }

    expect(ok(['admin', 'role', 'bob', 'admin'])).toBe('bob: admin\n');
    const reset = ok(['admin', 'passwd', 'bob']);
    expect(reset).toMatch(/^new password for admin bob \(admin\)\none-time password .*: \S{20}\n$/);
    expect(admins()[1]).toMatchObject({ role: 'admin', mustChangePassword: true });
    const again = cli(['admin', 'passwd', 'bob', '--password-stdin', '--json'], {
      input: 'another long passphrase\r\n',
    });
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ name: 'bob', mustChangePassword: false });
    expect(JSON.parse(again.stdout)).not.toHaveProperty('oneTimePassword');
    expect(ok(['admin', 'remove', 'ann'])).toBe('removed admin ann (operator)\n');
    expect(admins().map((a) => a.name)).toEqual(['bob']);
  });

  it('refuses bad input in one line with the mapped exit code, writing nothing', async () => {
    ok(['admin', 'add', 'ann', '--role', 'admin']);
    const cases: [string[], string | undefined, number, string][] = [
      [
        ['admin', 'add', 'x\u001b[2J', '--role', 'viewer'],
        undefined,
        2,
        'name: "x\\u001b[2J" is not a valid admin name',
      ],
      [
        ['admin', 'add', 'cid', '--role', 'root'],
        undefined,
        2,
        'role: "root" is not a role: use viewer, operator, admin',
      ],
      [
        ['admin', 'add', 'cid', '--role', 'viewer', '--password-stdin'],
        'short\n',
        2,
        'password: must be at least 12 characters (got 5)',
      ],
      [
        ['admin', 'add', 'cid', '--role', 'viewer', '--password-stdin'],
        '',
        2,
        '--password-stdin: no password on standard input',
      ],
      [['admin', 'add', 'ann', '--role', 'viewer'], undefined, 4, 'admin ann already exists'],
      [['admin', 'remove', 'zed'], undefined, 3, 'no admin named zed'],
      [['admin', 'role', 'ann', 'god'], undefined, 2, 'role: "god" is not a role'],
      [['admin', 'passwd', 'zed'], undefined, 3, 'no admin named zed'],
      [
        ['controller', '--console-idle-timeout', '0'],
        undefined,
        2,
        '--console-idle-timeout: must be 1-720 minutes, got 0',
      ],
    ];
    const runs = await Promise.all(
      cases.map(([args, input]) => cliAsync(args, dir, [], input ?? '')),
    );
    for (const [i, [args, , status, message]] of cases.entries()) {
      const r = runs[i];
      expect.soft([args, r.status], args.join(' ')).toEqual([args, status]);
      expect.soft(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect.soft(r.stderr, args.join(' ')).toContain(message);
      expect.soft(r.stderr, args.join(' ')).not.toContain('short\n');
    }
    expect(admins().map((a) => [a.name, a.role])).toEqual([['ann', 'admin']]);
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

  it("says ok for a good fleet.yaml, warning about the example's placeholder routing key", () => {
    const r = cli(['validate']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/fleet\.yaml: ok\n$/);
    expect(r.stderr).toBe(
      `${join(dir, 'fleet.yaml')}: warning: routing.ospf.auth.key: is a placeholder: set a random secret of your own\n`,
    );
    const json = JSON.parse(ok(['validate', '--json'])) as { warnings: { path: string }[] };
    expect(json.warnings.map((w) => w.path)).toEqual(['routing.ospf.auth.key']);
  });
});

/** One line on stderr, naming `option`, and the exit code of a bad argument. */
function expectRefusal(r: Run, option: string): void {
  expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 2, stdout: '' });
  expect(r.stderr).toMatch(new RegExp(`^ovpn-fleet: ${option}: [^\\n]+\\n$`));
}

describe('--base', () => {
  it('is refused when server.conf could not carry it, and {server} names each server', async () => {
    const out = join(dir, 'out-base');
    const injected = '/etc/x\npush "redirect-gateway def1"';
    const runs = await Promise.all([
      cliAsync(['render', '--out', out, '--base', injected]),
      cliAsync(['render', '--out', out, '--base', 'relative/dir']),
      cliAsync(['render', '--out', out, '--base', '/etc/x y']),
      // Refused before it opens the store or listens anywhere.
      cliAsync(['controller', '--listen', '127.0.0.1:1', '--base', '/etc/x;y']),
    ]);
    for (const r of runs) expectRefusal(r, '--base');
    expectRefusal(
      await cliAsync(['controller', '--listen', '127.0.0.1:1', '--max-connections', '5']),
      '--max-connections',
    );
    expect(existsSync(out)).toBe(false);

    ok(['render', '--out', out, '--base', '/srv/ovpn/{server}', '--server', 'vpn21']);
    const conf = readFileSync(join(out, 'vpn21', 'server.conf'), 'utf8');
    expect(conf).toMatch(/^cd \/srv\/ovpn\/vpn21$/m);
  }, 30_000);
});

describe('controller clients', () => {
  const work = () => join(dir, 'tls');
  /** A CA-free self-signed certificate for 127.0.0.1: it is its own trust anchor. */
  const selfSigned = (name: string) =>
    selfSignedCert(work(), name, ['subjectAltName=IP:127.0.0.1']);

  it('refuse plain HTTP beyond loopback before connecting, in one line naming --controller', async () => {
    // Any connect in the CLI process ends it with 99: a refusal must come before one.
    const guard = join(dir, 'no-connect.cjs');
    writeFileSync(
      guard,
      `require('node:net').Socket.prototype.connect = function () {
        process.stderr.write('connect attempted\\n');
        process.exit(99);
      };\n`,
    );
    const tokenFile = join(dir, 'agent.token');
    writeFileSync(tokenFile, 'x\n');
    const cases: string[][] = [
      ['status', '--controller', 'http://192.0.2.1:8443'],
      ['status', '--controller', '192.0.2.1:8443'],
      ['status', '--json', '--controller', 'http://[2001:db8::1]:80'],
      ['drain', 'vpn11', '--controller', 'http://192.0.2.1:8443'],
      ['undrain', 'vpn11', '--controller', 'ctl.example:8443'],
      // Each of several is checked: the second is refused before the first is asked.
      ['status', '--controller', 'unix:/nowhere.sock', '--controller', 'http://192.0.2.1:8443'],
      [
        'agent',
        '--server',
        'vpn11',
        '--token-file',
        tokenFile,
        '--bundle-dir',
        join(dir, 'agent-bundle'),
        '--controller',
        '192.0.2.1:80',
      ],
    ];
    const runs = await Promise.all(cases.map((args) => cliAsync(args, dir, ['--require', guard])));
    runs.forEach((r, i) => {
      expectRefusal(r, '--controller');
      expect(r.stderr, cases[i].join(' ')).toContain(
        'would send the token unencrypted: use https://',
      );
    });
  }, 30_000);

  it('pin the controller with --ca: the right CA gets through, a wrong one is one clear line', async () => {
    mkdirSync(work(), { recursive: true });
    writeFileSync(adminTokenPath(dir), 'admin-secret\n', { mode: 0o600 });
    const good = selfSigned('controller');
    const other = selfSigned('someone-else');
    const name = 'mallory\u001b]0;owned\u0007\u001b[31m\u009b2J';
    const seen: string[] = [];
    const server = createHttpsServer(
      { cert: readFileSync(good.cert), key: readFileSync(good.key) },
      (req, res) => {
        seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify([
            {
              user: name,
              server: 'vpn11',
              ipv4: '10.200.0.9',
              ipv6: 'fd7a:6ca6:e640:8000::9',
              realAddress: '203.0.113.50:5000',
              since: '2024-01-01T00:00:00.000Z',
              bytesIn: 1,
              bytesOut: 2,
              reportedAt: '2024-01-01T00:00:01.000Z',
              stale: false,
            },
          ]),
        );
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const url = `https://127.0.0.1:${port}`;
    try {
      const [table, json, wrong, none, noFile, notHttps, second] = await Promise.all([
        cliAsync(['status', '--controller', url, '--ca', good.cert]),
        cliAsync(['status', '--json', '--controller', url, '--ca', good.cert]),
        cliAsync(['status', '--controller', url, '--ca', other.cert]),
        cliAsync(['status', '--controller', url]),
        cliAsync(['status', '--controller', url, '--ca', join(work(), 'missing.pem')]),
        cliAsync(['status', '--controller', 'http://127.0.0.1:1', '--ca', good.cert]),
        // The first controller is down: the second answers.
        cliAsync([
          'status',
          '--json',
          '--controller',
          'https://127.0.0.1:1',
          '--controller',
          url,
          '--ca',
          good.cert,
        ]),
      ]);

      expect({ status: table.status, stderr: table.stderr }).toEqual({ status: 0, stderr: '' });
      expect(table.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
      expect(table.stdout).toContain('mallory\\x1b]0;owned\\x07\\x1b[31m\\x9b2J');
      expect(JSON.parse(json.stdout)).toMatchObject({
        source: 'controller',
        sessions: [{ user: name }],
      });
      expect(json.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
      // Only the runs that trusted the server sent it the token.
      expect(seen).toEqual(Array(3).fill('GET /v1/sessions Bearer admin-secret'));
      expect(second.status).toBe(0);
      expect(JSON.parse(second.stdout)).toMatchObject({ source: 'controller' });
      expect(second.stderr).toBe(`controller https://127.0.0.1:1: ECONNREFUSED; trying ${url}\n`);

      // Not "unreachable": status must not fall back to the store and hide a wrong CA.
      expect(wrong.status).toBe(1);
      expect(wrong.stdout).toBe('');
      expect(wrong.stderr).toMatch(
        new RegExp(
          `^ovpn-fleet: controller at ${url} is not trusted: its certificate does not verify against the --ca file \\([A-Z_]+\\)\\n$`,
        ),
      );
      expect(none.status).toBe(1);
      expect(none.stderr).toMatch(/is not trusted: .*the system's CAs \(give --ca\)/);
      expectRefusal(noFile, '--ca');
      expect(noFile.stderr).toContain('missing.pem: ENOENT');
      expectRefusal(notHttps, '--ca');
    } finally {
      await new Promise((r) => server.close(r));
    }
  }, 30_000);
});
