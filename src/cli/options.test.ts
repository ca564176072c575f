import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { baseDirOf, parseBaseDir, readCaFile } from './options.js';
import { refusal, selfSignedCert } from '../testing.js';

describe('parseBaseDir', () => {
  it('takes absolute paths, with {server} standing for the server name', () => {
    expect(parseBaseDir('/etc/ovpn-fleet')).toBe('/etc/ovpn-fleet');
    expect(baseDirOf(parseBaseDir('/srv/{server}/ovpn_fleet-1.2@x'), 'vpn11')).toBe(
      '/srv/vpn11/ovpn_fleet-1.2@x',
    );
  });

  it('refuses what would end the path inside server.conf, in one line naming --base', () => {
    for (const text of [
      '/etc/x\npush "route 0.0.0.0 0.0.0.0"',
      '/etc/x\rup /bin/sh',
      '/etc/x y',
      '/etc/x\ty',
      '/etc/"x"',
      "/etc/'x'",
      '/etc/x\\y',
      '/etc/x#y',
      '/etc/x;y',
      '/etc/x\u0000',
      '/etc/x\u0085y',
      '/etc/x\u00a0y',
      'etc/ovpn-fleet',
      './ovpn-fleet',
      '/srv/{sever}',
      '/srv/{server',
    ]) {
      const line = refusal(() => parseBaseDir(text));
      expect(line, JSON.stringify(text)).toMatch(/^--base: /);
      expect(line, JSON.stringify(text)).not.toMatch(/[\n\r]/);
    }
  });
});

describe('readCaFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-ca-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a PEM certificate and refuses a missing or certificate-less file, naming --ca', () => {
    const { cert: pem, key } = selfSignedCert(dir, 'test-ca');
    expect(readCaFile(pem).toString()).toContain('BEGIN CERTIFICATE');
    expect(refusal(() => readCaFile(join(dir, 'missing.pem')))).toMatch(
      /^--ca: cannot read .*missing\.pem: ENOENT$/,
    );
    const junk = join(dir, 'junk.pem');
    writeFileSync(
      junk,
      '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n',
    );
    expect(refusal(() => readCaFile(junk))).toBe(`--ca: ${junk} holds no PEM certificate`);
    expect(refusal(() => readCaFile(key))).toMatch(/holds no PEM certificate$/);
  });
});
