/**
 * The contract between the controller and the agents (JSON over HTTP).
 *
 *   agent → GET  /v1/agent/poll?known=TOKEN   long-poll: answers at once when the controller's
 *                                             directive for this server differs from TOKEN,
 *                                             else waits up to POLL_WAIT_MS and answers 204
 *   agent → POST /v1/agent/report             the server's live sessions and health
 *
 * Agents authenticate with `Authorization: Bearer <server token>` and can read only their own
 * server's directive and report only their own server's sessions. The controller validates
 * reports with these schemas, the agent validates directives with them.
 *
 * Both requests carry the agent protocol version in the `Ovpn-Fleet-Agent-Protocol` header (see
 * AGENT_PROTOCOL); the controller answers this version and the one before it, so the agents of
 * a fleet can be upgraded after their controller, one server at a time.
 */
import { z } from 'zod';
import { HostRoutes } from './host-routes.js';
import { AgentRestart } from './rollout.js';
import { ServerHealth } from './servers.js';

export const POLL_WAIT_MS = 25_000;

/**
 * The version of this contract (the poll, the directive, the report) an agent speaks, sent in
 * AGENT_PROTOCOL_HEADER on both requests and echoed in the controller's answers.
 *
 *   1  ovpn-fleet 0.1.0: no header (an agent that sends none speaks 1)
 *   2  the header; the same bodies as 1
 *
 * Optional fields may come and go within a version: the agent strips what it does not know and
 * the report schema takes fields an older agent leaves out as optional. A change an agent of
 * the previous version would misread (a field removed, renamed or retyped, a new obligation)
 * needs the next number, and the controller must still answer OLDEST_AGENT_PROTOCOL the old way.
 */
export const AGENT_PROTOCOL = 2;
/** The oldest agent protocol the controller answers: the previous release's. */
export const OLDEST_AGENT_PROTOCOL = 1;
/** HTTP header names are case-insensitive; node hands them over lower-cased. */
export const AGENT_PROTOCOL_HEADER = 'ovpn-fleet-agent-protocol';
/** The headers every agent request carries besides its token. */
export const agentProtocolHeaders = (): Record<string, string> => ({
  [AGENT_PROTOCOL_HEADER]: String(AGENT_PROTOCOL),
});

/** The agent requests' headers, as the OpenAPI document shows them (other headers pass). */
export const AgentRequestHeaders = z.object({
  [AGENT_PROTOCOL_HEADER]: z
    .string()
    .regex(/^[0-9]{1,6}$/)
    .optional()
    .describe(
      `the agent protocol version the agent speaks (absent: 1); the controller answers ${OLDEST_AGENT_PROTOCOL} to ${AGENT_PROTOCOL} and refuses others with 400`,
    ),
});

/**
 * The protocol version a request's header names, or why the controller will not answer it (the
 * controller says it as `ovpn-fleet-agent-protocol: <why>`, status 400): unreadable, older than it still speaks (upgrade the agent), or newer than it knows
 * (upgrade the controller first).
 */
export function agentProtocolOf(
  header: string | string[] | undefined,
): { version: number } | { refused: string } {
  if (header === undefined) return { version: 1 };
  const range = `this controller speaks ${OLDEST_AGENT_PROTOCOL} to ${AGENT_PROTOCOL}`;
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!/^[0-9]{1,6}$/.test(text))
    return { refused: `"${text.slice(0, 40)}" is not a version number` };
  const version = Number(text);
  if (version < OLDEST_AGENT_PROTOCOL)
    return {
      refused: `agent protocol ${version} is too old (${range}): upgrade the agent`,
    };
  if (version > AGENT_PROTOCOL)
    return {
      refused: `agent protocol ${version} is newer than this controller (${range}): upgrade the controller first`,
    };
  return { version };
}

/** One live OpenVPN session, as the server's management interface reports it. */
export const SessionReport = z.strictObject({
  user: z.string().min(1).max(64),
  /** Where the client connects from (`ADDR:PORT`). */
  realAddress: z.string().max(256),
  ipv4: z.ipv4().optional(),
  ipv6: z.ipv6().optional(),
  /** When the session started (ISO 8601). */
  since: z.iso.datetime({ offset: true }).max(64),
  bytesIn: z.number().int().min(0),
  bytesOut: z.number().int().min(0),
  /** OpenVPN's client id, for client-kill. */
  clientId: z.number().int().min(0),
});
export type SessionReport = z.infer<typeof SessionReport>;

/**
 * What makes two reported sessions the same session: the same user, started at the same second,
 * with the same OpenVPN client id (a reconnect within one second gets a new id). The agent, the
 * controller and the store all compare sessions by this.
 */
export function sessionId(s: Pick<SessionReport, 'user' | 'since' | 'clientId'>): string {
  return `${s.user}\0${s.since}\0${s.clientId}`;
}

export const AgentReport = z.strictObject({
  /** Digest of the bundle the agent has applied (absent before the first apply). */
  bundleDigest: z.string().max(128).optional(),
  // 20,000 sessions are ~5 MB; the route's body limit is set to fit them.
  sessions: z.array(SessionReport).max(20_000),
  /**
   * True when the agent could not read OpenVPN's sessions (management socket down, OpenVPN
   * restarting): `sessions` is then not the truth, and the controller keeps its last table for
   * this server and shows it stale instead of taking everyone as disconnected.
   */
  sessionsUnknown: z.boolean().optional(),
  health: ServerHealth,
  /** The host routes the server holds (absent from agents older than this field). */
  routes: HostRoutes.optional(),
  /**
   * OpenVPN restarts (see rollout.ts). Sent only to a controller whose directives carry
   * `restart`: an older controller's strict schema would refuse the whole report.
   */
  restart: AgentRestart.optional(),
});
export type AgentReport = z.infer<typeof AgentReport>;

export const PollQuery = z.object({
  known: z
    .string()
    .max(128)
    .optional()
    .describe('the token of the directive the agent has (empty: none)'),
  server: z
    .string()
    .optional()
    .describe('optional: the server the agent believes it is; must match its token'),
});
export type PollQuery = z.infer<typeof PollQuery>;

export const BundleFile = z.object({
  path: z.string(),
  content: z.string(),
  /** Octal file mode: 0o600 for secrets, 0o755 for hooks, 0o644 otherwise. */
  mode: z.number().int().min(0).max(0o777),
});
export type BundleFile = z.infer<typeof BundleFile>;

/** What the controller wants one server to do. */
export const Directive = z.object({
  /** Changes whenever anything below changes; the agent sends it back as `known`. */
  token: z.string(),
  bundle: z.object({
    // It goes into VERSION and log lines: printable, no spaces, bounded.
    digest: z.string().regex(/^[\x21-\x7e]{1,200}$/, 'not a printable string'),
    files: z.array(BundleFile),
  }),
  /**
   * Sessions to end: kill the local session of `user` if it started at or before `since` (and,
   * when given, has OpenVPN client id `clientId`). Why: a newer session of the same user on
   * another server, or (`reason: 'operator'`) an operator ended it. Operator kills ride in this
   * list rather than in a list of their own so that the agent ends them through the one path it
   * has for evictions, and an agent older than `reason` (which strips unknown keys) still ends
   * them.
   */
  evict: z.array(
    z.object({
      user: z.string(),
      since: z.string(),
      clientId: z.number().int().min(0).optional(),
      reason: z.enum(['newer-session', 'operator']).optional(),
    }),
  ),
  /** Take no new users and move the connected ones to their next remote. */
  drain: z.boolean(),
  /**
   * The restart generation this server may reach: the agent restarts OpenVPN when this is
   * above the generation it last carried out, and only then, even if files in RESTART_FILES
   * changed (those wait, reported as `restart.pending`, for the controller's rollout to reach
   * this server). Absent (a controller older than rollouts): the agent restarts OpenVPN as soon
   * as such a file changes, as it always did.
   */
  restart: z.number().int().min(0).optional(),
});
export type Directive = z.infer<typeof Directive>;
export type Eviction = Directive['evict'][number];
