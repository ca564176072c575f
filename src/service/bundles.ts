/**
 * What the fleet hands out: each server's bundle, rendered from one snapshot of the store, and
 * each user's client profile. Taking a snapshot first makes sure the PKI is complete and the
 * CRL current, so every bundle carries a CRL that lists every revoked certificate.
 */
import { effectiveGroups } from '../core/session-groups.js';
import { Conflict, NotFound } from '../errors.js';
import {
  type Bundle,
  type PinnedSnapshot,
  renderBundle,
  renderFleet,
  serverContexts,
} from '../render/bundle.js';
import { renderProfile } from '../render/profile.js';
import { DEFAULT_RENDER_OPTIONS, type RenderOptions } from '../render/types.js';
import type { ServiceContext } from './context.js';
import { SPEC_FILE } from './layout.js';
import type { PkiLifecycle } from './pki-lifecycle.js';
import type { Secrets } from './secrets.js';
import type { Users } from './users.js';

export class Bundles {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly pki: PkiLifecycle,
    private readonly secrets: Secrets,
    private readonly users: Users,
  ) {}

  async snapshot(): Promise<PinnedSnapshot> {
    const { spec, store } = this.ctx;
    await this.pki.ensure();
    const servers = new Map<
      string,
      { certPem: string; keyPem: string; managementPassword: string }
    >();
    for (const site of spec.sites) {
      for (const s of site.servers) {
        const cert = (await store.serverCert(s.name))!;
        servers.set(s.name, {
          certPem: cert.certPem,
          keyPem: cert.keyPem,
          managementPassword: await this.secrets.managementPassword(s.name),
        });
      }
    }
    // Every certificate of a user that is neither revoked nor expired is accepted: after a
    // renewal the old one keeps working until it expires, whichever profile the user runs.
    const live = new Map<string, string[]>();
    for (const c of await store.liveClientCerts(this.ctx.clock.now()))
      live.set(c.subject, [...(live.get(c.subject) ?? []), c.serial]);
    return {
      users: (await store.listUsers()).map((u) => ({
        name: u.name,
        ipv4: u.ipv4,
        ipv6: u.ipv6,
        // The groups that count for the policy: the last SSO sign-in's when the fleet maps the
        // provider's groups, else the spec's (core/session-groups.ts).
        groups: effectiveGroups(spec, u),
        enabled: u.status === 'enabled',
        // The servers accept only these serials for the user (ccd pin): a certificate of an
        // earlier user of the same name is refused even by a CRL that missed it.
        certSerials: [
          ...new Set([...(live.get(u.name) ?? []), ...(u.certSerial ? [u.certSerial] : [])]),
        ],
      })),
      // Every trusted CA: during a rollover the servers accept clients of both.
      caPem: await this.pki.trustBundle(),
      crlPem: await this.pki.ensureCrl(),
      tlsCryptKey: await this.secrets.tlsCryptKey(),
      servers,
      // Only a fleet with `auth` has (and creates) the shared auth-gen-token secret.
      ...(this.ctx.spec.auth ? { authTokenKey: await this.secrets.authTokenKey() } : {}),
    };
  }

  /** Every server's bundle from one snapshot, each with its own base directory. */
  async bundlesFor(
    baseDir: (server: string) => string,
    options: Partial<Omit<RenderOptions, 'baseDir'>> = {},
  ): Promise<Bundle[]> {
    return renderFleet(
      this.ctx.spec,
      await this.snapshot(),
      { ...DEFAULT_RENDER_OPTIONS, ...options },
      baseDir,
    );
  }

  async bundles(options: Partial<RenderOptions> = {}): Promise<Bundle[]> {
    return renderFleet(this.ctx.spec, await this.snapshot(), {
      ...DEFAULT_RENDER_OPTIONS,
      ...options,
    });
  }

  /** One server's bundle. */
  async bundle(server: string, options: Partial<RenderOptions> = {}): Promise<Bundle> {
    const ctx = serverContexts(this.ctx.spec, { ...DEFAULT_RENDER_OPTIONS, ...options }).find(
      (c) => c.server.name === server,
    );
    if (!ctx) throw new NotFound(`no server named ${server} in ${SPEC_FILE}`);
    return renderBundle(ctx, await this.snapshot());
  }

  /**
   * `anyStatus` is for the lab, which must show that a revoked or disabled user's existing
   * profile is refused by the servers. `audit` records the hand-out (`user.profile`, with the
   * certificate serial): a profile carries the user's private key.
   */
  async profile(
    name: string,
    opts: { anyStatus?: boolean; audit?: boolean } = {},
  ): Promise<string> {
    let user = await this.users.get(name);
    if (user.status !== 'enabled' && !opts.anyStatus)
      throw new Conflict(`user ${name} is ${user.status}: no profile is issued`);
    if (!user.certSerial && user.status === 'enabled') {
      await this.users.issueMissingCerts([name]);
      user = await this.users.get(name);
    } else if (
      user.status === 'enabled' &&
      user.certNotAfter &&
      this.pki.clientRenewalDue(user.certNotAfter, this.ctx.clock.now())
    ) {
      // Inside the renewal window: hand out the next certificate now rather than one that the
      // controller's next tick would replace (renewClients checks the window again).
      await this.pki.renewClients({ names: [name] });
      user = await this.users.get(name);
    }
    const cert = user.certSerial ? await this.ctx.store.getCert(user.certSerial) : undefined;
    if (!cert) throw new NotFound(`user ${name} has no certificate`);
    const text = renderProfile({
      spec: this.ctx.spec,
      user: name,
      // Both CAs during a rollover: the profile keeps working across the switch.
      caPem: await this.pki.trustBundle(),
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      tlsCryptKey: await this.secrets.tlsCryptKey(),
    });
    // From now on this certificate is "picked up": `user show` stops offering a new profile.
    await this.ctx.store.markCertDelivered(cert.serial, this.ctx.clock.now());
    if (opts.audit)
      await this.ctx.store.audit({
        at: this.ctx.clock.now().toISOString(),
        actor: this.ctx.actor,
        action: 'user.profile',
        subject: name,
        detail: { serial: cert.serial },
      });
    return text;
  }
}
