import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parse } from 'yaml';
import { EXAMPLE_FLEET_YAML } from './example.js';
import { humanMessage, markDefaultMessages, schemaAt } from './messages.js';
import { validateSpec } from './validate.js';

const example = () => parse(EXAMPLE_FLEET_YAML) as Record<string, any>;
/** The lines `validate` prints for this input: `path: message`. */
const lines = (input: unknown) => validateSpec(input).errors.map((e) => `${e.path}: ${e.message}`);

describe('spec validation messages read as a person writes them', () => {
  it('a missing field is required, and says what it is for', () => {
    const input = example();
    delete input.sites[0].servers[1].name;
    delete input.pools.ipv6;
    delete input.sites[2].name;
    delete input.fleet;
    expect(lines(input)).toEqual([
      'fleet: is required: name of the fleet; prefixes generated names',
      "pools.ipv6: is required: user pool for IPv6; the first address is every server's tun address",
      'sites[0].servers[1].name: is required: unique server name; also the certificate CN',
      'sites[2].name: is required: unique site name',
    ]);
  });

  it('a missing field without a description is still required', () => {
    const schema = z.strictObject({ a: z.strictObject({ b: z.string() }) });
    const r = schema.safeParse({ a: {} }, markDefaultMessages);
    expect(humanMessage(r.error!.issues[0], { a: {} }, schema)).toBe('is required');
  });

  it('a wrong type names the type wanted, the value found, and what the field is for', () => {
    const input = example();
    input.sites[0].servers[0].routerId = 5;
    input.openvpn.handWindow = '10';
    input.openvpn.keepalive.interval = 1.5;
    input.firewall = { protectServers: 'yes' };
    input.sites[1].servers = { name: 'vpn21' };
    expect(lines(input)).toEqual([
      'openvpn.keepalive.interval: must be a whole number, not 1.5',
      'openvpn.handWindow: must be a number, not "10": a number is written without quotes',
      'sites[0].servers[0].routerId: must be text (router id for OSPF/BGP), not 5',
      "sites[1].servers: must be a list (the site's VPN servers), not a mapping",
      'firewall.protectServers: must be true or false (default-deny input on the servers themselves), not "yes"',
    ]);
  });

  it('a value outside a list of choices lists the allowed values', () => {
    const input = example();
    input.openvpn.proto = 'sctp';
    input.openvpn.dataCiphers = ['AES-256-GCM', 'BF-CBC'];
    input.policy[0].proto = ['tcp', 'gre'];
    expect(lines(input)).toEqual([
      'openvpn.proto: must be one of udp, tcp (not "sctp")',
      'openvpn.dataCiphers[1]: must be one of AES-256-GCM, AES-128-GCM, CHACHA20-POLY1305 (not "BF-CBC")',
      'policy[0].proto[1]: must be one of tcp, udp, icmp (not "gre")',
    ]);
  });

  it('the routing protocol: unknown or missing, with the protocols there are', () => {
    expect(lines({ ...example(), routing: { protocol: 'isis' } })).toEqual([
      'routing.protocol: must be one of ospf, bgp, rip (not "isis")',
    ]);
    expect(lines({ ...example(), routing: {} })).toEqual([
      'routing.protocol: is required: one of ospf, bgp, rip',
    ]);
    expect(lines({ ...example(), routing: { protocol: 'bgp' } })).toEqual([
      "routing.bgp: is required: the servers' ASN and the routers they peer with",
    ]);
  });

  it('an unknown field is named, with the fields that may be there', () => {
    const input = example();
    input.sites[0].colour = 'red';
    input.sites[1].servers[0].adress = '192.0.2.1';
    expect(lines(input)).toEqual([
      'sites[0]: unknown field "colour" (fields here: name, loadBalancer, servers)',
      'sites[1].servers[0]: unknown field "adress" (fields here: name, address, backbone, backboneInterface, routerId)',
    ]);
  });

  it('too small and too large: the limit, in the unit of the value, and what was found', () => {
    const input = example();
    input.openvpn.port = 0;
    input.pools.quarantineDays = 99999;
    input.fleet = 'a'.repeat(40);
    input.routing = { protocol: 'bgp', bgp: { asn: 65100, neighbors: [] } };
    input.policy[0].comment = 'x'.repeat(201);
    expect(lines(input)).toEqual([
      'fleet: fleet name must be lower-case letters, digits and "-", starting with a letter',
      'pools.quarantineDays: must be at most 3650 (not 99999)',
      'openvpn.port: must be at least 1 (not 0)',
      'routing.bgp.neighbors: must not be empty: routers the servers peer with; a server peers with those inside its backbone prefix',
      'policy[0].comment: must be at most 200 characters long (201 characters)',
    ]);
    const short = example();
    short.routing.ospf.auth.key = 'short';
    // The schema's own words win: they say it in the domain's terms.
    expect(lines(short)).toEqual(['routing.ospf.auth.key: OSPF key must be at least 8 characters']);
  });

  it('a bad address or prefix quotes the value', () => {
    const input = example();
    input.sites[0].servers[1].routerId = 'r1';
    input.sites[0].loadBalancer = '203.0.113.300';
    input.pools.ipv4 = '10.200.0.0/99';
    input.networks[0].ipv4 = ['10.20.0.1/24'];
    input.sites[1].servers[0].backbone = '10.255.2.1';
    expect(lines(input)).toEqual([
      'pools.ipv4: "10.200.0.0/99": prefix length 99 is longer than 32',
      'sites[0].loadBalancer: "203.0.113.300" is not an IP address',
      'sites[0].servers[1].routerId: "r1" is not an IPv4 address',
      'sites[1].servers[0].backbone: "10.255.2.1" is not an IPv4 interface address like 10.0.1.2/30',
      'networks[0].ipv4[0]: "10.20.0.1/24" has host bits set (did you mean 10.20.0.0/24?)',
    ]);
  });

  it('a document that is not a mapping at all', () => {
    expect(lines(null)).toEqual(['(root): must be a mapping (field: value), not an empty value']);
    expect(lines(['fleet'])).toEqual(['(root): must be a mapping (field: value), not a list']);
  });

  it('every problem of every kind at once, none lost', () => {
    const input = example();
    delete input.sites[0].servers[1].name;
    input.sites[0].servers[0].routerId = 5;
    input.openvpn.proto = 'sctp';
    input.sites[1].colour = 'red';
    input.pools.quarantineDays = -1;
    input.pools.ipv4 = '10.0.0.0/99';
    expect(lines(input).map((l) => l.split(':')[0])).toEqual([
      'pools.ipv4',
      'pools.quarantineDays',
      'openvpn.proto',
      'sites[0].servers[0].routerId',
      'sites[0].servers[1].name',
      'sites[1]',
    ]);
  });
});

describe('schemaAt', () => {
  it("finds a field's schema through lists, defaults and the routing protocol's choice", () => {
    const root = z.strictObject({
      routing: z.discriminatedUnion('protocol', [
        z.strictObject({ protocol: z.literal('ospf'), area: z.string().describe('the area') }),
        z.strictObject({
          protocol: z.literal('bgp'),
          peers: z.array(z.strictObject({ asn: z.number().describe('their ASN') })).default([]),
        }),
      ]),
    });
    expect(
      schemaAt(root, { routing: { protocol: 'bgp', peers: [{}] } }, ['routing', 'peers', 0, 'asn'])
        ?.description,
    ).toBe('their ASN');
    expect(
      schemaAt(root, { routing: { protocol: 'ospf' } }, ['routing', 'area'])?.description,
    ).toBe('the area');
    expect(schemaAt(root, { routing: { protocol: 'rip' } }, ['routing', 'area'])).toBeUndefined();
  });
});
