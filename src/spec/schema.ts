/**
 * The shape of fleet.yaml. Field-level checks live here (types, formats, ranges);
 * rules that relate fields to each other live in rules.ts. The JSON Schema published in
 * schema/fleet.schema.json is generated from this file (see `npm run schema`).
 */
import { z } from 'zod';
import { parseIPv4, parseIPv6, parsePrefix } from '../core/ip.js';

const NAME = /^[a-z][a-z0-9-]{0,30}$/;
const nameField = (what: string) =>
  z
    .string()
    .regex(NAME, `${what} must be lower-case letters, digits and "-", starting with a letter`);

const ipv4 = z.string().refine((s) => parseIPv4(s) !== undefined, 'not an IPv4 address');
const ipAny = z
  .string()
  .refine((s) => parseIPv4(s) !== undefined || parseIPv6(s) !== undefined, 'not an IP address');

function prefixOf(family?: 4 | 6) {
  return z.string().superRefine((s, ctx) => {
    const r = parsePrefix(s, family);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
  });
}
const prefix4 = prefixOf(4);
const prefix6 = prefixOf(6);
const prefixAny = prefixOf();

/** Backbone interface address in `ADDRESS/LENGTH` form (host bits allowed). */
const ifaceAddress4 = z.string().superRefine((s, ctx) => {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m || parseIPv4(m[1]) === undefined || Number(m[2]) > 32 || Number(m[2]) < 8) {
    ctx.addIssue({
      code: 'custom',
      message: `"${s}" is not an IPv4 interface address like 10.0.1.2/30`,
    });
  }
});

const port = z.number().int().min(1).max(65535);
const portSpec = z.union([
  port,
  z.string().regex(/^\d{1,5}-\d{1,5}$/, 'port range must look like 8000-8100'),
]);

export const serverSchema = z.strictObject({
  name: nameField('server name').describe('Unique server name; also the certificate CN.'),
  address: ipAny.describe('Public address clients dial.'),
  backbone: ifaceAddress4.describe('Address/prefix on the datacenter (backbone) link.'),
  backboneInterface: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]{1,15}$/, 'not an interface name')
    .default('eth1')
    .describe('Interface of the backbone link; routing runs on it.'),
  routerId: ipv4.describe('Router id for OSPF/BGP.'),
});

export const siteSchema = z.strictObject({
  name: nameField('site name'),
  loadBalancer: ipAny.optional().describe('Address clients dial first for this site.'),
  servers: z.array(serverSchema).min(1, 'a site needs at least one server'),
});

const ospfSchema = z.strictObject({
  area: ipv4.default('0.0.0.0'),
  auth: z
    .strictObject({
      keyId: z.number().int().min(1).max(255).default(1),
      key: z
        .string()
        .min(8, 'OSPF key must be at least 8 characters')
        .max(16, 'OSPF MD5 keys are at most 16 characters')
        .regex(/^[!-~]+$/, 'OSPF key must be printable ASCII without spaces'),
    })
    .describe('Message-digest (MD5) authentication for OSPFv2; HMAC-SHA-256 trailer for OSPFv3.'),
  helloInterval: z.number().int().min(1).max(65535).default(1),
  deadInterval: z.number().int().min(2).max(65535).default(3),
});

const bgpNeighborSchema = z.strictObject({
  address: ipv4,
  asn: z.number().int().min(1).max(4294967295),
  password: z
    .string()
    .min(8)
    .max(80)
    .regex(/^[!-~]+$/)
    .optional(),
});

const bgpSchema = z.strictObject({
  asn: z.number().int().min(1).max(4294967295).describe('ASN of the VPN servers.'),
  neighbors: z
    .array(bgpNeighborSchema)
    .min(1)
    .describe(
      'Routers the servers peer with; a server peers with those inside its backbone prefix.',
    ),
});

const ripSchema = z.strictObject({
  auth: z
    .strictObject({
      key: z
        .string()
        .min(8)
        .max(16)
        .regex(/^[!-~]+$/),
    })
    .optional(),
});

export const routingSchema = z.discriminatedUnion('protocol', [
  z.strictObject({ protocol: z.literal('ospf'), ospf: ospfSchema }),
  z.strictObject({ protocol: z.literal('bgp'), bgp: bgpSchema }),
  z.strictObject({ protocol: z.literal('rip'), rip: ripSchema.default({}) }),
]);

export const ruleSchema = z.strictObject({
  from: nameField('group name').describe('Group whose members this rule lets through.'),
  to: nameField('network name').describe('Named network they may reach.'),
  proto: z
    .array(z.enum(['tcp', 'udp', 'icmp']))
    .min(1)
    .optional(),
  ports: z.array(portSpec).min(1).optional().describe('Destination ports (tcp/udp only).'),
  comment: z.string().max(200).optional(),
});

export const fleetSchema = z.strictObject({
  fleet: nameField('fleet name').describe('Name of the fleet; prefixes generated names.'),
  pools: z.strictObject({
    ipv4: prefix4.describe("User pool; the first address is every server's tun address."),
    ipv6: prefix6,
    quarantineDays: z
      .number()
      .int()
      .min(0)
      .max(3650)
      .default(30)
      .describe("Days a deleted user's addresses stay unused."),
  }),
  openvpn: z
    .strictObject({
      port: port.default(1194),
      proto: z.enum(['udp', 'tcp']).default('udp'),
      keepalive: z
        .strictObject({
          interval: z.number().int().min(1).max(3600).default(3),
          timeout: z.number().int().min(2).max(7200).default(10),
        })
        .default({ interval: 3, timeout: 10 }),
      handWindow: z.number().int().min(3).max(600).default(10),
      serverPollTimeout: z
        .number()
        .int()
        .min(1)
        .max(120)
        .default(1)
        .describe(
          'Seconds a client waits for a remote to answer before it tries the next one. Short on purpose: every server gives a user the same addresses, so moving on after one lost packet costs nothing, while a dead remote costs this much once more after each ping-restart.',
        ),
      dataCiphers: z
        .array(z.enum(['AES-256-GCM', 'AES-128-GCM', 'CHACHA20-POLY1305']))
        .min(1)
        .default(['AES-256-GCM', 'CHACHA20-POLY1305']),
      push: z
        .strictObject({
          dns: z.array(ipAny).default([]),
          domain: z
            .string()
            .regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i, 'not a domain name')
            .optional(),
          routes: z.array(prefixAny).default([]),
        })
        .default({ dns: [], routes: [] }),
    })
    .default({
      port: 1194,
      proto: 'udp',
      keepalive: { interval: 3, timeout: 10 },
      handWindow: 10,
      serverPollTimeout: 1,
      dataCiphers: ['AES-256-GCM', 'CHACHA20-POLY1305'],
      push: { dns: [], routes: [] },
    }),
  sites: z.array(siteSchema).min(1, 'a fleet needs at least one site'),
  routing: routingSchema,
  groups: z
    .array(
      z.strictObject({
        name: nameField('group name'),
        description: z.string().max(200).optional(),
      }),
    )
    .default([]),
  networks: z
    .array(
      z.strictObject({
        name: nameField('network name'),
        ipv4: z.array(prefix4).default([]),
        ipv6: z.array(prefix6).default([]),
      }),
    )
    .default([]),
  policy: z.array(ruleSchema).default([]),
  firewall: z
    .strictObject({
      protectServers: z
        .boolean()
        .default(false)
        .describe(
          'Default-deny input on the servers themselves: only OpenVPN, the routing protocol on the backbone interface, ICMP and allowInput get in.',
        ),
      allowInput: z
        .array(
          z.strictObject({
            proto: z.enum(['tcp', 'udp']),
            ports: z.array(portSpec).min(1),
            from: z.array(prefixAny).min(1).describe('Source prefixes allowed in.'),
          }),
        )
        .default([])
        .describe(
          'More input the servers accept when protectServers is on (e.g. SSH from an admin network).',
        ),
    })
    .default({ protectServers: false, allowInput: [] }),
  rollout: z
    .strictObject({
      strategy: z
        .enum(['rolling', 'all-at-once'])
        .default('rolling')
        .describe(
          'How a change that needs OpenVPN restarted (server.conf, server certificate, CA, tls-crypt key) reaches the servers: rolling = one server at a time (drain, restart, wait for health, undrain); all-at-once = every server restarts together and every user drops at once.',
        ),
      auto: z
        .boolean()
        .default(true)
        .describe(
          'Start a rollout as soon as such a change reaches the servers; false: only "ovpn-fleet rollout start" does.',
        ),
      drainSeconds: z
        .number()
        .int()
        .min(1)
        .max(3600)
        .default(30)
        .describe(
          'How long a draining server waits for its users to leave before it restarts anyway.',
        ),
      healthSeconds: z
        .number()
        .int()
        .min(5)
        .max(3600)
        .default(60)
        .describe(
          'How long a restarted server has to come back healthy (OpenVPN and its management interface answering, routing up) before the rollout stops there.',
        ),
    })
    .default({ strategy: 'rolling', auto: true, drainSeconds: 30, healthSeconds: 60 }),
  audit: z
    .strictObject({
      retentionDays: z
        .number()
        .int()
        .min(1)
        .max(36500)
        .default(400)
        .describe(
          'Days audit entries are kept; the controller deletes older ones at start and hourly.',
        ),
    })
    .default({ retentionDays: 400 }),
});

export type FleetSpec = z.output<typeof fleetSchema>;
export type FleetInput = z.input<typeof fleetSchema>;
export type SiteSpec = FleetSpec['sites'][number];
export type ServerSpec = SiteSpec['servers'][number];
export type RoutingSpec = FleetSpec['routing'];
export type PolicyRule = FleetSpec['policy'][number];
