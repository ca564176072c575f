import { describe, expect, it } from 'vitest';
import { Conflict, InputError } from '../errors.js';
import { FRR_DAEMONS_BACKUP, FRR_DAEMONS_FILE, daemonsFileFor } from './frr-daemons.js';
import {
  type Existing,
  type Look,
  type Plan,
  type ServerSetupInput,
  SYSCTL_DROP_IN,
  UNIT_DIR,
  planControllerRemove,
  planControllerSetup,
  planServerRemove,
  planServerSetup,
} from './plan.js';
import { DEBIAN_FRR_DAEMONS } from './testing.js';
import { DEFAULT_DEPLOY_PATHS, UNIT } from './units.js';

const TOKEN = 'a'.repeat(64);

function input(overrides: Partial<ServerSetupInput> = {}): ServerSetupInput {
  return {
    paths: DEFAULT_DEPLOY_PATHS,
    server: 'vpn11',
    controller: 'https://10.0.0.5:8443',
    caPem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
    token: TOKEN,
    protocol: 'ospf',
    ...overrides,
  };
}

/** A host as a map of paths: a fresh Debian server with frr installed. */
function freshHost(): Map<string, Existing> {
  return new Map<string, Existing>([
    [FRR_DAEMONS_FILE, { kind: 'file', content: DEBIAN_FRR_DAEMONS, mode: 0o640 }],
  ]);
}

const lookIn =
  (host: Map<string, Existing>): Look =>
  (path) =>
    host.get(path);

/** What apply.ts does, on the map. */
function carryOut(plan: Plan, host: Map<string, Existing>): void {
  for (const s of plan.steps) {
    if (s.kind === 'dir') host.set(s.path, { kind: 'dir', mode: s.mode });
    if (s.kind === 'file')
      host.set(s.file.path, { kind: 'file', content: s.file.content, mode: s.file.mode });
    if (s.kind === 'delete' || s.kind === 'rmdir') host.delete(s.path);
  }
}

const commands = (plan: Plan) =>
  plan.steps.flatMap((s) => (s.kind === 'run' ? [s.argv.join(' ')] : []));
function stateOf(plan: Plan, path: string): string | undefined {
  for (const s of plan.steps) {
    if (s.kind === 'file' && s.file.path === path) return s.state;
    if ((s.kind === 'delete' || s.kind === 'dir' || s.kind === 'rmdir') && s.path === path)
      return s.state;
  }
  return undefined;
}

describe('FRR daemons file', () => {
  it("switches on the protocol's daemons and leaves every other line as Debian shipped it", () => {
    const ospf = daemonsFileFor(DEBIAN_FRR_DAEMONS, 'ospf');
    const changed = ospf.split('\n').filter((l, i) => l !== DEBIAN_FRR_DAEMONS.split('\n')[i]);
    expect(changed).toEqual(['ospfd=yes', 'ospf6d=yes']);
    expect(daemonsFileFor(DEBIAN_FRR_DAEMONS, 'bgp')).toMatch(/^bgpd=yes$/m);
    expect(daemonsFileFor(DEBIAN_FRR_DAEMONS, 'rip')).toMatch(/^ripd=yes\nripngd=yes$/m);
    expect(daemonsFileFor(DEBIAN_FRR_DAEMONS, 'bgp')).toMatch(/^ospfd=no$/m);
  });

  it('adds a daemon line the file lacks', () => {
    expect(daemonsFileFor('zebra_options="-A 127.0.0.1"\n', 'bgp')).toBe(
      'zebra_options="-A 127.0.0.1"\n# Enabled by ovpn-fleet server setup (routing: bgp).\nbgpd=yes\n',
    );
  });
});

describe('server setup plan', () => {
  it('on a fresh server: folders, units, sysctl, agent settings, daemons with a backup, then systemctl', () => {
    const plan = planServerSetup(input(), lookIn(freshHost()));
    const files = plan.steps.flatMap((s) =>
      s.kind === 'file' ? [[s.file.path, s.file.mode.toString(8), s.state]] : [],
    );
    expect(files).toEqual([
      [`${UNIT_DIR}/${UNIT.openvpn}`, '644', 'create'],
      [`${UNIT_DIR}/${UNIT.openvpnPath}`, '644', 'create'],
      [`${UNIT_DIR}/${UNIT.agent}`, '644', 'create'],
      [SYSCTL_DROP_IN, '644', 'create'],
      ['/etc/ovpn-fleet-agent/agent.env', '644', 'create'],
      ['/etc/ovpn-fleet-agent/token', '600', 'create'],
      ['/etc/ovpn-fleet-agent/controller-ca.pem', '644', 'create'],
      [FRR_DAEMONS_BACKUP, '640', 'create'],
      [FRR_DAEMONS_FILE, '640', 'update'],
    ]);
    expect(
      plan.steps.flatMap((s) => (s.kind === 'dir' ? [[s.path, s.mode.toString(8)]] : [])),
    ).toEqual([
      ['/etc/ovpn-fleet', '750'],
      ['/etc/ovpn-fleet/run', '700'],
      ['/etc/ovpn-fleet-agent', '750'],
    ]);
    expect(commands(plan)).toEqual([
      'systemctl daemon-reload',
      'sysctl -p /etc/sysctl.d/60-ovpn-fleet.conf',
      'systemctl enable frr.service ovpn-fleet-openvpn.path ovpn-fleet-agent.service',
      'systemctl restart frr.service',
      'systemctl start ovpn-fleet-openvpn.path',
      'systemctl restart ovpn-fleet-agent.service',
    ]);
  });

  it("puts the agent's options in its environment file and the token in its own, secret", () => {
    const plan = planServerSetup(input(), lookIn(freshHost()));
    const file = (path: string) =>
      plan.steps.find((s) => s.kind === 'file' && s.file.path === path) as {
        file: { content: string; secret?: boolean };
      };
    expect(file('/etc/ovpn-fleet-agent/agent.env').file.content).toMatch(
      /^OVPN_FLEET_AGENT_OPTIONS=--server vpn11 --controller https:\/\/10\.0\.0\.5:8443 --token-file \/etc\/ovpn-fleet-agent\/token --ca \/etc\/ovpn-fleet-agent\/controller-ca\.pem --bundle-dir \/etc\/ovpn-fleet$/m,
    );
    expect(file('/etc/ovpn-fleet-agent/token').file).toMatchObject({
      content: `${TOKEN}\n`,
      secret: true,
    });
    expect(JSON.stringify(file('/etc/ovpn-fleet-agent/agent.env'))).not.toContain(TOKEN);
  });

  it('a second run changes nothing: every path unchanged, systemd only asked to keep things running', () => {
    const host = freshHost();
    carryOut(planServerSetup(input(), lookIn(host)), host);
    const again = planServerSetup(input(), lookIn(host));
    expect(again.steps.filter((s) => s.kind !== 'run').map((s) => s.state)).toEqual(
      again.steps.filter((s) => s.kind !== 'run').map(() => 'unchanged'),
    );
    expect(commands(again)).toEqual([
      'systemctl enable frr.service ovpn-fleet-openvpn.path ovpn-fleet-agent.service',
      'systemctl start frr.service',
      'systemctl start ovpn-fleet-openvpn.path',
      'systemctl start ovpn-fleet-agent.service',
    ]);
  });

  it("a new protocol starts from Debian's file, so the old protocol's daemons go off", () => {
    const host = freshHost();
    carryOut(planServerSetup(input(), lookIn(host)), host);
    const bgp = planServerSetup(input({ protocol: 'bgp' }), lookIn(host));
    carryOut(bgp, host);
    const daemons = host.get(FRR_DAEMONS_FILE) as { content: string };
    expect(daemons.content).toBe(daemonsFileFor(DEBIAN_FRR_DAEMONS, 'bgp'));
    expect(daemons.content).toMatch(/^ospfd=no$/m);
    expect((host.get(FRR_DAEMONS_BACKUP) as { content: string }).content).toBe(DEBIAN_FRR_DAEMONS);
    expect(commands(bgp)).toContain('systemctl restart frr.service');
    expect(commands(bgp)).toContain('systemctl start ovpn-fleet-agent.service');
  });

  it('makes no backup when the daemons file already says what we need', () => {
    const host = freshHost();
    host.set(FRR_DAEMONS_FILE, {
      kind: 'file',
      content: daemonsFileFor(DEBIAN_FRR_DAEMONS, 'ospf'),
      mode: 0o640,
    });
    const plan = planServerSetup(input(), lookIn(host));
    expect(stateOf(plan, FRR_DAEMONS_BACKUP)).toBeUndefined();
    expect(stateOf(plan, FRR_DAEMONS_FILE)).toBe('unchanged');
  });

  it('a new controller restarts the agent; a CA no longer given is removed', () => {
    const host = freshHost();
    carryOut(planServerSetup(input(), lookIn(host)), host);
    const plan = planServerSetup(
      input({ controller: 'unix:/run/ovpn-fleet/controller.sock', caPem: undefined }),
      lookIn(host),
    );
    expect(stateOf(plan, '/etc/ovpn-fleet-agent/agent.env')).toBe('update');
    expect(stateOf(plan, '/etc/ovpn-fleet-agent/controller-ca.pem')).toBe('delete');
    expect(commands(plan)).toContain('systemctl restart ovpn-fleet-agent.service');
    expect(commands(plan)).not.toContain('systemctl daemon-reload');
  });

  it('gives the agent each of several controllers as its own --controller, in order', () => {
    const plan = planServerSetup(
      input({ controller: ['https://10.0.0.5:8443', 'https://10.0.0.6:8443'] }),
      lookIn(freshHost()),
    );
    const env = plan.steps.find(
      (s) => s.kind === 'file' && s.file.path === '/etc/ovpn-fleet-agent/agent.env',
    );
    expect(env?.kind === 'file' ? env.file.content : '').toContain(
      '--controller https://10.0.0.5:8443 --controller https://10.0.0.6:8443 --token-file',
    );
  });

  it('refuses a value the options file cannot carry, naming the flag', () => {
    expect(() =>
      planServerSetup(input({ controller: 'https://x:1/$HOME' }), lookIn(freshHost())),
    ).toThrow(
      new InputError(
        '--controller',
        '"https://x:1/$HOME" holds "$", which the agent\'s options file cannot carry',
      ),
    );
  });

  it('refuses a masked unit and a missing daemons file', () => {
    const masked = freshHost();
    masked.set(`${UNIT_DIR}/${UNIT.agent}`, { kind: 'other', what: 'a symbolic link' });
    expect(() => planServerSetup(input(), lookIn(masked))).toThrow(Conflict);
    expect(() => planServerSetup(input(), lookIn(new Map()))).toThrow(/is frr installed/);
  });
});

describe('server remove plan', () => {
  it('stops first, removes what setup wrote, restores the daemons file and drops the backup', () => {
    const host = freshHost();
    carryOut(planServerSetup(input(), lookIn(host)), host);
    const plan = planServerRemove(DEFAULT_DEPLOY_PATHS, lookIn(host));
    expect(plan.steps[0]).toMatchObject({
      kind: 'run',
      argv: ['systemctl', 'disable', '--now', UNIT.agent, UNIT.openvpnPath, UNIT.openvpn],
    });
    expect(commands(plan).slice(1)).toEqual([
      'systemctl daemon-reload',
      'systemctl try-restart frr.service',
    ]);
    carryOut(plan, host);
    // Left: the bundle folders (the server's key) and Debian's daemons file as it was.
    expect([...host.keys()].sort()).toEqual([
      FRR_DAEMONS_FILE,
      '/etc/ovpn-fleet',
      '/etc/ovpn-fleet/run',
    ]);
    expect(host.get(FRR_DAEMONS_FILE)).toEqual({
      kind: 'file',
      content: DEBIAN_FRR_DAEMONS,
      mode: 0o640,
    });
  });

  it('on a server without our setup does nothing and runs nothing', () => {
    const plan = planServerRemove(DEFAULT_DEPLOY_PATHS, lookIn(freshHost()));
    expect(commands(plan)).toEqual([]);
    expect(plan.steps.every((s) => s.kind !== 'run' && s.state === 'absent')).toBe(true);
  });
});

describe('controller setup plan', () => {
  const withFleet = () =>
    new Map<string, Existing>([
      ['/var/lib/ovpn-fleet/fleet.yaml', { kind: 'file', content: 'fleet: x\n', mode: 0o644 }],
    ]);
  const controllerInput = {
    paths: DEFAULT_DEPLOY_PATHS,
    options: [['--listen', 'unix:/var/lib/ovpn-fleet/run/controller.sock'], ['--metrics-per-user']],
  };

  it('needs the fleet in /var/lib/ovpn-fleet, writes unit and options, and a second run nothing', () => {
    expect(() => planControllerSetup(controllerInput, lookIn(new Map()))).toThrow(/no fleet in/);
    const host = withFleet();
    const plan = planControllerSetup(controllerInput, lookIn(host));
    expect(commands(plan)).toEqual([
      'systemctl daemon-reload',
      'systemctl enable ovpn-fleet-controller.service',
      'systemctl restart ovpn-fleet-controller.service',
    ]);
    carryOut(plan, host);
    expect((host.get('/etc/default/ovpn-fleet-controller') as { content: string }).content).toMatch(
      /^OVPN_FLEET_CONTROLLER_OPTIONS=--listen unix:\/var\/lib\/ovpn-fleet\/run\/controller\.sock --metrics-per-user$/m,
    );
    const again = planControllerSetup(controllerInput, lookIn(host));
    expect(
      again.steps.every((s) => s.kind === 'run' || ['unchanged', 'absent'].includes(s.state)),
    ).toBe(true);
    expect(commands(again)).toEqual([
      'systemctl enable ovpn-fleet-controller.service',
      'systemctl start ovpn-fleet-controller.service',
    ]);
    carryOut(planControllerRemove(DEFAULT_DEPLOY_PATHS, lookIn(host)), host);
    expect([...host.keys()]).toEqual(['/var/lib/ovpn-fleet/fleet.yaml']);
  });
});
