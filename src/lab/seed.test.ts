import { describe, expect, it } from 'vitest';
import { renderBundle, serverContexts } from '../render/bundle.js';
import { renderProfile } from '../render/profile.js';
import { DEFAULT_RENDER_OPTIONS } from '../render/types.js';
import { FIXED_TLS_CRYPT_KEY, bgpSpec, exampleSpec, snapshotWith } from '../testing.js';
import { SEED_CLIENT_DISCONNECT, SEED_LEARN_ADDRESS, seedBundle, seedProfile } from './seed.js';

function bundleOf(spec = exampleSpec()) {
  const ctx = serverContexts(spec, DEFAULT_RENDER_OPTIONS)[0];
  return renderBundle(ctx, snapshotWith([{ name: 'alice', groups: ['staff'] }], spec)).files;
}

const content = (files: { path: string; content: string }[], path: string) => {
  const f = files.find((x) => x.path === path);
  if (!f) throw new Error(`no ${path} in the bundle`);
  return f.content;
};

describe('seedBundle', () => {
  it('makes FRR redistribute kernel and connected routes unfiltered, in OSPFv2 and OSPFv3', () => {
    const ours = content(bundleOf(), 'frr.conf');
    expect(ours).toMatch(/redistribute kernel route-map/);
    const seed = content(seedBundle(bundleOf()), 'frr.conf');
    expect(seed).not.toMatch(/redistribute \S+ route-map/);
    const section = (name: string) => seed.split(`\n${name}\n`)[1].split('\nexit\n')[0];
    for (const router of ['router ospf', 'router ospf6']) {
      expect(section(router)).toMatch(/^ redistribute kernel$/m);
      expect(section(router)).toMatch(/^ redistribute connected$/m);
    }
  });

  it("drops BGP's outbound filter too", () => {
    const seed = content(seedBundle(bundleOf(bgpSpec())), 'frr.conf');
    expect(seed).not.toMatch(/route-map \S+ out/);
    expect(seed).not.toMatch(/redistribute \S+ route-map/);
    expect(seed).toMatch(/^ {2}redistribute connected$/m);
  });

  it("installs the seed's hooks (with the listing's missing fi) and leaves every other file alone", () => {
    const ours = bundleOf();
    const seed = seedBundle(ours);
    expect(content(seed, 'hooks/learn-address')).toBe(SEED_LEARN_ADDRESS);
    expect(content(seed, 'hooks/client-disconnect')).toBe(SEED_CLIENT_DISCONNECT);
    expect(SEED_LEARN_ADDRESS).toMatch(/^fi$/m);
    expect(SEED_LEARN_ADDRESS).toContain('ip route add "::$ifconfig_pool_remote_ip" dev $dev');
    expect(SEED_CLIENT_DISCONNECT).toContain('ip route del "$ifconfig_pool_remote_ip"');
    expect(seed.map((f) => f.path)).toEqual(ours.map((f) => f.path));
    for (const f of seed.filter((x) => !/^(hooks\/|frr\.conf$)/.test(x.path)))
      expect(f).toBe(ours.find((o) => o.path === f.path));
    expect(seed.find((f) => f.path === 'hooks/learn-address')?.mode).toBe(0o755);
  });
});

describe('seedProfile', () => {
  it('removes our failover settings (exit notification, retry and poll timeouts) and nothing else', () => {
    const profile = renderProfile({
      spec: exampleSpec(),
      user: 'alice',
      caPem: 'CA',
      certPem: 'CERT',
      keyPem: 'KEY',
      tlsCryptKey: FIXED_TLS_CRYPT_KEY,
    });
    expect(profile).toMatch(/^explicit-exit-notify/m);
    const seed = seedProfile(profile);
    expect(seed).not.toMatch(/explicit-exit-notify|connect-retry|server-poll-timeout/);
    const settings = (text: string) => text.split('\n').filter((l) => !l.startsWith('#'));
    expect(settings(profile).length - settings(seed).length).toBe(3);
    expect(seed).toMatch(/^hand-window 10$/m);
  });
});
