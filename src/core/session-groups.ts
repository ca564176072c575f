/**
 * Groups from the identity provider (issue 16): which of a user's groups count for the
 * firewall policy. Pure.
 *
 * A user has the spec's groups (fleet.yaml, `user groups`) and, once signed in with SSO, the
 * groups that sign-in gave (the provider's groups claim through `auth.sso.groupMap`, kept in the
 * store as the user's session groups). When the fleet maps the provider's groups, the last
 * sign-in decides:
 *
 * - it gave groups: the user is in exactly those, instead of the spec's (groups the spec no
 *   longer has are dropped; if none is left the user is in no group: the provider said
 *   something, and what it said names nothing we have, so nothing is granted);
 * - it gave none (no claim, or no value the map knows): the spec's groups stay, the default;
 * - there was none yet: the spec's groups.
 *
 * When `auth.allowedGroups` is set, a sign-in whose claim names none of them is refused
 * (oidc.ts judge) and stores nothing, so "no groups" then never reaches this function.
 *
 * Without a group map (no `auth.sso`, or an empty `groupMap`) session groups are ignored: a
 * fleet that turns SSO or the map off is back on the spec's groups at its next render, without
 * forgetting anything.
 *
 * The session groups outlive the VPN session on purpose: a user who fails over to another
 * server reconnects with their token, without a new sign-in, and must keep the groups of the
 * sign-in that token stands for. While disconnected, a user's addresses in a set carry no
 * traffic.
 */

/** The parts of the spec this reads (declared here: core imports nothing of src/spec). */
export interface SessionGroupsSpec {
  groups: readonly { name: string }[];
  auth?: { sso?: { groupMap: Readonly<Record<string, string>> } };
}

export interface GroupedUser {
  /** The spec's groups. */
  groups: readonly string[];
  /** What the last successful SSO sign-in gave (ours, after the map), if any. */
  sessionGroups?: { groups: readonly string[] };
}

/** Whether sign-ins decide groups: the fleet has auth.sso with at least one mapped group. */
export function ssoMapsGroups(spec: SessionGroupsSpec): boolean {
  const map = spec.auth?.sso?.groupMap;
  return map !== undefined && Object.keys(map).length > 0;
}

/** The groups `user` is in for the policy, sorted, without repeats (see the module comment). */
export function effectiveGroups(spec: SessionGroupsSpec, user: GroupedUser): string[] {
  const given = user.sessionGroups?.groups;
  if (!ssoMapsGroups(spec) || !given || given.length === 0) return sortedUnique(user.groups);
  const known = new Set(spec.groups.map((g) => g.name));
  return sortedUnique(given.filter((g) => known.has(g)));
}

/**
 * The session groups worth showing beside the spec's: the effective groups when a sign-in made
 * them differ from the spec's, else undefined.
 */
export function differingSessionGroups(
  spec: SessionGroupsSpec,
  user: GroupedUser,
): string[] | undefined {
  const effective = effectiveGroups(spec, user);
  const own = sortedUnique(user.groups);
  return effective.length === own.length && effective.every((g, i) => g === own[i])
    ? undefined
    : effective;
}

function sortedUnique(groups: readonly string[]): string[] {
  return [...new Set(groups)].sort();
}
