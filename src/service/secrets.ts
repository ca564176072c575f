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

  private async mustSetting(key: string): Promise<string> {
    const v = await this.ctx.store.getSetting(key);
    if (v === undefined) throw new NotFound(`store has no ${key}: run "ovpn-fleet init"`);
    return v;
  }
}
