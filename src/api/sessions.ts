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
