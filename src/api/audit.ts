/** The audit log: `/v1/audit`. */
import { z } from 'zod';

export const AuditEntry = z.object({
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

// A string: query strings are validated without type coercion, like bodies.
export const AuditQuery = z.strictObject({
  limit: z
    .string()
    .regex(/^[1-9][0-9]{0,3}$/)
    .optional()
    .describe('how many entries, 1-9999 (default 100)'),
});
export type AuditQuery = z.infer<typeof AuditQuery>;
