/** The audit log: `/v1/audit`. */
import { z } from 'zod';

export const AuditEntry = z.object({
  id: z
    .number()
    .int()
    .describe('increases with every entry and is never reused: the paging cursor'),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  subject: z.string(),
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

// Strings: query strings are validated without type coercion, like bodies. The controller
// checks ranges and dates and names the field it refuses.
export const AuditQuery = z.strictObject({
  actor: z.string().max(200).optional().describe('entries by this actor (exact)'),
  user: z
    .string()
    .max(200)
    .optional()
    .describe('entries about this subject: a user, or a server for server.* actions'),
  kind: z
    .string()
    .max(64)
    .optional()
    .describe('this action (user.revoke), or every action under a prefix ending in "." (session.)'),
  since: z
    .string()
    .max(64)
    .optional()
    .describe('from this instant on, inclusive (ISO 8601: 2030-01-31 or 2030-01-31T10:00:00Z)'),
  until: z.string().max(64).optional().describe('before this instant, exclusive (ISO 8601)'),
  before: z
    .string()
    .max(16)
    .optional()
    .describe('only entries with a smaller id: pass the last id of a page for the next page'),
  limit: z
    .string()
    .max(16)
    .optional()
    .describe(
      'how many entries: 1-9999 (default 100); for an export 1-1000000 (default: all that match)',
    ),
  format: z
    .enum(['json', 'jsonl', 'csv'])
    .optional()
    .describe('json (default): an array; jsonl or csv: a file to download, newest first'),
});
export type AuditQuery = z.infer<typeof AuditQuery>;
