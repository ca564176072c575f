import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderFleet } from '../render/bundle.js';
import { DEFAULT_RENDER_OPTIONS } from '../render/types.js';
import { type RunOptions, run } from '../sys/exec.js';
import { exampleSpec, itNeeds, snapshotWith } from '../testing.js';
import {
  type SessionGroupsHost,
  applySessionGroups,
  ccdAddresses,
  sessionGroupsScript,
} from './session-groups.js';

const spec = exampleSpec();
const USERS = [
  { name: 'ann', groups: ['staff'], certSerials: ['0a'] },
  { name: 'bob', groups: ['staff'], certSerials: ['0b'] },
];
const bundle = renderFleet(spec, snapshotWith(USERS, spec), DEFAULT_RENDER_OPTIONS)[0];
const file = (path: string) => bundle.files.find((f) => f.path === path)?.content;
const GROUPS = spec.groups.map((g) => g.name);
/** ann's and bob's IPv6 addresses (the example's pool). */
const ANN6 = 'fd7a:6ca6:e640:8000::2';
const BOB6 = 'fd7a:6ca6:e640:8000::3';

describe('a sign-in’s groups as one nft transaction', () => {
  it('reads the addresses OpenVPN pushes from the ccd file the renderer writes', () => {
    expect(ccdAddresses(file('ccd/ann')!)).toEqual({ ipv4: '10.200.0.2', ipv6: ANN6 });
    expect(ccdAddresses('ifconfig-push 10.0.0.1 255.255.255.0\n')).toBeUndefined();
  });

  it('adds the wanted sets’ elements and adds-then-deletes every other set’s', () => {
    expect(
      sessionGroupsScript(['staff', 'dba'], ['dba', 'unknown'], {
        ipv4: '10.200.0.2',
        ipv6: 'fd00:200::2',
      }),
    ).toBe(
      [
        'add element inet ovpn_fleet g_dba_v4 { 10.200.0.2 }',
        'add element inet ovpn_fleet g_dba_v6 { fd00:200::2 }',
        'add element inet ovpn_fleet g_staff_v4 { 10.200.0.2 }',
        'delete element inet ovpn_fleet g_staff_v4 { 10.200.0.2 }',
        'add element inet ovpn_fleet g_staff_v6 { fd00:200::2 }',
        'delete element inet ovpn_fleet g_staff_v6 { fd00:200::2 }',
        '',
      ].join('\n'),
    );
  });

  it('refuses a name that is no user name, and a user the bundle has no ccd file for', async () => {
    const ran: string[] = [];
    const host: SessionGroupsHost = {
      readFile: file,
      run: (argv) => (
        ran.push(argv.join(' ')),
        Promise.resolve({ code: 0, stdout: '', stderr: '' })
      ),
    };
    await expect(applySessionGroups(host, GROUPS, '../ann', ['dba'])).rejects.toThrow(
      /no user name/,
    );
    await expect(applySessionGroups(host, GROUPS, 'carol', ['dba'])).rejects.toThrow(
      'no addresses for carol in this bundle (ccd/carol)',
    );
    expect(ran).toEqual([]);
  });
});

// ---- real nft, in a network namespace of this test's own ----

const NS = `ovf-groups-${process.pid}`;
const missing = (() => {
  if (process.getuid?.() !== 0) return 'needs root';
  const r = spawnSync('sh', ['-c', 'command -v nft && command -v ip'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'needs nft and ip';
})();

describe('with nftables 1.0.6 for real', () => {
  const host: SessionGroupsHost = {
    readFile: file,
    run: (argv, opts: RunOptions = {}) => run(argv, { ...opts, netns: NS }),
  };
  const elements = async (set: string) =>
    (await run(['nft', 'list', 'set', 'inet', 'ovpn_fleet', set], { netns: NS })).stdout;

  beforeAll(async () => {
    if (missing) return;
    await run(['ip', 'netns', 'add', NS]);
    await run(['nft', '-f', '-'], { netns: NS, input: file('nftables.nft')! });
  });
  afterAll(async () => {
    if (!missing) await run(['ip', 'netns', 'del', NS], { allowFailure: true });
  });

  itNeeds(
    missing,
    'moves a user between sets in one transaction, whether or not each element was there',
    async () => {
      expect(await elements('g_staff_v4')).toMatch(/10\.200\.0\.2,\s*10\.200\.0\.3/);
      // ann: out of staff (where she was), into dba and engineering (where she was not).
      await applySessionGroups(host, GROUPS, 'ann', ['dba', 'engineering']);
      expect(await elements('g_staff_v4')).not.toContain('10.200.0.2');
      expect(await elements('g_staff_v4')).toContain('10.200.0.3');
      expect(await elements('g_staff_v6')).not.toContain(ANN6);
      expect(await elements('g_staff_v6')).toContain(BOB6);
      expect(await elements('g_dba_v4')).toContain('10.200.0.2');
      expect(await elements('g_dba_v6')).toContain(ANN6);
      expect(await elements('g_engineering_v4')).toContain('10.200.0.2');
      // Again, and then to none: deleting from sets she is not in does not fail the batch.
      await applySessionGroups(host, GROUPS, 'ann', ['dba', 'engineering']);
      await applySessionGroups(host, GROUPS, 'ann', []);
      for (const g of GROUPS) expect(await elements(`g_${g}_v4`)).not.toContain('10.200.0.2');
      expect(await elements('g_staff_v4')).toContain('10.200.0.3');
    },
    30_000,
  );

  itNeeds(
    missing,
    'a batch nft refuses (a set the ruleset lacks) changes nothing and says why',
    async () => {
      await applySessionGroups(host, GROUPS, 'bob', ['staff']);
      await expect(applySessionGroups(host, [...GROUPS, 'nosuch'], 'bob', ['dba'])).rejects.toThrow(
        /^nft refused bob's groups: .*Error: No such file or directory/,
      );
      expect(await elements('g_staff_v4')).toContain('10.200.0.3');
      expect(await elements('g_dba_v4')).not.toContain('10.200.0.3');
    },
    30_000,
  );
});
