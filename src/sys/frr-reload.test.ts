import { describe, expect, it } from 'vitest';
import { CommandError } from '../errors.js';
import type { RunOptions, RunResult } from './exec.js';
import {
  FRR_RELOAD,
  frrDiff,
  frrProblem,
  isEmptyDiff,
  parseFrrReloadTest,
  reloadFrr,
} from './frr-reload.js';

/** frr-reload.py --test, FRR 8.4.4, after a neighbour, a key and a pool changed (seen). */
const TEST_OUTPUT = `
Lines To Delete
===============
interface eth1
 no ip ospf message-digest-key 1 md5 change-me-ospf
router bgp 65100
 no neighbor 10.255.9.1 remote-as 65001
router bgp 65100
 address-family ipv4 unicast
  no neighbor 10.255.9.1 activate
no hostname vm

Lines To Add
============
interface eth1
 ip ospf message-digest-key 2 md5 new-key-2
frr version 8.4
service integrated-vtysh-config
ip prefix-list OVPNF-USERS-V4 seq 10 permit 10.200.0.0/15 ge 32
no ip prefix-list OVPNF-USERS-V4 seq 10 permit 10.200.0.0/16 ge 32
`;

/** A runner answering argv (joined by spaces) from a script; everything else exits 0. */
function scripted(answers: Record<string, Partial<RunResult> | Error> = {}) {
  const ran: string[] = [];
  const run = (argv: readonly string[], _opts?: RunOptions): Promise<RunResult> => {
    const line = argv.join(' ');
    ran.push(line);
    const a = answers[line];
    if (a instanceof Error) return Promise.reject(a);
    return Promise.resolve({ code: 0, stdout: '', stderr: '', ...a });
  };
  return { run, ran };
}

const FILE = '/b/frr.conf';
const RELOAD = `${FRR_RELOAD} --reload --stdout --log-level warning -N ns1 --rundir /b/run`;
const kept: string[] = [];
const options = (run: ReturnType<typeof scripted>['run']) => ({
  instance: 'ns1',
  run,
  scratchDir: '/b/run',
  keepRunning: (text: string) => {
    kept.push(text);
    return '/b/run/before.conf';
  },
});

describe('frr-reload.py --test output', () => {
  it('one entry per command with its context; what no reload can change left out', () => {
    expect(parseFrrReloadTest(TEST_OUTPUT)).toEqual({
      remove: [
        'interface eth1 / no ip ospf message-digest-key 1 md5 change-me-ospf',
        'router bgp 65100 / no neighbor 10.255.9.1 remote-as 65001',
        'router bgp 65100 / address-family ipv4 unicast / no neighbor 10.255.9.1 activate',
      ],
      add: [
        'interface eth1 / ip ospf message-digest-key 2 md5 new-key-2',
        'ip prefix-list OVPNF-USERS-V4 seq 10 permit 10.200.0.0/15 ge 32',
        'no ip prefix-list OVPNF-USERS-V4 seq 10 permit 10.200.0.0/16 ge 32',
      ],
    });
  });

  it('a file equal to the running config: nothing but the version and vtysh lines', () => {
    const same =
      '\nLines To Delete\n===============\nno hostname vm\n\nLines To Add\n============\nfrr version 8.4\nservice integrated-vtysh-config\n';
    expect(isEmptyDiff(parseFrrReloadTest(same))).toBe(true);
    expect(isEmptyDiff(parseFrrReloadTest(''))).toBe(true);
  });

  it("a hostname change is a difference (vtysh's own name is not)", () => {
    const renamed =
      '\nLines To Delete\n===============\nno hostname vm\n\nLines To Add\n============\nhostname vpn2\n';
    expect(parseFrrReloadTest(renamed)).toEqual({
      remove: ['no hostname vm'],
      add: ['hostname vpn2'],
    });
  });

  it('frrDiff asks the named instance', async () => {
    const { run, ran } = scripted({
      [`${FRR_RELOAD} --test -N ns1 ${FILE}`]: { stdout: TEST_OUTPUT },
    });
    expect((await frrDiff(FILE, { instance: 'ns1', run })).remove).toHaveLength(3);
    expect(ran).toEqual([`${FRR_RELOAD} --test -N ns1 ${FILE}`]);
  });
});

describe('frrProblem: one line from what vtysh and frr-reload.py print', () => {
  it("the dry run's first error", () => {
    expect(
      frrProblem({
        code: 2,
        stdout: '',
        stderr: 'line 2: % Unknown command[41]:  bogus 1\nline 9: % Unknown command[4]: x\n',
      }),
    ).toBe('line 2: % Unknown command[41]:  bogus 1');
  });

  it('which daemon refused which line, and its reason', () => {
    expect(
      frrProblem({
        code: 1,
        stdout: '% Can not configure the local system as neighbor\n',
        stderr:
          'line 17: Failure to communicate[13] to bgpd, line:  neighbor 10.255.9.1 remote-as 65001\n\n\x1b[91mWARNING\x1b[0m: failed\n',
      }),
    ).toBe(
      'bgpd refused "neighbor 10.255.9.1 remote-as 65001": % Can not configure the local system as neighbor',
    );
  });

  it('otherwise the last thing said, without colour codes', () => {
    expect(
      frrProblem({ code: 1, stdout: '', stderr: 'x\n\x1b[91m  ERROR\x1b[0m: Bindir nope\n' }),
    ).toBe('ERROR: Bindir nope');
    expect(frrProblem({ code: 1, stdout: '', stderr: '' })).toBe('exit 1');
  });
});

describe('reloadFrr', () => {
  it('checks, keeps the running config (0600, for the way back), reloads, compares', async () => {
    const { run, ran } = scripted();
    expect(await reloadFrr(FILE, options(run))).toEqual({
      ok: true,
      drift: { remove: [], add: [] },
    });
    expect(ran).toEqual([
      `vtysh -N ns1 --dryrun -f ${FILE}`,
      'vtysh -N ns1 -c show running-config no-header',
      `${RELOAD} ${FILE}`,
      `${FRR_RELOAD} --test -N ns1 ${FILE}`,
    ]);
  });

  it('says what still differs after a reload that claims success', async () => {
    const { run } = scripted({ [`${FRR_RELOAD} --test -N ns1 ${FILE}`]: { stdout: TEST_OUTPUT } });
    const r = await reloadFrr(FILE, options(run));
    expect(r.ok && r.drift.add).toHaveLength(3);
  });

  it('a file that does not parse: refused, nothing else runs', async () => {
    const { run, ran } = scripted({
      [`vtysh -N ns1 --dryrun -f ${FILE}`]: {
        code: 2,
        stderr: 'line 3: % Unknown command[4]: x\n',
      },
    });
    expect(await reloadFrr(FILE, options(run))).toEqual({
      ok: false,
      stage: 'check',
      problem: 'line 3: % Unknown command[4]: x',
    });
    expect(ran).toHaveLength(1);
  });

  it('FRR not running: no reload without the running config to go back to', async () => {
    const { run, ran } = scripted({
      'vtysh -N ns1 -c show running-config no-header': {
        code: 1,
        stderr: 'Exiting: failed to connect to any daemons.\n',
      },
    });
    expect(await reloadFrr(FILE, options(run))).toEqual({
      ok: false,
      stage: 'check',
      problem: "FRR's running config cannot be read: Exiting: failed to connect to any daemons.",
    });
    expect(ran.filter((l) => l.startsWith(FRR_RELOAD))).toEqual([]);
  });

  it('frr-reload.py missing: refused with the package to install, nothing changed', async () => {
    const { run } = scripted({
      [`${RELOAD} ${FILE}`]: new CommandError([FRR_RELOAD], null, 'spawn ENOENT'),
    });
    const r = await reloadFrr(FILE, options(run));
    expect(r).toMatchObject({ ok: false, stage: 'check' });
    expect(!r.ok && r.problem).toContain('ENOENT');
  });

  it('a line a daemon refuses: the running config from before is reloaded', async () => {
    kept.length = 0;
    const { run, ran } = scripted({
      'vtysh -N ns1 -c show running-config no-header': { stdout: 'router ospf\n' },
      [`${RELOAD} ${FILE}`]: {
        code: 1,
        stdout: 'Please remove all network commands first.\n',
        stderr: 'line 2: Failure to communicate[13] to ospfd, line:  ip ospf area 0.0.0.0\n',
      },
    });
    expect(await reloadFrr(FILE, options(run))).toEqual({
      ok: false,
      stage: 'reload',
      problem: 'ospfd refused "ip ospf area 0.0.0.0": Please remove all network commands first.',
      restored: true,
    });
    expect(kept).toEqual(['router ospf\n']);
    expect(ran.slice(-2)).toEqual([`${RELOAD} ${FILE}`, `${RELOAD} /b/run/before.conf`]);
  });

  it('says so when the way back fails too', async () => {
    const { run } = scripted({
      [`${RELOAD} ${FILE}`]: { code: 1 },
      [`${RELOAD} /b/run/before.conf`]: { code: 1 },
    });
    expect(await reloadFrr(FILE, options(run))).toMatchObject({ ok: false, restored: false });
  });
});
