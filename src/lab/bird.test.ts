import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FleetSpec } from '../spec/schema.js';
import { bgpSpec, exampleSpec, itNeeds, ripSpec, specWith } from '../testing.js';
import { birdRoutersRefusal, renderBirdConf } from './bird.js';
import { planLab } from './plan.js';

const LOG = '/tmp/lab/bird.log';
const render = (spec: FleetSpec, who: 'core' | 'r-dc1') => {
  const plan = planLab(spec, 'ovt');
  return renderBirdConf(spec, plan, `ovt-${who}`, LOG);
};

const trailerSpec = () =>
  specWith((input) => {
    input.routing = {
      protocol: 'ospf',
      ospf: {
        auth: { keyId: 3, key: 'md5-secret-1' },
        ipv6Auth: { type: 'trailer', keyId: 4, key: 'sha-secret-22' },
      },
    };
  });

describe('renderBirdConf', () => {
  it('OSPF: v2 with MD5 and v3 without the trailer on every router link, point-to-point with the fleet timers', () => {
    const conf = render(exampleSpec(), 'r-dc1');
    expect(conf).toContain('router id 10.254.0.2;');
    expect(conf).toContain(
      'interface "core0", "s0", "s1" { type ptp; hello 1; dead 3; authentication cryptographic; password "change-me-ospf" { id 1; algorithm keyed md5; }; };',
    );
    expect(conf).toContain(
      'interface "core0", "s0", "s1" { type ptp; hello 1; dead 3; authentication none; };',
    );
    // Site routers announce nothing of their own; the core announces its connected networks.
    expect(conf).toContain('ipv4 { import all; export none; };');
    expect(render(exampleSpec(), 'core')).toContain(
      'ipv6 { import all; export where source = RTS_DEVICE; };',
    );
  });

  it('OSPFv3 carries the trailer (HMAC-SHA-256, its own key id) when the spec asks for it', () => {
    const conf = render(trailerSpec(), 'r-dc1');
    expect(conf).toContain('password "md5-secret-1" { id 3; algorithm keyed md5; }');
    expect(conf).toContain('password "sha-secret-22" { id 4; algorithm hmac sha256; }');
  });

  it('BGP: a site router peers with its servers (TCP-MD5 from the spec) and the core, IPv6 with a v6 next hop', () => {
    const conf = render(bgpSpec(), 'r-dc1');
    expect(conf).toMatch(
      /protocol bgp server_vpn11 \{\n {2}local 10\.255\.1\.1 as 65001;\n {2}neighbor 10\.255\.1\.2 as 65100;\n {2}password "bgp-secret-1";/,
    );
    expect(conf).toMatch(
      /protocol bgp core \{\n {2}local 10\.254\.0\.2 as 65001;\n {2}neighbor 10\.254\.0\.1 as 64999;/,
    );
    expect(conf).toContain('next hop address fd00:255:0:0::1;');
    const core = render(bgpSpec(), 'core');
    expect(core.match(/^protocol bgp /gm)).toHaveLength(3);
    expect(core).not.toContain('password');
  });

  it('refuses RIP in one clear line', () => {
    expect(() => render(ripSpec(), 'core')).toThrow(/BIRD routers speak OSPF and BGP/);
  });

  const dir = mkdtempSync(join(tmpdir(), 'ovpn-fleet-bird-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  itNeeds(
    existsSync('/usr/sbin/bird') ? undefined : 'bird (Debian bird2) not installed',
    'bird -p parses every router config it renders',
    () => {
      for (const [name, spec] of [
        ['ospf', exampleSpec()],
        ['ospf-trailer', trailerSpec()],
        ['bgp', bgpSpec()],
      ] as const) {
        for (const who of ['core', 'r-dc1'] as const) {
          const file = join(dir, `${name}-${who}.conf`);
          writeFileSync(file, render(spec, who).replace(LOG, join(dir, 'bird.log')));
          const r = spawnSync('bird', ['-p', '-c', file], { encoding: 'utf8' });
          expect({ file, status: r.status, stderr: r.stderr }).toMatchObject({ status: 0 });
        }
      }
    },
  );
});

describe('birdRoutersRefusal', () => {
  it("refuses, in one line naming the field, FRR 8.4's OSPFv3 trailer (BIRD refuses it) and RIP", () => {
    expect(birdRoutersRefusal(trailerSpec(), '8.4.4')).toMatch(
      /^the lab's servers run FRR 8\.4\.4, whose OSPFv3 trailer BIRD refuses .*routing\.ospf\.ipv6Auth/,
    );
    expect(birdRoutersRefusal(trailerSpec(), '9.1.0')).toBeUndefined();
    expect(birdRoutersRefusal(exampleSpec(), '8.4.4')).toBeUndefined();
    expect(birdRoutersRefusal(bgpSpec(), '8.4.4')).toBeUndefined();
    expect(birdRoutersRefusal(ripSpec(), '8.4.4')).toMatch(/--routers frr for RIP/);
  });
});
