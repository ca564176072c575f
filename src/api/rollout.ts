/**
 * Rolling restarts: `/v1/rollout…`, and the bundle files whose change needs OpenVPN restarted.
 *
 * A change to one of RESTART_FILES cannot reach a running OpenVPN without a restart (it reads
 * them once, at start or SIGHUP; crl.pem and ccd/ are re-read by themselves). The controller
 * rolls such a change out one server at a time: drain, restart, wait for health, undrain, next.
 * An agent writes the new files at once but restarts OpenVPN only when its directive's
 * `restart` generation moves past the one it last carried out (see Directive in agent.ts).
 */
import { z } from 'zod';

/**
 * Bundle files OpenVPN reads only when it starts (or restarts on SIGHUP): a change to any of
 * them is rolled out by restarting OpenVPN, one server at a time. Server certificate rotation
 * relies on this list: a new server.crt/server.key is picked up through a rolling restart.
 * Not here: crl.pem (re-read when its mtime changes), ccd/ and hooks/ (read per connection),
 * management.pw (read by the management interface, which survives a SIGHUP).
 */
export const RESTART_FILES: readonly string[] = [
  'server.conf',
  'ca.crt',
  'server.crt',
  'server.key',
  'tls-crypt.key',
  // Only in the bundles of a fleet with `auth` (the auth-gen-token secret).
  'auth-token.key',
];

/** Whether a change to this bundle path needs OpenVPN restarted. */
export function needsRestart(path: string): boolean {
  return RESTART_FILES.includes(path);
}

/**
 * `rolling`: one server at a time (drain, restart, health, undrain). `all-at-once`: every
 * server restarts at once without a drain (the behaviour before rollouts: every user of every
 * server drops together), kept for comparison and for a fleet that prefers one short outage.
 */
export const RolloutStrategy = z.enum(['rolling', 'all-at-once']);
export type RolloutStrategy = z.infer<typeof RolloutStrategy>;

/**
 * One server's part: `waiting` its turn; `draining` (users sent to their next remote);
 * `restarting` (the agent was told to restart OpenVPN); `checking` (restarted, waiting for
 * OpenVPN, its management interface and routing to be up); `done`; `skipped` (nothing to
 * restart there); `failed` (it did not come back healthy: the rollout stopped there).
 */
export const RolloutStepState = z.enum([
  'waiting',
  'draining',
  'restarting',
  'checking',
  'done',
  'skipped',
  'failed',
]);
export type RolloutStepState = z.infer<typeof RolloutStepState>;

export const RolloutStep = z.object({
  server: z.string(),
  state: RolloutStepState,
  /** When the step entered its state (ISO 8601). */
  since: z.string().optional(),
  /** The restart generation the server was told to reach. */
  generation: z.number().int().optional(),
  /** Why it failed or was skipped, in one line. */
  detail: z.string().optional(),
  /** Restarted even without a pending change (`rollout start --all`). */
  force: z.boolean().optional(),
});
export type RolloutStep = z.infer<typeof RolloutStep>;

/**
 * `running`; `paused` (stopped by an operator: the server in progress finishes its step, no
 * next one starts); `failed` (a server did not come back healthy: it stays drained, the
 * servers after it are left as they were); `done`; `aborted` (ended by an operator: every
 * server the rollout drained takes users again, the servers not reached keep their pending
 * restart).
 */
export const RolloutStatus = z.enum(['running', 'paused', 'failed', 'done', 'aborted']);
export type RolloutStatus = z.infer<typeof RolloutStatus>;

export const RolloutView = z.object({
  id: z.number().int(),
  strategy: RolloutStrategy,
  status: RolloutStatus,
  startedBy: z.string().describe('who started it: an admin, or "controller" for a change'),
  startedAt: z.string(),
  updatedAt: z.string(),
  /** Every server, in the order the rollout visits them. */
  steps: z.array(RolloutStep),
  detail: z.string().optional().describe('why it stopped, when it did'),
});
export type RolloutView = z.infer<typeof RolloutView>;

/** `GET /v1/rollout`: the latest rollout (none yet: null) and which servers wait for a restart. */
export const RolloutStatusView = z.object({
  rollout: RolloutView.nullable(),
  pending: z
    .array(z.string())
    .describe('servers whose agent holds files that need OpenVPN restarted'),
});
export type RolloutStatusView = z.infer<typeof RolloutStatusView>;

export const RolloutStartBody = z.strictObject({
  strategy: RolloutStrategy.optional().describe("default: the spec's rollout.strategy"),
  all: z
    .boolean()
    .optional()
    .describe('restart every server, not only those with a pending change'),
});
export type RolloutStartBody = z.infer<typeof RolloutStartBody>;

/** What an agent says about OpenVPN restarts, in its report. */
export const AgentRestart = z.strictObject({
  /** The highest restart generation the agent has carried out (or adopted at its start). */
  generation: z.number().int().min(0),
  /** Files that need a restart changed since OpenVPN last (re)started. */
  pending: z.boolean(),
});
export type AgentRestart = z.infer<typeof AgentRestart>;
