import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { itNeeds } from '../testing.js';
import {
  DEFAULT_DEPLOY_PATHS,
  type RenderedUnit,
  UNIT,
  agentUnit,
  controllerUnit,
  openvpnUnit,
  shippedUnits,
} from './units.js';

const COMMITTED = (name: string) =>
  new URL(`../../deploy/systemd/${name}`, import.meta.url).pathname;

/** `KEY=value` lines of a unit, comments and sections left out. */
function settings(unit: string, key: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe('the shipped units', () => {
  // deploy/systemd/ is for people who install units with their own tools: the same text setup
  // writes. `npx vitest run -u` rewrites it after a deliberate change, reviewed like code.
  for (const unit of shippedUnits())
    it(`deploy/systemd/${unit.name} is what the code renders`, async () => {
      await expect(unit.content).toMatchFileSnapshot(COMMITTED(unit.name));
    });

  it('are hardened alike and open exactly what each process needs', () => {
    const p = DEFAULT_DEPLOY_PATHS;
    for (const unit of [agentUnit(p), openvpnUnit(p), controllerUnit(p)]) {
      for (const [key, value] of [
        ['NoNewPrivileges', 'yes'],
        ['ProtectSystem', 'strict'],
        ['ProtectHome', 'yes'],
        ['PrivateTmp', 'yes'],
      ])
        expect(settings(unit, key), key).toEqual([value]);
    }
    expect(settings(agentUnit(p), 'Restart')).toEqual(['on-failure']);
    expect(settings(controllerUnit(p), 'Restart')).toEqual(['on-failure']);
    // The agent's full restart (management-client-auth changed) is a SIGTERM: a clean exit.
    expect(settings(openvpnUnit(p), 'Restart')).toEqual(['always']);
    expect(settings(agentUnit(p), 'CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN']);
    expect(settings(agentUnit(p), 'ReadWritePaths')).toEqual(['/etc/ovpn-fleet']);
    expect(settings(openvpnUnit(p), 'CapabilityBoundingSet')).toEqual([
      'CAP_NET_ADMIN CAP_NET_BIND_SERVICE',
    ]);
    expect(settings(openvpnUnit(p), 'ReadWritePaths')).toEqual(['/etc/ovpn-fleet/run']);
    expect(settings(openvpnUnit(p), 'DeviceAllow')).toEqual(['/dev/net/tun rw']);
    expect(settings(controllerUnit(p), 'CapabilityBoundingSet')).toEqual(['']);
    expect(settings(controllerUnit(p), 'ReadWritePaths')).toEqual([]);
    expect(settings(controllerUnit(p), 'StateDirectory')).toEqual(['ovpn-fleet']);
  });

  it('start the agent after FRR and OpenVPN, which it reads, without binding it to them', () => {
    const agent = agentUnit(DEFAULT_DEPLOY_PATHS);
    expect(settings(agent, 'After')).toEqual([`network-online.target ${UNIT.frr} ${UNIT.openvpn}`]);
    // Wants, not Requires/BindsTo: an OpenVPN or FRR restart must not stop the agent.
    expect(agent).not.toMatch(/^(Requires|BindsTo|PartOf)=/m);
    expect(settings(openvpnUnit(DEFAULT_DEPLOY_PATHS), 'ExecStart')[0]).toContain(
      '--writepid /etc/ovpn-fleet/run/openvpn.pid --config /etc/ovpn-fleet/server.conf',
    );
  });
});

/*
 * systemd-analyze verify (systemd 252) without a running systemd and without the binaries at
 * their install paths. What we found, in systemd's src/analyze/analyze-verify-util.c and by
 * trying it here:
 *  - It needs no PID 1: it loads the units into a manager of its own, in test-run mode.
 *  - verify_executable(unit, command, root) fails on every Exec*= binary that is missing or not
 *    executable ("Command /usr/local/bin/ovpn-fleet is not executable"), unless the command has
 *    the "-" prefix. With --root=DIR the units, the binaries and the units they depend on are
 *    all looked up under DIR; so DIR gets stand-in executables and stub units for what ours
 *    pull in (sysinit.target and the like come with DefaultDependencies=; without them:
 *    "Unit sysinit.target not found").
 *  - --man=no skips looking up Documentation=man: pages; --generators=no keeps the host's
 *    generators (fstab, getty, …) from running against DIR.
 *  - A bad setting ("Failed to parse protect system value", "Unknown key") is only logged by
 *    252: the exit code stays 0 (newer systemd can turn warnings into errors). So the test
 *    fails on any output, not only on the exit code.
 */
const analyze = spawnSync('systemd-analyze', ['--version']);
const noAnalyze =
  analyze.error || analyze.status !== 0 ? 'systemd-analyze is not installed' : undefined;

const STUB_UNITS = [
  'sysinit.target',
  'basic.target',
  'shutdown.target',
  'network-online.target',
  'multi-user.target',
];

const scratch: string[] = [];
afterAll(() => scratch.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A root with `units` installed in /etc/systemd/system, stand-ins for what they need. */
function verifyRoot(units: RenderedUnit[]): string {
  const root = mkdtempSync(join(tmpdir(), 'ovf-units-'));
  scratch.push(root);
  const put = (path: string, content: string, mode = 0o644) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
    chmodSync(join(root, path), mode);
  };
  for (const u of units) put(`/etc/systemd/system/${u.name}`, u.content);
  for (const stub of STUB_UNITS)
    put(`/usr/lib/systemd/system/${stub}`, '[Unit]\nDescription=stub\n');
  put('/usr/lib/systemd/system/frr.service', '[Service]\nExecStart=/bin/true\n');
  const execs = new Set(['/bin/true']);
  for (const u of units)
    for (const m of u.content.matchAll(/^Exec\w+=[-@:+!]*(\/\S+)/gm)) execs.add(m[1]);
  for (const bin of execs) put(bin, '#!/bin/sh\n', 0o755);
  return root;
}

function verify(root: string, units: RenderedUnit[]): { status: number | null; output: string } {
  const r = spawnSync(
    'systemd-analyze',
    [
      'verify',
      `--root=${root}`,
      '--man=no',
      '--generators=no',
      ...units.map((u) => `/etc/systemd/system/${u.name}`),
    ],
    { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0' } },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

describe('systemd-analyze', () => {
  itNeeds(noAnalyze, 'verify accepts every unit, without a word', () => {
    const units = shippedUnits();
    expect(verify(verifyRoot(units), units)).toEqual({ status: 0, output: '' });
  });

  itNeeds(noAnalyze, 'verify speaks up about a wrong setting (the check above can fail)', () => {
    const broken = shippedUnits().map((u) => ({
      ...u,
      content: u.content.replace('ProtectSystem=strict', 'ProtectSystem=stricter'),
    }));
    expect(verify(verifyRoot(broken), broken).output).toMatch(/protect system value/);
  });

  // The overall exposure (0 safe … 10 unsafe) of each service, offline: a loosened unit shows.
  itNeeds(noAnalyze, 'security rates every service below 3 of 10', () => {
    const units = shippedUnits();
    const root = verifyRoot(units);
    for (const u of units.filter((x) => x.name.endsWith('.service'))) {
      const r = spawnSync(
        'systemd-analyze',
        ['security', '--offline=yes', `--root=${root}`, `/etc/systemd/system/${u.name}`],
        { encoding: 'utf8' },
      );
      const level = /Overall exposure level for \S+: ([\d.]+)/.exec(r.stdout);
      expect(level, `${u.name}: ${r.stdout}${r.stderr}`).not.toBeNull();
      expect(Number(level![1]), u.name).toBeLessThan(3);
    }
  });
});
