/**
 * The agent's part of `auth` (bundle file auth.json): what each user must do at connect. The
 * agent decides from this file alone, in milliseconds, without asking the controller whether a
 * user is certificate-only. Pure.
 */
import { ssoMapsGroups } from '../core/session-groups.js';
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
  /**
   * Every group of the spec, when sign-ins decide groups (auth.sso with a groupMap; absent
   * otherwise): a sign-in's outcome then names the user's groups, and the agent puts the user's
   * addresses in those groups' sets and out of the others' before letting the client in, rather
   * than leave the previous groups in force until the bundle that follows the sign-in arrives.
   * Group names only (the sets are `groupSetName(group, family)`): small whatever the users.
   */
  groups?: string[];
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
  return {
    sso: Boolean(auth.sso),
    totpUsers,
    pendingSeconds: auth.pendingSeconds,
    ...(ssoMapsGroups(spec) ? { groups: spec.groups.map((g) => g.name).sort() } : {}),
  };
}

export function renderAuthPolicy(policy: AuthPolicy): string {
  return `${JSON.stringify(policy, null, 1)}\n`;
}
