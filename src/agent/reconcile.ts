/**
 * Host routes against live sessions, as a pure decision. A route whose session is not in the
 * status yet may belong to a client being set up (learn-address runs before the client shows
 * in `status`): it is removed only when it was already orphaned at the previous pass.
 */
export interface RoutePlan {
  add: string[];
  remove: string[];
  /** Orphans seen now: the candidates for removal at the next pass. */
  orphans: Set<string>;
}

export function planRoutes(
  have: string[],
  want: Set<string>,
  previousOrphans: Set<string>,
): RoutePlan {
  const orphans = have.filter((a) => !want.has(a));
  return {
    add: [...want].filter((a) => !have.includes(a)).sort(),
    remove: orphans.filter((a) => previousOrphans.has(a)).sort(),
    orphans: new Set(orphans),
  };
}
