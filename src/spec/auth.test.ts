import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXAMPLE_FLEET_YAML } from './example.js';
import { parseDuration } from './schema.js';
import { validateSpec } from './validate.js';

const example = () => parse(EXAMPLE_FLEET_YAML) as Record<string, any>;
const lines = (input: unknown) => validateSpec(input).errors.map((e) => `${e.path}: ${e.message}`);

describe('spec auth section', () => {
  it('is optional: the example has none', () => {
    expect(validateSpec(example()).spec?.auth).toBeUndefined();
  });

  it('fills defaults', () => {
    const input = example();
    input.auth = { totp: { groups: 'all' } };
    expect(validateSpec(input).spec?.auth).toEqual({
      totp: { groups: 'all' },
      token: { lifetime: '12h' },
      pendingSeconds: 180,
    });
    input.auth = {
      sso: {
        issuer: 'https://idp.example/realms/x',
        clientId: 'vpn',
        clientSecretFile: '/etc/s',
        publicUrl: 'https://vpn.example',
      },
    };
    expect(validateSpec(input).spec?.auth?.sso).toEqual({
      issuer: 'https://idp.example/realms/x',
      clientId: 'vpn',
      clientSecretFile: '/etc/s',
      publicUrl: 'https://vpn.example',
      userClaim: 'preferred_username',
      allowedGroups: [],
      allowedDomains: [],
      groupsClaim: 'groups',
      groupMap: {},
    });
  });

  it('names the field of every bad value', () => {
    const input = example();
    input.auth = {
      sso: {
        issuer: 'http://idp.example',
        clientId: '',
        clientSecretFile: 'secret.txt',
        publicUrl: 'https://vpn.example',
        groupMap: { 'vpn-admins': 'nosuch' },
      },
      totp: { groups: ['staff', 'ghosts'] },
      token: { lifetime: '12 hours' },
    };
    expect(lines(input)).toEqual(
      expect.arrayContaining([
        'auth.sso.issuer: "http://idp.example" is not an https URL without query or fragment (the identity provider\'s issuer)',
        'auth.sso.clientSecretFile: must be an absolute path',
        'auth.token.lifetime: "12 hours" is not a duration like 12h, 30m, 7d or a number of seconds',
      ]),
    );
    expect(lines(input).some((l) => l.startsWith('auth.sso.clientId: '))).toBe(true);
    input.auth.sso.issuer = 'https://idp.example';
    input.auth.sso.clientId = 'vpn';
    input.auth.sso.clientSecretFile = '/etc/ovpn-fleet/oidc-secret';
    input.auth.token.lifetime = '8h';
    expect(lines(input)).toEqual([
      'auth.totp.groups[1]: unknown group "ghosts"',
      'auth.sso.groupMap.vpn-admins: unknown group "nosuch" (provider group "vpn-admins" maps to it)',
    ]);
  });

  it('wants the public URL in https, plain http only on loopback', () => {
    const input = example();
    const sso = (publicUrl: string) => ({
      sso: {
        issuer: 'https://idp.example',
        clientId: 'vpn',
        clientSecretFile: '/etc/s',
        publicUrl,
      },
    });
    input.auth = sso('http://vpn.example');
    expect(lines(input)).toEqual([
      'auth.sso.publicUrl: must be https (plain http only on loopback, for tests)',
    ]);
    input.auth = sso('http://127.0.0.1:8080');
    expect(lines(input)).toEqual([]);
  });

  it('reads durations', () => {
    expect(parseDuration('12h')).toBe(43200);
    expect(parseDuration('30m')).toBe(1800);
    expect(parseDuration('7d')).toBe(604800);
    expect(parseDuration(600)).toBe(600);
    expect(parseDuration('0h')).toBeUndefined();
    expect(parseDuration('1.5h')).toBeUndefined();
  });
});
