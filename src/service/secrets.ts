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
    if (!store.getSetting('tls-crypt.key'))
      store.setSetting(
        'tls-crypt.key',
        (await loadPki()).generateTlsCryptKey((n) => randomBytes(n)),
      );
    if (!store.getSetting('management.secret'))
      store.setSetting('management.secret', randomBytes(32).toString('hex'));
  }

  tlsCryptKey(): string {
    return this.mustSetting('tls-crypt.key');
  }

  managementPassword(server: string): string {
    return createHmac('sha256', this.mustSetting('management.secret'))
      .update(`management:${server}`)
      .digest('hex')
      .slice(0, 32);
  }

  /**
   * The bearer token of one server's agent: HMAC of a fleet secret (created on first use) and
   * the server name, so the controller can check it without storing one token per server.
   */
  agentToken(server: string): string {
    const { store, spec } = this.ctx;
    if (!serverNamesOf(spec).includes(server))
      throw new NotFound(`no server named ${server} in ${SPEC_FILE}`);
    let secret = store.getSetting('agent.secret');
    if (secret === undefined) {
      secret = store.transaction(() => {
        const existing = store.getSetting('agent.secret');
        if (existing !== undefined) return existing;
        const fresh = randomBytes(32).toString('hex');
        store.setSetting('agent.secret', fresh);
        return fresh;
      });
    }
    return createHmac('sha256', secret).update(`agent:${server}`).digest('hex');
  }

  private mustSetting(key: string): string {
    const v = this.ctx.store.getSetting(key);
    if (v === undefined) throw new NotFound(`store has no ${key}: run "ovpn-fleet init"`);
    return v;
  }
}
