/**
 * The fleet's shared secrets that are not certificates: the tls-crypt key every server and
 * profile carries, and the two HMAC secrets from which each server's management password and
 * agent token are derived (so no per-server credential needs storing).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { NotFound } from '../errors.js';
import { type ServiceContext, loadPki, serverNamesOf } from './context.js';
import { SPEC_FILE } from './layout.js';

export class Secrets {
  constructor(private readonly ctx: ServiceContext) {}

  /** Creates the tls-crypt key and the management secret when missing. */
  async ensure(): Promise<void> {
    const { store } = this.ctx;
    if (
      (await store.getSetting('tls-crypt.key')) !== undefined &&
      (await store.getSetting('management.secret')) !== undefined
    )
      return;
    // Made outside the transaction (the PKI loads and generates asynchronously), kept only if
    // no other writer (another controller starting at the same time) stored one first.
    const tlsCryptKey = (await loadPki()).generateTlsCryptKey((n) => randomBytes(n));
    await store.transaction(async (tx) => {
      if (!(await tx.getSetting('tls-crypt.key')))
        await tx.setSetting('tls-crypt.key', tlsCryptKey);
      if (!(await tx.getSetting('management.secret')))
        await tx.setSetting('management.secret', randomBytes(32).toString('hex'));
    });
  }

  tlsCryptKey(): Promise<string> {
    return this.mustSetting('tls-crypt.key');
  }

  async managementPassword(server: string): Promise<string> {
    return createHmac('sha256', await this.mustSetting('management.secret'))
      .update(`management:${server}`)
      .digest('hex')
      .slice(0, 32);
  }

  /**
   * The bearer token of one server's agent: HMAC of a fleet secret (created on first use) and
   * the server name, so the controller can check it without storing one token per server.
   */
  async agentToken(server: string): Promise<string> {
    const { store, spec } = this.ctx;
    if (!serverNamesOf(spec).includes(server))
      throw new NotFound(`no server named ${server} in ${SPEC_FILE}`);
    let secret = await store.getSetting('agent.secret');
    if (secret === undefined) {
      secret = await store.transaction(async (tx) => {
        const existing = await tx.getSetting('agent.secret');
        if (existing !== undefined) return existing;
        const fresh = randomBytes(32).toString('hex');
        await tx.setSetting('agent.secret', fresh);
        return fresh;
      });
    }
    return createHmac('sha256', secret).update(`agent:${server}`).digest('hex');
  }

  /**
   * The auth-gen-token secret every server shares (created on first use), in the PEM OpenVPN
   * reads with auth-gen-token-secret: what `openvpn --genkey auth-token` writes (auth_token.c
   * auth_token_pem_name; 128 random bytes, struct key's cipher and hmac halves, of which the
   * HMAC-SHA256 uses the hmac half). One secret for the fleet is what lets a token made on one
   * server be accepted by every other.
   */
  async authTokenKey(): Promise<string> {
    const existing = await this.ctx.store.getSetting(AUTH_TOKEN_SETTING);
    if (existing !== undefined) return existing;
    const fresh = authTokenKeyPem(randomBytes(128));
    return this.ctx.store.transaction(async (tx) => {
      const raced = await tx.getSetting(AUTH_TOKEN_SETTING);
      if (raced !== undefined) return raced;
      await tx.setSetting(AUTH_TOKEN_SETTING, fresh);
      return fresh;
    });
  }

  /**
   * A new auth-gen-token secret. It reaches the servers in their bundles and OpenVPN reads it
   * when it restarts (a rollout, one server at a time). From then on every token made with the
   * old secret is Invalid on that server: users who reconnect there sign in again (SSO, TOTP),
   * certificate-only users notice nothing. Live sessions stay up; at their next renegotiation
   * (reneg-sec) the agent sees the Invalid token and asks for a sign-in again. Use it when a
   * server's files may have leaked, or to end every sign-in at once. Audited.
   */
  async rotateAuthTokenKey(): Promise<void> {
    const fresh = authTokenKeyPem(randomBytes(128));
    await this.ctx.store.transaction(async (tx) => {
      await tx.setSetting(AUTH_TOKEN_SETTING, fresh);
      await tx.audit({
        at: this.ctx.clock.now().toISOString(),
        actor: this.ctx.actor,
        action: 'auth.token-secret.rotate',
        subject: 'fleet',
      });
    });
  }

  private async mustSetting(key: string): Promise<string> {
    const v = await this.ctx.store.getSetting(key);
    if (v === undefined) throw new NotFound(`store has no ${key}: run "ovpn-fleet init"`);
    return v;
  }
}

const AUTH_TOKEN_SETTING = 'auth-token.key';

/** OpenVPN's PEM for an auth-token secret: base64 in lines of 64, as its PEM writer makes them. */
export function authTokenKeyPem(key: Buffer): string {
  if (key.length !== 128) throw new Error('an auth-token secret is 128 bytes');
  const lines = key.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN OpenVPN auth-token server key-----\n${lines.join('\n')}\n-----END OpenVPN auth-token server key-----\n`;
}
