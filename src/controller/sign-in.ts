/**
 * Signing in to the console and changing one's own password: the rate limit, the password
 * check, the audit entries and the new session, in one place for the JSON route
 * (routes/session.ts) and any form the console serves.
 */
import { InputError } from '../errors.js';
import { adminNameProblem } from '../service/admins.js';
import type { ConsoleSession, ConsoleSessions } from '../service/console-sessions.js';
import type { Fleet } from '../service/fleet.js';
import { MAX_PASSWORD_LENGTH, passwordProblem } from '../service/passwords.js';
import { TooManyRequests, Unauthorized } from './http-errors.js';
import type { Attempt, LoginLimiter } from './login-limit.js';

export class SignIn {
  /** Password checks (scrypt) under way now. */
  private checking = 0;

  constructor(
    private readonly fleet: () => Fleet,
    private readonly sessions: ConsoleSessions,
    private readonly limiter: LoginLimiter,
  ) {}

  /**
   * A new session when `password` is `name`'s. A wrong password and an unknown name get the
   * same answer after the same work (one scrypt); past the limit, every attempt is a 429
   * without a password check. Every attempt with a well-formed name is audited.
   */
  async attempt(
    name: string,
    password: string,
    address: string | undefined,
  ): Promise<{ id: string; session: ConsoleSession }> {
    const problem = adminNameProblem(name);
    if (problem) throw new InputError('name', problem);
    const fleet = this.fleet();
    const known = async () => (await fleet.store.getAdmin(name)) !== undefined;
    const release = this.checkSlot();
    let admin;
    try {
      const attempt = await this.begin(name, address, await known());
      admin = await fleet.admins.authenticate(name, password);
      if (admin) attempt.succeeded();
    } finally {
      release();
    }
    if (!admin) {
      const exists = await known();
      await this.sessions.recordFailure(
        exists ? name : undefined,
        address,
        exists ? 'wrong password' : 'unknown name',
      );
      throw new Unauthorized('wrong name or password');
    }
    return this.sessions.open(admin.name, address);
  }

  /**
   * The signed-in admin changes its password: needs the current one (a left-open browser is
   * not enough), counted by the same limiter. Every other session of the admin ends.
   */
  async changePassword(
    session: ConsoleSession,
    current: string,
    next: string,
    address: string | undefined,
  ): Promise<ConsoleSession> {
    // A refused new password (too short, …) is no failed password check: refused before the
    // limiter counts anything. An error after `begin` leaves the attempt counted — only a
    // correct current password takes failures back.
    const problem = passwordProblem(next);
    if (problem) throw new InputError('next', problem);
    if (next.normalize('NFC') === current.normalize('NFC'))
      throw new InputError('next', 'must differ from the current password');
    if (current.length > MAX_PASSWORD_LENGTH)
      throw new InputError('current', `must be at most ${MAX_PASSWORD_LENGTH} characters`);
    const fleet = this.fleet().as(`console:${session.name}`);
    const release = this.checkSlot();
    let attempt: Attempt;
    let changed;
    try {
      attempt = await this.begin(session.name, address, true);
      changed = await fleet.admins.changeOwnPassword(session.name, current, next, session.idSha256);
    } finally {
      release();
    }
    if (!changed) {
      await this.sessions.recordFailure(session.name, address, 'wrong current password');
      throw new InputError('current', 'is not the current password');
    }
    attempt.succeeded();
    return { ...session, role: changed.role, mustChangePassword: changed.mustChangePassword };
  }

  /**
   * A place among the password checks under way, or a 429 at once (nothing counted, nothing
   * audited, no hashing) when they are all taken.
   */
  private checkSlot(): () => void {
    if (this.checking >= this.limiter.maxConcurrentChecks)
      throw new TooManyRequests('too many sign-ins under way: try again in 1 s', 1);
    this.checking++;
    let released = false;
    return () => {
      if (!released) this.checking--;
      released = true;
    };
  }

  private async begin(
    name: string,
    address: string | undefined,
    exists: boolean,
  ): Promise<Attempt> {
    const attempt = this.limiter.begin(name, address, exists);
    const wait = attempt.retryAfter;
    if (wait === 0) return attempt;
    // One entry when a name or an address goes over its limit, not one per refused request:
    // an unauthenticated flood must not fill the audit log (and its sink, and syslog).
    if (attempt.firstRefusal)
      await this.sessions.recordFailure(exists ? name : undefined, address, 'rate limited', {
        retryAfter: wait,
      });
    throw new TooManyRequests(`too many failed sign-ins: try again in ${wait} s`, wait);
  }
}
