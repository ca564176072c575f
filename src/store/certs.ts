/** Certificates (CA, servers, clients), their revocation and the CRL's state. */
import { NotFound } from '../errors.js';
import { getSetting } from './settings.js';
import type { Sql } from './sql.js';
import type {
  CaState,
  CertSummary,
  NewCert,
  RevocationState,
  RevokedCert,
  StoredCert,
} from './types.js';

interface CertRow {
  serial: string;
  kind: StoredCert['kind'];
  subject: string;
  not_after: string;
  cert_pem: string;
  key_pem: string;
  revoked_at: string | null;
  issuer: string | null;
  issued_at: string | null;
  delivered_at: string | null;
  ca_state: CaState | null;
}

type SummaryRow = Omit<CertRow, 'cert_pem' | 'key_pem'>;

/** The columns of a CertSummary: everything but the PEMs. */
const CERT_SUMMARY =
  'serial, kind, subject, not_after, revoked_at, issuer, issued_at, delivered_at, ca_state';

/** A new client certificate's issuer: the one given, else the active CA. */
const ISSUER_OR_ACTIVE = `coalesce(?, (SELECT serial FROM certs WHERE kind = 'ca' AND ca_state = 'active' LIMIT 1))`;

function toSummary(r: SummaryRow): CertSummary {
  return {
    serial: r.serial,
    kind: r.kind,
    subject: r.subject,
    notAfter: r.not_after,
    ...(r.revoked_at ? { revokedAt: r.revoked_at } : {}),
    ...(r.issuer ? { issuer: r.issuer } : {}),
    ...(r.issued_at ? { issuedAt: r.issued_at } : {}),
    ...(r.delivered_at ? { deliveredAt: r.delivered_at } : {}),
    ...(r.ca_state ? { caState: r.ca_state } : {}),
  };
}

function toCert(r: CertRow): StoredCert {
  return { ...toSummary(r), certPem: r.cert_pem, keyPem: r.key_pem };
}

export async function getCert(sql: Sql, serial: string): Promise<StoredCert | undefined> {
  const r = await sql.get<CertRow>('SELECT * FROM certs WHERE serial = ?', [serial]);
  return r && toCert(r);
}

export async function getCa(sql: Sql): Promise<StoredCert | undefined> {
  const r = await sql.get<CertRow>(
    `SELECT * FROM certs WHERE kind = 'ca' AND ca_state = 'active' ORDER BY not_after DESC LIMIT 1`,
  );
  return r && toCert(r);
}

export async function putCert(sql: Sql, cert: StoredCert): Promise<void> {
  await sql.run(
    'INSERT INTO certs (serial, kind, subject, not_after, cert_pem, key_pem, revoked_at, issuer, issued_at, delivered_at, ca_state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    [
      cert.serial,
      cert.kind,
      cert.subject,
      cert.notAfter,
      cert.certPem,
      cert.keyPem,
      cert.revokedAt ?? null,
      cert.issuer ?? null,
      cert.issuedAt ?? null,
      cert.deliveredAt ?? null,
      cert.caState ?? (cert.kind === 'ca' ? 'active' : null),
    ],
  );
}

export async function setCaState(sql: Sql, serial: string, state: CaState): Promise<void> {
  const changed = await sql.run(`UPDATE certs SET ca_state = ? WHERE serial = ? AND kind = 'ca'`, [
    state,
    serial,
  ]);
  if (!changed) throw new NotFound(`no CA with serial ${serial}`);
}

/** A client certificate of `name`, signed `at` (revoked at once when it lost a race). */
export async function insertClientCert(
  sql: Sql,
  name: string,
  cert: NewCert,
  at: string,
  revoked: boolean,
): Promise<void> {
  await sql.run(
    `INSERT INTO certs (serial, kind, subject, not_after, cert_pem, key_pem, revoked_at, issuer, issued_at) VALUES (?, 'client', ?, ?, ?, ?, ?, ${ISSUER_OR_ACTIVE}, ?)`,
    [
      cert.serial,
      name,
      cert.notAfter.toISOString(),
      cert.certPem,
      cert.keyPem,
      revoked ? at : null,
      cert.issuer ?? null,
      at,
    ],
  );
}

export async function markCertDelivered(sql: Sql, serial: string, at: Date): Promise<void> {
  await sql.run('UPDATE certs SET delivered_at = coalesce(delivered_at, ?) WHERE serial = ?', [
    at.toISOString(),
    serial,
  ]);
}

export async function liveClientCerts(sql: Sql, now: Date): Promise<CertSummary[]> {
  const rows = await sql.all<SummaryRow>(
    `SELECT ${CERT_SUMMARY} FROM certs WHERE kind = 'client' AND revoked_at IS NULL AND not_after > ? ORDER BY subject, not_after`,
    [now.toISOString()],
  );
  return rows.map(toSummary);
}

export async function clientCertsOf(sql: Sql, name: string): Promise<CertSummary[]> {
  const rows = await sql.all<SummaryRow>(
    `SELECT ${CERT_SUMMARY} FROM certs WHERE kind = 'client' AND subject = ? ORDER BY coalesce(issued_at, ''), not_after`,
    [name],
  );
  return rows.map(toSummary);
}

export async function listCerts(sql: Sql, kind?: StoredCert['kind']): Promise<StoredCert[]> {
  const rows = kind
    ? await sql.all<CertRow>('SELECT * FROM certs WHERE kind = ? ORDER BY subject', [kind])
    : await sql.all<CertRow>('SELECT * FROM certs ORDER BY kind, subject');
  return rows.map(toCert);
}

export async function serverCert(sql: Sql, name: string): Promise<StoredCert | undefined> {
  const r = await sql.get<CertRow>(
    // The newest signed is current: a renewal capped by its CA's notAfter expires no later.
    `SELECT * FROM certs WHERE kind = 'server' AND subject = ? AND revoked_at IS NULL ORDER BY coalesce(issued_at, '') DESC, not_after DESC LIMIT 1`,
    [name],
  );
  return r && toCert(r);
}

export async function revokeCert(sql: Sql, serial: string, at: Date): Promise<void> {
  await sql.run('UPDATE certs SET revoked_at = coalesce(revoked_at, ?) WHERE serial = ?', [
    at.toISOString(),
    serial,
  ]);
}

/** Runs in the caller's write transaction: the serials read are exactly those revoked. */
export async function revokeClientCerts(sql: Sql, name: string, at: Date): Promise<string[]> {
  const rows = await sql.all<{ serial: string }>(
    `SELECT serial FROM certs WHERE kind = 'client' AND subject = ? AND revoked_at IS NULL ORDER BY serial`,
    [name],
  );
  const serials = rows.map((r) => r.serial);
  await sql.run(
    `UPDATE certs SET revoked_at = ? WHERE kind = 'client' AND subject = ? AND revoked_at IS NULL`,
    [at.toISOString(), name],
  );
  return serials;
}

export async function revokedCerts(sql: Sql): Promise<RevokedCert[]> {
  const rows = await sql.all<{ serial: string; revokedAt: string; issuer: string | null }>(
    'SELECT serial, revoked_at AS "revokedAt", issuer FROM certs WHERE revoked_at IS NOT NULL ORDER BY serial',
  );
  return rows.map((r) =>
    r.issuer
      ? { serial: r.serial, revokedAt: r.revokedAt, issuer: r.issuer }
      : { serial: r.serial, revokedAt: r.revokedAt },
  );
}

/** Runs in one read transaction (the caller's): the CRL, its number and the revoked set agree. */
export async function revocationState(sql: Sql): Promise<RevocationState> {
  const crlPem = await getSetting(sql, 'crl.pem');
  return {
    ...(crlPem !== undefined ? { crlPem } : {}),
    crlNumber: Number((await getSetting(sql, 'crl.number')) ?? '0'),
    revoked: await revokedCerts(sql),
  };
}
