/**
 * The agent's part of `auth` (bundle file auth.json): what each user must do at connect. The
 * agent decides from this file alone, in milliseconds, without asking the controller whether a
 * user is certificate-only. Pure.
 */
import type { FleetSpec } from '../spec/schema.js';
import type { RenderUser } from './types.js';

export const AUTH_POLICY_FILE = 'auth.json';

export interface AuthPolicy {
  /** Every user signs in with the identity provider (WEB_AUTH). */
  sso: boolean;
  /** Users who answer a TOTP code (CR_TEXT), sorted; everyone else: the certificate alone. */
  totpUsers: string[];
  /** How long OpenVPN holds a client for its sign-in or code. */
  pendingSeconds: number;
}

/**
 * With auth.sso every user signs in with the identity provider, which does the second factor
 * itself: auth.totp then asks nobody (validate warns). Without it, the users of auth.totp's
 * groups (or all) answer a TOTP code.
 */
export function authPolicy(spec: FleetSpec, users: readonly RenderUser[]): AuthPolicy | undefined {
  const auth = spec.auth;
  if (!auth) return undefined;
  const groups = auth.totp?.groups;
  const totpUsers =
    auth.sso || !groups
      ? []
      : users
          .filter(
            (u) => u.enabled && (groups === 'all' || u.groups.some((g) => groups.includes(g))),
          )
          .map((u) => u.name)
          .sort();
  return { sso: Boolean(auth.sso), totpUsers, pendingSeconds: auth.pendingSeconds };
}

export function renderAuthPolicy(policy: AuthPolicy): string {
  return `${JSON.stringify(policy, null, 1)}\n`;
}
