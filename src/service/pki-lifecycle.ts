/**
 * The PKI's life: the CA and server certificates made once, client certificates signed on
 * demand, and a CRL that is always current — re-issued long before it expires (an expired CRL
 * makes OpenVPN refuse every client) and whenever it disagrees with the store.
 */
import { Conflict, NotFound } from '../errors.js';
import type { CrlInfo, IssuedCert } from '../core/pki.js';
import { serverCommonName } from '../render/types.js';
import type { RevocationState, RevokedCert } from '../store/types.js';
import { sleep } from '../sys/time.js';
import { type ServiceContext, loadPki } from './context.js';
import type { Secrets } from './secrets.js';

/** Bound on re-signing a CRL that other writers keep replacing under us. */
const CRL_ATTEMPTS = 50;

export const VALIDITY = {
  caDays: 3650,
  serverDays: 825,
  userDays: 365,
  /** A CRL is valid this long; an expired CRL makes OpenVPN refuse every client. */
  crlDays: 30,
  /** …and is re-issued once less than this remains, long before anyone is locked out. */
  crlRenewDays: 15,
};

export interface PkiStatusRow {
  kind: 'ca' | 'server' | 'client' | 'crl';
  subject: string;
  serial: string;
  notAfter: string;
  daysLeft: number;
  state: string;
}

export class PkiLifecycle {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly secrets: Secrets,
  ) {}

  /** Everything init creates, made now if missing: CA, secrets, server certs, a current CRL. */
  async ensure(): Promise<void> {
    const { store, spec } = this.ctx;
    const now = this.ctx.clock.now();
    if (!(await store.getCa())) {
      const { createCa } = await loadPki();
      const ca = await createCa({ fleet: spec.fleet, now, validDays: VALIDITY.caDays });
      // Kept only if no other writer (a second controller starting too) stored a CA first.
      await store.transaction(async (tx) => {
        if (await tx.getCa()) return;
        await tx.putCert({
          serial: ca.serial,
          kind: 'ca',
          subject: `${spec.fleet} VPN CA`,
          notAfter: ca.notAfter.toISOString(),
          certPem: ca.certPem,
          keyPem: ca.keyPem,
        });
      });
    }
    await this.secrets.ensure();
    for (const site of spec.sites) {
      for (const server of site.servers) {
        if (await store.serverCert(server.name)) continue;
        const cert = await (
          await loadPki()
        ).issueCertificate(await this.caPair(), {
          kind: 'server',
          commonName: serverCommonName(spec.fleet, server.name),
          now,
          validDays: VALIDITY.serverDays,
        });
        await store.transaction(async (tx) => {
          if (await tx.serverCert(server.name)) return;
          await tx.putCert({
            serial: cert.serial,
            kind: 'server',
            subject: server.name,
            notAfter: cert.notAfter.toISOString(),
            certPem: cert.certPem,
            keyPem: cert.keyPem,
          });
        });
      }
    }
    await this.ensureCrl();
  }

  async caPair(): Promise<{ certPem: string; keyPem: string }> {
    const ca = await this.ctx.store.getCa();
    if (!ca) throw new NotFound('no CA in the store: run "ovpn-fleet init"');
    return { certPem: ca.certPem, keyPem: ca.keyPem };
  }

  /**
   * Issues a new CRL when forced, when none exists, when its nextUpdate is getting close, or
   * when its serials differ from the store's revoked certificates (so any snapshot heals a CRL
   * that missed a revocation). Signing is async (WebCrypto) and stays out of the write
   * transaction (which holds the store's write lock), so the CRL is signed from a snapshot and
   * written only if, inside the write transaction, the revoked set and the CRL number are still
   * those it was signed from;
   * otherwise another writer got there first and we look again. CRL numbers therefore only
   * ever increase.
   */
  async ensureCrl(force = false): Promise<string> {
    const { store } = this.ctx;
    const pki = await loadPki();
    for (let attempt = 1; ; attempt++) {
      const now = this.ctx.clock.now();
      const seen = await store.revocationState();
      if (seen.crlPem && !force && crlIsCurrent(pki.crlInfo(seen.crlPem), seen, now))
        return seen.crlPem;
      const number = seen.crlNumber + 1;
      const pem = await pki.createCrl(await this.caPair(), {
        revoked: seen.revoked.map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt) })),
        now,
        nextUpdateDays: VALIDITY.crlDays,
        crlNumber: number,
      });
      const written = await store.transaction(async (tx) => {
        const latest = await tx.revocationState();
        if (latest.crlNumber !== seen.crlNumber || !sameRevoked(latest.revoked, seen.revoked))
          return false;
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

  /** Signs a few at a time so both cores work. */
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

  async status(): Promise<PkiStatusRow[]> {
    const { crlInfo } = await loadPki();
    const { store } = this.ctx;
    const now = this.ctx.clock.now().getTime();
    const days = (iso: string) => Math.floor((new Date(iso).getTime() - now) / 86_400_000);
    const state = (d: number, warnDays: number, revoked?: string) =>
      revoked ? 'revoked' : d < 0 ? 'EXPIRED' : d < warnDays ? 'renew soon' : 'ok';
    const rows: PkiStatusRow[] = (await store.listCerts()).map((c) => {
      const d = days(c.notAfter);
      return {
        kind: c.kind,
        subject: c.subject,
        serial: c.serial,
        notAfter: c.notAfter,
        daysLeft: d,
        state: state(d, 30, c.revokedAt),
      };
    });
    const crl = await store.getSetting('crl.pem');
    if (crl) {
      const info = crlInfo(crl);
      const next = info.nextUpdate?.toISOString() ?? '';
      const d = days(next);
      rows.push({
        kind: 'crl',
        subject: `${info.revokedSerials.length} revoked`,
        serial: String(info.crlNumber ?? ''),
        notAfter: next,
        daysLeft: d,
        state: state(d, VALIDITY.crlRenewDays),
      });
    }
    return rows;
  }
}

/** Whether a CRL lists exactly the store's revoked serials and is far from its nextUpdate. */
function crlIsCurrent(info: CrlInfo, state: RevocationState, now: Date): boolean {
  const left = (info.nextUpdate?.getTime() ?? 0) - now.getTime();
  if (left <= VALIDITY.crlRenewDays * 86_400_000) return false;
  if (info.crlNumber !== state.crlNumber) return false;
  const listed = [...info.revokedSerials].sort();
  const stored = state.revoked.map((r) => r.serial).sort();
  return listed.length === stored.length && listed.every((s, i) => s === stored[i]);
}

function sameRevoked(a: RevokedCert[], b: RevokedCert[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => r.serial === b[i].serial && r.revokedAt === b[i].revokedAt)
  );
}
