import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXAMPLE_FLEET_YAML } from './example.js';
import { parseSpecText, validateSpec } from './validate.js';

const example = () => parse(EXAMPLE_FLEET_YAML) as Record<string, any>;

describe('validateSpec', () => {
  it('accepts the example and fills defaults', () => {
    const v = parseSpecText(EXAMPLE_FLEET_YAML);
    expect(v.errors).toEqual([]);
    expect(v.spec?.sites.flatMap((s) => s.servers)).toHaveLength(6);
    expect(v.spec?.sites[0].servers[0].backboneInterface).toBe('eth1');
  });

  it('collects every error with its path', () => {
    const input = example();
    input.sites[1].servers[0].address = '10.200.3.4';
    input.sites[2].servers[1].name = 'vpn11';
    input.policy.push({ from: 'nobody', to: 'nowhere' });
    input.networks.push({ name: 'clash', ipv4: ['10.20.0.128/25'] });
    const v = validateSpec(input);
    expect(v.spec).toBeUndefined();
    const lines = v.errors.map((e) => `${e.path}: ${e.message}`);
    expect(lines).toEqual(
      expect.arrayContaining([
        'sites[1].servers[0].address: 10.200.3.4 is inside the user pool 10.200.0.0/16',
        'sites[2].servers[1].name: duplicate server name "vpn11" (also at sites[0].servers[0].name)',
        'policy[6].from: unknown group "nobody"',
        'policy[6].to: unknown network "nowhere"',
        'networks[2].ipv4[0]: 10.20.0.128/25 overlaps 10.20.0.0/24 at networks[0].ipv4[0]',
      ]),
    );
  });

  it('refuses a CA rollover window shorter than the switch, a user certificate and the restart', () => {
    const input = example();
    input.pki = { caRolloverBeforeDays: 500, caSwitchAfterDays: 200 };
    const v = validateSpec(input);
    expect(v.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      "pki.caRolloverBeforeDays: is 500: a rollover needs at least 572 days before the CA expires (caSwitchAfterDays 200 + a user certificate's 365 days + 7 days for the servers' restart)",
    ]);
    input.pki = {};
    expect(validateSpec(input).spec?.pki).toEqual({
      renewBeforeDays: 30,
      serverRenewBeforeDays: 60,
      caRolloverBeforeDays: 730,
      caSwitchAfterDays: 30,
    });
  });

  it('names schema errors by path', () => {
    const input = example();
    input.pools.ipv4 = '10.200.0.1/16';
    input.sites[0].servers[1].routerId = 'r1';
    input.sites[0].colour = 'red';
    const v = validateSpec(input);
    const lines = v.errors.map((e) => `${e.path}: ${e.message}`);
    expect(lines).toContain(
      'pools.ipv4: "10.200.0.1/16" has host bits set (did you mean 10.200.0.0/16?)',
    );
    expect(lines).toContain('sites[0].servers[1].routerId: "r1" is not an IPv4 address');
    expect(lines).toContain(
      'sites[0]: unknown field "colour" (fields here: name, loadBalancer, servers)',
    );
  });

  it('refuses overlapping pools and pools too small for the users', () => {
    const input = example();
    input.networks[0].ipv4 = ['10.200.128.0/17'];
    input.pools.ipv6 = 'fd00:1::/120';
    const v = validateSpec(input, { addressesHeld: 300 });
    const lines = v.errors.map((e) => `${e.path}: ${e.message}`);
    expect(lines).toContain(
      'networks[0].ipv4[0]: 10.200.128.0/17 overlaps 10.200.0.0/16 at pools.ipv4',
    );
    expect(lines).toContain(
      'pools.ipv6: pool holds 254 users but 300 addresses are assigned or quarantined',
    );
  });

  it('reports YAML syntax errors with a line', () => {
    const v = parseSpecText('fleet: a\nsites: [\n');
    expect(v.errors[0].path).toMatch(/^line \d+$/);
  });

  it('requires a BGP neighbour on every server backbone', () => {
    const input = example();
    input.routing = {
      protocol: 'bgp',
      bgp: { asn: 65100, neighbors: [{ address: '10.255.1.1', asn: 65000 }] },
    };
    const v = validateSpec(input);
    expect(v.errors.map((e) => e.path)).toEqual([
      'sites[0].servers[1].backbone',
      'sites[1].servers[0].backbone',
      'sites[1].servers[1].backbone',
      'sites[2].servers[0].backbone',
      'sites[2].servers[1].backbone',
    ]);
  });

  it('refuses ports on a rule that also allows icmp (th dport would match the ICMP checksum)', () => {
    const input = example();
    input.policy[0].proto = ['tcp', 'icmp'];
    const v = validateSpec(input);
    expect(v.errors).toEqual([
      { path: 'policy[0].proto', message: 'icmp has no ports: put icmp in a rule of its own' },
    ]);
  });

  it("warns about the example's placeholder routing key and about short ones, without refusing", () => {
    const v = parseSpecText(EXAMPLE_FLEET_YAML);
    expect(v.spec).toBeDefined();
    expect(v.warnings).toEqual([
      {
        path: 'routing.ospf.auth.key',
        message: 'is a placeholder: set a random secret of your own',
      },
    ]);

    const strong = example();
    strong.routing.ospf.auth.key = 'q8#Vz1!pL0w9rT';
    expect(validateSpec(strong).warnings).toEqual([]);

    const rip = example();
    rip.routing = { protocol: 'rip', rip: { auth: { key: 'CHANGEME-rip' } } };
    expect(validateSpec(rip).warnings.map((w) => w.path)).toEqual(['routing.rip.auth.key']);

    const bgp = example();
    bgp.sites = [bgp.sites[0]];
    bgp.sites[0].servers = [bgp.sites[0].servers[0]];
    bgp.routing = {
      protocol: 'bgp',
      bgp: {
        asn: 65100,
        neighbors: [
          { address: '10.255.1.1', asn: 65000, password: 'hunter22' },
          { address: '10.255.1.3', asn: 65000, password: 'a-long-random-secret' },
          { address: '10.255.1.3', asn: 65001 },
        ],
      },
    };
    const warned = validateSpec(bgp);
    expect(warned.errors).toEqual([]);
    expect(warned.warnings).toEqual([
      {
        path: 'routing.bgp.neighbors[0].password',
        message: 'is short (8 characters): use at least 12',
      },
    ]);
  });
});

describe('OSPFv3 authentication and the FRR version', () => {
  const strongOspf = (ospf: Record<string, unknown>, frrVersion?: string) => {
    const input = example();
    input.routing = {
      protocol: 'ospf',
      ...(frrVersion ? { frrVersion } : {}),
      ospf: { auth: { keyId: 1, key: 'q8#Vz1!pL0w9rT' }, ...ospf },
    };
    return validateSpec(input);
  };

  it('warns about the trailer on FRR before 9.1 (also when the field is left out), naming the field', () => {
    const left = strongOspf({});
    expect(left.errors).toEqual([]);
    expect(left.warnings).toHaveLength(1);
    expect(left.warnings[0].path).toBe('routing.ospf.ipv6Auth');
    expect(left.warnings[0].message).toMatch(
      /FRR 8\.4 \(routing\.frrVersion\).*#15800.*BIRD, IOS-XR or FRR 9\.1\+.*IPv6.*\{ type: none \}/,
    );
    expect(strongOspf({ ipv6Auth: { type: 'trailer' } }, '8.4.4').warnings).toHaveLength(1);
    expect(strongOspf({ ipv6Auth: { type: 'trailer' } }, '9.0.1').warnings).toHaveLength(1);
  });

  it('does not warn without the trailer, or with FRR 9.1 and later', () => {
    expect(strongOspf({ ipv6Auth: { type: 'none' } }).warnings).toEqual([]);
    expect(strongOspf({ ipv6Auth: { type: 'trailer' } }, '9.1').warnings).toEqual([]);
    expect(strongOspf({}, '10.2.1').warnings).toEqual([]);
  });

  it('chooses the trailer key apart from OSPFv2, and checks its strength too', () => {
    const v = strongOspf({ ipv6Auth: { type: 'trailer', keyId: 9, key: 'short-key' } }, '10.2');
    expect(v.warnings).toEqual([
      { path: 'routing.ospf.ipv6Auth.key', message: 'is short (9 characters): use at least 12' },
    ]);
    const bad = strongOspf({ ipv6Auth: { type: 'trailer', key: 'has space' } });
    expect(bad.errors.map((e) => e.path)).toEqual(['routing.ospf.ipv6Auth.key']);
  });

  it('asks for the FRR version in quotes (unquoted YAML makes 10.10 the number 10.1)', () => {
    const v = parseSpecText(EXAMPLE_FLEET_YAML.replace('frrVersion: "8.4"', 'frrVersion: 10.10'));
    expect(v.errors).toEqual([
      {
        path: 'routing.frrVersion',
        message:
          'write the FRR version in quotes, like "8.4" (unquoted, YAML reads it as a number)',
      },
    ]);
  });

  it('the example runs OSPFv3 without the trailer: it works with any datacenter router', () => {
    const v = parseSpecText(EXAMPLE_FLEET_YAML);
    expect(v.spec?.routing).toMatchObject({
      protocol: 'ospf',
      frrVersion: '8.4',
      ospf: { ipv6Auth: { type: 'none' } },
    });
    expect(v.warnings.map((w) => w.path)).not.toContain('routing.ospf.ipv6Auth');
  });
});
