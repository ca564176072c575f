/**
 * Why a session ended, for the location history: a pure decision over what the controller knew
 * when the report that no longer lists the session arrived. No I/O, no clock.
 */
import type { Eviction } from '../api/index.js';
import type { SessionEndReason, StoredSession, UserStatus } from '../store/types.js';

export interface EndContext {
  /** The server's current directive's `evict` list (evictions and operator kills). */
  evict: readonly Eviction[];
  /** The server is draining (the controller's flag, or its agent says so). */
  draining: boolean;
  /** The status of a user now; undefined when no user has the name any more. */
  userStatus: (name: string) => UserStatus | undefined;
  /**
   * Nobody was watching when the session ended: before this report the server had not reported
   * for a while (stale), or its agent could not read its sessions, or the controller itself was
   * down. A session that went meanwhile ended at some unknown time after it was last seen.
   */
  serverLost: boolean;
}

/** Whether an evict entry names this session (as the agent matches it: see agent.ts). */
function names(e: Eviction, s: Pick<StoredSession, 'user' | 'since' | 'clientId'>): boolean {
  return (
    e.user === s.user &&
    s.since <= e.since &&
    (e.clientId === undefined || e.clientId === s.clientId)
  );
}

/**
 * The most direct cause first: what the controller itself asked for (an operator's kill, an
 * eviction), then what the user's status says (the agent ends a cut-off user's session, and the
 * controller stops admitting it at once), then the blind spot, then the drain, and otherwise the
 * client went by itself.
 */
export function endReason(
  s: Pick<StoredSession, 'user' | 'since' | 'clientId'>,
  ctx: EndContext,
): SessionEndReason {
  const asked = ctx.evict.filter((e) => names(e, s));
  if (asked.some((e) => e.reason === 'operator')) return 'killed';
  if (asked.length) return 'eviction';
  const status = ctx.userStatus(s.user);
  if (status === undefined) return 'delete';
  if (status === 'revoked') return 'revoke';
  if (status === 'disabled') return 'disable';
  if (ctx.serverLost) return 'server-lost';
  if (ctx.draining) return 'drain';
  return 'disconnect';
}
