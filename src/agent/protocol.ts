/**
 * The wire contract between the controller and the agents (JSON over HTTP). One place, so the
 * two sides cannot drift apart.
 *
 *   agent → GET  /v1/agent/poll?known=TOKEN   long-poll: answers at once when the controller's
 *                                             directive for this server differs from TOKEN,
 *                                             else waits up to POLL_WAIT_MS and answers 204
 *   agent → POST /v1/agent/report             the server's live sessions and health
 *
 * Agents authenticate with `Authorization: Bearer <server token>` and can read only their own
 * server's directive and report only their own server's sessions.
 */
import type { RenderedFile } from '../render/types.js';

export const POLL_WAIT_MS = 25_000;

/** One live OpenVPN session, as the server's management interface reports it. */
export interface SessionReport {
  user: string;
  /** Where the client connects from (`ADDR:PORT`). */
  realAddress: string;
  ipv4?: string;
  ipv6?: string;
  /** When the session started (ISO 8601). */
  since: string;
  bytesIn: number;
  bytesOut: number;
  /** OpenVPN's client id, for client-kill. */
  clientId: number;
}

export interface ServerHealth {
  openvpn: boolean;
  routing: boolean;
  ruleset: boolean;
  draining: boolean;
  /** openvpn && routing && ruleset && !draining: what load balancers act on. */
  ok: boolean;
}

export interface AgentReport {
  /** Digest of the bundle the agent has applied (undefined before the first apply). */
  bundleDigest?: string;
  sessions: SessionReport[];
  health: ServerHealth;
}

/** What the controller wants one server to do. */
export interface Directive {
  /** Changes whenever anything below changes; the agent sends it back as `known`. */
  token: string;
  bundle: { digest: string; files: RenderedFile[] };
  /**
   * Sessions to end because the same user has a newer session on another server: kill the
   * local session of `user` if it started at or before `since`.
   */
  evict: { user: string; since: string }[];
  /** Take no new users and move the connected ones to their next remote. */
  drain: boolean;
}
