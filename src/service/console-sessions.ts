/**
 * Console sign-in sessions: a random 32-byte id in an HttpOnly cookie, its SHA-256 in the
 * store, a CSRF token per session, an idle timeout and an absolute lifetime. Every lookup reads
 * the store, so an admin removed or demoted by the CLI (another process) loses its sessions at
 * once. Time comes from the injected clock.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Admin, AdminRole, FleetStore } from '../store/types.js';
import type { Clock } from '../sys/time.js';

export const SESSION_IDLE_TIMEOUT_MS = 30 * 60_000;
export const SESSION_LIFETIME_MS = 12 * 3_600_000;
/**
 * A request writes last_seen_at only when the stored one is older than this: a console that
 * polls or streams must not cost a write per request. The idle timeout is thus exact to within
 * this much (a session may end up to a minute early, never late).
 */
const TOUCH_EVERY_MS = 60_000;

/** 32 random bytes as unpadded base64url: 43 characters. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

export interface ConsoleSessionOptions {
  idleTimeoutMs?: number;
  lifetimeMs?: number;
}

/** A live session and who it belongs to. */
export interface ConsoleSession {
  /** SHA-256 (hex) of the id: what the store keys the session by. */
  idSha256: string;
  name: string;
  role: AdminRole;
  csrfToken: string;
  mustChangePassword: boolean;
  createdAt: string;
  lastSeenAt: string;
}

export type SessionLookup = { session: ConsoleSession } | { problem: string };

export function sessionDigest(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

export class ConsoleSessions {
  readonly idleTimeoutMs: number;
  readonly lifetimeMs: number;

  constructor(
    private readonly store: FleetStore,
    private readonly clock: Clock,
    opts: ConsoleSessionOptions = {},
  ) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? SESSION_IDLE_TIMEOUT_MS;
    this.lifetimeMs = opts.lifetimeMs ?? SESSION_LIFETIME_MS;
  }

  /** A new session of `name` (who just proved its password); returns the cookie's id once. */
  async open(name: string, address?: string): Promise<{ id: string; session: ConsoleSession }> {
    const now = this.clock.now();
    await this.prune(now);
    const id = randomBytes(32).toString('base64url');
    const stored = {
      idSha256: sessionDigest(id),
      admin: name,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: now.toISOString(),
      lastSeenAt: now.toISOString(),
      ...(address !== undefined ? { address } : {}),
    };
    await this.store.createAdminSession(stored, `console:${name}`);
    const admin = (await this.store.getAdmin(name))!;
    return { id, session: view(stored, admin) };
  }

  /**
   * The session of a cookie's id. An idle or too old session is ended (audited, reason `idle`
   * or `expired`) and refused.
   */
  async find(id: string): Promise<SessionLookup> {
    const gone = {
      problem: 'no such session (signed out, expired, or the account changed): sign in again',
    };
    if (!SESSION_ID.test(id)) return gone;
    const digest = sessionDigest(id);
    const found = await this.store.getAdminSession(digest);
    if (!found) return gone;
    const { session, admin } = found;
    const now = this.clock.now();
    const idleMs = now.getTime() - Date.parse(session.lastSeenAt);
    const ageMs = now.getTime() - Date.parse(session.createdAt);
    const lapsed =
      idleMs >= this.idleTimeoutMs ? 'idle' : ageMs >= this.lifetimeMs ? 'expired' : undefined;
    if (lapsed) {
      await this.store.endAdminSession(digest, lapsed, now, 'controller');
      return {
        problem:
          lapsed === 'idle'
            ? `session ended after ${Math.round(this.idleTimeoutMs / 60_000)} minutes without activity: sign in again`
            : `session ended after ${Math.round(this.lifetimeMs / 3_600_000)} hours: sign in again`,
      };
    }
    let lastSeenAt = session.lastSeenAt;
    if (idleMs >= TOUCH_EVERY_MS) {
      await this.store.touchAdminSession(digest, now);
      lastSeenAt = now.toISOString();
    }
    return { session: view({ ...session, lastSeenAt }, admin) };
  }

  /**
   * Whether a session found earlier still holds: not ended (logout, the account removed or
   * changed), not idle, not too old. Reads only; the next request ends a lapsed one.
   */
  async alive(idSha256: string): Promise<boolean> {
    const found = await this.store.getAdminSession(idSha256);
    if (!found) return false;
    const now = this.clock.now().getTime();
    return (
      now - Date.parse(found.session.lastSeenAt) < this.idleTimeoutMs &&
      now - Date.parse(found.session.createdAt) < this.lifetimeMs
    );
  }

  /** Milliseconds until `session` reaches its lifetime. */
  remainingMs(session: ConsoleSession): number {
    return Math.max(
      0,
      Date.parse(session.createdAt) + this.lifetimeMs - this.clock.now().getTime(),
    );
  }

  /** Signs out: true when the session existed. */
  close(idSha256: string, actor: string): Promise<boolean> {
    return this.store.endAdminSession(idSha256, 'logout', this.clock.now(), actor);
  }

  /**
   * Records a refused sign-in. An unknown name is not written down: people type their password
   * into the name field, and viewers read the audit log.
   */
  recordFailure(
    name: string | undefined,
    address: string | undefined,
    reason: string,
    extra: Record<string, string | number> = {},
  ): Promise<void> {
    return this.store.audit({
      at: this.clock.now().toISOString(),
      actor: 'console',
      action: 'admin.login-failed',
      subject: name ?? '(unknown name)',
      detail: { reason, ...(address !== undefined ? { address } : {}), ...extra },
    });
  }

  private async prune(now: Date): Promise<void> {
    await this.store.pruneAdminSessions(
      new Date(now.getTime() - this.idleTimeoutMs),
      new Date(now.getTime() - this.lifetimeMs),
    );
  }
}

function view(
  s: { idSha256: string; csrfToken: string; createdAt: string; lastSeenAt: string },
  admin: Admin,
): ConsoleSession {
  return {
    idSha256: s.idSha256,
    name: admin.name,
    role: admin.role,
    csrfToken: s.csrfToken,
    mustChangePassword: admin.mustChangePassword,
    createdAt: s.createdAt,
    lastSeenAt: s.lastSeenAt,
  };
}
