/** Certificates (CA, servers, clients), their revocation and the CRL's state. */
import { getSetting } from './settings.js';
import type { Sql } from './sql.js';
import type { RevocationState, RevokedCert, StoredCert } from './types.js';

interface CertRow {
  serial: string;
  kind: StoredCert['kind'];
  subject: string;
  not_after: string;
  cert_pem: string;
  key_pem: string;
  revoked_at: string | null;
}

function toCert(r: CertRow): StoredCert {
  return {
    serial: r.serial,
    kind: r.kind,
    subject: r.subject,
    notAfter: r.not_after,
    certPem: r.cert_pem,
    keyPem: r.key_pem,
    ...(r.revoked_at ? { revokedAt: r.revoked_at } : {}),
  };
}

export function getCert(sql: Sql, serial: string): StoredCert | undefined {
  const r = sql.get<CertRow>('SELECT * FROM certs WHERE serial = ?', [serial]);
  return r && toCert(r);
}

export function getCa(sql: Sql): StoredCert | undefined {
  const r = sql.get<CertRow>(
    `SELECT * FROM certs WHERE kind = 'ca' ORDER BY not_after DESC LIMIT 1`,
  );
  return r && toCert(r);
}

export function putCert(sql: Sql, cert: StoredCert): void {
  sql.run(
    'INSERT INTO certs (serial, kind, subject, not_after, cert_pem, key_pem, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    [
      cert.serial,
      cert.kind,
      cert.subject,
      cert.notAfter,
      cert.certPem,
      cert.keyPem,
      cert.revokedAt ?? null,
    ],
  );
}

export function listCerts(sql: Sql, kind?: StoredCert['kind']): StoredCert[] {
  const rows = kind
    ? sql.all<CertRow>('SELECT * FROM certs WHERE kind = ? ORDER BY subject', [kind])
    : sql.all<CertRow>('SELECT * FROM certs ORDER BY kind, subject');
  return rows.map(toCert);
}

export function serverCert(sql: Sql, name: string): StoredCert | undefined {
  const r = sql.get<CertRow>(
    `SELECT * FROM certs WHERE kind = 'server' AND subject = ? AND revoked_at IS NULL ORDER BY not_after DESC LIMIT 1`,
    [name],
  );
  return r && toCert(r);
}

export function revokeCert(sql: Sql, serial: string, at: Date): void {
  sql.run('UPDATE certs SET revoked_at = coalesce(revoked_at, ?) WHERE serial = ?', [
    at.toISOString(),
    serial,
  ]);
}

/** Runs in the caller's write transaction: the serials read are exactly those revoked. */
export function revokeClientCerts(sql: Sql, name: string, at: Date): string[] {
  const serials = sql
    .all<{ serial: string }>(
      `SELECT serial FROM certs WHERE kind = 'client' AND subject = ? AND revoked_at IS NULL ORDER BY serial`,
      [name],
    )
    .map((r) => r.serial);
  sql.run(
    `UPDATE certs SET revoked_at = ? WHERE kind = 'client' AND subject = ? AND revoked_at IS NULL`,
    [at.toISOString(), name],
  );
  return serials;
}

export function revokedCerts(sql: Sql): RevokedCert[] {
  return sql.all<RevokedCert>(
    'SELECT serial, revoked_at AS "revokedAt" FROM certs WHERE revoked_at IS NOT NULL ORDER BY serial',
  );
}

/** Runs in one read transaction (the caller's): the CRL, its number and the revoked set agree. */
export function revocationState(sql: Sql): RevocationState {
  const crlPem = getSetting(sql, 'crl.pem');
  return {
    ...(crlPem !== undefined ? { crlPem } : {}),
    crlNumber: Number(getSetting(sql, 'crl.number') ?? '0'),
    revoked: revokedCerts(sql),
  };
}
