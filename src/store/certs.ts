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

export async function getCert(sql: Sql, serial: string): Promise<StoredCert | undefined> {
  const r = await sql.get<CertRow>('SELECT * FROM certs WHERE serial = ?', [serial]);
  return r && toCert(r);
}

export async function getCa(sql: Sql): Promise<StoredCert | undefined> {
  const r = await sql.get<CertRow>(
    `SELECT * FROM certs WHERE kind = 'ca' ORDER BY not_after DESC LIMIT 1`,
  );
  return r && toCert(r);
}

export async function putCert(sql: Sql, cert: StoredCert): Promise<void> {
  await sql.run(
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

export async function listCerts(sql: Sql, kind?: StoredCert['kind']): Promise<StoredCert[]> {
  const rows = kind
    ? await sql.all<CertRow>('SELECT * FROM certs WHERE kind = ? ORDER BY subject', [kind])
    : await sql.all<CertRow>('SELECT * FROM certs ORDER BY kind, subject');
  return rows.map(toCert);
}

export async function serverCert(sql: Sql, name: string): Promise<StoredCert | undefined> {
  const r = await sql.get<CertRow>(
    `SELECT * FROM certs WHERE kind = 'server' AND subject = ? AND revoked_at IS NULL ORDER BY not_after DESC LIMIT 1`,
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
  return await sql.all<RevokedCert>(
    'SELECT serial, revoked_at AS "revokedAt" FROM certs WHERE revoked_at IS NOT NULL ORDER BY serial',
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
