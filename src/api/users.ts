/** The users resource: `/v1/users…`. */
import { z } from 'zod';

export const UserStatus = z.enum(['enabled', 'disabled', 'revoked']);
export type UserStatus = z.infer<typeof UserStatus>;

export const User = z.object({
  name: z.string(),
  ipv4: z.string(),
  ipv6: z.string(),
  groups: z.array(z.string()),
  status: UserStatus,
  createdAt: z.string(),
  /** Serial of the current client certificate (lower-case hex). */
  certSerial: z.string().optional(),
  certNotAfter: z.string().optional(),
});
export type User = z.infer<typeof User>;

/** The user's current certificate, as the one-user view tells it. */
export const UserCertificate = z.object({
  serial: z.string(),
  notAfter: z.string(),
  daysLeft: z.number().int().describe('whole days until it expires (negative: expired)'),
  issuer: z.string().optional().describe('CN of the CA that signed it'),
  renewalDue: z
    .boolean()
    .describe(
      'inside pki.renewBeforeDays and not renewed yet: the controller renews it within the hour',
    ),
  newProfileAvailable: z
    .boolean()
    .describe(
      'a renewed certificate no profile has carried yet, while an older one is still valid: download the profile again',
    ),
  previous: z
    .array(z.object({ serial: z.string(), notAfter: z.string() }))
    .describe('older certificates still valid until they expire, oldest first'),
});
export type UserCertificate = z.infer<typeof UserCertificate>;

/** Groups an SSO sign-in put the user in (issue 16), when they are not the spec's. */
export const UserSessionGroups = z.object({
  groups: z
    .array(z.string())
    .describe("the groups the firewall applies to the user, instead of `groups` (the spec's)"),
  at: z.string().describe('when the sign-in that gave them finished'),
});
export type UserSessionGroups = z.infer<typeof UserSessionGroups>;

/** `GET /v1/users/:name`: the user and what its certificate needs. */
export const UserDetail = User.extend({
  certificate: UserCertificate.optional(),
  sessionGroups: UserSessionGroups.optional().describe(
    "present when the fleet takes groups from the identity provider (auth.sso.groupMap) and the user's last sign-in gave other groups than the spec's",
  ),
});
export type UserDetail = z.infer<typeof UserDetail>;

export const NewUserBody = z.strictObject({
  name: z.string().min(1).max(200),
  groups: z.array(z.string()).optional(),
  ipv4: z.string().optional(),
  ipv6: z.string().optional(),
});
export type NewUserBody = z.infer<typeof NewUserBody>;

export const GroupsBody = z.strictObject({ groups: z.array(z.string()) });
export type GroupsBody = z.infer<typeof GroupsBody>;

/**
 * `GET /v1/users` narrowed to a page (the console's Users page). Without any parameter the
 * answer is every user, as before. Values are strings (query strings are validated without type
 * coercion); the controller checks the ranges and names the field it refuses.
 */
export const UserListQuery = z.strictObject({
  q: z
    .string()
    .max(200)
    .optional()
    .describe(
      'a substring of the name, either address or a group (ASCII case ignored; % and _ match themselves)',
    ),
  status: UserStatus.optional(),
  group: z.string().max(200).optional().describe('members of this group only'),
  offset: z.string().max(16).optional().describe('skip this many, 0-1000000 (default 0)'),
  limit: z.string().max(16).optional().describe('at most this many, 1-500 (default: all)'),
  sort: z
    .enum(['name', '-name', 'created', '-created', 'status', '-status'])
    .optional()
    .describe('order (default name; "-" for descending); ties are ordered by name'),
});
export type UserListQuery = z.infer<typeof UserListQuery>;

/** What `POST /v1/users/bulk` can do to each user it names. */
export const BulkAction = z.enum(['enable', 'disable', 'revoke', 'delete']);
export type BulkAction = z.infer<typeof BulkAction>;

export const BulkBody = z.strictObject({
  action: BulkAction,
  names: z.array(z.string().min(1).max(200)).min(1).max(1000),
});
export type BulkBody = z.infer<typeof BulkBody>;

export const BulkResult = z.object({
  action: BulkAction,
  users: z.array(User).describe('the users as changed (for delete: as they were)'),
});
export type BulkResult = z.infer<typeof BulkResult>;

export const ImportResult = z.object({
  users: z.array(User).describe('the users added, without certificates yet'),
});
export type ImportResult = z.infer<typeof ImportResult>;
