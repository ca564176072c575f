/** The VPN servers as the controller sees them: `/v1/servers…`. */
import { z } from 'zod';

export const ServerHealth = z.strictObject({
  openvpn: z.boolean(),
  routing: z.boolean(),
  ruleset: z.boolean(),
  draining: z.boolean(),
  /** openvpn && routing && ruleset && !draining: what load balancers act on. */
  ok: z.boolean(),
});
export type ServerHealth = z.infer<typeof ServerHealth>;

export const ServerView = z.object({
  name: z.string(),
  site: z.string(),
  draining: z.boolean(),
  stale: z.boolean().describe('no report for 10 s (or never), or its sessions could not be read'),
  health: ServerHealth.nullable(),
  reportedAt: z.string().nullable(),
  appliedDigest: z.string().nullable().describe('digest of the bundle the agent has applied'),
  currentDigest: z.string().describe('digest of the bundle the controller serves now'),
  upToDate: z.boolean(),
  sessions: z.number().int(),
});
export type ServerView = z.infer<typeof ServerView>;
