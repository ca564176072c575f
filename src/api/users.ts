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

export const NewUserBody = z.strictObject({
  name: z.string().min(1).max(200),
  groups: z.array(z.string()).optional(),
  ipv4: z.string().optional(),
  ipv6: z.string().optional(),
});
export type NewUserBody = z.infer<typeof NewUserBody>;

export const GroupsBody = z.strictObject({ groups: z.array(z.string()) });
export type GroupsBody = z.infer<typeof GroupsBody>;
