import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePolicy } from '../core/policy.js';
import type { FleetSpec } from '../spec/schema.js';
import {
  FIXED_TLS_CRYPT_KEY,
  bgpSpec,
  exampleSpec,
  ripSpec,
  snapshotWith,
  specWith,
  protectedSpec,
  itNeeds,
} from '../testing.js';
import { type Bundle, renderFleet, serverContexts } from './bundle.js';
import { renderFrrConf } from './frr.js';
import { renderClientConnect, renderClientDisconnect, renderLearnAddress } from './hooks.js';
import { renderNftables } from './nftables.js';
import { type PinnedUser, renderCcd, renderServerConf } from './openvpn.js';
import { renderProfile } from './profile.js';
import { renderSysctl } from './sysctl.js';
import { DEFAULT_RENDER_OPTIONS, type RenderUser, type ServerContext } from './types.js';

const golden = (name: string) => `../../test/golden/${name}`;

/** A few users covering: several groups, no group, disabled. */
const USERS: Partial<PinnedUser>[] = [
  {
    name: 'alice',
    groups: ['staff', 'engineering'],
    certSerials: ['e1f2a3b4c5d6e7f8091a2b3c4d5e6f7'],
  },
  { name: 'bob', groups: ['staff', 'dba'] },
  { name: 'carol.c', groups: [] },
  { name: 'dave', groups: ['staff'], enabled: false },
];

function contexts(spec: FleetSpec): ServerContext[] {
  return serverContexts(spec, DEFAULT_RENDER_OPTIONS);
}
const firstServer = (spec: FleetSpec) => contexts(spec)[0];

/** The example with OSPFv3's RFC 7166 trailer, its own key id and key (FRR >= 9.1 servers). */
const ospfTrailerSpec = () =>
  specWith((input) => {
    input.routing = {
      protocol: 'ospf',
      frrVersion: '10.2',
      ospf: {
        auth: { keyId: 1, key: 'md5-secret-1' },
        ipv6Auth: { type: 'trailer', keyId: 7, key: 'a-longer-hmac-sha-256-secret' },
      },
    };
  });
const fileOf = (bundle: Bundle, path: string) => bundle.files.find((f) => f.path === path);

describe('golden files', () => {
  const spec = exampleSpec();
  const snap = snapshotWith(USERS, spec);
  const ctx = firstServer(spec);

  it('server.conf', async () => {
    await expect(renderServerConf(ctx)).toMatchFileSnapshot(golden('server.conf'));
  });

  it('ccd file', async () => {
    await expect(renderCcd(ctx, snap.users[0])).toMatchFileSnapshot(golden('ccd-alice'));
  });

  it('learn-address hook', async () => {
    await expect(renderLearnAddress(DEFAULT_RENDER_OPTIONS)).toMatchFileSnapshot(
      golden('learn-address'),
    );
  });

  it('client-connect hook', async () => {
    await expect(renderClientConnect()).toMatchFileSnapshot(golden('client-connect'));
  });

  it('client-disconnect hook', async () => {
    await expect(renderClientDisconnect(DEFAULT_RENDER_OPTIONS)).toMatchFileSnapshot(
      golden('client-disconnect'),
    );
  });

  it.each([
    ['ospf', exampleSpec],
    ['bgp', bgpSpec],
    ['rip', ripSpec],
  ] as const)('frr.conf (%s)', async (protocol, build) => {
    const s = build();
    expect(s.routing.protocol).toBe(protocol);
    await expect(renderFrrConf(firstServer(s))).toMatchFileSnapshot(golden(`frr-${protocol}.conf`));
  });

  it('frr.conf (ospf, OSPFv3 with the authentication trailer)', async () => {
    await expect(renderFrrConf(firstServer(ospfTrailerSpec()))).toMatchFileSnapshot(
      golden('frr-ospf-trailer.conf'),
    );
  });

  it('nftables.nft', async () => {
    await expect(renderNftables(ctx, compilePolicy(spec, snap.users))).toMatchFileSnapshot(
      golden('nftables.nft'),
    );
  });

  it('nftables.nft with the servers protected', async () => {
    const p = protectedSpec();
    await expect(renderNftables(firstServer(p), compilePolicy(p, []))).toMatchFileSnapshot(
      golden('nftables-protected.nft'),
    );
  });

  it('sysctl.conf', async () => {
    await expect(renderSysctl()).toMatchFileSnapshot(golden('sysctl.conf'));
  });

  it('client profile', async () => {
    const profile = renderProfile({
      spec,
      user: 'alice',
      caPem: snap.caPem,
      certPem: '-----BEGIN CERTIFICATE-----\nYWxpY2U=\n-----END CERTIFICATE-----\n',
      keyPem: '-----BEGIN PRIVATE KEY-----\nYWxpY2Uta2V5\n-----END PRIVATE KEY-----\n',
      tlsCryptKey: FIXED_TLS_CRYPT_KEY,
    });
    await expect(profile).toMatchFileSnapshot(golden('alice.ovpn'));
  });
});

describe('bundles', () => {
  const spec = exampleSpec();

  it("a user's ccd file is byte-identical on all six servers", () => {
    const bundles = renderFleet(spec, snapshotWith(USERS, spec), DEFAULT_RENDER_OPTIONS);
    expect(bundles).toHaveLength(6);
    const ccds = bundles.map((b) => fileOf(b, 'ccd/alice')?.content);
    expect(ccds[0]).toMatch(/^ifconfig-push 10\.200\.0\.2 255\.255\.0\.0\n/);
    expect(new Set(ccds).size).toBe(1);
  });

  it('a disabled user has no ccd file, and is in no nftables set', () => {
    const [bundle] = renderFleet(spec, snapshotWith(USERS, spec), DEFAULT_RENDER_OPTIONS);
    expect(fileOf(bundle, 'ccd/bob')).toBeDefined();
    expect(fileOf(bundle, 'ccd/dave')).toBeUndefined();
    // dave is user 4: 10.200.0.5.
    expect(fileOf(bundle, 'nftables.nft')!.content).not.toContain('10.200.0.5');
  });

  it('the nftables rule count does not depend on the number of users', () => {
    const ruleCount = (n: number) => {
      const users = Array.from({ length: n }, (_, i) => ({
        groups: [['staff'], ['engineering'], ['dba', 'staff']][i % 3],
      }));
      const snap = snapshotWith(users, spec);
      const text = renderNftables(firstServer(spec), compilePolicy(spec, snap.users));
      const lines = text.split('\n');
      return {
        rules: lines.filter((l) => l.includes(' accept comment ')).length,
        userElements: lines.filter((l) => /^\t\t\t10\.200\./.test(l)).length,
        memberships: users.reduce((n, u) => n + u.groups.length, 0),
      };
    };
    const small = ruleCount(10);
    const large = ruleCount(5000);
    // Six policy rules, each for IPv4 and IPv6.
    expect(small.rules).toBe(12);
    expect(large.rules).toBe(small.rules);
    // The users are all there, as set elements: one per (user, group).
    expect(large.userElements).toBe(large.memberships);
    expect(large.memberships).toBeGreaterThan(5000);
  });

  it('the bundle digest changes when one user changes and is stable otherwise', () => {
    const digests = (users: Partial<RenderUser>[]) =>
      renderFleet(spec, snapshotWith(users, spec), DEFAULT_RENDER_OPTIONS).map((b) => b.digest);
    const base = digests(USERS);
    expect(digests(USERS)).toEqual(base);
    expect(new Set(base).size).toBe(6);
    const regrouped = USERS.map((u) => (u.name === 'bob' ? { ...u, groups: ['staff'] } : u));
    const disabled = USERS.map((u) => (u.name === 'alice' ? { ...u, enabled: false } : u));
    const moved = USERS.map((u) => (u.name === 'carol.c' ? { ...u, ipv4: '10.200.9.9' } : u));
    for (const changed of [regrouped, disabled, moved]) {
      const after = digests(changed);
      after.forEach((d, i) => expect(d).not.toBe(base[i]));
    }
  });

  it('renders the same bytes for the same input', () => {
    const a = renderFleet(spec, snapshotWith(USERS, spec), DEFAULT_RENDER_OPTIONS);
    const b = renderFleet(exampleSpec(), snapshotWith(USERS), DEFAULT_RENDER_OPTIONS);
    expect(b).toEqual(a);
  });

  it("nftables comments stay within nft's 128 bytes and carry no double quote", () => {
    const s = longCommentSpec();
    const text = renderNftables(firstServer(s), compilePolicy(s, []));
    const comments = [...text.matchAll(/ comment "([^"\n]*)"\n/g)].map((m) => m[1]);
    expect(comments).toHaveLength(12);
    for (const c of comments) expect(Buffer.byteLength(c)).toBeLessThanOrEqual(128);
    expect(comments[0]).toMatch(/^policy\[0\] staff -> intranet: say 'hi' ü+$/);
  });

  it('secrets are 0600 and hooks 0755', () => {
    const [bundle] = renderFleet(spec, snapshotWith(USERS, spec), DEFAULT_RENDER_OPTIONS);
    const mode = (p: string) => fileOf(bundle, p)?.mode;
    expect(mode('server.key')).toBe(0o600);
    expect(mode('tls-crypt.key')).toBe(0o600);
    expect(mode('management.pw')).toBe(0o600);
    expect(mode('hooks/learn-address')).toBe(0o755);
    expect(mode('hooks/client-connect')).toBe(0o755);
    expect(mode('server.conf')).toBe(0o644);
    // Routing passwords and keys.
    expect(mode('frr.conf')).toBe(0o640);
  });

  it("pins each of a user's serials in the ccd file, in OpenVPN's format, the same on every server", () => {
    const users: Partial<PinnedUser>[] = [
      { name: 'alice', certSerials: ['abc', 'ff00', 'abc'] },
      { name: 'bob' },
    ];
    const bundles = renderFleet(spec, snapshotWith(users, spec), DEFAULT_RENDER_OPTIONS);
    const alice = bundles.map((b) => fileOf(b, 'ccd/alice')?.content);
    expect(new Set(alice).size).toBe(1);
    expect(alice[0]!.split('\n').filter((l) => l.startsWith('#'))).toEqual([
      '# cert-serial 0a:bc',
      '# cert-serial ff:00',
    ]);
    // No certificate, no pin: the hook will refuse bob.
    expect(fileOf(bundles[0], 'ccd/bob')?.content).not.toContain('cert-serial');
    const renewed = renderFleet(
      spec,
      snapshotWith([{ ...users[0], certSerials: ['abd'] }, users[1]], spec),
      DEFAULT_RENDER_OPTIONS,
    );
    renewed.forEach((b, i) => expect(b.digest).not.toBe(bundles[i].digest));
  });

  it('server.conf wants TLS client certificates and runs the pin check on connect', () => {
    const conf = renderServerConf(firstServer(spec)).split('\n');
    expect(conf).toContain('remote-cert-tls client');
    expect(conf).toContain('client-connect hooks/client-connect');
    // Still root: the hooks' ip route calls need it (see openvpn.ts).
    expect(conf.filter((l) => /^(user|group) /.test(l))).toEqual([]);
  });
});

describe('FRR route filters', () => {
  it.each([
    ['ospf', exampleSpec],
    ['bgp', bgpSpec],
    ['rip', ripSpec],
  ] as const)('%s announces only host routes inside the pools', (_protocol, build) => {
    const s = build();
    for (const ctx of contexts(s)) {
      const conf = renderFrrConf(ctx);
      const prefixLists = conf.split('\n').filter((l) => /prefix-list \S+ seq/.test(l));
      expect(prefixLists).toEqual([
        `ip prefix-list OVPNF-USERS-V4 seq 10 permit ${s.pools.ipv4} ge 32`,
        `ipv6 prefix-list OVPNF-USERS-V6 seq 10 permit ${s.pools.ipv6} ge 128`,
      ]);
      expect(conf).not.toMatch(/redistribute connected/);
      // Every redistribution goes through one of the two route-maps.
      const redistribute = conf.split('\n').filter((l) => l.includes('redistribute'));
      expect(redistribute.length).toBeGreaterThanOrEqual(2);
      for (const line of redistribute)
        expect(line.trim()).toMatch(/^redistribute kernel route-map OVPNF-USERS-V[46]$/);
    }
  });

  it('a BGP server peers only with the routers on its own backbone link', () => {
    const s = bgpSpec();
    const conf = renderFrrConf(contexts(s)[3]); // vpn22, backbone 10.255.2.6/30
    const peers = [...conf.matchAll(/neighbor (\S+) remote-as (\d+)/g)].map((m) => m.slice(1));
    expect(peers).toEqual([['10.255.2.5', '65002']]);
  });
});

/** The example with a maximal (200 character) policy comment holding quotes and non-ASCII. */
function longCommentSpec(): FleetSpec {
  return specWith((i) => {
    i.policy![0].comment = `say "hi" ${'ü'.repeat(191)}`;
  });
}

// ---- real tools ----

function has(tool: string): boolean {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { encoding: 'utf8' });
  return r.status === 0;
}

/** What keeps a test from running here: missing tools, or not being root; undefined if none. */
function unmet(needs: { tools: string[]; root?: boolean }): string | undefined {
  const missing = needs.tools.filter((t) => !has(t));
  if (needs.root && process.getuid?.() !== 0) missing.push('root');
  return missing.length ? `needs ${missing.join(', ')}` : undefined;
}

/** A test that needs real tools (frr, nftables, iproute2) and root: see itNeeds. */
function itWith(needs: { tools: string[]; root?: boolean }, name: string, fn: () => void): void {
  itNeeds(unmet(needs), name, fn);
}

describe('real tools accept the generated configs', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ovf-render-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  itWith(
    { tools: ['vtysh'] },
    'vtysh --dryrun accepts frr.conf for ospf (with and without the OSPFv3 trailer), bgp and rip',
    () => {
      for (const [protocol, s] of [
        ['ospf', exampleSpec()],
        ['ospf-trailer', ospfTrailerSpec()],
        ['bgp', bgpSpec()],
        ['rip', ripSpec()],
        ['rip-noauth', specWith((i) => (i.routing = { protocol: 'rip', rip: {} }))],
      ] as const) {
        const file = join(dir, `frr-${protocol}.conf`);
        writeFileSync(file, renderFrrConf(firstServer(s)));
        const r = spawnSync('vtysh', ['--dryrun', '-f', file], { encoding: 'utf8' });
        expect(
          { protocol, status: r.status, output: `${r.stdout}${r.stderr}` },
          `vtysh --dryrun -f ${file}`,
        ).toMatchObject({ protocol, status: 0 });
      }
    },
  );

  itWith(
    { tools: ['vtysh'] },
    'vtysh --dryrun notices a broken file (the check above can fail)',
    () => {
      const file = join(dir, 'frr-broken.conf');
      writeFileSync(file, `${renderFrrConf(firstServer(exampleSpec()))}router ospf\n frobnicate\n`);
      const r = spawnSync('vtysh', ['--dryrun', '-f', file], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
    },
  );

  itWith(
    { tools: ['nft', 'ip'], root: true },
    'nft -c accepts nftables.nft, inside a throwaway netns',
    () => {
      const spec = exampleSpec();
      const users = Array.from({ length: 300 }, (_, i) => ({
        groups: [['staff'], ['engineering', 'staff'], ['dba']][i % 3],
      }));
      const snap = snapshotWith(users, spec);
      const good = join(dir, 'nftables.nft');
      writeFileSync(good, renderNftables(firstServer(spec), compilePolicy(spec, snap.users)));
      const long = longCommentSpec();
      const longComment = join(dir, 'nftables-long-comment.nft');
      writeFileSync(longComment, renderNftables(firstServer(long), compilePolicy(long, [])));
      const prot = protectedSpec();
      const protectedFile = join(dir, 'nftables-protected.nft');
      writeFileSync(
        protectedFile,
        renderNftables(firstServer(prot), compilePolicy(prot, snap.users)),
      );
      const broken = join(dir, 'nftables-broken.nft');
      writeFileSync(
        broken,
        renderNftables(firstServer(spec), compilePolicy(spec, snap.users)).replace(
          'ct state invalid drop',
          'ct state bogus drop',
        ),
      );
      const ns = `ovf-nftchk-${process.pid}`;
      execFileSync('ip', ['netns', 'add', ns]);
      try {
        const check = (file: string) =>
          spawnSync('ip', ['netns', 'exec', ns, 'nft', '-c', '-f', file], { encoding: 'utf8' });
        const ok = check(good);
        expect({ status: ok.status, stderr: ok.stderr }).toEqual({ status: 0, stderr: '' });
        const okLong = check(longComment);
        expect({ status: okLong.status, stderr: okLong.stderr }).toEqual({ status: 0, stderr: '' });
        const okProtected = check(protectedFile);
        expect({ status: okProtected.status, stderr: okProtected.stderr }).toEqual({
          status: 0,
          stderr: '',
        });
        expect(check(broken).status).not.toBe(0);
      } finally {
        execFileSync('ip', ['netns', 'del', ns]);
      }
    },
  );
});

describe('client-connect hook under /bin/sh', () => {
  let dir: string;
  const hook = () => join(dir, 'hooks', 'client-connect');
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ovf-hook-'));
    mkdirSync(join(dir, 'hooks'));
    mkdirSync(join(dir, 'ccd'));
    writeFileSync(hook(), renderClientConnect(), { mode: 0o755 });
    const ctx = firstServer(exampleSpec());
    const users: Partial<PinnedUser>[] = [
      { name: 'alice', certSerials: ['ab12cd', '0f'] },
      { name: 'bob', certSerials: [] },
    ];
    for (const u of snapshotWith(users).users)
      writeFileSync(join(dir, 'ccd', u.name), renderCcd(ctx, u));
    writeFileSync(join(dir, 'outside'), '# cert-serial 01\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the hook as OpenVPN does: bundle dir as cwd, no PATH, the client's variables set. */
  const connect = (shell: string, env: Record<string, string>) =>
    spawnSync(shell, [hook()], { cwd: dir, env, encoding: 'utf8' }).status;

  it.each(['/bin/sh', ...(existsSync('/bin/bash') ? ['/bin/bash'] : [])])(
    'admits only a pinned serial of that very user (%s)',
    (shell) => {
      const as = (common_name: string, tls_serial_hex_0: string) =>
        connect(shell, { common_name, tls_serial_hex_0 });
      expect(as('alice', 'ab:12:cd')).toBe(0);
      expect(as('alice', '0f')).toBe(0);
      // Another certificate of the same name (an orphan, or the deleted user's).
      expect(as('alice', 'ab:12:ce')).toBe(1);
      // Prefixes, case and shapes OpenVPN never prints are no match.
      expect(as('alice', 'ab:12')).toBe(1);
      expect(as('alice', 'AB:12:CD')).toBe(1);
      expect(as('alice', 'ab:12:cd ')).toBe(1);
      expect(as('alice', '')).toBe(1);
      // A user without a certificate has no pin; a user without a ccd file is refused.
      expect(as('bob', '0f')).toBe(1);
      expect(as('carol', '0f')).toBe(1);
      // Names that would leave ccd/.
      expect(as('../outside', '01')).toBe(1);
      expect(as('..', '01')).toBe(1);
      expect(connect(shell, { tls_serial_hex_0: '0f' })).toBe(1);
    },
  );
});
