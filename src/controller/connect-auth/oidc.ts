/**
 * SSO at connect, the relying party: the page the agent's `WEB_AUTH::<url>` leads to sends the
 * browser to the company's OpenID provider (authorization code + PKCE + state + nonce, through
 * `openid-client`, a certified RP library: no hand-written OAuth), and the provider's answer
 * decides the VPN connection that waits for it.
 *
 * Flow: begin() stores a pending sign-in and returns `<public URL>/sso/start/<id>`, a random
 * 256-bit id that is the only capability the VPN client gets. Opening it makes a fresh state,
 * nonce and PKCE verifier, keeps them in the store (several controllers share it, and the
 * callback may land on another controller than the one that began), binds them to this browser
 * with a cookie, and redirects to the provider. `/sso/callback` claims the sign-in by its state
 * (once: a replay finds it finished), exchanges the code, checks the ID token (openid-client:
 * issuer, audience, signature, nonce, PKCE), then our rules below, audits the result, hands it
 * to the listeners and shows the person a plain page.
 *
 * Which person may finish which connection (the rule that stops Bob signing in for a connection
 * made with Ann's certificate): the value of `userClaim` (default `preferred_username`) must be
 * exactly the VPN user name, which is the certificate's common name (OpenVPN's `common_name`,
 * checked against our strict user-name pattern). With `userClaim: email` the local part of a
 * verified `email` must be the user name and its domain one of `allowedDomains` (required then:
 * a multi-tenant provider would otherwise let `ann@anywhere` be ann).
 *
 * What it does not guard against: a person who holds Ann's certificate and sends Ann the start
 * URL hoping she signs in: the start URL redirects at once, the sign-in expires after
 * `pendingTtlMs`, and the audit entry puts the browser's address next to the VPN client's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as oidc from 'openid-client';
import { SpecError } from '../../errors.js';
import { cookieValue, sameCsrfToken } from '../auth.js';
import type { FleetStore, SsoSignIn } from '../../store/types.js';
import { fetchTrusting } from '../../sys/fetch-trusting.js';
import { type Clock, realTimers, type Timers } from '../../sys/time.js';
import type { AdoptedSignIn, WebSignIn, WebSignInRequest, WebSignInResult } from './web-sign-in.js';

/** `auth.sso` of the spec. */
export interface OidcSettings {
  /** The provider's issuer (https URL); its discovery document is read from it. */
  issuer: string;
  clientId: string;
  /** A file holding the client secret (one line); read at start, never logged. */
  clientSecretFile: string;
  /** Values of the groups claim (as the provider sends them, or as mapped) that may connect; empty: any. */
  allowedGroups: string[];
  /** Domains of the `email` claim that may connect; empty: any. */
  allowedDomains: string[];
  /** The claim holding the person's groups (default `groups`). */
  groupsClaim: string;
  /** Claim value → our group; values not in it give no group. */
  groupMap: Record<string, string>;
  /** The claim that must equal the VPN user name (default `preferred_username`; `email`: its local part). */
  userClaim?: string;
  /**
   * A PEM file of CAs trusted for the provider's HTTPS, besides the system's (a provider behind
   * a company CA, the lab's test provider). Plain http is never accepted.
   */
  caFile?: string;
}

export interface OidcWebSignInOptions {
  settings: OidcSettings;
  /** The controller's URL as browsers reach it (`https://vpn.example.com`); pages hang off it. */
  publicUrl: string;
  store: FleetStore;
  clock: Clock;
  timers?: Timers;
  log?: (line: string) => void;
  /** How long a sign-in may take from begin to callback (default 3 minutes). */
  pendingTtlMs?: number;
  /** How often a controller looks for results of its sign-ins finished by another (default 500 ms). */
  resultPollMs?: number;
}

/** What a route answers: an HTML page with a status, or a redirect. */
export type SsoAnswer =
  { status: number; page: string; cookie?: string } | { redirect: string; cookie?: string };

export const SSO_START_PATH = '/sso/start/';
export const SSO_CALLBACK_PATH = '/sso/callback';
const DEFAULT_TTL_MS = 180_000;
/** Rows outlive their sign-in by this, for the "already used" and "expired" answers. */
const KEEP_FINISHED_MS = 86_400_000;
const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const randomId = () => randomBytes(32).toString('base64url');
/** What openid-client's randomState() makes: 32 random bytes, base64url (oauth4webapi). */
const STATE_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/**
 * The cookie of the confirmation page (SameSite=Strict): only a page of ours, shown and
 * clicked in this browser, can post the confirmation; a form another site posts carries none.
 */
export function confirmCookieName(signInId: string): string {
  return `ovpn_fleet_sso_ok_${sha256(signInId).slice(0, 16)}`;
}

/** The cookie binding a sign-in to the browser that started it (one per sign-in: two may run). */
export function browserCookieName(signInId: string): string {
  return `ovpn_fleet_sso_${sha256(signInId).slice(0, 16)}`;
}

/** One line, for a refusal a VPN client shows and the audit log keeps. */
function oneLine(text: string, max = 200): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
/** Text for an HTML page (the console's html.ts is another layer; these pages are two lines). */
const escapeText = (text: string) => text.replace(/[&<>"']/g, (c) => ENTITIES[c]);

/** A plain page: a title and one sentence, escaped; no script, no style. */
function page(title: string, message: string): string {
  const t = escapeText(title);
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${t}</title></head>`,
    `<body><main><h1 data-testid="sso-title">${t}</h1>`,
    `<p data-testid="sso-message">${escapeText(message)}</p></main></body></html>`,
    '',
  ].join('\n');
}

/** A page answer (no redirect). */
type SsoPage = Extract<SsoAnswer, { status: number }>;

const answer = (status: number, title: string, message: string): SsoPage => ({
  status,
  page: page(title, message),
});

interface Outcome {
  result: WebSignInResult;
  /** What the person is shown. */
  title: string;
  message: string;
  email?: string;
}

export class OidcWebSignIn implements WebSignIn {
  private readonly listeners: ((r: WebSignInResult) => void)[] = [];
  private readonly secret: string;
  private readonly fetch?: oidc.CustomFetch;
  private config?: Promise<oidc.Configuration>;
  /** Sign-ins begun here whose result has not been handed out yet: id → expiry (ms). */
  private readonly awaiting = new Map<string, number>();
  private poll: unknown;
  private lastPrune = 0;
  private readonly timers: Timers;
  private readonly ttlMs: number;
  private readonly log: (line: string) => void;
  readonly redirectUri: string;
  private readonly publicBase: string;

  constructor(private readonly opts: OidcWebSignInOptions) {
    const s = opts.settings;
    const problem = (field: string, message: string) =>
      new SpecError([{ path: `auth.sso.${field}`, message }]);
    if (!/^https:\/\//i.test(s.issuer))
      throw problem('issuer', `${JSON.stringify(s.issuer)} is not an https URL`);
    if (s.userClaim === 'email' && !s.allowedDomains.length)
      throw problem(
        'allowedDomains',
        'must name the domains when userClaim is email (else ann@anywhere is ann)',
      );
    const read = (field: string, file: string) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (err) {
        throw problem(
          field,
          `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        );
      }
    };
    this.secret = read('clientSecretFile', s.clientSecretFile).trim();
    if (!this.secret) throw problem('clientSecretFile', `${s.clientSecretFile} is empty`);
    if (s.caFile) this.fetch = fetchTrusting(read('caFile', s.caFile));
    this.publicBase = opts.publicUrl.replace(/\/+$/, '');
    this.redirectUri = `${this.publicBase}${SSO_CALLBACK_PATH}`;
    this.timers = opts.timers ?? realTimers;
    this.ttlMs = opts.pendingTtlMs ?? DEFAULT_TTL_MS;
    this.log = opts.log ?? (() => undefined);
  }

  /** Secure cookies when browsers reach us over https. */
  private get secure(): boolean {
    return this.publicBase.startsWith('https:');
  }

  onResult(listener: (r: WebSignInResult) => void): void {
    this.listeners.push(listener);
  }

  async begin(req: WebSignInRequest): Promise<string> {
    const now = this.opts.clock.now();
    const id = randomId();
    const expiresAt = new Date(now.getTime() + this.ttlMs);
    await this.opts.store.createSsoSignIn({
      id,
      requestId: req.id,
      user: req.user,
      server: req.server,
      remote: req.remote,
      createdAt: now.toISOString(),
      expiresAt: expiresAt.toISOString(),
    });
    this.awaiting.set(id, expiresAt.getTime());
    this.schedulePoll();
    if (now.getTime() - this.lastPrune > 60_000) {
      this.lastPrune = now.getTime();
      await this.opts.store.pruneSsoSignIns(new Date(now.getTime() - KEEP_FINISHED_MS));
    }
    return `${this.publicBase}${SSO_START_PATH}${id}`;
  }

  async adopt(requestId: string): Promise<AdoptedSignIn | undefined> {
    const signIn = await this.opts.store.ssoSignInOfRequest(requestId);
    if (!signIn) return undefined;
    const expiresAt = Date.parse(signIn.expiresAt);
    // Finished or not, its result now comes here too: the store has it or will have it, and
    // the next poll hands it out (the controller that began it is gone, or cannot be reached).
    this.awaiting.set(signIn.id, expiresAt);
    this.schedulePoll();
    return { user: signIn.user, server: signIn.server, remote: signIn.remote, expiresAt };
  }

  /** The provider's metadata, discovered once (again after a failure: it may have been down). */
  private configuration(): Promise<oidc.Configuration> {
    if (!this.config) {
      const s = this.opts.settings;
      const options: oidc.DiscoveryRequestOptions = { timeout: 10 };
      if (this.fetch) options[oidc.customFetch] = this.fetch;
      this.config = oidc
        .discovery(
          new URL(s.issuer),
          s.clientId,
          undefined,
          oidc.ClientSecretBasic(this.secret),
          options,
        )
        .then((config) => {
          if (this.fetch) config[oidc.customFetch] = this.fetch;
          return config;
        });
      this.config.catch(() => {
        this.config = undefined;
      });
    }
    return this.config;
  }

  /**
   * `GET /sso/start/:id`: what is about to be signed in (the VPN user, the server, where the
   * VPN client connects from), and a button that posts the confirmation. Sending the provider
   * straight away would let a link, sent to the certificate's owner by someone who connected
   * with a stolen certificate, be completed by the owner's open provider session in one click;
   * here the owner reads whose connection it is first. The page is not cached.
   */
  async confirmPage(id: string): Promise<SsoAnswer> {
    const found = await this.pendingSignIn(id);
    if ('status' in found) return found;
    const signIn = found;
    const token = randomId();
    const started = new Date(signIn.createdAt).toISOString().slice(11, 19);
    const html = [
      '<!doctype html>',
      '<html lang="en"><head><meta charset="utf-8">',
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      '<title>VPN sign-in</title></head>',
      '<body><main><h1 data-testid="sso-title">VPN sign-in</h1>',
      `<p data-testid="sso-message">A VPN connection as <b>${escapeText(signIn.user)}</b> to ` +
        `<b>${escapeText(signIn.server)}</b> from <b>${escapeText(signIn.remote)}</b> ` +
        `(${started} UTC) waits for you to sign in. Continue only if you started it just now.</p>`,
      `<form method="post" action="${SSO_START_PATH}${escapeText(id)}">`,
      `<input type="hidden" name="confirm" value="${token}">`,
      '<button type="submit" data-testid="sso-continue">Continue to sign-in</button>',
      '</form></main></body></html>',
      '',
    ].join('\n');
    const cookie =
      `${confirmCookieName(id)}=${token}; HttpOnly; SameSite=Strict; Path=${SSO_START_PATH}${id}; ` +
      `Max-Age=${Math.ceil(this.ttlMs / 1000)}${this.secure ? '; Secure' : ''}`;
    return { status: 200, page: html, cookie };
  }

  /** The sign-in behind a start URL while it can still be started, or the page saying why not. */
  private async pendingSignIn(id: string): Promise<SsoSignIn | SsoPage> {
    const now = this.opts.clock.now();
    const signIn = ID_PATTERN.test(id) ? await this.opts.store.getSsoSignIn(id) : undefined;
    if (!signIn)
      return answer(404, 'Unknown sign-in', 'This sign-in link is not known: connect again.');
    if (signIn.finishedAt)
      return answer(409, 'Sign-in already used', 'This sign-in has finished: connect again.');
    if (signIn.expiresAt <= now.toISOString())
      return answer(410, 'Sign-in expired', 'This sign-in link has expired: connect again.');
    return signIn;
  }

  /**
   * `POST /sso/start/:id`, the confirmation page's button: to the provider, with a fresh
   * authorization request, when the form's token is the one this browser's Strict cookie holds.
   */
  async start(
    id: string,
    confirm: string | undefined,
    cookies: string | undefined,
  ): Promise<SsoAnswer> {
    const now = this.opts.clock.now();
    const found = await this.pendingSignIn(id);
    if ('status' in found) return found;
    const expected = cookieValue(cookies, confirmCookieName(id));
    if (!confirm || !expected || !sameCsrfToken(confirm, expected))
      return answer(
        403,
        'Not confirmed',
        'Open the sign-in link again and press the button on its page.',
      );
    let config: oidc.Configuration;
    try {
      config = await this.configuration();
    } catch (err) {
      this.log(`sso: discovery at ${this.opts.settings.issuer} failed: ${String(err)}`);
      return answer(
        503,
        'Identity provider unavailable',
        'The identity provider cannot be reached right now: try again in a moment.',
      );
    }
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const browser = randomId();
    const ok = await this.opts.store.startSsoSignIn(
      id,
      { at: now.toISOString(), state, nonce, codeVerifier, browserSha256: sha256(browser) },
      now,
    );
    if (!ok) return answer(409, 'Sign-in already used', 'This sign-in has ended: connect again.');
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri,
      scope: `openid profile email ${this.opts.settings.groupsClaim}`.trim(),
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      // The person signs in now, for this connection: no silent reuse of an old provider session
      // is asked for, but none is forbidden either (that is the provider's policy).
    });
    // SameSite=Lax: the provider's redirect back is a top-level cross-site GET, which Lax lets
    // the cookie ride on; Strict would drop it.
    const cookie =
      `${browserCookieName(id)}=${browser}; HttpOnly; SameSite=Lax; Path=${SSO_CALLBACK_PATH}; ` +
      `Max-Age=${Math.ceil(this.ttlMs / 1000)}${this.secure ? '; Secure' : ''}`;
    return { redirect: url.href, cookie };
  }

  /**
   * `GET /sso/callback`: `pathAndQuery` as the browser asked for it, `cookies` its Cookie
   * header, `from` the browser's address (for the audit log).
   */
  async callback(
    pathAndQuery: string,
    cookies: string | undefined,
    from: string | undefined,
  ): Promise<SsoAnswer> {
    const current = new URL(pathAndQuery, `${this.publicBase}/`);
    const state = current.searchParams.get('state');
    if (!state)
      return answer(400, 'Not a sign-in answer', 'The identity provider sent no state back.');
    // Checked before the claim, which is a store write (serialised with every other writer):
    // an unauthenticated flood of made-up states must not hold the fleet's writes up.
    if (!STATE_PATTERN.test(state))
      return answer(
        404,
        'Unknown sign-in',
        'This sign-in is not known (it was started again, or long ago): connect again.',
      );
    const now = this.opts.clock.now();
    const claim = await this.opts.store.claimSsoSignIn(state, now);
    if ('problem' in claim) {
      if (claim.problem === 'unknown')
        return answer(
          404,
          'Unknown sign-in',
          'This sign-in is not known (it was started again, or long ago): connect again.',
        );
      if (claim.problem === 'finished')
        return answer(
          409,
          'Sign-in already used',
          'This sign-in has already been completed: the answer of the provider is used once.',
        );
      const reason = 'sign-in expired: connect again';
      await this.finish(claim.signIn, { id: claim.signIn.requestId, ok: false, reason }, from);
      return answer(410, 'Sign-in expired', `Refused: ${reason}.`);
    }
    const signIn = claim.claimed;
    const outcome = await this.decide(signIn, current, cookies);
    await this.finish(signIn, outcome.result, from);
    return {
      status: outcome.result.ok ? 200 : 403,
      page: page(outcome.title, outcome.message),
      // The binding cookie has served.
      cookie: `${browserCookieName(signIn.id)}=; HttpOnly; SameSite=Lax; Path=${SSO_CALLBACK_PATH}; Max-Age=0${this.secure ? '; Secure' : ''}`,
    };
  }

  private async decide(
    signIn: SsoSignIn,
    current: URL,
    cookies: string | undefined,
  ): Promise<Outcome> {
    const refuse = (reason: string, subject?: string): Outcome => ({
      result: {
        id: signIn.requestId,
        ok: false,
        reason: oneLine(reason),
        ...(subject !== undefined ? { subject } : {}),
      },
      title: 'Sign-in refused',
      message: `Refused: ${oneLine(reason)}.`,
    });
    const started = signIn.started;
    if (!started) return refuse('the sign-in was never started');
    const presented = cookieValue(cookies, browserCookieName(signIn.id));
    if (presented === undefined || sha256(presented) !== started.browserSha256)
      return refuse('the sign-in was finished in another browser than the one that started it');
    let claims: Record<string, unknown>;
    let config: oidc.Configuration;
    try {
      config = await this.configuration();
      const tokens = await oidc.authorizationCodeGrant(config, current, {
        pkceCodeVerifier: started.codeVerifier,
        expectedState: started.state,
        expectedNonce: started.nonce,
        idTokenExpected: true,
      });
      claims = { ...(tokens.claims() ?? {}) };
      const s = this.opts.settings;
      const needed = [s.userClaim ?? 'preferred_username', s.groupsClaim, 'email'];
      // Many providers put only `sub` in the ID token and the rest behind userinfo.
      if (
        needed.some((c) => claims[c] === undefined) &&
        config.serverMetadata().userinfo_endpoint
      ) {
        const info = await oidc.fetchUserInfo(config, tokens.access_token, String(claims.sub));
        claims = { ...info, ...claims };
      }
    } catch (err) {
      return refuse(`identity provider: ${providerError(err)}`);
    }
    return this.judge(signIn, claims);
  }

  /** Our rules on the provider's claims: who, which domain, which groups. */
  judge(signIn: Pick<SsoSignIn, 'requestId' | 'user'>, claims: Record<string, unknown>): Outcome {
    const s = this.opts.settings;
    const subject = String(claims.sub);
    const refuse = (reason: string): Outcome => ({
      result: { id: signIn.requestId, ok: false, reason: oneLine(reason), subject },
      title: 'Sign-in refused',
      message: `Refused: ${oneLine(reason)}.`,
    });
    const email = typeof claims.email === 'string' ? claims.email : undefined;
    // Only a provider that says so: some leave email_verified out while letting people set any
    // address, and an unverified ann@corp.example must not count as ann or as corp.example.
    const emailVerified = claims.email_verified === true;
    const domain = email?.split('@').pop()?.toLowerCase();
    if (s.allowedDomains.length) {
      if (!email || !emailVerified) return refuse('the identity provider gave no verified email');
      if (!s.allowedDomains.some((d) => d.toLowerCase() === domain))
        return refuse(`email domain ${domain} is not allowed`);
    }
    const userClaim = s.userClaim ?? 'preferred_username';
    const raw = userClaim === 'email' ? email?.slice(0, email.lastIndexOf('@')) : claims[userClaim];
    const person = typeof raw === 'string' ? raw : undefined;
    if (person === undefined)
      return refuse(`the identity provider gave no ${userClaim} claim to match the VPN user`);
    if (person !== signIn.user)
      return refuse(`signed in as ${person}, but this connection is for VPN user ${signIn.user}`);
    const claimed = groupValues(claims[s.groupsClaim]);
    const mapped = [
      ...new Set(claimed.flatMap((g) => (s.groupMap[g] ? [s.groupMap[g]] : []))),
    ].sort();
    if (s.allowedGroups.length) {
      const allowed = new Set(s.allowedGroups);
      if (!claimed.some((g) => allowed.has(g)) && !mapped.some((g) => allowed.has(g)))
        return refuse(`${person} is in none of the allowed groups (${s.allowedGroups.join(', ')})`);
    }
    return {
      result: {
        id: signIn.requestId,
        ok: true,
        subject,
        ...(email !== undefined ? { email } : {}),
        groups: mapped,
      },
      title: 'Signed in',
      message: `Signed in as ${person}: your VPN connection continues. You may close this window.`,
    };
  }

  /**
   * Stores and audits the result, then hands it to this controller's listeners. A successful
   * sign-in's groups become the user's session groups in the same transaction as its audit
   * entry (they count where auth.sso maps groups: core/session-groups.ts).
   */
  private async finish(
    signIn: SsoSignIn,
    result: WebSignInResult,
    from: string | undefined,
  ): Promise<void> {
    const subject = result.subject;
    await this.opts.store.finishSsoSignIn(
      signIn.id,
      { ...result },
      {
        at: this.opts.clock.now().toISOString(),
        actor: subject !== undefined ? `sso:${subject}` : 'sso',
        action: result.ok ? 'sso.sign-in' : 'sso.refused',
        subject: signIn.user,
        detail: {
          server: signIn.server,
          remote: signIn.remote,
          ...(from ? { browser: from } : {}),
          issuer: this.opts.settings.issuer,
          ...(subject !== undefined ? { idpSubject: subject } : {}),
          ...(result.ok
            ? { groups: result.groups, ...(result.email ? { email: result.email } : {}) }
            : { reason: result.reason }),
        },
      },
      result.ok ? result.groups : undefined,
    );
    this.awaiting.delete(signIn.id);
    this.emit(result);
  }

  private emit(result: WebSignInResult): void {
    for (const listener of this.listeners) {
      try {
        listener(result);
      } catch (err) {
        this.log(`sso: a result listener failed: ${String(err)}`);
      }
    }
  }

  /** Results of sign-ins begun here and finished by another controller (shared store). */
  private schedulePoll(): void {
    if (this.poll !== undefined || !this.awaiting.size) return;
    this.poll = this.timers.setTimeout(() => {
      this.poll = undefined;
      void this.pollResults().finally(() => this.schedulePoll());
    }, this.opts.resultPollMs ?? 500);
  }

  private async pollResults(): Promise<void> {
    const now = this.opts.clock.now().getTime();
    // Past its expiry nobody waits for it: the agent's pending-auth timeout has answered.
    for (const [id, expires] of this.awaiting) if (expires + 60_000 < now) this.awaiting.delete(id);
    try {
      const results = await this.opts.store.ssoResults([...this.awaiting.keys()]);
      for (const [id, result] of results) {
        if (!this.awaiting.delete(id)) continue;
        this.emit(result as unknown as WebSignInResult);
      }
    } catch (err) {
      this.log(`sso: reading results failed: ${String(err)}`);
    }
  }

  close(): void {
    if (this.poll !== undefined) this.timers.clearTimeout(this.poll);
    this.poll = undefined;
    this.awaiting.clear();
  }
}

/** A groups claim as strings: an array of strings, or one string. */
function groupValues(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}

/** The provider's refusal as one line (its `error` and description), or the failure's message. */
function providerError(err: unknown): string {
  if (err instanceof oidc.AuthorizationResponseError)
    return `${err.error}${err.error_description ? ` (${err.error_description})` : ''}`;
  if (err instanceof oidc.ResponseBodyError)
    return `${err.error}${err.error_description ? ` (${err.error_description})` : ''}`;
  return err instanceof Error ? err.message : String(err);
}
