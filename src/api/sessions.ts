/** Who is online where: `/v1/sessions`. */
import { z } from 'zod';

/** A stored session as the API and `ovpn-fleet status` show it. */
export const SessionView = z.object({
  user: z.string(),
  server: z.string(),
  ipv4: z.string().nullable(),
  ipv6: z.string().nullable(),
  realAddress: z.string(),
  since: z.string(),
  bytesIn: z.number().int(),
  bytesOut: z.number().int(),
  reportedAt: z.string(),
  stale: z.boolean().describe('the server has not reported for a while: this session may be gone'),
});
export type SessionView = z.infer<typeof SessionView>;

/** `POST /v1/sessions/kill`: end the live session(s) of `user` on `server`. */
export const KillBody = z.strictObject({
  server: z.string().min(1).max(200),
  user: z.string().min(1).max(200),
});
export type KillBody = z.infer<typeof KillBody>;

export const KillResult = z.object({
  server: z.string(),
  user: z.string(),
  sessions: z
    .array(SessionView)
    .describe("the sessions the server's agent is told to end (with its next directive)"),
});
export type KillResult = z.infer<typeof KillResult>;
