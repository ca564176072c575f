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
    // Every reason names the value but the one about the length: say which prefix it means.
    if (!r.ok)
      ctx.addIssue({
        code: 'custom',
        message: r.reason.includes('"') ? r.reason : `"${s}": ${r.reason}`,
      });
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
  name: nameField('site name').describe('Unique site name.'),
  loadBalancer: ipAny.optional().describe('Address clients dial first for this site.'),
  servers: z
    .array(serverSchema)
    .min(1, 'a site needs at least one server')
    .describe("The site's VPN servers."),
});

const ospfKeyId = z.number().int().min(1).max(255);

/**
 * OSPFv3's authentication, chosen apart from OSPFv2's: the RFC 7166 trailer (HMAC-SHA-256) is
 * computed wrongly by FRR before 9.1 (a byte-order bug, FRR issue #15800, fixed in commit
 * 8a23a83eb6), so Debian 12's FRR 8.4 with it never forms an adjacency with BIRD, IOS-XR or
 * FRR >= 9.1, while OSPFv2's MD5 works with all of them. See the ospf6TrailerOnOldFrr warning.
 */
const ospf6AuthSchema = z
  .discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('none').describe('No OSPFv3 authentication.'),
    }),
    z.strictObject({
      type: z
        .literal('trailer')
        .describe('RFC 7166 authentication trailer, HMAC-SHA-256 (FRR >= 9.1 on the servers).'),
      keyId: ospfKeyId.optional().describe('Key id; default: routing.ospf.auth.keyId.'),
      key: z
        .string()
        .min(8, 'OSPFv3 key must be at least 8 characters')
        .max(64, 'OSPFv3 trailer keys are at most 64 characters')
        .regex(/^[!-~]+$/, 'OSPFv3 key must be printable ASCII without spaces')
        .optional()
        .describe('Key; default: routing.ospf.auth.key.'),
    }),
  ])
  .describe(
    "OSPFv3 authentication: none, or the RFC 7166 trailer. Left out: the trailer with OSPFv2's key id and key (as before this field existed). FRR before 9.1 computes the trailer wrongly and forms no adjacency with BIRD, IOS-XR or FRR >= 9.1: `validate` warns.",
  );

const ospfSchema = z.strictObject({
  area: ipv4.default('0.0.0.0'),
  auth: z
    .strictObject({
      keyId: ospfKeyId.default(1),
      key: z
        .string()
        .min(8, 'OSPF key must be at least 8 characters')
        .max(16, 'OSPF MD5 keys are at most 16 characters')
        .regex(/^[!-~]+$/, 'OSPF key must be printable ASCII without spaces'),
    })
    .describe('Message-digest (MD5) authentication for OSPFv2.'),
  ipv6Auth: ospf6AuthSchema.optional(),
  helloInterval: z.number().int().min(1).max(65535).default(1),
  deadInterval: z.number().int().min(2).max(65535).default(3),
});

const bgpNeighborSchema = z.strictObject({
  address: ipv4.describe("The router's address on a server's backbone link."),
  asn: z.number().int().min(1).max(4294967295).describe("The router's ASN."),
  password: z
    .string()
    .min(8)
    .max(80)
    .regex(/^[!-~]+$/, 'not printable ASCII without spaces')
    .optional()
    .describe('TCP-MD5 password of the session.'),
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
        .regex(/^[!-~]+$/, 'not printable ASCII without spaces')
        .describe('RIP MD5 authentication key.'),
    })
    .optional(),
});

/**
 * The servers' FRR release. Rendered into frr.conf's `frr version` line and checked against
 * what needs a newer FRR (the OSPFv3 trailer): declared here, not probed, because validate and
 * render run anywhere (CI, a laptop, the controller host), rarely on a VPN server.
 */
const frrVersion = z
  .string({
    // Unquoted, YAML reads 8.4 as a number (and 10.10 as 10.1): say so instead of "expected string".
    error: (issue) =>
      issue.input === undefined
        ? undefined
        : 'write the FRR version in quotes, like "8.4" (unquoted, YAML reads it as a number)',
  })
  .regex(/^\d{1,3}\.\d{1,3}(\.\d{1,3})?$/, 'FRR version must look like 8.4 or 10.2.1')
  .default('8.4')
  .describe(
    "FRR release on the VPN servers (`/usr/lib/frr/zebra --version`); default 8.4, Debian 12's.",
  );

export const routingSchema = z.discriminatedUnion('protocol', [
  z.strictObject({
    protocol: z.literal('ospf'),
    frrVersion,
    ospf: ospfSchema.describe('OSPF area, authentication and timers.'),
  }),
  z.strictObject({
    protocol: z.literal('bgp'),
    frrVersion,
    bgp: bgpSchema.describe("The servers' ASN and the routers they peer with."),
  }),
  z.strictObject({ protocol: z.literal('rip'), frrVersion, rip: ripSchema.default({}) }),
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

/**
 * A duration as people write it in fleet.yaml: `90s`, `30m`, `12h`, `7d`, or a number of
 * seconds. Parsed to seconds, which is what OpenVPN's auth-gen-token takes.
 */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text > 0 ? text : undefined;
  const m = /^(\d{1,7})(s|m|h|d)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return n > 0 ? n : undefined;
}

const duration = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  if (parseDuration(v) === undefined)
    ctx.addIssue({
      code: 'custom',
      message: `"${v}" is not a duration like 12h, 30m, 7d or a number of seconds`,
    });
});

const httpsUrl = z.string().superRefine((s, ctx) => {
  let url: URL | undefined;
  try {
    url = new URL(s);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== 'https:' || url.hash || url.search)
    ctx.addIssue({
      code: 'custom',
      message: `"${s}" is not an https URL without query or fragment (the identity provider's issuer)`,
    });
});

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

const absolutePath = z
  .string()
  .regex(/^\/[^\0]*$/, 'must be an absolute path')
  .max(4096);

/**
 * Connect-time authentication (opt-in: a fleet without `auth` renders exactly as before). With
 * it every connect is decided by the agent on OpenVPN's management interface
 * (management-client-auth): certificate-only users at once, SSO and TOTP users after their
 * sign-in, and a reconnect with a valid auth-gen-token without a new sign-in on any server.
 */
export const authSchema = z
  .strictObject({
    sso: z
      .strictObject({
        issuer: httpsUrl.describe("The OpenID provider's issuer URL (https)."),
        clientId: z.string().min(1).max(256).describe('The client id registered at the provider.'),
        publicUrl: z
          .url({ protocol: /^https?$/, error: 'is not an http(s) URL' })
          .max(2048)
          .refine(
            (u) => {
              const url = new URL(u);
              return url.protocol === 'https:' || LOOPBACK_HOSTS.has(url.hostname);
            },
            {
              // The sign-in's cookie and the provider's code travel through it.
              error: 'must be https (plain http only on loopback, for tests)',
            },
          )
          .describe(
            "The controllers' URL as users' browsers reach it (https://vpn.example.com): the client is sent to its /sso/start page, and the provider back to its /sso/callback (register that redirect URI at the provider).",
          ),
        userClaim: z
          .string()
          .min(1)
          .max(128)
          .default('preferred_username')
          .describe(
            'The claim that must equal the VPN user name (the certificate\'s name); "email": the local part of a verified address, which needs allowedDomains.',
          ),
        caFile: absolutePath
          .optional()
          .describe(
            "PEM file of CAs trusted for the provider's HTTPS besides the system's (a provider behind a company CA).",
          ),
        clientSecretFile: absolutePath.describe(
          "File holding the client secret (on the controller's host; never in fleet.yaml).",
        ),
        allowedGroups: z
          .array(z.string().min(1).max(256))
          .default([])
          .describe('Only members of one of these provider groups may connect (empty: any).'),
        allowedDomains: z
          .array(z.string().regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i, 'not a domain name'))
          .default([])
          .describe('Only e-mail addresses in these domains may connect (empty: any).'),
        groupsClaim: z
          .string()
          .min(1)
          .max(128)
          .default('groups')
          .describe('The ID token claim that lists the user’s groups.'),
        groupMap: z
          .record(z.string().min(1).max(256), nameField('group name'))
          .default({})
          .describe(
            "Provider group → our group. With any entry, a sign-in's mapped groups replace the user's own in the firewall policy until the next sign-in (none mapped: the user's own stay); the server connected to applies them before letting the client in.",
          ),
      })
      .optional()
      .describe('Sign in with the identity provider (OIDC) when connecting.'),
    totp: z
      .strictObject({
        groups: z
          .union([z.literal('all'), z.array(nameField('group name')).min(1)])
          .describe('Which of our groups must answer a TOTP code at connect, or "all" users.'),
      })
      .optional()
      .describe('A TOTP code as second factor, asked at connect (CR_TEXT).'),
    token: z
      .strictObject({
        lifetime: duration
          .default('12h')
          .describe(
            'How long a sign-in lets a user reconnect (to any server) without signing in again.',
          ),
      })
      .default({ lifetime: '12h' }),
    pendingSeconds: z
      .number()
      .int()
      .min(30)
      .max(1800)
      .default(180)
      .describe(
        'How long a client is held for its sign-in or code (OpenVPN caps it at half of reneg-sec, 1800 s).',
      ),
  })
  .describe(
    'Connect-time authentication: SSO, TOTP and the roaming token. Without it, certificates alone, as before.',
  );

export const fleetSchema = z.strictObject({
  fleet: nameField('fleet name').describe('Name of the fleet; prefixes generated names.'),
  pools: z
    .strictObject({
      ipv4: prefix4.describe("User pool; the first address is every server's tun address."),
      ipv6: prefix6.describe(
        "User pool for IPv6; the first address is every server's tun address.",
      ),
      quarantineDays: z
        .number()
        .int()
        .min(0)
        .max(3650)
        .default(30)
        .describe("Days a deleted user's addresses stay unused."),
    })
    .describe('The address pools every user gets one IPv4 and one IPv6 address from, for life.'),
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
  sites: z
    .array(siteSchema)
    .min(1, 'a fleet needs at least one site')
    .describe('Datacenters and their VPN servers.'),
  routing: routingSchema.describe(
    "How the servers announce users' host routes to the datacenter: protocol ospf, bgp or rip.",
  ),
  groups: z
    .array(
      z.strictObject({
        name: nameField('group name').describe('Group name the policy refers to.'),
        description: z.string().max(200).optional(),
      }),
    )
    .default([]),
  networks: z
    .array(
      z.strictObject({
        name: nameField('network name').describe('Network name the policy refers to.'),
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
  pki: z
    .strictObject({
      renewBeforeDays: z
        .number()
        .int()
        .min(1)
        .max(180)
        .default(30)
        .describe(
          "Days before a user's certificate expires that the controller signs the next one; the old one stays valid until it expires, so the user has this long to download the new profile.",
        ),
      serverRenewBeforeDays: z
        .number()
        .int()
        .min(1)
        .max(400)
        .default(60)
        .describe(
          "Days before a server's certificate expires that the controller signs the next one; the server picks it up with a rolling restart.",
        ),
      caRolloverBeforeDays: z
        .number()
        .int()
        .min(450)
        .max(3000)
        .default(730)
        .describe(
          'Days before the CA expires that the controller adds the next CA to the trust bundle (a rollover); it must cover the switch lead time, a user certificate lifetime (365 days) and the server rotation after it.',
        ),
      caSwitchAfterDays: z
        .number()
        .int()
        .min(1)
        .max(365)
        .default(30)
        .describe(
          'Days a new CA is only trusted (every server and every new profile carry it) before it signs new certificates; `pki ca switch` switches earlier.',
        ),
    })
    .default({
      renewBeforeDays: 30,
      serverRenewBeforeDays: 60,
      caRolloverBeforeDays: 730,
      caSwitchAfterDays: 30,
    })
    .describe('Certificate lifecycle: renewal windows and CA rollover timing.'),
  auth: authSchema.optional(),
});

export type FleetSpec = z.output<typeof fleetSchema>;
export type FleetInput = z.input<typeof fleetSchema>;
export type SiteSpec = FleetSpec['sites'][number];
export type ServerSpec = SiteSpec['servers'][number];
export type RoutingSpec = FleetSpec['routing'];
export type PolicyRule = FleetSpec['policy'][number];
export type OspfSpec = Extract<RoutingSpec, { protocol: 'ospf' }>['ospf'];
export type AuthSpec = NonNullable<FleetSpec['auth']>;
