/**
 * Web sign-ins in progress, between an agent that holds a client (client-pending-auth) and the
 * browser sign-in (WebSignIn): begin() opens one and answers the URL the client is sent to;
 * wait() is the agent's long-poll for its outcome; the WebSignIn's result settles it, and it is
 * audited (`auth.sso`: user, server, from where, the identity provider's subject, ok or why not).
 *
 * Waiters are held in this controller's memory, the sign-ins themselves in the store: when the
 * controller that began a sign-in dies, the agent's long-poll moves on with its controller set,
 * and the controller it reaches takes the sign-in over (WebSignIn.adopt) for the same server,
 * so the person who is signing in in the browser meanwhile still gets connected. Entries are
 * kept for the pending time plus a minute, then dropped.
 */
import { randomBytes } from 'node:crypto';
import type { AuthOutcome } from '../../api/index.js';
import { Conflict, NotFound } from '../../errors.js';
import type { AuditEntry } from '../../store/types.js';
import { Forbidden } from '../http-errors.js';
import type { WebSignIn, WebSignInResult } from './web-sign-in.js';

interface Pending {
  server: string;
  user: string;
  remote: string;
  expiresAt: number;
  /** Its result arrived and its outcome is being made (the groups read): a second is ignored. */
  settling?: boolean;
  outcome?: AuthOutcome;
  waiters: Set<(o: AuthOutcome) => void>;
}

export interface SignInsOptions {
  /** The browser side; absent: the controller has no auth.sso and refuses web sign-ins. */
  web?: WebSignIn;
  now(): number;
  audit(entry: AuditEntry): Promise<void>;
  log(line: string): void;
  /** How long a sign-in may take (auth.pendingSeconds), in ms. */
  pendingMs(): number;
  /**
   * The groups `user` is in for the session now that their sign-in is stored (the effective
   * groups, core/session-groups.ts), for the agent to put into its sets before letting the
   * client in; undefined when sign-ins do not decide groups (no auth.sso.groupMap). Absent: the
   * provider's groups as the sign-in gave them.
   */
  groupsFor?(user: string): Promise<string[] | undefined>;
}

export class SignIns {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly o: SignInsOptions) {
    o.web?.onResult((r) => this.settle(r));
  }

  async begin(server: string, user: string, remote: string): Promise<{ id: string; url: string }> {
    if (!this.o.web)
      throw new Conflict(
        'web sign-in is off on this controller (no auth.sso in fleet.yaml, or no identity provider configured)',
      );
    this.prune();
    const id = randomBytes(18).toString('base64url');
    this.pending.set(id, {
      server,
      user,
      remote,
      expiresAt: this.o.now() + this.o.pendingMs() + 60_000,
      waiters: new Set(),
    });
    try {
      const url = await this.o.web.begin({ id, user, server, remote });
      return { id, url };
    } catch (err) {
      this.pending.delete(id);
      throw err;
    }
  }

  /**
   * The outcome of `id` as soon as it is known, or undefined after `waitMs`. Only the server
   * that began a sign-in learns its outcome. `gone` tells when the request went away.
   */
  async wait(
    server: string,
    id: string,
    waitMs: number,
    gone: (stop: () => void) => () => void,
  ): Promise<AuthOutcome | undefined> {
    const p = this.pending.get(id) ?? (await this.adopt(id));
    if (!p) throw new NotFound(`no sign-in ${id} in progress`);
    if (p.server !== server) throw new Forbidden(`sign-in ${id} belongs to another server`);
    if (p.outcome) return p.outcome;
    return new Promise<AuthOutcome | undefined>((resolve) => {
      let stopWatching = () => undefined as void;
      const done = (o: AuthOutcome | undefined) => {
        clearTimeout(timer);
        p.waiters.delete(done);
        stopWatching();
        resolve(o);
      };
      const timer = setTimeout(() => done(undefined), waitMs);
      p.waiters.add(done);
      stopWatching = gone(() => done(undefined));
    });
  }

  /** A sign-in another controller began, known from the store, waited for here from now on. */
  private async adopt(id: string): Promise<Pending | undefined> {
    const web = this.o.web;
    if (!web?.adopt) return undefined;
    const found = await web.adopt(id);
    if (!found) return undefined;
    // Another wait for the same id may have adopted it while this one read the store.
    const known = this.pending.get(id);
    if (known) return known;
    const p: Pending = {
      server: found.server,
      user: found.user,
      remote: found.remote,
      expiresAt: found.expiresAt + 60_000,
      waiters: new Set(),
    };
    this.pending.set(id, p);
    this.o.log(
      `sign-in ${id} of ${found.user} on ${found.server} taken over from another controller`,
    );
    return p;
  }

  private settle(r: WebSignInResult): void {
    const p = this.pending.get(r.id);
    if (!p) {
      this.o.log(`sign-in result for unknown or expired sign-in ${r.id}: ignored`);
      return;
    }
    if (p.outcome || p.settling) return;
    p.settling = true;
    void this.outcomeOf(p.user, r).then((outcome) => {
      p.outcome = outcome;
      for (const w of [...p.waiters]) w(outcome);
      this.audit(p, r, outcome);
    });
  }

  /** What the agent is told; never rejects. */
  private async outcomeOf(user: string, r: WebSignInResult): Promise<AuthOutcome> {
    if (!r.ok) return { ok: false, reason: r.reason.slice(0, 200) };
    if (!this.o.groupsFor) return { ok: true, groups: r.groups };
    try {
      const groups = await this.o.groupsFor(user);
      return groups ? { ok: true, groups } : { ok: true };
    } catch (err) {
      // Fail closed: without the groups the agent would let the client in with old ones.
      this.o.log(`cannot read ${user}'s groups after their sign-in: ${(err as Error).message}`);
      return { ok: false, reason: 'your groups could not be read: try again in a minute' };
    }
  }

  /** `groups`: what the provider gave (mapped); `sessionGroups`: what the session got. */
  private audit(p: Pending, r: WebSignInResult, outcome: AuthOutcome): void {
    this.o
      .audit({
        at: new Date(this.o.now()).toISOString(),
        actor: `agent:${p.server}`,
        action: 'auth.sso',
        subject: p.user,
        detail: {
          server: p.server,
          from: p.remote,
          ok: outcome.ok,
          ...(r.subject ? { idpSubject: r.subject } : {}),
          ...(r.ok ? { groups: r.groups, ...(r.email ? { email: r.email } : {}) } : {}),
          ...(outcome.ok
            ? outcome.groups
              ? { sessionGroups: outcome.groups }
              : {}
            : { reason: r.ok ? outcome.reason : r.reason }),
        },
      })
      .catch((err: Error) => this.o.log(`cannot audit ${p.user}'s sign-in: ${err.message}`));
  }

  private prune(): void {
    const now = this.o.now();
    for (const [id, p] of this.pending) if (p.expiresAt < now) this.pending.delete(id);
  }
}
