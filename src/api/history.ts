/** Where a user was: `/v1/users/:name/history`, one entry per session they had. */
import { z } from 'zod';

/**
 * Why a session ended. `disconnect`: the client went. `eviction`: the controller ended it for a
 * newer session of the same user elsewhere. `revoke`, `disable`, `delete`: the user's status or
 * removal cut it. `drain`: it ended while its server was draining. `killed`: an operator ended
 * it (`POST /v1/sessions/kill`). `server-lost`: it ended while nobody was watching — its server
 * had stopped reporting (or could not read its sessions, or the controller was down) and came
 * back without it; `until` is then the last time it was seen alive.
 */
export const SessionEndReason = z.enum([
  'disconnect',
  'eviction',
  'revoke',
  'disable',
  'delete',
  'drain',
  'killed',
  'server-lost',
]);
export type SessionEndReason = z.infer<typeof SessionEndReason>;

export const HistoryEntry = z.object({
  user: z.string(),
  server: z.string(),
  realAddress: z.string(),
  ipv4: z.string().nullable(),
  ipv6: z.string().nullable(),
  since: z.string().describe('when the session started (the server says)'),
  until: z.string().nullable().describe('when it ended; null while it is live'),
  bytesIn: z.number().int().describe('as last reported'),
  bytesOut: z.number().int(),
  reason: SessionEndReason.nullable().describe('why it ended; null while it is live'),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

// A string: query strings are validated without type coercion, like bodies.
export const HistoryQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,3}$/)
    .optional()
    .describe('how many sessions, newest first, 1-9999 (default 100)'),
});
export type HistoryQuery = z.infer<typeof HistoryQuery>;
