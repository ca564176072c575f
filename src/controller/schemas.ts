/**
 * JSON schemas of the controller's routes: fastify validates requests with them, serialises
 * responses with them, and the OpenAPI document is generated from them.
 */
const str = { type: 'string' } as const;
const nullableStr = { type: ['string', 'null'] } as const;
const strings = { type: 'array', items: str } as const;

export const errorSchema = {
  type: 'object',
  description: 'One line saying what went wrong (a bad field is named first: "field: problem").',
  properties: { error: str },
  required: ['error'],
} as const;

export const errorResponses = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  422: errorSchema,
  500: errorSchema,
} as const;

export const userSchema = {
  type: 'object',
  properties: {
    name: str,
    ipv4: str,
    ipv6: str,
    groups: strings,
    status: { type: 'string', enum: ['enabled', 'disabled', 'revoked'] },
    createdAt: str,
    certSerial: str,
    certNotAfter: str,
  },
  required: ['name', 'ipv4', 'ipv6', 'groups', 'status', 'createdAt'],
} as const;

export const userNameParams = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 200 } },
  required: ['name'],
} as const;

export const serverNameParams = userNameParams;

export const newUserBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    groups: strings,
    ipv4: str,
    ipv6: str,
  },
  required: ['name'],
} as const;

export const groupsBody = {
  type: 'object',
  additionalProperties: false,
  properties: { groups: strings },
  required: ['groups'],
} as const;

export const sessionSchema = {
  type: 'object',
  properties: {
    user: str,
    server: str,
    ipv4: nullableStr,
    ipv6: nullableStr,
    realAddress: str,
    since: str,
    bytesIn: { type: 'integer' },
    bytesOut: { type: 'integer' },
    reportedAt: str,
    stale: {
      type: 'boolean',
      description: 'the server has not reported for a while: this session may be gone',
    },
  },
  required: ['user', 'server', 'realAddress', 'since', 'bytesIn', 'bytesOut', 'stale'],
} as const;

export const healthSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    openvpn: { type: 'boolean' },
    routing: { type: 'boolean' },
    ruleset: { type: 'boolean' },
    draining: { type: 'boolean' },
    ok: { type: 'boolean' },
  },
  required: ['openvpn', 'routing', 'ruleset', 'draining', 'ok'],
} as const;

export const serverSchema = {
  type: 'object',
  properties: {
    name: str,
    site: str,
    draining: { type: 'boolean' },
    stale: { type: 'boolean', description: 'no report for 10 s (or never)' },
    health: { anyOf: [healthSchema, { type: 'null' }] },
    reportedAt: nullableStr,
    appliedDigest: { ...nullableStr, description: 'digest of the bundle the agent has applied' },
    currentDigest: { ...str, description: 'digest of the bundle the controller serves now' },
    upToDate: { type: 'boolean' },
    sessions: { type: 'integer' },
  },
  required: [
    'name',
    'site',
    'draining',
    'stale',
    'health',
    'reportedAt',
    'appliedDigest',
    'currentDigest',
    'upToDate',
    'sessions',
  ],
} as const;

export const auditSchema = {
  type: 'object',
  properties: {
    at: str,
    actor: str,
    action: str,
    subject: str,
    detail: { type: 'object', additionalProperties: true },
  },
  required: ['at', 'actor', 'action', 'subject'],
} as const;

export const auditQuery = {
  type: 'object',
  additionalProperties: false,
  // A string: request bodies are validated without type coercion, and query strings share it.
  properties: {
    limit: {
      type: 'string',
      pattern: '^[1-9][0-9]{0,3}$',
      description: 'how many entries, 1-9999 (default 100)',
    },
  },
} as const;

// ---- agent protocol (src/agent/protocol.ts) ----

export const pollQuery = {
  type: 'object',
  properties: {
    known: {
      type: 'string',
      maxLength: 128,
      description: 'the token of the directive the agent has (empty: none)',
    },
    server: {
      ...str,
      description: 'optional: the server the agent believes it is; must match its token',
    },
  },
} as const;

const sessionReportSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    user: { type: 'string', minLength: 1, maxLength: 64 },
    realAddress: { type: 'string', maxLength: 256 },
    ipv4: { type: 'string', format: 'ipv4' },
    ipv6: { type: 'string', format: 'ipv6' },
    since: { type: 'string', format: 'date-time', maxLength: 64 },
    bytesIn: { type: 'integer', minimum: 0 },
    bytesOut: { type: 'integer', minimum: 0 },
    clientId: { type: 'integer', minimum: 0 },
  },
  required: ['user', 'realAddress', 'since', 'bytesIn', 'bytesOut', 'clientId'],
} as const;

export const reportBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bundleDigest: { type: 'string', maxLength: 128 },
    sessions: { type: 'array', items: sessionReportSchema, maxItems: 20_000 },
    health: healthSchema,
  },
  required: ['sessions', 'health'],
} as const;

export const directiveSchema = {
  type: 'object',
  properties: {
    token: str,
    bundle: {
      type: 'object',
      properties: {
        digest: str,
        files: {
          type: 'array',
          items: {
            type: 'object',
            properties: { path: str, content: str, mode: { type: 'integer' } },
            required: ['path', 'content', 'mode'],
          },
        },
      },
      required: ['digest', 'files'],
    },
    evict: {
      type: 'array',
      items: {
        type: 'object',
        properties: { user: str, since: str },
        required: ['user', 'since'],
      },
    },
    drain: { type: 'boolean' },
  },
  required: ['token', 'bundle', 'evict', 'drain'],
} as const;
