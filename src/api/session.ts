/**
 * Console sign-in: `/v1/session…`. A session is a cookie (HttpOnly, SameSite=Strict, Secure
 * under TLS); a request authenticated by it that changes something (any method but GET/HEAD)
 * carries the session's CSRF token in the `x-csrf-token` header, or — for a form post
 * (application/x-www-form-urlencoded) — in the field `_csrf`.
 */
import { z } from 'zod';
import { Role } from './admins.js';

export const SESSION_COOKIE = 'ovpn_fleet_session';

/**
 * The cookie's name as a controller serving `secure` (HTTPS) sets and reads it: under TLS the
 * `__Host-` prefix, which browsers accept only with Secure, Path=/ and no Domain — so a sibling
 * subdomain cannot plant a session cookie of its own (a sign-in CSRF). Plain HTTP (loopback, the
 * unix socket) keeps the bare name: browsers refuse `__Host-` cookies without Secure.
 */
export function sessionCookieName(secure: boolean): string {
  return secure ? `__Host-${SESSION_COOKIE}` : SESSION_COOKIE;
}
export const CSRF_HEADER = 'x-csrf-token';
export const CSRF_FIELD = '_csrf';

export const SignInBody = z.strictObject({
  name: z.string().min(1).max(64),
  password: z.string().min(1).max(1024),
});
export type SignInBody = z.infer<typeof SignInBody>;

export const SessionInfo = z.object({
  name: z.string(),
  role: Role,
  /** Send it back in `x-csrf-token` (or the form field `_csrf`) with every change. */
  csrfToken: z.string(),
  /** Signed in with a one-time password: only changing it is allowed until then. */
  mustChangePassword: z.boolean(),
});
export type SessionInfo = z.infer<typeof SessionInfo>;

export const PasswordChangeBody = z.strictObject({
  current: z.string().min(1).max(1024),
  next: z.string().min(1).max(1024).describe('at least 12 characters, no control characters'),
});
export type PasswordChangeBody = z.infer<typeof PasswordChangeBody>;
