/**
 * The fleet's certificate authority, in process: CA, server and client certificates, the CRL
 * and the tls-crypt key. Pure in the house sense: no fs and no clock (`now` comes in); key
 * generation and random serials use WebCrypto's CSPRNG.
 *
 * ECDSA P-256 with SHA-256 throughout: small keys, fast signing, accepted by every OpenVPN
 * 2.4+ build. Serials travel as lower-case hex without leading zeros ("1a2b") everywhere —
 * in, out, in the store and in the CRL — so that a string comparison is a serial comparison.
 */
// @peculiar/x509's DI container (tsyringe) throws at import time without this polyfill; ESM
// evaluates imports in order, so it must come first.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { InputError } from '../errors.js';

// Explicit rather than relying on the library finding a global `crypto`.
x509.cryptoProvider.set(webcrypto);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export interface CertAndKey {
  certPem: string;
  /** PKCS#8, "-----BEGIN PRIVATE KEY-----". */
  keyPem: string;
}

export interface IssuedCert extends CertAndKey {
  /** Lower-case hex without leading zeros. */
  serial: string;
  notAfter: Date;
  /** Serial of the signing CA (a CA's own serial for a CA). */
  issuer: string;
}

export interface CertificateInfo {
  commonName: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
}

export interface CrlInfo {
  /** CN of the CA that signed it: each CA of a rollover has its own name. */
  issuerCommonName: string;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  revokedSerials: string[];
  crlNumber?: number;
}

const EC_KEY: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 86_400_000;
/** Clients and servers whose clocks run a little behind must still accept a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;
const OID_CRL_NUMBER = '2.5.29.20';

/** The CN of a fleet's CA: the first is "<fleet> VPN CA", each rolled-over one gets a number. */
export function caCommonName(fleet: string, generation = 1): string {
  return generation > 1 ? `${fleet} VPN CA ${generation}` : `${fleet} VPN CA`;
}

export async function createCa(opts: {
  fleet: string;
  now: Date;
  validDays?: number;
  /**
   * 1 for the first CA. Two CAs trusted side by side during a rollover get different names:
   * OpenSSL finds a certificate's issuer and the CRL that covers it by issuer name first, and
   * two CAs of one name leave it to key-identifier tie-breaking whether the right CRL is used.
   */
  generation?: number;
}): Promise<IssuedCert> {
  const validDays = opts.validDays ?? 3650;
  checkValidDays(validDays);
  if (!opts.fleet.trim()) throw new InputError('fleet', 'must not be empty');
  const keys = await generateKeyPair();
  const serial = randomSerial();
  const notBefore = new Date(opts.now.getTime() - CLOCK_SKEW_MS);
  const notAfter = new Date(opts.now.getTime() + validDays * DAY_MS);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: nameWithCn(caCommonName(opts.fleet, opts.generation)),
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      // pathlen 0: this CA signs only leaf certificates, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: pem(cert.toString('pem')),
    keyPem: await exportPrivateKey(keys.privateKey),
    serial,
    notAfter: cert.notAfter,
    issuer: serial,
  };
}

export async function issueCertificate(
  ca: CertAndKey,
  opts: {
    kind: 'server' | 'client';
    commonName: string;
    now: Date;
    validDays: number;
    serial?: string;
  },
): Promise<IssuedCert> {
  checkValidDays(opts.validDays);
  if (!opts.commonName) throw new InputError('commonName', 'must not be empty');
  const serial = opts.serial === undefined ? randomSerial() : normalizeSerial(opts.serial);
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importPrivateKey(ca.keyPem);
  const keys = await generateKeyPair();
  // A leaf that outlives its issuer would look valid in the store and in `pki status` while
  // every verifier already rejects its chain; capping makes renewal due when the CA's is.
  const wanted = opts.now.getTime() + opts.validDays * DAY_MS;
  const notAfter = new Date(Math.min(wanted, caCert.notAfter.getTime()));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: nameWithCn(opts.commonName),
    // The CA's own encoded Name, not a re-rendered string, so issuer matching is byte-exact.
    issuer: caCert.subjectName,
    notBefore: new Date(opts.now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // digitalSignature is what OpenSSL requires of an ECDSA TLS peer; keyAgreement covers
      // static ECDH suites some clients still offer. OpenVPN's remote-cert-tls needs a KU present.
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        [
          opts.kind === 'server'
            ? x509.ExtendedKeyUsage.serverAuth
            : x509.ExtendedKeyUsage.clientAuth,
        ],
        false,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await authorityKeyIdentifier(caCert),
    ],
  });
  return {
    certPem: pem(cert.toString('pem')),
    keyPem: await exportPrivateKey(keys.privateKey),
    serial,
    notAfter: cert.notAfter,
    issuer: normalizeSerial(caCert.serialNumber),
  };
}

export async function createCrl(
  ca: CertAndKey,
  opts: {
    revoked: { serial: string; revokedAt: Date }[];
    now: Date;
    nextUpdateDays: number;
    crlNumber: number;
  },
): Promise<string> {
  if (!(opts.nextUpdateDays > 0)) {
    throw new InputError('nextUpdateDays', `must be positive, got ${opts.nextUpdateDays}`);
  }
  if (!Number.isSafeInteger(opts.crlNumber) || opts.crlNumber < 0) {
    throw new InputError('crlNumber', `must be a non-negative integer, got ${opts.crlNumber}`);
  }
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importPrivateKey(ca.keyPem);
  // The library rejects a duplicate serial outright; revoking twice is harmless, keep the first.
  const entries = new Map<string, Date>();
  for (const r of opts.revoked) {
    const serial = normalizeSerial(r.serial);
    const seen = entries.get(serial);
    if (!seen || r.revokedAt < seen) entries.set(serial, r.revokedAt);
  }
  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subjectName,
    thisUpdate: opts.now,
    nextUpdate: new Date(opts.now.getTime() + opts.nextUpdateDays * DAY_MS),
    // Unlike the certificate generator, the CRL generator has no default hash.
    signingAlgorithm: SIGNING,
    signingKey: caKey,
    extensions: [
      new x509.Extension(OID_CRL_NUMBER, false, derInteger(BigInt(opts.crlNumber))),
      await authorityKeyIdentifier(caCert),
    ],
    entries: [...entries].map(([serialNumber, revocationDate]) => ({
      serialNumber,
      revocationDate,
    })),
  });
  // The library labels it "CRL"; OpenSSL, and so OpenVPN's crl-verify, only reads "X509 CRL".
  return pem(x509.PemConverter.encode(crl.rawData, 'X509 CRL'));
}

/**
 * OpenVPN's static key V1 file, as `openvpn --genkey tls-crypt` writes it minus its three
 * `#` comment lines (OpenVPN skips them): 2048 bits, 16 lines of 32 hex digits.
 */
export function generateTlsCryptKey(randomBytes: (n: number) => Uint8Array): string {
  const bytes = randomBytes(256);
  if (bytes.length !== 256) throw new Error(`randomBytes returned ${bytes.length} bytes, not 256`);
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  const lines = [];
  for (let i = 0; i < hex.length; i += 32) lines.push(hex.slice(i, i + 32));
  return [
    '-----BEGIN OpenVPN Static key V1-----',
    ...lines,
    '-----END OpenVPN Static key V1-----',
    '',
  ].join('\n');
}

export function certificateInfo(certPem: string): CertificateInfo {
  const cert = new x509.X509Certificate(certPem);
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  return {
    commonName: cert.subjectName.getField('CN')[0] ?? '',
    serial: normalizeSerial(cert.serialNumber),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    isCa: basic?.ca ?? false,
  };
}

/** The first CRL of the PEM text (see crlInfos for a file with one CRL per CA). */
export function crlInfo(crlPem: string): CrlInfo {
  const crl = new x509.X509Crl(crlPem);
  const info: CrlInfo = {
    issuerCommonName: crl.issuerName.getField('CN')[0] ?? '',
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    revokedSerials: crl.entries.map((e) => normalizeSerial(e.serialNumber)),
  };
  const number = crl.getExtension(OID_CRL_NUMBER);
  if (number) info.crlNumber = Number(parseDerInteger(new Uint8Array(number.value)));
  return info;
}

/** Every CRL of a PEM file, in file order (OpenVPN's crl-verify reads them all: see ensureCrl). */
export function crlInfos(pemText: string): CrlInfo[] {
  return pemBlocks(pemText, 'X509 CRL').map(crlInfo);
}

/** Every certificate of a PEM file (a trust bundle), in file order. */
export function certificateInfos(pemText: string): CertificateInfo[] {
  return pemBlocks(pemText, 'CERTIFICATE').map(certificateInfo);
}

function pemBlocks(text: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => `${m[0]}\n`);
}

/** Whether the private key belongs to the certificate (a mixed-up bundle fails TLS opaquely). */
export async function publicKeyMatches(certPem: string, keyPem: string): Promise<boolean> {
  const cert = new x509.X509Certificate(certPem);
  let key: CryptoKey;
  try {
    key = await importPrivateKey(keyPem, true);
  } catch {
    return false;
  }
  const fromKey = await webcrypto.subtle.exportKey('jwk', key);
  const fromCert = await webcrypto.subtle.exportKey(
    'jwk',
    (await cert.publicKey.export(EC_KEY, ['verify'])) as CryptoKey,
  );
  return fromKey.crv === fromCert.crv && fromKey.x === fromCert.x && fromKey.y === fromCert.y;
}

/** Lower-case hex, no leading zeros; rejects what cannot be a positive certificate serial. */
export function normalizeSerial(serial: string): string {
  if (!/^[0-9a-fA-F]+$/.test(serial)) {
    throw new InputError('serial', `"${serial}" is not a hexadecimal serial number`);
  }
  const value = BigInt(`0x${serial}`);
  // RFC 5280: positive, at most 20 octets.
  if (value === 0n || value >= 1n << 160n) {
    throw new InputError('serial', `${serial} is outside 1 … 2^160-1`);
  }
  return value.toString(16);
}

function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  const value = BigInt(`0x${Buffer.from(bytes).toString('hex')}`);
  // One chance in 2^128; a zero serial is invalid, so take the smallest valid one instead.
  return (value === 0n ? 1n : value).toString(16);
}

function checkValidDays(days: number): void {
  if (!(days > 0) || !Number.isFinite(days)) {
    throw new InputError('validDays', `must be a positive number of days, got ${days}`);
  }
}

function nameWithCn(commonName: string): x509.JsonName {
  // JSON form, not "CN=…": a string DN would split a name containing ',', '+' or '='.
  return [{ CN: [commonName] }];
}

async function generateKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
}

async function exportPrivateKey(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return pem(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

async function importPrivateKey(keyPem: string, extractable = false): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(keyPem);
  return webcrypto.subtle.importKey('pkcs8', der, EC_KEY, extractable, ['sign']);
}

/** Copies the CA's SKI so the AKI matches it even if the CA was made by another tool. */
async function authorityKeyIdentifier(
  caCert: x509.X509Certificate,
): Promise<x509.AuthorityKeyIdentifierExtension> {
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
}

/** The library's PEM has no final newline; files and inline <ca> blocks want one. */
function pem(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** DER INTEGER for a non-negative value (the CRL number extension). */
function derInteger(value: bigint): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  // A set top bit would read as negative: prefix a zero octet.
  if (parseInt(hex.slice(0, 2), 16) > 0x7f) hex = `00${hex}`;
  const body = Buffer.from(hex, 'hex');
  if (body.length > 127) throw new Error('integer too large for a short-form DER length');
  return Uint8Array.from([0x02, body.length, ...body]);
}

function parseDerInteger(der: Uint8Array): bigint {
  if (der[0] !== 0x02 || der[1] > 127 || der.length !== der[1] + 2) {
    throw new Error('malformed DER INTEGER');
  }
  let value = 0n;
  for (const octet of der.subarray(2)) value = (value << 8n) | BigInt(octet);
  return value;
}
