/**
 * TOTP as a second factor at connect (auth.totp): enrolment (a secret, its otpauth:// URI for
 * the authenticator app, ten recovery codes shown once), the check of a code a client gives to
 * the CR_TEXT challenge, and reset. RFC 6238 defaults (SHA-1, 6 digits, 30 s), which every
 * authenticator app reads from the URI; a code is accepted one step either side (clock skew)
 * and only once (the step is recorded). The secret is stored sealed (AES-256-GCM, key in the
 * settings) and never returned by the API or written to a log; recovery codes are stored as
 * SHA-256 only and each works once.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import type { AuthOutcome } from '../api/index.js';
import { Conflict, InputError, NotFound } from '../errors.js';
import type { ServiceContext } from './context.js';

const SEAL_KEY_SETTING = 'totp.seal-key';
const RECOVERY_CODES = 10;
const PERIOD = 30;
/** Wrong TOTP answers in a row that lock a user's answers out, and for how long. */
export const LOCK_AFTER = 5;
export const LOCK_MS = 15 * 60_000;

export interface TotpEnrolment {
  /** otpauth://totp/… for the authenticator app (as a QR code or typed in). */
  uri: string;
  /** Shown once; the store keeps only their SHA-256. */
  recoveryCodes: string[];
}

export interface SignInPlace {
  server: string;
  realAddress?: string;
}

export class Totp {
  constructor(private readonly ctx: ServiceContext) {}

  /** A new secret and recovery codes for the user, replacing any earlier ones (audited). */
  async enroll(user: string): Promise<TotpEnrolment> {
    const { store, clock } = this.ctx;
    if (!(await store.getUser(user))) throw new NotFound(`no user named ${user}`);
    const secret = new Secret({ size: 20 });
    const recoveryCodes = Array.from({ length: RECOVERY_CODES }, () => recoveryCode());
    const sealed = seal(await this.sealKey(), secret.base32);
    const at = clock.now().toISOString();
    await store.transaction(async (tx) => {
      await tx.putTotp(user, sealed, recoveryCodes.map(sha256), at);
      await tx.audit({ at, actor: this.ctx.actor, action: 'user.totp.enroll', subject: user });
    });
    return { uri: this.totpOf(user, secret).toString(), recoveryCodes };
  }

  /** Confirms an enrolment with a first code (audited); a wrong code is an InputError. */
  async confirm(user: string, code: string): Promise<void> {
    const t = await this.ctx.store.getTotp(user);
    if (!t) throw new NotFound(`${user} has no TOTP enrolment`);
    if (t.confirmedAt) throw new Conflict(`${user}'s TOTP is confirmed already`);
    const step = await this.matchingStep(user, t.sealedSecret, code);
    if (step === undefined || !(await this.ctx.store.useTotpStep(user, step)))
      throw new InputError('code', 'is not the code the authenticator app shows now');
    const at = this.ctx.clock.now().toISOString();
    await this.ctx.store.confirmTotp(user, at);
    await this.ctx.store.audit({
      at,
      actor: this.ctx.actor,
      action: 'user.totp.confirm',
      subject: user,
    });
  }

  /** Removes the user's TOTP (a lost phone): the next enrolment starts afresh (audited). */
  async reset(user: string): Promise<void> {
    const { store, clock } = this.ctx;
    await store.transaction(async (tx) => {
      if (!(await tx.deleteTotp(user))) throw new NotFound(`${user} has no TOTP enrolment`);
      await tx.audit({
        at: clock.now().toISOString(),
        actor: this.ctx.actor,
        action: 'user.totp.reset',
        subject: user,
      });
    });
  }

  /** Whether the user is enrolled and confirmed, and how many recovery codes are left. */
  async status(
    user: string,
  ): Promise<{ enrolled: boolean; confirmed: boolean; recoveryCodesLeft: number }> {
    const t = await this.ctx.store.getTotp(user);
    return {
      enrolled: Boolean(t),
      confirmed: Boolean(t?.confirmedAt),
      recoveryCodesLeft: t?.recoveryCodesLeft ?? 0,
    };
  }

  /**
   * Checks what a client answered to the TOTP challenge: a current code (once), or an unused
   * recovery code. The first good code of an enrolment made with the CLI confirms it. Every
   * result is audited (`auth.totp`: user, server, from where, ok or why not); the response
   * itself never is.
   */
  async check(user: string, response: string, where: SignInPlace): Promise<AuthOutcome> {
    const locked = await this.lockedFor(user);
    const outcome: { ok: true; method: 'code' | 'recovery code' } | { ok: false; reason: string } =
      locked !== undefined
        ? {
            ok: false,
            reason: `too many wrong codes: try again in ${Math.ceil(locked / 60_000)} min`,
          }
        : await this.decide(user, response.trim());
    await this.ctx.store.audit({
      at: this.ctx.clock.now().toISOString(),
      actor: `agent:${where.server}`,
      action: 'auth.totp',
      subject: user,
      detail: {
        server: where.server,
        ...(where.realAddress ? { from: where.realAddress } : {}),
        ok: outcome.ok,
        ...(outcome.ok ? { method: outcome.method } : { reason: outcome.reason }),
      },
    });
    return outcome.ok ? { ok: true } : { ok: false, reason: outcome.reason };
  }

  /**
   * How long the user must still wait, or undefined. A six-digit code is one guess in a
   * million, three codes are good at once (one step either side), and a stolen certificate can
   * connect as often as it likes, on every server: after LOCK_AFTER wrong answers in a row
   * within LOCK_MS no answer is looked at until LOCK_MS after the last of them. Counted from the
   * audit log, which every controller writes: the limit holds across servers and controllers.
   */
  private async lockedFor(user: string): Promise<number | undefined> {
    const now = this.ctx.clock.now().getTime();
    const recent = await this.ctx.store.auditQuery({
      action: 'auth.totp',
      subject: user,
      since: new Date(now - LOCK_MS),
      limit: LOCK_AFTER,
    });
    if (recent.length < LOCK_AFTER || recent.some((e) => e.detail?.ok === true)) return undefined;
    const last = Date.parse(recent[0].at);
    return last + LOCK_MS > now ? last + LOCK_MS - now : undefined;
  }

  private async decide(
    user: string,
    response: string,
  ): Promise<{ ok: true; method: 'code' | 'recovery code' } | { ok: false; reason: string }> {
    const { store, clock } = this.ctx;
    const t = await store.getTotp(user);
    if (!t) return { ok: false, reason: 'no TOTP is enrolled for you: ask an administrator' };
    if (/^\d{6}$/.test(response)) {
      const step = await this.matchingStep(user, t.sealedSecret, response);
      if (step === undefined) return { ok: false, reason: 'wrong code' };
      if (!(await store.useTotpStep(user, step)))
        return { ok: false, reason: 'this code was used already: wait for the next one' };
      if (!t.confirmedAt) await store.confirmTotp(user, clock.now().toISOString());
      return { ok: true, method: 'code' };
    }
    const normalised = response.toLowerCase().replace(/\s+/g, '');
    if (/^[a-z0-9]{5}-[a-z0-9]{5}$/.test(normalised)) {
      if (await store.useRecoveryCode(user, sha256(normalised), clock.now().toISOString()))
        return { ok: true, method: 'recovery code' };
      return { ok: false, reason: 'unknown or used recovery code' };
    }
    return { ok: false, reason: 'wrong code (6 digits, or a recovery code like abcde-12345)' };
  }

  /** The time step the code belongs to (now, or one either side), or undefined. */
  private async matchingStep(
    user: string,
    sealedSecret: string,
    code: string,
  ): Promise<number | undefined> {
    const secret = Secret.fromBase32(unseal(await this.sealKey(), sealedSecret));
    const timestamp = this.ctx.clock.now().getTime();
    const delta = this.totpOf(user, secret).validate({ token: code, timestamp, window: 1 });
    if (delta === null) return undefined;
    return Math.floor(timestamp / 1000 / PERIOD) + delta;
  }

  private totpOf(user: string, secret: Secret): TOTP {
    return new TOTP({
      issuer: `ovpn-fleet ${this.ctx.spec.fleet}`,
      label: user,
      algorithm: 'SHA1',
      digits: 6,
      period: PERIOD,
      secret,
    });
  }

  private async sealKey(): Promise<Buffer> {
    const { store } = this.ctx;
    let hex = await store.getSetting(SEAL_KEY_SETTING);
    if (hex === undefined) {
      const fresh = randomBytes(32).toString('hex');
      hex = await store.transaction(async (tx) => {
        const raced = await tx.getSetting(SEAL_KEY_SETTING);
        if (raced !== undefined) return raced;
        await tx.setSetting(SEAL_KEY_SETTING, fresh);
        return fresh;
      });
    }
    return Buffer.from(hex, 'hex');
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** `abcde-12345`: 50 bits from an alphabet without look-alikes (no 0/o, 1/l/i). */
function recoveryCode(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789';
  const bytes = randomBytes(10);
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]);
  return `${chars.slice(0, 5).join('')}-${chars.slice(5).join('')}`;
}

function seal(key: Buffer, text: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ct = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return `v1:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ct.toString('base64')}`;
}

function unseal(key: Buffer, sealed: string): string {
  const [v, iv, tag, ct] = sealed.split(':');
  if (v !== 'v1' || !iv || !tag || !ct) throw new Error('unreadable sealed TOTP secret');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
  decipher.setAuthTag(Buffer.from(tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]).toString(
    'utf8',
  );
}
