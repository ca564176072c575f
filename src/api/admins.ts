/** Who may do what: the roles of admin accounts (console and API). */
import { z } from 'zod';

/**
 * `viewer` reads everything; `operator` also ends sessions and drains/undrains servers;
 * `admin` also changes users, admins and the fleet. The admin token is an `admin`.
 */
export const Role = z.enum(['viewer', 'operator', 'admin']);
export type Role = z.infer<typeof Role>;

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** True when `have` may do what `need` may. */
export function roleAtLeast(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}
