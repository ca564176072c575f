/** `GET /v1/health`: liveness, no token needed. */
import { z } from 'zod';

export const Health = z.object({
  ok: z.boolean(),
  specProblem: z
    .string()
    .optional()
    .describe('only with the admin token: why fleet.yaml was not loaded'),
});
export type Health = z.infer<typeof Health>;
