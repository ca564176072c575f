/**
 * `server setup` / `server remove` under --root: a temp directory stands for a fresh Debian
 * server (dpkg status, FRR's daemons file, the installed executable). systemd is not PID 1
 * here, so the commands are only printed (--root runs none); what they do is not tested here.
 */
import { spawnSync } from 'node:child_process';
import {
  chownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { registerControllerCommands } from '../src/cli/commands/controller.js';
import { registerControllerSetup, registerServer } from '../src/cli/commands/server.js';
import { describeError } from '../src/cli/exit-codes.js';
import { SERVER_PACKAGES } from '../src/deploy/plan.js';
import { DEBIAN_FRR_DAEMONS, fakeDebianRoot } from '../src/deploy/testing.js';
import { itNeeds, selfSignedCert } from '../src/testing.js';

const MAIN = resolve(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const TOKEN = 'c0ffee'.repeat(10) + 'abcd';

const dpkg = spawnSync('dpkg-query', ['--version']);
const noDpkg = dpkg.error || dpkg.status !== 0 ? 'dpkg-query is not installed' : undefined;

let root: string;
let work: string;
let ca: string;
let tokenFile: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ovf-root-'));
  work = mkdtempSync(join(tmpdir(), 'ovf-setup-'));
  fakeDebianRoot(root, SERVER_PACKAGES);
  ca = selfSignedCert(work, 'controller-ca').cert;
  tokenFile = join(work, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command in this process, its errors turned into a line and a code as main.ts does. */
async function server(args: string[]): Promise<Run> {
  return ovpnFleet(['server', ...args]);
}

async function ovpnFleet(args: string[]): Promise<Run> {
  const program = new Command('ovpn-fleet').exitOverride().option('--dir <dir>');
  let stderr = '';
  program.configureOutput({ writeErr: (s) => (stderr += s), writeOut: (s) => (stderr += s) });
  registerControllerCommands(program);
  registerServer(program);
  registerControllerSetup(program);
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    if (err instanceof CommanderError) return { code: 2, stdout, stderr };
    const { line, exitCode } = describeError(err);
    return { code: exitCode, stdout, stderr: `${stderr}ovpn-fleet: ${line}\n` };
  } finally {
    spy.mockRestore();
  }
}

const setupArgs = (...more: string[]) => [
  'setup',
  '--server',
  'vpn11',
  '--controller',
  'https://10.0.0.5:8443',
  '--ca',
  ca,
  '--token-file',
  tokenFile,
  '--routing',
  'ospf',
  '--root',
  root,
  ...more,
];

/** Every path under the root with its mode, inode and content: what a run may have changed. */
function tree(dir = root, prefix = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const st = lstatSync(path);
    const key = `${prefix}/${name}`;
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) {
      out[key] = `dir ${mode}`;
      Object.assign(out, tree(path, key));
    } else out[key] = `${mode} ${st.ino} ${readFileSync(path, 'utf8')}`;
  }
  return out;
}

const modeOf = (path: string) => (statSync(join(root, path)).mode & 0o7777).toString(8);
const read = (path: string) => readFileSync(join(root, path), 'utf8');

describe('server setup --root', () => {
  itNeeds(
    noDpkg,
    'writes units, settings and the token with exact modes, and names every command',
    async () => {
      const r = await server(setupArgs());
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(
        Object.fromEntries(
          [
            '/etc/ovpn-fleet',
            '/etc/ovpn-fleet/run',
            '/etc/ovpn-fleet-agent',
            '/etc/ovpn-fleet-agent/token',
            '/etc/ovpn-fleet-agent/agent.env',
            '/etc/ovpn-fleet-agent/controller-ca.pem',
            '/etc/systemd/system/ovpn-fleet-agent.service',
            '/etc/systemd/system/ovpn-fleet-openvpn.service',
            '/etc/systemd/system/ovpn-fleet-openvpn.path',
            '/etc/sysctl.d/60-ovpn-fleet.conf',
            '/etc/frr/daemons',
            '/etc/frr/daemons.before-ovpn-fleet',
          ].map((p) => [p, modeOf(p)]),
        ),
      ).toEqual({
        '/etc/ovpn-fleet': '750',
        '/etc/ovpn-fleet/run': '700',
        '/etc/ovpn-fleet-agent': '750',
        '/etc/ovpn-fleet-agent/token': '600',
        '/etc/ovpn-fleet-agent/agent.env': '644',
        '/etc/ovpn-fleet-agent/controller-ca.pem': '644',
        '/etc/systemd/system/ovpn-fleet-agent.service': '644',
        '/etc/systemd/system/ovpn-fleet-openvpn.service': '644',
        '/etc/systemd/system/ovpn-fleet-openvpn.path': '644',
        '/etc/sysctl.d/60-ovpn-fleet.conf': '644',
        '/etc/frr/daemons': '640',
        '/etc/frr/daemons.before-ovpn-fleet': '640',
      });
      expect(read('/etc/ovpn-fleet-agent/token')).toBe(`${TOKEN}\n`);
      expect(read('/etc/ovpn-fleet-agent/controller-ca.pem')).toBe(readFileSync(ca, 'utf8'));
      expect(read('/etc/frr/daemons')).toMatch(/^ospfd=yes\nospf6d=yes$/m);
      expect(read('/etc/frr/daemons.before-ovpn-fleet')).toBe(DEBIAN_FRR_DAEMONS);
      expect(read('/etc/sysctl.d/60-ovpn-fleet.conf')).toMatch(/^net\.ipv4\.ip_forward = 1$/m);
      // No temp file left behind by the temp + rename writes.
      expect(Object.keys(tree()).filter((p) => p.includes('.tmp-'))).toEqual([]);
      expect(r.stdout).toContain('skipped under --root: systemctl daemon-reload');
      expect(r.stdout).toContain(
        'skipped under --root: systemctl restart ovpn-fleet-agent.service',
      );
      expect(r.stdout).not.toContain(TOKEN);
    },
  );

  itNeeds(noDpkg, 'a second run writes nothing and says so', async () => {
    await server(setupArgs());
    const before = tree();
    const again = await server(setupArgs());
    expect(again.code).toBe(0);
    // Same inodes and contents: nothing was rewritten.
    expect(tree()).toEqual(before);
    const pathLines = again.stdout
      .split('\n')
      .filter((l) => l.startsWith('/') || /^\w+ \//.test(l));
    expect(pathLines.every((l) => l.startsWith('unchanged '))).toBe(true);
    // 3 folders, 3 units, sysctl, agent.env, token, CA, daemons (the backup is made once).
    expect(pathLines).toHaveLength(11);
    expect(again.stdout).toMatch(/setup of vpn11: unchanged, nothing to write\n$/);
    expect(again.stdout).not.toContain('daemon-reload');
  });

  itNeeds(
    noDpkg,
    '--dry-run writes nothing and prints every file, the token as a digest',
    async () => {
      const before = tree();
      const r = await server(setupArgs('--dry-run'));
      expect(r.code).toBe(0);
      expect(tree()).toEqual(before);
      expect(r.stdout).toContain(
        'would create /etc/systemd/system/ovpn-fleet-agent.service (0644)',
      );
      expect(r.stdout).toContain(
        '    | ExecStart=/usr/local/bin/ovpn-fleet agent $OVPN_FLEET_AGENT_OPTIONS',
      );
      expect(r.stdout).toMatch(
        /would create \/etc\/ovpn-fleet-agent\/token \(0600, secret sha256:[0-9a-f]{16}\)/,
      );
      expect(r.stdout).toContain('    | ospfd=yes');
      expect(r.stdout).toContain(
        'would run: systemctl enable frr.service ovpn-fleet-openvpn.path ovpn-fleet-agent.service',
      );
      expect(r.stdout).not.toContain(TOKEN);
      expect(r.stdout).toMatch(/dry run: .* nothing was written or run\n$/);
    },
  );

  itNeeds(noDpkg, 'names the missing packages in one line and writes nothing', async () => {
    rmSync(root, { recursive: true, force: true });
    fakeDebianRoot(root, ['openvpn', 'frr']);
    const before = tree();
    const r = await server(setupArgs());
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(
      'ovpn-fleet: missing packages: frr-pythontools, nftables (apt-get install frr-pythontools nftables)\n',
    );
    expect(tree()).toEqual(before);
  });

  it('refuses bad input with one line naming the flag, before anything is read under the root', async () => {
    const cases: [string[], string][] = [
      [setupArgs('--routing', 'isis'), '--routing: "isis" is not one of ospf, bgp, rip'],
      [
        setupArgs('--server', 'VPN 11'),
        '--server: "VPN 11" is not a server name (lower-case letters, digits and "-", starting with a letter)',
      ],
      [
        [
          'setup',
          '--server',
          'vpn11',
          '--controller',
          'http://10.0.0.5:8443',
          '--token-file',
          tokenFile,
          '--routing',
          'bgp',
          '--root',
          root,
        ],
        '--controller',
      ],
      [
        setupArgs('--root', join(work, 'nowhere')),
        `--root: ${join(work, 'nowhere')} is not a directory`,
      ],
      [
        setupArgs('--bundle-dir', 'relative/dir'),
        '--bundle-dir: relative/dir is not an absolute path',
      ],
    ];
    for (const [args, line] of cases) {
      const r = await server(args);
      expect(r.code, line).toBe(2);
      expect(r.stderr.split('\n').filter(Boolean), line).toHaveLength(1);
      expect(r.stderr, line).toContain(`ovpn-fleet: ${line}`);
    }
    writeFileSync(tokenFile, 'two words\n');
    const bad = await server(setupArgs());
    expect(bad.stderr).toMatch(/^ovpn-fleet: --token-file: .* holds no agent token/);
  });

  itNeeds(
    noDpkg ?? (process.getuid?.() !== 0 ? 'root (to chown)' : undefined),
    "keeps the owner of FRR's daemons file (frr:frr on Debian), backup and restore alike",
    async () => {
      chownSync(join(root, 'etc/frr/daemons'), 4242, 4243);
      await server(setupArgs());
      for (const p of ['etc/frr/daemons', 'etc/frr/daemons.before-ovpn-fleet'])
        expect([statSync(join(root, p)).uid, statSync(join(root, p)).gid], p).toEqual([4242, 4243]);
      await server(['remove', '--root', root]);
      expect(statSync(join(root, 'etc/frr/daemons')).uid).toBe(4242);
    },
  );
});

describe('server remove --root', () => {
  itNeeds(
    noDpkg,
    "undoes setup: our files gone, FRR's daemons file as Debian shipped it",
    async () => {
      const fresh = tree();
      await server(setupArgs());
      const r = await server(['remove', '--root', root]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(
        'skipped under --root: systemctl disable --now ovpn-fleet-agent.service ovpn-fleet-openvpn.path ovpn-fleet-openvpn.service',
      );
      // What stays: the bundle folder (it will hold the server's key) and empty parents.
      const left = tree();
      expect(read('/etc/frr/daemons')).toBe(DEBIAN_FRR_DAEMONS);
      expect(modeOf('/etc/frr/daemons')).toBe('640');
      expect(Object.keys(left).filter((p) => !(p in fresh) && !left[p].startsWith('dir'))).toEqual(
        [],
      );
      expect(Object.keys(left)).not.toContain('/etc/ovpn-fleet-agent');
      const again = await server(['remove', '--root', root]);
      expect(again.stdout).not.toMatch(/systemctl|deleted/);
      expect(again.stdout).toMatch(/remove: unchanged, nothing to write\n$/);
    },
  );
});

describe('the ovpn-fleet executable', () => {
  // One real process: argv parsing, the token on standard input, the exit code and one line.
  itNeeds(
    noDpkg,
    'reads the token from standard input and exits 2 with one line on a bad flag',
    () => {
      const run = (args: string[], input = '') =>
        spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
          encoding: 'utf8',
          input,
          env: { ...process.env, LC_ALL: 'C' },
        });
      const ok = run(
        [
          'server',
          'setup',
          '--server',
          'vpn11',
          '--controller',
          'https://10.0.0.5:8443',
          '--token-file',
          '-',
          '--routing',
          'bgp',
          '--root',
          root,
        ],
        `${TOKEN}\n`,
      );
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      expect(read('/etc/ovpn-fleet-agent/token')).toBe(`${TOKEN}\n`);
      expect(read('/etc/frr/daemons')).toMatch(/^bgpd=yes$/m);
      const bad = run(
        [
          'server',
          'setup',
          '--server',
          'vpn11',
          '--controller',
          'https://10.0.0.5:8443',
          '--token-file',
          '-',
          '--root',
          root,
        ],
        TOKEN,
      );
      expect(bad.status).toBe(2);
      expect(bad.stderr).toBe(
        'ovpn-fleet: --routing: required (ospf, bgp, rip: the protocol FRR runs), or give --spec fleet.yaml\n',
      );
    },
    60_000,
  );
});

describe('controller setup --root', () => {
  it("writes the controller's unit and the options given, copies its TLS files, and remove undoes it", async () => {
    const noFleet = await ovpnFleet(['controller', 'setup', '--root', root]);
    expect(noFleet.code).toBe(4);
    expect(noFleet.stderr).toMatch(
      /^ovpn-fleet: no fleet in \/var\/lib\/ovpn-fleet: run ovpn-fleet --dir/,
    );
    mkdirSync(join(root, 'var/lib/ovpn-fleet'));
    writeFileSync(join(root, 'var/lib/ovpn-fleet/fleet.yaml'), 'fleet: x\n');
    const { cert, key } = selfSignedCert(work, 'controller');
    const args = [
      'controller',
      'setup',
      '--listen',
      '10.0.0.5:8443',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--audit-syslog',
      '--root',
      root,
    ];
    const r = await ovpnFleet(args);
    expect(r.stderr).toBe('');
    expect(read('/etc/default/ovpn-fleet-controller')).toMatch(
      /^OVPN_FLEET_CONTROLLER_OPTIONS=--listen 10\.0\.0\.5:8443 --tls-cert \/etc\/ovpn-fleet-controller\/tls\.crt --tls-key \/etc\/ovpn-fleet-controller\/tls\.key --audit-syslog$/m,
    );
    expect(modeOf('/etc/ovpn-fleet-controller/tls.key')).toBe('600');
    expect(read('/etc/ovpn-fleet-controller/tls.key')).toBe(readFileSync(key, 'utf8'));
    expect(r.stdout).not.toContain(readFileSync(key, 'utf8').split('\n')[1]);
    expect(modeOf('/etc/systemd/system/ovpn-fleet-controller.service')).toBe('644');
    const before = tree();
    expect((await ovpnFleet(args)).stdout).toMatch(
      /controller setup: unchanged, nothing to write\n$/,
    );
    expect(tree()).toEqual(before);
    const plain = await ovpnFleet([
      'controller',
      'setup',
      '--listen',
      '10.0.0.5:8443',
      '--root',
      root,
    ]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(
      /^ovpn-fleet: --listen: 10\.0\.0\.5:8443 is not a loopback address/,
    );
    const removed = await ovpnFleet(['controller', 'remove', '--root', root]);
    expect(removed.code).toBe(0);
    expect(Object.keys(tree()).filter((p) => p.includes('ovpn-fleet-controller'))).toEqual([]);
    expect(read('/var/lib/ovpn-fleet/fleet.yaml')).toBe('fleet: x\n');
  });
});
