/**
 * The PKI's life over years: the CA and server certificates made at init, client certificates
 * signed on demand and renewed ahead of expiry, server certificates rotated inside their own
 * window, the CA rolled over (next → active → retiring → retired), and one CRL per trusted CA
 * that is always current — re-issued long before it expires (an expired CRL makes OpenVPN
 * refuse every client) and whenever it disagrees with the store.
 *
 * A CA rollover, step by step (each audited, each visible in `pki status`):
 * 1. rollover — a new CA is added as `next`: every server's ca.crt and every new profile trust
 *    both CAs; the active CA still signs everything.
 * 2. switch — after `pki.caSwitchAfterDays` (or `pki ca switch`) the new CA becomes `active` and
 *    signs new and renewed client certificates; the old one becomes `retiring`. Servers keep
 *    certificates of the old CA: profiles handed out before step 1 trust only the old CA, and
 *    they live as long as the old CA's client certificates do.
 * 3. Once no client certificate of the retiring CA is valid any more (users renewed onto the
 *    new CA in their normal window), the servers' certificates are rotated onto the new CA.
 * 4. retire — `VALIDITY.restartGraceDays` later (the rolling restart that loads the new server
 *    certificates) the old CA is dropped from every trust bundle and its CRL from crl.pem.
 */
import { Conflict, InputError, NotFound } from '../errors.js';
import type { CrlInfo, IssuedCert } from '../core/pki.js';
import { serverCommonName } from '../render/types.js';
import type {
  CaState,
  CertSummary,
  RevocationState,
  RevokedCert,
  StoredCert,
  User,
} from '../store/types.js';
import { sleep } from '../sys/time.js';
import { type ServiceContext, loadPki, serverNamesOf } from './context.js';
import type { Secrets } from './secrets.js';

/** Bound on re-signing a CRL that other writers keep replacing under us. */
const CRL_ATTEMPTS = 50;
const DAY_MS = 86_400_000;

export const VALIDITY = {
  caDays: 3650,
  serverDays: 825,
  userDays: 365,
  /** A CRL is valid this long; an expired CRL makes OpenVPN refuse every client. */
  crlDays: 30,
  /** …and is re-issued once less than this remains, long before anyone is locked out. */
  crlRenewDays: 15,
  /**
   * A retiring CA stays trusted this long after the last server certificate moved off it: the
   * servers load their new certificate with a rolling restart, and a profile that trusts only
   * the new CA must not meet a server that still presents the old certificate.
   */
  restartGraceDays: 7,
};

export interface PkiStatusRow {
  kind: 'ca' | 'server' | 'client' | 'crl';
  subject: string;
  /** CRL: its number. */
  serial: string;
  /** CN of the CA that signed it (a CRL: the CA it speaks for; a CA: itself). */
  issuer: string;
  notAfter: string;
  daysLeft: number;
  /**
   * CA: active, next, retiring, retired. Server and client certificates: valid, renewal due,
   * superseded (a newer one is current; still valid until it expires), revoked, EXPIRED.
   * CRL: ok, renew soon, EXPIRED.
   */
  state: string;
  /** In use: a trusted CA, a server's current certificate, a user's current certificate. */
  current: boolean;
  /** What happens next, in words (e.g. "new profile not picked up yet"). */
  note?: string;
}

/** What one lifecycle step did (the controller's hourly tick, `pki renew`). */
export interface MaintenanceReport {
  /** Users whose certificate was renewed. */
  renewed: string[];
  /** Servers that got a new certificate (their bundle's server.crt and server.key changed). */
  rotated: string[];
  /** CA events, in order: "rollover …", "switch …", "retire …". */
  ca: string[];
}

/** A user's certificate as `user show`, the API and the console tell it. */
export interface UserCertificate {
  serial: string;
  notAfter: string;
  daysLeft: number;
  /** CN of the CA that signed it. */
  issuer?: string;
  /** Inside the renewal window and not renewed yet (the next tick or `pki renew` does it). */
  renewalDue: boolean;
  /**
   * The current certificate was renewed and no profile has carried it yet, while an older one
   * is still valid: the user should download the new profile before the old one expires.
   */
  newProfileAvailable: boolean;
  /** Older certificates still valid (not revoked, not expired), oldest first. */
  previous: { serial: string; notAfter: string }[];
}

const daysBetween = (now: Date, iso: string) =>
  Math.floor((new Date(iso).getTime() - now.getTime()) / DAY_MS);

export class PkiLifecycle {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly secrets: Secrets,
  ) {}

  private get windows() {
    return this.ctx.spec.pki;
  }

  /** Everything init creates, made now if missing: CA, secrets, server certs, current CRLs. */
  async ensure(): Promise<void> {
    const { store, spec } = this.ctx;
    const now = this.ctx.clock.now();
    if (!(await store.getCa())) {
      const { createCa, caCommonName } = await loadPki();
      const ca = await createCa({ fleet: spec.fleet, now, validDays: VALIDITY.caDays });
      // Kept only if no other writer (a second controller starting too) stored a CA first.
      await store.transaction(async (tx) => {
        if ((await tx.listCerts('ca')).length) return;
        await tx.putCert({
          serial: ca.serial,
          kind: 'ca',
          subject: caCommonName(spec.fleet),
          notAfter: ca.notAfter.toISOString(),
          certPem: ca.certPem,
          keyPem: ca.keyPem,
          issuedAt: now.toISOString(),
          caState: 'active',
        });
      });
    }
    await this.secrets.ensure();
    let signer: StoredCert | undefined;
    for (const name of serverNamesOf(spec)) {
      if (await store.serverCert(name)) continue;
      signer ??= await this.serverSigningCa(now);
      await this.issueServerCert(name, signer, now, { onlyIfNone: true });
    }
    await this.ensureCrl();
  }

  /** The active CA's certificate and key: it signs new client certificates. */
  async caPair(): Promise<{ certPem: string; keyPem: string }> {
    const ca = await this.activeCa();
    return { certPem: ca.certPem, keyPem: ca.keyPem };
  }

  private async activeCa(): Promise<StoredCert> {
    const ca = await this.ctx.store.getCa();
    if (!ca) throw new NotFound('no CA in the store: run "ovpn-fleet init"');
    return ca;
  }

  /** Every CA, oldest first. */
  private async cas(): Promise<StoredCert[]> {
    return (await this.ctx.store.listCerts('ca')).sort(
      (a, b) =>
        (a.issuedAt ?? '').localeCompare(b.issuedAt ?? '') || a.notAfter.localeCompare(b.notAfter),
    );
  }

  /** The CAs every server and every new profile trust: all but the retired, active first. */
  async trustedCas(): Promise<StoredCert[]> {
    const order: Record<CaState, number> = { active: 0, next: 1, retiring: 2, retired: 3 };
    return (await this.cas())
      .filter((c) => c.caState !== 'retired')
      .sort((a, b) => order[a.caState ?? 'active'] - order[b.caState ?? 'active']);
  }

  /** The trust bundle: ca.crt on every server and <ca> in every new profile. */
  async trustBundle(): Promise<string> {
    return (await this.trustedCas()).map((c) => c.certPem).join('');
  }

  /**
   * The CA that signs server certificates: the retiring CA while any client certificate it
   * signed is still valid (its profile may trust only that CA, and every client must accept
   * the server), the active CA otherwise.
   */
  private async serverSigningCa(now: Date, known?: CertSummary[]): Promise<StoredCert> {
    const live = known ?? (await this.ctx.store.liveClientCerts(now));
    const retiring = (await this.cas()).find((c) => c.caState === 'retiring');
    if (
      retiring &&
      new Date(retiring.notAfter) > now &&
      live.some((c) => c.issuer === retiring.serial)
    )
      return retiring;
    return await this.activeCa();
  }

  /**
   * Signs and stores a server certificate; `onlyIfNone` keeps it only if the server still has
   * none (another controller starting at the same time may have made one first).
   */
  private async issueServerCert(
    name: string,
    ca: StoredCert,
    now: Date,
    opts: { onlyIfNone?: boolean } = {},
  ): Promise<IssuedCert> {
    const { issueCertificate } = await loadPki();
    const cert = await issueCertificate(ca, {
      kind: 'server',
      commonName: serverCommonName(this.ctx.spec.fleet, name),
      now,
      validDays: VALIDITY.serverDays,
    });
    await this.ctx.store.transaction(async (tx) => {
      if (opts.onlyIfNone && (await tx.serverCert(name))) return;
      await tx.putCert({
        serial: cert.serial,
        kind: 'server',
        subject: name,
        notAfter: cert.notAfter.toISOString(),
        certPem: cert.certPem,
        keyPem: cert.keyPem,
        issuer: ca.serial,
        issuedAt: now.toISOString(),
      });
    });
    return cert;
  }

  /**
   * Issues new CRLs — one per trusted CA, concatenated in crl.pem — when forced, when none
   * exist, when their nextUpdate is getting close, when the trusted CAs changed, or when their
   * serials differ from the store's revoked certificates (so any snapshot heals a CRL that
   * missed a revocation). Signing is async (WebCrypto) and a store transaction takes a
   * synchronous callback, so the CRLs are signed from a snapshot and written only if, inside
   * the write transaction, the revoked set, the CRL number and the trusted CAs are still those
   * they were signed from; otherwise another writer got there first and we look again. CRL
   * numbers therefore only ever increase; every CRL of one crl.pem carries the same number.
   *
   * Why one CRL per CA: OpenVPN 2.6 (ssl_openssl.c, backend_tls_ctx_reload_crl) empties the
   * X509_STORE's CRLs, sets X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL, then reads the
   * crl-verify file with PEM_read_bio_X509_CRL in a loop until PEM_R_NO_START_LINE, adding each
   * CRL ("CRL: loaded N CRLs from file"). With CRL_CHECK, OpenSSL wants a CRL from the issuer of
   * every certificate it checks (CRL_CHECK_ALL: the whole chain, the CA itself included) and
   * fails a certificate whose issuer has none with "unable to get certificate CRL": with two
   * CAs trusted and only the active CA's CRL, every client of the other CA would be refused.
   * The file is re-read when it changes, without a restart.
   */
  async ensureCrl(force = false): Promise<string> {
    const { store } = this.ctx;
    const pki = await loadPki();
    for (let attempt = 1; ; attempt++) {
      const now = this.ctx.clock.now();
      const seen = await store.revocationState();
      const trusted = await this.trustedCas();
      if (seen.crlPem && !force && crlsAreCurrent(pki.crlInfos(seen.crlPem), trusted, seen, now))
        return seen.crlPem;
      const number = seen.crlNumber + 1;
      const pems = await Promise.all(
        trusted.map((ca) =>
          pki.createCrl(ca, {
            revoked: revokedBy(seen.revoked, ca.serial).map((r) => ({
              serial: r.serial,
              revokedAt: new Date(r.revokedAt),
            })),
            now,
            nextUpdateDays: VALIDITY.crlDays,
            crlNumber: number,
          }),
        ),
      );
      const pem = pems.join('');
      const trustedKey = trusted.map((c) => c.serial).join(',');
      const written = await store.transaction(async (tx) => {
        const latest = await tx.revocationState();
        if (latest.crlNumber !== seen.crlNumber || !sameRevoked(latest.revoked, seen.revoked))
          return false;
        if ((await this.trustedCas()).map((c) => c.serial).join(',') !== trustedKey) return false;
        await tx.setSetting('crl.pem', pem);
        await tx.setSetting('crl.number', String(number));
        return true;
      });
      if (written) return pem;
      // Whatever the other writer signed may already cover what we were forced for.
      force = false;
      if (attempt >= CRL_ATTEMPTS)
        throw new Conflict(`crl: still changing under us after ${CRL_ATTEMPTS} attempts`);
      await sleep(Math.random() * 5 * attempt);
    }
  }

  /** Signs a few at a time so both cores work; the active CA signs. */
  async issueClientCerts(names: string[], now: Date): Promise<IssuedCert[]> {
    const { issueCertificate } = await loadPki();
    const ca = await this.caPair();
    const out: IssuedCert[] = [];
    const BATCH = 64;
    for (let i = 0; i < names.length; i += BATCH) {
      const issued = await Promise.all(
        names
          .slice(i, i + BATCH)
          .map((commonName) =>
            issueCertificate(ca, { kind: 'client', commonName, now, validDays: VALIDITY.userDays }),
          ),
      );
      out.push(...issued);
    }
    return out;
  }

  /** Whether a certificate expiring at `notAfter` is inside the renewal window at `now`. */
  clientRenewalDue(notAfter: string, now: Date): boolean {
    return new Date(notAfter).getTime() - now.getTime() <= this.windows.renewBeforeDays * DAY_MS;
  }

  /**
   * A certificate signed now by `ca` would outlive `notAfter` by at least a day: without this, a
   * certificate capped by a CA close to its end would be "renewed" into an equal one every tick.
   */
  private wouldExtend(ca: StoredCert, validDays: number, notAfter: string, now: Date): boolean {
    const next = Math.min(now.getTime() + validDays * DAY_MS, new Date(ca.notAfter).getTime());
    return next > new Date(notAfter).getTime() + DAY_MS;
  }

  /**
   * Renews the client certificates inside their window (of `names`, default every user that is
   * not revoked and has one). `force` renews the named users whatever their window. The new
   * certificate becomes the user's current one (their next profile carries it); the previous
   * one stays valid — pinned in the servers' ccd files, not revoked — until it expires, so
   * nobody is cut off before they download the new profile. Returns the users renewed.
   */
  async renewClients(opts: { names?: string[]; force?: boolean } = {}): Promise<string[]> {
    const { store } = this.ctx;
    const now = this.ctx.clock.now();
    const active = await this.activeCa();
    const candidates: User[] = [];
    if (opts.names)
      for (const n of opts.names) {
        const u = await store.getUser(n);
        if (!u) throw new NotFound(`no user named ${n}`);
        candidates.push(u);
      }
    else candidates.push(...(await store.listUsers()));
    const due = candidates.filter(
      (u) =>
        u.status !== 'revoked' &&
        u.certSerial !== undefined &&
        u.certNotAfter !== undefined &&
        ((opts.force && opts.names !== undefined) ||
          (this.clientRenewalDue(u.certNotAfter, now) &&
            this.wouldExtend(active, VALIDITY.userDays, u.certNotAfter, now))),
    );
    if (due.length === 0) return [];
    const certs = await this.issueClientCerts(
      due.map((u) => u.name),
      now,
    );
    const renewed = await store.transaction(async (tx) => {
      const won: User[] = [];
      for (const [i, u] of due.entries())
        if (
          (await tx.replaceClientCert(u.name, u.certSerial!, certs[i], now, this.ctx.actor))
            .attached
        )
          won.push(u);
      return won;
    });
    // A loser was stored revoked: it must be in the CRL like every certificate ever signed.
    if (renewed.length < due.length) await this.ensureCrl(true);
    return renewed.map((u) => u.name);
  }

  /**
   * Gives servers a new certificate when theirs is inside `pki.serverRenewBeforeDays`, or when
   * it was signed by another CA than the one that signs server certificates now (step 3 of a
   * rollover). The old certificate is not revoked: the server presents it until its rolling
   * restart loads the new one. `force` rotates every named server (default all). Audited
   * `server.cert.rotate`. Returns the servers rotated.
   */
  async rotateServers(opts: { names?: string[]; force?: boolean } = {}): Promise<string[]> {
    const { store, spec } = this.ctx;
    const now = this.ctx.clock.now();
    const all = serverNamesOf(spec);
    for (const n of opts.names ?? [])
      if (!all.includes(n)) throw new InputError('server', `no server named ${n}`);
    const signer = await this.serverSigningCa(now);
    const rotated: string[] = [];
    for (const name of opts.names ?? all) {
      const current = await store.serverCert(name);
      if (!current) continue;
      const issuer = current.issuer ?? signer.serial;
      const reason =
        opts.force && opts.names
          ? 'asked'
          : issuer !== signer.serial
            ? 'issuer'
            : daysBetween(now, current.notAfter) < this.windows.serverRenewBeforeDays &&
                this.wouldExtend(signer, VALIDITY.serverDays, current.notAfter, now)
              ? 'expiry'
              : undefined;
      if (!reason) continue;
      const cert = await this.issueServerCert(name, signer, now);
      await store.audit({
        at: now.toISOString(),
        actor: this.ctx.actor,
        action: 'server.cert.rotate',
        subject: name,
        detail: {
          serial: cert.serial,
          previous: current.serial,
          notAfter: cert.notAfter.toISOString(),
          issuer: signer.subject,
          reason,
        },
      });
      rotated.push(name);
    }
    return rotated;
  }

  /**
   * Step 1 of a rollover: a new CA, trusted everywhere from now on, signing from the switch.
   * Refused while another rollover is under way (a `next` or `retiring` CA exists).
   */
  async rolloverCa(why = 'asked'): Promise<StoredCert> {
    const { store, spec } = this.ctx;
    const now = this.ctx.clock.now();
    await this.refuseDuringRollover();
    const { createCa, caCommonName } = await loadPki();
    const generation = (await this.cas()).length + 1;
    const ca = await createCa({ fleet: spec.fleet, now, validDays: VALIDITY.caDays, generation });
    const stored: StoredCert = {
      serial: ca.serial,
      kind: 'ca',
      subject: caCommonName(spec.fleet, generation),
      notAfter: ca.notAfter.toISOString(),
      certPem: ca.certPem,
      keyPem: ca.keyPem,
      issuedAt: now.toISOString(),
      caState: 'next',
    };
    await store.transaction(async (tx) => {
      // Another process may have rolled over while we signed.
      await this.refuseDuringRollover();
      await tx.putCert(stored);
      await tx.audit({
        at: now.toISOString(),
        actor: this.ctx.actor,
        action: 'ca.rollover',
        subject: stored.subject,
        detail: {
          serial: stored.serial,
          notAfter: stored.notAfter,
          switchAt: new Date(now.getTime() + this.windows.caSwitchAfterDays * DAY_MS).toISOString(),
          reason: why,
        },
      });
    });
    await this.ensureCrl(true);
    return stored;
  }

  private async refuseDuringRollover(): Promise<void> {
    const busy = (await this.cas()).find((c) => c.caState === 'next' || c.caState === 'retiring');
    if (busy)
      throw new Conflict(
        `a CA rollover is under way: ${busy.subject} is ${busy.caState} (see "ovpn-fleet pki status")`,
      );
  }

  /** Step 2: the next CA signs from now on; the active one becomes retiring. */
  async switchCa(why = 'asked'): Promise<{ from: StoredCert; to: StoredCert }> {
    const { store } = this.ctx;
    const now = this.ctx.clock.now();
    const moved = await store.transaction(async (tx) => {
      const next = (await this.cas()).find((c) => c.caState === 'next');
      if (!next)
        throw new Conflict('no next CA to switch to: run "ovpn-fleet pki ca rollover" first');
      const from = await this.activeCa();
      await tx.setCaState(from.serial, 'retiring');
      await tx.setCaState(next.serial, 'active');
      await tx.audit({
        at: now.toISOString(),
        actor: this.ctx.actor,
        action: 'ca.switch',
        subject: next.subject,
        detail: { serial: next.serial, previous: from.subject, reason: why },
      });
      return { from, to: next };
    });
    await this.ensureCrl(true);
    return moved;
  }

  /**
   * Step 4, when due: the retiring CA is retired once it has expired, or once no valid client
   * certificate of it remains, no server's current certificate is of it, and the newest server
   * certificate is `restartGraceDays` old. Returns whether it retired.
   */
  private async retireIfDone(now: Date): Promise<boolean> {
    const { store } = this.ctx;
    const retiring = (await this.cas()).find((c) => c.caState === 'retiring');
    if (!retiring) return false;
    const servers: StoredCert[] = [];
    for (const n of serverNamesOf(this.ctx.spec)) {
      const c = await store.serverCert(n);
      if (c) servers.push(c);
    }
    const live = await store.liveClientCerts(now);
    const newestServer = Math.max(0, ...servers.map((s) => Date.parse(s.issuedAt ?? '') || 0));
    const expired = new Date(retiring.notAfter) <= now;
    const done =
      expired ||
      (!live.some((c) => c.issuer === retiring.serial) &&
        !servers.some((s) => s.issuer === retiring.serial) &&
        now.getTime() >= newestServer + VALIDITY.restartGraceDays * DAY_MS);
    if (!done) return false;
    await store.transaction(async (tx) => {
      await tx.setCaState(retiring.serial, 'retired');
      await tx.audit({
        at: now.toISOString(),
        actor: this.ctx.actor,
        action: 'ca.retire',
        subject: retiring.subject,
        detail: { serial: retiring.serial, reason: expired ? 'expired' : 'no certificate left' },
      });
    });
    return true;
  }

  /**
   * One step of the lifecycle, safe to repeat (the controller runs it hourly; `pki renew`
   * without names runs it once): roll the CA over when it is within `pki.caRolloverBeforeDays`
   * of its end, switch after the lead time, renew due client certificates, rotate due server
   * certificates, retire a CA that has nothing left, and keep the CRLs current.
   */
  async maintain(): Promise<MaintenanceReport> {
    const report: MaintenanceReport = { renewed: [], rotated: [], ca: [] };
    await this.ensure();
    const now = this.ctx.clock.now();
    const cas = await this.cas();
    const active = await this.activeCa();
    const next = cas.find((c) => c.caState === 'next');
    const busy = next ?? cas.find((c) => c.caState === 'retiring');
    if (!busy && daysBetween(now, active.notAfter) <= this.windows.caRolloverBeforeDays) {
      const added = await this.rolloverCa(`${active.subject} expires ${active.notAfter}`);
      report.ca.push(`rollover: ${added.subject} added`);
    }
    if (
      next &&
      now.getTime() >= Date.parse(next.issuedAt ?? '') + this.windows.caSwitchAfterDays * DAY_MS
    ) {
      const { from, to } = await this.switchCa(
        `${this.windows.caSwitchAfterDays} days after rollover`,
      );
      report.ca.push(`switch: ${to.subject} signs, ${from.subject} retiring`);
    }
    report.renewed = await this.renewClients();
    report.rotated = await this.rotateServers();
    const retiring = (await this.cas()).find((c) => c.caState === 'retiring');
    if (await this.retireIfDone(now)) report.ca.push(`retire: ${retiring!.subject}`);
    await this.ensureCrl();
    return report;
  }

  /** The user's current certificate and what the user should know about it. */
  async userCertificate(user: User): Promise<UserCertificate | undefined> {
    if (!user.certSerial) return undefined;
    const { store } = this.ctx;
    const now = this.ctx.clock.now();
    const all = await store.clientCertsOf(user.name);
    const current = all.find((c) => c.serial === user.certSerial);
    if (!current) return undefined;
    const previous = all.filter(
      (c) => c.serial !== current.serial && !c.revokedAt && new Date(c.notAfter) > now,
    );
    const issuer = current.issuer ? (await store.getCert(current.issuer))?.subject : undefined;
    return {
      serial: current.serial,
      notAfter: current.notAfter,
      daysLeft: daysBetween(now, current.notAfter),
      ...(issuer ? { issuer } : {}),
      renewalDue:
        user.status !== 'revoked' &&
        !current.revokedAt &&
        this.clientRenewalDue(current.notAfter, now),
      newProfileAvailable: user.status !== 'revoked' && !current.deliveredAt && previous.length > 0,
      previous: previous.map((c) => ({ serial: c.serial, notAfter: c.notAfter })),
    };
  }

  async status(): Promise<PkiStatusRow[]> {
    const { crlInfos } = await loadPki();
    const { store, spec } = this.ctx;
    const now = this.ctx.clock.now();
    const certs = await store.listCerts();
    const caName = new Map(certs.filter((c) => c.kind === 'ca').map((c) => [c.serial, c.subject]));
    const users = new Map((await store.listUsers()).map((u) => [u.name, u]));
    const currentServer = new Map<string, string>();
    for (const n of serverNamesOf(spec)) {
      const c = await store.serverCert(n);
      if (c) currentServer.set(c.serial, n);
    }
    const live = await store.liveClientCerts(now);
    const signer = await this.serverSigningCa(now, live);
    const liveByCa = new Map<string, number>();
    for (const c of live) if (c.issuer) liveByCa.set(c.issuer, (liveByCa.get(c.issuer) ?? 0) + 1);
    const newerOf = new Map<string, boolean>();
    for (const c of live) {
      const u = users.get(c.subject);
      if (u?.certSerial && u.certSerial !== c.serial) newerOf.set(c.subject, true);
    }
    const rows: PkiStatusRow[] = [];
    for (const c of certs) {
      const daysLeft = daysBetween(now, c.notAfter);
      const expired = new Date(c.notAfter) <= now;
      const row = (state: string, current: boolean, note?: string): PkiStatusRow => ({
        kind: c.kind,
        subject: c.subject,
        serial: c.serial,
        issuer: c.kind === 'ca' ? c.subject : (caName.get(c.issuer ?? '') ?? ''),
        notAfter: c.notAfter,
        daysLeft,
        state,
        current,
        ...(note ? { note } : {}),
      });
      if (c.kind === 'ca') {
        const state = c.caState ?? 'active';
        const note =
          state === 'next'
            ? `trusted; signs from ${new Date(Date.parse(c.issuedAt ?? '') + this.windows.caSwitchAfterDays * DAY_MS).toISOString()}`
            : state === 'retiring'
              ? `${liveByCa.get(c.serial) ?? 0} valid client certificates left; servers ${signer.serial === c.serial ? 'stay on it until they are gone' : 'move off it'}`
              : state === 'active' && daysLeft <= this.windows.caRolloverBeforeDays
                ? 'rollover due'
                : undefined;
        rows.push(
          row(expired && state !== 'retired' ? 'EXPIRED' : state, state !== 'retired', note),
        );
        continue;
      }
      const current =
        c.kind === 'server'
          ? currentServer.has(c.serial)
          : users.get(c.subject)?.certSerial === c.serial;
      if (c.revokedAt) {
        rows.push(row('revoked', false));
        continue;
      }
      if (expired) {
        rows.push(row('EXPIRED', current));
        continue;
      }
      if (!current) {
        rows.push(row('superseded', false, 'still valid until it expires'));
        continue;
      }
      if (c.kind === 'server') {
        const due =
          daysLeft < this.windows.serverRenewBeforeDays ||
          (c.issuer !== undefined && c.issuer !== signer.serial);
        rows.push(
          row(
            due ? 'renewal due' : 'valid',
            true,
            c.issuer !== signer.serial ? `moves to ${signer.subject}` : undefined,
          ),
        );
        continue;
      }
      const pending = newerOf.get(c.subject) === true && !c.deliveredAt;
      rows.push(
        row(
          this.clientRenewalDue(c.notAfter, now) ? 'renewal due' : 'valid',
          true,
          pending ? 'new profile not picked up yet' : undefined,
        ),
      );
    }
    const crl = await store.getSetting('crl.pem');
    if (crl) {
      for (const info of crlInfos(crl)) {
        const next = info.nextUpdate?.toISOString() ?? '';
        const d = daysBetween(now, next);
        rows.push({
          kind: 'crl',
          subject: `${info.revokedSerials.length} revoked`,
          serial: String(info.crlNumber ?? ''),
          issuer: info.issuerCommonName,
          notAfter: next,
          daysLeft: d,
          state: d < 0 ? 'EXPIRED' : d < VALIDITY.crlRenewDays ? 'renew soon' : 'ok',
          current: true,
        });
      }
    }
    return rows;
  }
}

/** Revoked certificates a CA's CRL lists; one of unknown issuer goes in every CRL (harmless). */
function revokedBy(revoked: RevokedCert[], ca: string): RevokedCert[] {
  return revoked.filter((r) => r.issuer === undefined || r.issuer === ca);
}

/**
 * Whether crl.pem holds one CRL per trusted CA, each listing exactly that CA's revoked serials,
 * each of the current number and far from its nextUpdate.
 */
function crlsAreCurrent(
  infos: CrlInfo[],
  trusted: StoredCert[],
  state: RevocationState,
  now: Date,
): boolean {
  if (infos.length !== trusted.length) return false;
  return trusted.every((ca) => {
    const info = infos.find((i) => i.issuerCommonName === ca.subject);
    if (!info) return false;
    const left = (info.nextUpdate?.getTime() ?? 0) - now.getTime();
    if (left <= VALIDITY.crlRenewDays * DAY_MS) return false;
    if (info.crlNumber !== state.crlNumber) return false;
    const listed = [...info.revokedSerials].sort();
    const stored = revokedBy(state.revoked, ca.serial)
      .map((r) => r.serial)
      .sort();
    return listed.length === stored.length && listed.every((s, i) => s === stored[i]);
  });
}

function sameRevoked(a: RevokedCert[], b: RevokedCert[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => r.serial === b[i].serial && r.revokedAt === b[i].revokedAt)
  );
}
