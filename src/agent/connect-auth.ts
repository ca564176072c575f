/**
 * The agent's answer to every connect when the fleet has `auth` (server.conf's
 * management-client-auth): OpenVPN holds each new key (`>CLIENT:CONNECT`) and each
 * renegotiation (`>CLIENT:REAUTH`) until the agent answers, and refuses the key when no answer
 * comes within hand-window. So the agent decides alone, at once, whatever it can:
 *
 * - a certificate-only user (auth.json lists who must do more): `client-auth-nt`;
 * - a reconnect or renegotiation with a valid token (`session_state` Authenticated, set by
 *   OpenVPN from auth-gen-token with external-auth): `client-auth-nt` — on any server, since
 *   every server shares the token secret;
 * - a client that cannot be asked (IV_SSO without webauth / crtext): `client-deny` with a
 *   reason the client shows in its AUTH_FAILED;
 *
 * and asks the controller only for a sign-in: a web sign-in (WEB_AUTH::url, then a long-poll for
 * its outcome) or a TOTP code (CR_TEXT, the client's `>CLIENT:CR_RESPONSE` checked by the
 * controller). A controller that is away or slow therefore costs only those sign-ins: they are
 * refused with "try again", while certificate-only users and token reconnects go on.
 */
import type { AuthOutcome } from '../api/index.js';
import type { AuthPolicy } from '../render/auth-policy.js';
import type { ClientAuthRequest } from './management.js';

export type ConnectDecision =
  | { action: 'allow'; why: string }
  | { action: 'deny'; reason: string; clientReason: string }
  | { action: 'web' }
  | { action: 'totp' };

/**
 * A token passes when OpenVPN found it valid for the user name the client sent
 * (`session_state` Authenticated, auth_token.c add_session_token_env) and that name is the
 * certificate's: profiles of a fleet with `auth` send the user's name (profile.ts), the token's
 * HMAC covers it, so a token taken from another user's client does not pass with one's own
 * certificate. AuthenticatedEmptyUser (valid only for the empty name, OpenVPN 3's habit) is
 * not taken: our tokens are made for the name.
 */
function tokenValid(env: Record<string, string>): boolean {
  return env.session_state === 'Authenticated' && env.username === env.common_name;
}

export const CLIENT_REASONS = {
  noWebAuth:
    'this VPN needs a sign-in in the browser (SSO), which this client does not offer (IV_SSO webauth): use OpenVPN Connect 3 or OpenVPN GUI 2.6',
  noCrText:
    'this VPN needs a TOTP code, which this client cannot be asked for (IV_SSO crtext): use OpenVPN Connect 3, OpenVPN GUI 2.6 or a client with a management interface',
  expired: 'SESSION: your sign-in has expired: reconnect to sign in again',
  unavailable: 'the sign-in service is not reachable right now: try again in a minute',
  timedOut: 'the sign-in was not finished in time: reconnect to try again',
  lost: 'the sign-in service no longer knows this sign-in (it restarted): reconnect to try again',
  noPolicy:
    'this server cannot check sign-ins right now (its settings are unreadable): connect to another server',
  groups:
    'this server could not put your groups from the sign-in into its firewall: connect again, or to another server',
} as const;

/** The bundle's auth.json is there but cannot be read: nobody is let in on the certificate alone. */
export const UNREADABLE_POLICY = 'unreadable';

/** What to do with one held key: pure, from the bundle's policy and OpenVPN's env. */
export function decideConnect(
  policy: AuthPolicy | typeof UNREADABLE_POLICY | undefined,
  req: ClientAuthRequest,
): ConnectDecision {
  const user = req.env.common_name ?? '';
  // Fail closed: the server.conf asks the agent because the fleet wants more than certificates.
  if (policy === UNREADABLE_POLICY)
    return {
      action: 'deny',
      reason: 'auth.json unreadable',
      clientReason: CLIENT_REASONS.noPolicy,
    };
  // No policy file: a server.conf with client-auth ahead of its auth.json (never in one bundle);
  // letting the certificate decide is what the server did before `auth`.
  if (!policy) return { action: 'allow', why: 'no auth policy' };
  const method = policy.sso ? 'web' : policy.totpUsers.includes(user) ? 'totp' : 'certificate';
  if (method === 'certificate') return { action: 'allow', why: 'certificate' };
  const state = req.env.session_state ?? 'Initial';
  if (tokenValid(req.env)) return { action: 'allow', why: 'token' };
  if (req.reauth)
    // A renegotiation without a valid token (its lifetime ended, or the secret was rotated):
    // this key is refused and the session ends; the client reconnects and signs in.
    return {
      action: 'deny',
      reason: `renegotiation with a ${state} token`,
      clientReason: CLIENT_REASONS.expired,
    };
  const sso = (req.env.IV_SSO ?? '').split(',').map((s) => s.trim());
  if (method === 'web')
    return sso.includes('webauth')
      ? { action: 'web' }
      : {
          action: 'deny',
          reason: 'client cannot do web auth',
          clientReason: CLIENT_REASONS.noWebAuth,
        };
  return sso.includes('crtext')
    ? { action: 'totp' }
    : {
        action: 'deny',
        reason: 'client cannot answer CR_TEXT',
        clientReason: CLIENT_REASONS.noCrText,
      };
}

/** The management commands the agent answers with. */
export interface AuthManagement {
  authorize(clientId: number, keyId: number): Promise<void>;
  deny(clientId: number, keyId: number, reason: string, clientReason: string): Promise<void>;
  pendingAuth(
    clientId: number,
    keyId: number,
    extra: string,
    timeoutSeconds: number,
  ): Promise<void>;
}

/** The controller's side of a sign-in (src/api/auth.ts). Each call may throw (unreachable). */
export interface AuthController {
  begin(body: { user: string; realAddress?: string }): Promise<{ id: string; url: string }>;
  /** The outcome, or undefined when the long-poll ended without one. */
  wait(id: string): Promise<AuthOutcome | undefined>;
  answer(body: {
    user: string;
    realAddress?: string;
    method: 'totp';
    response: string;
  }): Promise<AuthOutcome>;
}

export interface ConnectAuthDeps {
  management: AuthManagement;
  controller: AuthController;
  policy(): AuthPolicy | typeof UNREADABLE_POLICY | undefined;
  /**
   * Puts `user` in exactly `groups` of the bundle's `all` in this server's firewall
   * (session-groups.ts); throws saying why when it cannot. Absent: sign-ins leave the sets to
   * the bundles.
   */
  applyGroups?(user: string, groups: string[], all: string[]): Promise<void>;
  now(): number;
  sleep(ms: number): Promise<void>;
  log(line: string): void;
}

/** How long before OpenVPN's deadline for a held key the agent refuses a sign-in not finished. */
export const PENDING_MARGIN_MS = 3000;

/** The prompt of the TOTP challenge (CR_TEXT flags: R response required, E echo it). */
export const TOTP_CHALLENGE =
  'CR_TEXT:R,E:Enter the 6-digit code of your authenticator app (or a recovery code)';

interface PendingCode {
  user: string;
  realAddress?: string;
  until: number;
}

export class ConnectAuth {
  /** Keys waiting for their CR_RESPONSE, by `CID/KID`. */
  private readonly codes = new Map<string, PendingCode>();
  /**
   * Keys held for a sign-in or a code, by `CID/KID`: whose they are. A sign-in that ends is
   * answered only if its key is still here for the same user: client ids start again from 0
   * in a restarted OpenVPN, and an answer meant for a key that is gone would let in whichever
   * new client got the same id.
   */
  private readonly held = new Map<string, string>();

  constructor(private readonly d: ConnectAuthDeps) {}

  /** A client's held keys (its id), or every one (undefined), can no longer be answered. */
  forget(clientId: number | undefined): void {
    const gone = (key: string) => clientId === undefined || key.startsWith(`${clientId}/`);
    for (const key of [...this.held.keys()]) if (gone(key)) this.held.delete(key);
    for (const key of [...this.codes.keys()]) if (gone(key)) this.codes.delete(key);
  }

  /**
   * Holds this key as the user's only one: an earlier connect of the same user still waiting
   * (a client retrying, or someone with the certificate connecting over and over) is no longer
   * awaited, so each user costs one sign-in loop and one code at a time, not one per connect.
   */
  private holdOnly(key: string, user: string): void {
    for (const [k, u] of [...this.held])
      if (u === user) {
        this.held.delete(k);
        this.codes.delete(k);
      }
    this.held.set(key, user);
  }

  private stillHeld(cid: number, kid: number, user: string): boolean {
    return this.held.get(`${cid}/${kid}`) === user;
  }

  /** Answers one `>CLIENT:CONNECT|REAUTH`. Never throws; a failed command is logged. */
  async onRequest(req: ClientAuthRequest): Promise<void> {
    const { clientId: cid, keyId: kid } = req;
    const user = req.env.common_name ?? '';
    // A new request for this key replaces whatever was held under its id.
    this.held.delete(`${cid}/${kid}`);
    const realAddress = addressOf(req.env);
    const decision = decideConnect(this.d.policy(), req);
    try {
      switch (decision.action) {
        case 'allow':
          await this.d.management.authorize(cid, kid);
          return;
        case 'deny':
          await this.deny(cid, kid, user, decision.reason, decision.clientReason);
          return;
        case 'totp': {
          const policy = this.d.policy() as AuthPolicy;
          this.prune();
          this.holdOnly(`${cid}/${kid}`, user);
          this.codes.set(`${cid}/${kid}`, {
            user,
            ...(realAddress ? { realAddress } : {}),
            until: this.d.now() + policy.pendingSeconds * 1000,
          });
          await this.d.management.pendingAuth(cid, kid, TOTP_CHALLENGE, policy.pendingSeconds);
          this.d.log(`${user}: TOTP code asked`);
          return;
        }
        case 'web':
          await this.webSignIn(cid, kid, user, realAddress);
          return;
      }
    } catch (err) {
      this.d.log(`answering ${user}'s connect failed: ${(err as Error).message}`);
    }
  }

  /** Answers a `>CLIENT:CR_RESPONSE` to our TOTP challenge. Never throws. */
  async onResponse(cid: number, kid: number, responseBase64: string): Promise<void> {
    const key = `${cid}/${kid}`;
    const pending = this.codes.get(key);
    this.codes.delete(key);
    if (!pending || pending.until < this.d.now() || !this.stillHeld(cid, kid, pending.user)) {
      this.d.log(`CR_RESPONSE for client ${cid} key ${kid} that no challenge waits for: ignored`);
      return;
    }
    const response = Buffer.from(responseBase64, 'base64').toString('utf8').trim();
    let outcome: AuthOutcome;
    try {
      outcome = await this.d.controller.answer({
        user: pending.user,
        ...(pending.realAddress ? { realAddress: pending.realAddress } : {}),
        method: 'totp',
        response,
      });
    } catch (err) {
      this.d.log(`cannot check ${pending.user}'s code: ${(err as Error).message}`);
      outcome = { ok: false, reason: CLIENT_REASONS.unavailable };
    }
    if (!this.stillHeld(cid, kid, pending.user)) {
      this.d.log(`${pending.user}: client ${cid} gone while its code was checked: not answered`);
      return;
    }
    this.held.delete(key);
    try {
      if (outcome.ok) {
        await this.d.management.authorize(cid, kid);
        this.d.log(`${pending.user}: TOTP code accepted`);
      } else
        await this.deny(cid, kid, pending.user, 'TOTP refused', outcome.reason ?? 'wrong code');
    } catch (err) {
      this.d.log(`answering ${pending.user}'s code failed: ${(err as Error).message}`);
    }
  }

  private async webSignIn(
    cid: number,
    kid: number,
    user: string,
    realAddress: string | undefined,
  ): Promise<void> {
    const policy = this.d.policy() as AuthPolicy;
    const key = `${cid}/${kid}`;
    this.holdOnly(key, user);
    let begun: { id: string; url: string };
    try {
      begun = await this.d.controller.begin({ user, ...(realAddress ? { realAddress } : {}) });
    } catch (err) {
      this.d.log(`cannot start ${user}'s sign-in: ${(err as Error).message}`);
      this.held.delete(key);
      await this.deny(cid, kid, user, 'controller unreachable', CLIENT_REASONS.unavailable);
      return;
    }
    // WEB_AUTH:flags:url with no flags (management-notes.txt, client-pending-auth).
    await this.d.management.pendingAuth(cid, kid, `WEB_AUTH::${begun.url}`, policy.pendingSeconds);
    this.d.log(`${user}: web sign-in ${begun.id} started`);
    // Refused a little before OpenVPN's own deadline for the key (the same pendingSeconds): a
    // client whose time runs out first gets no reason at all ("No reply from server to push
    // requests", seen in the lab: ~32 s after a 30 s client-pending-auth) and starts over
    // with a new sign-in link, so the person would never learn that time ran out.
    const deadline = this.d.now() + policy.pendingSeconds * 1000 - PENDING_MARGIN_MS;
    while (this.d.now() < deadline) {
      if (!this.stillHeld(cid, kid, user)) {
        this.d.log(`${user}: client ${cid} gone, sign-in ${begun.id} no longer awaited`);
        return;
      }
      let outcome: AuthOutcome | undefined;
      try {
        // A long-poll lasts AUTH_WAIT_MS (25 s), longer than what is left of the sign-in's time:
        // stop waiting at the deadline, not at the end of the long-poll.
        outcome = await Promise.race([
          this.d.controller.wait(begun.id),
          this.d.sleep(Math.max(0, deadline - this.d.now())).then(() => undefined),
        ]);
      } catch (err) {
        // The controller may come back (or another take over) before the sign-in ends.
        this.d.log(`waiting for ${user}'s sign-in: ${(err as Error).message}`);
        await this.d.sleep(1000);
        continue;
      }
      if (!outcome) continue;
      if (!this.stillHeld(cid, kid, user)) {
        this.d.log(`${user}: client ${cid} gone before sign-in ${begun.id} ended: not answered`);
        return;
      }
      if (!outcome.ok) {
        this.held.delete(key);
        await this.deny(cid, kid, user, 'sign-in refused', outcome.reason ?? 'refused');
        return;
      }
      // The sign-in's groups are in this server's sets before the client is: the bundle that
      // carries them comes a moment later, and until then the previous groups would apply.
      const failed = await this.applyGroups(user, outcome.groups);
      if (!this.stillHeld(cid, kid, user)) {
        this.d.log(`${user}: client ${cid} gone while its groups were set: not answered`);
        return;
      }
      this.held.delete(key);
      if (failed) {
        await this.deny(cid, kid, user, failed, CLIENT_REASONS.groups);
        return;
      }
      await this.d.management.authorize(cid, kid);
      this.d.log(`${user}: signed in`);
      return;
    }
    if (!this.stillHeld(cid, kid, user)) return;
    this.held.delete(key);
    await this.deny(cid, kid, user, 'sign-in timed out', CLIENT_REASONS.timedOut);
  }

  /**
   * Sets the user's groups from a sign-in on this server, when the bundle says sign-ins decide
   * groups (auth.json `groups`) and the outcome names them; why not, when that failed.
   */
  private async applyGroups(
    user: string,
    groups: string[] | undefined,
  ): Promise<string | undefined> {
    const policy = this.d.policy();
    const all = typeof policy === 'object' ? policy.groups : undefined;
    if (!all || !groups || !this.d.applyGroups) return undefined;
    try {
      await this.d.applyGroups(user, groups, all);
      this.d.log(`${user}: groups from the sign-in set here: ${groups.join(', ') || '(none)'}`);
      return undefined;
    } catch (err) {
      return `groups not set: ${(err as Error).message}`;
    }
  }

  private async deny(
    cid: number,
    kid: number,
    user: string,
    reason: string,
    clientReason: string,
  ): Promise<void> {
    await this.d.management.deny(cid, kid, `${user}: ${reason}`, clientReason);
    this.d.log(`${user} refused: ${reason} (${clientReason})`);
  }

  private prune(): void {
    const now = this.d.now();
    for (const [key, p] of this.codes) if (p.until < now) this.codes.delete(key);
  }
}

/** `untrusted_ip`/`untrusted_port` (or the IPv6 ones) as ADDR:PORT. */
function addressOf(env: Record<string, string>): string | undefined {
  const ip = env.untrusted_ip ?? env.untrusted_ip6;
  if (!ip) return undefined;
  return env.untrusted_port ? `${ip}:${env.untrusted_port}` : ip;
}
