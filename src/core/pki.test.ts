import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type IssuedCert,
  certificateInfo,
  createCa,
  createCrl,
  crlInfo,
  generateTlsCryptKey,
  issueCertificate,
  publicKeyMatches,
} from './pki.js';
import { openvpnSerialHex } from '../render/openvpn.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const DAY_MS = 86_400_000;

/** Runs a tool (argv, no shell) and returns its exit status and stdout followed by stderr. */
function run(cmd: string, args: string[]): { status: number; output: string } {
  const res = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (res.error) throw res.error;
  return { status: res.status ?? -1, output: `${res.stdout}${res.stderr}` };
}

/**
 * The test certificates are dated NOW (a fixed date) so the assertions are reproducible;
 * openssl must judge validity at that moment, not at the wall clock's.
 */
const atNow = ['-attime', String(Math.floor(NOW.getTime() / 1000) + 60)];

describe('pki', () => {
  let dir: string;
  let ca: IssuedCert;
  let server: IssuedCert;
  let client: IssuedCert;
  let otherClient: IssuedCert;
  const file = (name: string, content: string): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ovpn-fleet-pki-'));
    ca = await createCa({ fleet: 'acme', now: NOW });
    server = await issueCertificate(ca, {
      kind: 'server',
      commonName: 'vpn1.par1',
      now: NOW,
      validDays: 825,
    });
    client = await issueCertificate(ca, {
      kind: 'client',
      commonName: 'alice',
      now: NOW,
      validDays: 365,
    });
    otherClient = await issueCertificate(ca, {
      kind: 'client',
      commonName: 'bob',
      now: NOW,
      validDays: 365,
      serial: '00AB',
    });
    file('ca.pem', ca.certPem);
    file('server.pem', server.certPem);
    file('client.pem', client.certPem);
    file('bob.pem', otherClient.certPem);
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates a CA that openssl reads as a pathlen-0 CA for signing certificates and CRLs', () => {
    const text = run('openssl', ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text']).output;
    expect(text).toContain('Subject: CN = acme VPN CA');
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toContain('Subject Key Identifier');
    expect(text).toContain('ecdsa-with-SHA256');
    expect(text).toContain('prime256v1');
    expect(certificateInfo(ca.certPem)).toMatchObject({ commonName: 'acme VPN CA', isCa: true });
    expect(ca.notAfter.getTime()).toBe(NOW.getTime() + 3650 * DAY_MS);
  });

  it('issues a server certificate that verifies against the CA for TLS server use', () => {
    const ok = run('openssl', [
      'verify',
      ...atNow,
      '-purpose',
      'sslserver',
      '-CAfile',
      join(dir, 'ca.pem'),
      join(dir, 'server.pem'),
    ]);
    expect(ok.output).toContain('server.pem: OK');
    expect(ok.status).toBe(0);
    const eku = run('openssl', [
      'x509',
      '-in',
      join(dir, 'server.pem'),
      '-noout',
      '-ext',
      'extendedKeyUsage,keyUsage,basicConstraints',
    ]).output;
    expect(eku).toContain('TLS Web Server Authentication');
    expect(eku).not.toContain('TLS Web Client Authentication');
    expect(eku).toMatch(/Key Usage: critical\s+Digital Signature, Key Agreement/);
    expect(eku).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    const subject = run('openssl', ['x509', '-in', join(dir, 'server.pem'), '-noout', '-subject']);
    expect(subject.output.trim()).toBe('subject=CN = vpn1.par1');
  });

  it('issues a client certificate that openssl accepts for TLS client use only', () => {
    const args = ['-CAfile', join(dir, 'ca.pem'), join(dir, 'client.pem')];
    const asClient = run('openssl', ['verify', ...atNow, '-purpose', 'sslclient', ...args]);
    expect(asClient.status).toBe(0);
    // A client certificate must not let its holder impersonate a server.
    const asServer = run('openssl', ['verify', ...atNow, '-purpose', 'sslserver', ...args]);
    expect(asServer.status).not.toBe(0);
    const eku = run('openssl', [
      'x509',
      '-in',
      join(dir, 'client.pem'),
      '-noout',
      '-ext',
      'extendedKeyUsage',
    ]);
    expect(eku.output).toContain('TLS Web Client Authentication');
    expect(eku.output).not.toContain('TLS Web Server Authentication');
    const subject = run('openssl', ['x509', '-in', join(dir, 'client.pem'), '-noout', '-subject']);
    expect(subject.output.trim()).toBe('subject=CN = alice');
  });

  it('links leaf to CA by issuer name and key identifiers', () => {
    const leaf = run('openssl', ['x509', '-in', join(dir, 'client.pem'), '-noout', '-text']).output;
    const root = run('openssl', ['x509', '-in', join(dir, 'ca.pem'), '-noout', '-text']).output;
    expect(leaf).toContain('Issuer: CN = acme VPN CA');
    const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(root)?.[1];
    const aki = /Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(leaf)?.[1];
    expect(ski).toBeDefined();
    expect(aki).toBe(ski);
  });

  it('backdates notBefore by five minutes and sets notAfter to now + validDays', () => {
    const info = certificateInfo(server.certPem);
    expect(info.notBefore.toISOString()).toBe('2026-03-01T11:55:00.000Z');
    expect(info.notAfter.getTime()).toBe(NOW.getTime() + 825 * DAY_MS);
    expect(server.notAfter.getTime()).toBe(info.notAfter.getTime());
    const dates = run('openssl', ['x509', '-in', join(dir, 'server.pem'), '-noout', '-startdate']);
    expect(dates.output.trim()).toBe('notBefore=Mar  1 11:55:00 2026 GMT');
  });

  it("caps a leaf's notAfter at its CA's, so no certificate outlives its issuer", async () => {
    const shortCa = await createCa({ fleet: 'brief', now: NOW, validDays: 10 });
    const leaf = await issueCertificate(shortCa, {
      kind: 'client',
      commonName: 'carol',
      now: NOW,
      validDays: 365,
    });
    expect(leaf.notAfter.getTime()).toBe(shortCa.notAfter.getTime());
    expect(certificateInfo(leaf.certPem).notAfter.getTime()).toBe(shortCa.notAfter.getTime());
    // Shorter than the CA's remaining life: untouched.
    const week = await issueCertificate(shortCa, {
      kind: 'client',
      commonName: 'dan',
      now: NOW,
      validDays: 7,
    });
    expect(week.notAfter.getTime()).toBe(NOW.getTime() + 7 * DAY_MS);
  });

  it.each([
    ['ab', 'ab'],
    ['abc', '0a:bc'],
    ['80', '80'],
    ['00ff00', 'ff:00'],
    ['1234567890abcdef', '12:34:56:78:90:ab:cd:ef'],
  ])(
    'formats serial %s as OpenVPN tls_serial_hex shows it (%s), octets as openssl reads them',
    async (serial, shown) => {
      expect(openvpnSerialHex(serial)).toBe(shown);
      const cert = await issueCertificate(ca, {
        kind: 'client',
        commonName: 'x',
        now: NOW,
        validDays: 1,
        serial,
      });
      const path = file(`serial-${serial}.pem`, cert.certPem);
      const printed = run('openssl', ['x509', '-noout', '-serial', '-in', path]).output.trim();
      const octets = /^serial=([0-9A-F]+)$/.exec(printed)?.[1]?.toLowerCase().match(/../g) ?? [];
      expect(octets.join(':')).toBe(shown);
    },
  );

  it('reports serials as lower-case hex without leading zeros, the same way openssl prints them', () => {
    expect(otherClient.serial).toBe('ab');
    expect(certificateInfo(otherClient.certPem)).toEqual({
      commonName: 'bob',
      serial: 'ab',
      notBefore: new Date(NOW.getTime() - 5 * 60_000),
      notAfter: new Date(NOW.getTime() + 365 * DAY_MS),
      isCa: false,
    });
    for (const [name, cert] of [
      ['ca.pem', ca],
      ['server.pem', server],
      ['client.pem', client],
    ] as const) {
      expect(cert.serial).toMatch(/^[1-9a-f][0-9a-f]*$/);
      expect(certificateInfo(cert.certPem).serial).toBe(cert.serial);
      const printed = run('openssl', ['x509', '-noout', '-serial', '-in', join(dir, name)]);
      const hex = /^serial=([0-9A-F]+)$/.exec(printed.output.trim())?.[1] ?? '';
      expect(BigInt(`0x${hex}`).toString(16)).toBe(cert.serial);
    }
    // Random serials are fresh per certificate.
    expect(new Set([ca.serial, server.serial, client.serial]).size).toBe(3);
  });

  it('rejects a serial that is not a positive hex number', async () => {
    const opts = { kind: 'client' as const, commonName: 'x', now: NOW, validDays: 1 };
    await expect(issueCertificate(ca, { ...opts, serial: '0' })).rejects.toThrow(/serial/);
    await expect(issueCertificate(ca, { ...opts, serial: 'xyz' })).rejects.toThrow(/serial/);
  });

  it('writes PKCS#8 keys that openssl accepts and that match their certificates', async () => {
    for (const [name, issued] of [
      ['ca', ca],
      ['server', server],
      ['client', client],
    ] as const) {
      expect(issued.keyPem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
      const keyFile = file(`${name}.key`, issued.keyPem);
      expect(run('openssl', ['pkey', '-in', keyFile, '-noout']).status).toBe(0);
      const fromKey = run('openssl', ['pkey', '-in', keyFile, '-pubout']).output;
      const fromCert = run('openssl', [
        'x509',
        '-in',
        file(`${name}.crt`, issued.certPem),
        '-noout',
        '-pubkey',
      ]).output;
      expect(fromKey).toContain('BEGIN PUBLIC KEY');
      expect(fromKey).toBe(fromCert);
      expect(await publicKeyMatches(issued.certPem, issued.keyPem)).toBe(true);
    }
    expect(await publicKeyMatches(server.certPem, client.keyPem)).toBe(false);
  });

  it('revokes through a CRL that openssl enforces, and leaves other clients alone', async () => {
    const revokedAt = new Date(NOW.getTime() + DAY_MS);
    const crlNow = new Date(NOW.getTime() + 2 * DAY_MS);
    const crlPem = await createCrl(ca, {
      revoked: [{ serial: client.serial, revokedAt }],
      now: crlNow,
      nextUpdateDays: 30,
      crlNumber: 7,
    });
    const crlFile = file('crl.pem', crlPem);
    const at = ['-attime', String(Math.floor(crlNow.getTime() / 1000) + 60)];
    const verify = (cert: string) =>
      run('openssl', [
        'verify',
        ...at,
        '-crl_check',
        '-CAfile',
        join(dir, 'ca.pem'),
        '-CRLfile',
        crlFile,
        join(dir, cert),
      ]);

    const revoked = verify('client.pem');
    expect(revoked.status).not.toBe(0);
    expect(revoked.output).toContain('certificate revoked');
    const fine = verify('bob.pem');
    expect(fine.output).toContain('bob.pem: OK');
    expect(fine.status).toBe(0);

    const text = run('openssl', ['crl', '-in', crlFile, '-noout', '-text']).output;
    expect(text).toContain('Version 2 (0x1)');
    expect(text).toContain('Issuer: CN = acme VPN CA');
    expect(text).toMatch(/X509v3 CRL Number:\s+7\b/);
    expect(text).toContain('Authority Key Identifier');
    const nextUpdate = run('openssl', ['crl', '-in', crlFile, '-noout', '-nextupdate']);
    expect(nextUpdate.output.trim()).toBe('nextUpdate=Apr  2 12:00:00 2026 GMT');
    // The CRL's signature checks out against the CA key.
    const signature = run('openssl', [
      'crl',
      '-in',
      crlFile,
      '-noout',
      '-CAfile',
      join(dir, 'ca.pem'),
    ]);
    expect(signature.output).toContain('verify OK');

    expect(crlInfo(crlPem)).toEqual({
      issuerCommonName: 'acme VPN CA',
      thisUpdate: crlNow,
      nextUpdate: new Date(crlNow.getTime() + 30 * DAY_MS),
      revokedSerials: [client.serial],
      crlNumber: 7,
    });
  });

  it('normalises serials given to createCrl and lists each once', async () => {
    const crlPem = await createCrl(ca, {
      revoked: [
        { serial: '00AB', revokedAt: NOW },
        { serial: 'ab', revokedAt: NOW },
        { serial: server.serial.toUpperCase(), revokedAt: NOW },
      ],
      now: NOW,
      nextUpdateDays: 7,
      crlNumber: 200,
    });
    expect(crlInfo(crlPem)).toMatchObject({
      revokedSerials: ['ab', server.serial],
      crlNumber: 200,
    });
    // The list openssl sees has the same serials.
    const text = run('openssl', ['crl', '-in', file('crl2.pem', crlPem), '-noout', '-text']).output;
    const listed = [...text.matchAll(/Serial Number: ([0-9A-F]+)/g)].map((m) =>
      BigInt(`0x${m[1]}`).toString(16),
    );
    expect(listed).toEqual(['ab', server.serial]);
    expect(text).toMatch(/X509v3 CRL Number:\s+200\b/);
  });

  it('creates an empty CRL that openssl still accepts', async () => {
    const crlPem = await createCrl(ca, { revoked: [], now: NOW, nextUpdateDays: 1, crlNumber: 1 });
    const crlFile = file('empty.pem', crlPem);
    const res = run('openssl', [
      'verify',
      ...atNow,
      '-crl_check',
      '-CAfile',
      join(dir, 'ca.pem'),
      '-CRLfile',
      crlFile,
      join(dir, 'client.pem'),
    ]);
    expect(res.status).toBe(0);
    expect(crlInfo(crlPem).revokedSerials).toEqual([]);
  });

  describe('generateTlsCryptKey', () => {
    it('has the exact layout of an OpenVPN static key V1 file', () => {
      const key = generateTlsCryptKey((n) => randomBytes(n));
      const lines = key.split('\n');
      expect(lines).toHaveLength(19);
      expect(lines[0]).toBe('-----BEGIN OpenVPN Static key V1-----');
      expect(lines.slice(1, 17).every((l) => /^[0-9a-f]{32}$/.test(l))).toBe(true);
      expect(lines[17]).toBe('-----END OpenVPN Static key V1-----');
      expect(lines[18]).toBe('');
    });

    it('puts the random bytes in order, one byte = two hex digits', () => {
      const key = generateTlsCryptKey((n) => Uint8Array.from({ length: n }, (_, i) => i));
      const hex = key.split('\n').slice(1, 17).join('');
      expect(hex).toBe(Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex'));
    });

    it('matches what openvpn --genkey writes, comments aside', () => {
      const real = join(dir, 'real.key');
      expect(run('openvpn', ['--genkey', 'secret', real]).status).toBe(0);
      const shape = (text: string) =>
        text
          .split('\n')
          .filter((l) => !l.startsWith('#'))
          .map((l) => l.replace(/^[0-9a-f]{32}$/, 'HEX'))
          .join('\n');
      const ours = generateTlsCryptKey((n) => randomBytes(n));
      const theirs = readFileSync(real, 'utf8');
      expect(shape(ours)).toBe(shape(theirs));
    });

    it('is loaded by openvpn and passes its crypto self-test', () => {
      const keyFile = file(
        'tc.key',
        generateTlsCryptKey((n) => randomBytes(n)),
      );
      const res = run('openvpn', [
        '--test-crypto',
        '--secret',
        keyFile,
        '--cipher',
        'AES-256-CBC',
        '--auth',
        'SHA256',
      ]);
      expect(res.output).toContain('SUCCEEDED');
      expect(res.status).toBe(0);
    });
  });
});
