import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { authTokenKeyPem } from '../service/secrets.js';
import { exampleSpec, itNeeds, snapshotWith, specWith } from '../testing.js';
import { renderFleet } from './bundle.js';
import { DEFAULT_RENDER_OPTIONS } from './types.js';

const KEY = authTokenKeyPem(Buffer.alloc(128, 7));
const USERS = [{ name: 'alice', groups: ['staff'], certSerials: ['0a'] }];
const authSpec = () =>
  specWith((i) => {
    i.auth = { totp: { groups: ['dba'] }, token: { lifetime: '8h' } };
  });

describe('bundles with and without auth', () => {
  it('a fleet without auth renders byte-identical bundles, whatever the store holds', () => {
    const spec = exampleSpec();
    const plain = renderFleet(spec, snapshotWith(USERS, spec), DEFAULT_RENDER_OPTIONS);
    const withKey = renderFleet(
      spec,
      { ...snapshotWith(USERS, spec), authTokenKey: KEY },
      DEFAULT_RENDER_OPTIONS,
    );
    expect(withKey).toEqual(plain);
    const conf = plain[0].files.find((f) => f.path === 'server.conf')!.content;
    expect(conf).not.toMatch(/management-client-auth|auth-gen-token|auth-user-pass-optional/);
    expect(plain[0].files.some((f) => f.path === 'auth-token.key')).toBe(false);
  });

  it('with auth: client auth on the management interface, the token and one shared secret', () => {
    const spec = authSpec();
    const bundles = renderFleet(
      spec,
      { ...snapshotWith(USERS, spec), authTokenKey: KEY },
      DEFAULT_RENDER_OPTIONS,
    );
    for (const b of bundles) {
      const conf = b.files.find((f) => f.path === 'server.conf')!.content;
      expect(conf).toContain(
        'management-client-auth\nauth-user-pass-optional\nauth-gen-token 28800 external-auth\nauth-gen-token-secret auth-token.key\n',
      );
      expect(b.files.find((f) => f.path === 'auth-token.key')).toEqual({
        path: 'auth-token.key',
        content: KEY,
        mode: 0o600,
      });
    }
  });

  it('refuses to render auth without the secret', () => {
    const spec = authSpec();
    expect(() => renderFleet(spec, snapshotWith(USERS, spec), DEFAULT_RENDER_OPTIONS)).toThrow(
      /auth-token secret/,
    );
  });

  it('writes the PEM OpenVPN writes: 128 bytes, base64 lines of 64', () => {
    const lines = KEY.trimEnd().split('\n');
    expect(lines[0]).toBe('-----BEGIN OpenVPN auth-token server key-----');
    expect(lines.at(-1)).toBe('-----END OpenVPN auth-token server key-----');
    expect(lines.slice(1, -1).map((l) => l.length)).toEqual([64, 64, 44]);
    expect(Buffer.from(lines.slice(1, -1).join(''), 'base64')).toEqual(Buffer.alloc(128, 7));
  });

  itNeeds(
    spawnSync('openvpn', ['--version']).error ? 'openvpn not installed' : undefined,
    'openvpn reads the secret (its own --genkey output has the same shape)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'ovf-authkey-'));
      try {
        const theirs = join(dir, 'theirs.key');
        spawnSync('openvpn', ['--genkey', 'auth-token', theirs]);
        const shape = (text: string) => text.replace(/[A-Za-z0-9+/=]/g, 'x');
        expect(shape(KEY)).toBe(shape(readFileSync(theirs, 'utf8')));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('profiles carry the user name only with auth (the token needs one)', async () => {
    const { renderProfile } = await import('./profile.js');
    const input = { user: 'bob', caPem: 'CA', certPem: 'CERT', keyPem: 'KEY', tlsCryptKey: 'TC' };
    expect(renderProfile({ ...input, spec: exampleSpec() })).not.toContain('auth-user-pass');
    expect(renderProfile({ ...input, spec: authSpec() })).toContain(
      '<auth-user-pass>\nbob\n-\n</auth-user-pass>',
    );
  });

  it('auth.json names the groups only where sign-ins decide them (auth.sso.groupMap)', async () => {
    const { authPolicy } = await import('./auth-policy.js');
    const sso = (groupMap: Record<string, string>) =>
      specWith((i) => {
        i.auth = {
          sso: {
            issuer: 'https://idp.example.com',
            clientId: 'vpn',
            publicUrl: 'https://vpn.example.com',
            clientSecretFile: '/etc/ovpn-fleet/sso.secret',
            groupMap,
          },
        };
      });
    expect(authPolicy(sso({ 'idp-dba': 'dba' }), [])).toEqual({
      sso: true,
      totpUsers: [],
      pendingSeconds: 180,
      groups: ['dba', 'engineering', 'staff'],
    });
    expect(authPolicy(sso({}), [])).not.toHaveProperty('groups');
    expect(authPolicy(authSpec(), [])).not.toHaveProperty('groups');
  });
});
