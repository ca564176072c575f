import { describe, expect, it } from 'vitest';
import { authPolicy } from '../render/auth-policy.js';
import { specWith } from '../testing.js';
import { signInOf, totpAsked } from './data.js';

describe('totpAsked', () => {
  const specs = {
    none: specWith(() => {}),
    groups: specWith((i) => {
      i.auth = { totp: { groups: ['dba', 'staff'] } };
    }),
    all: specWith((i) => {
      i.auth = { totp: { groups: 'all' } };
    }),
    sso: specWith((i) => {
      i.auth = {
        totp: { groups: 'all' },
        sso: {
          issuer: 'https://idp.example.com',
          clientId: 'vpn',
          publicUrl: 'https://vpn.example.com',
          clientSecretFile: '/etc/ovpn-fleet/sso.secret',
        },
      };
    }),
  };
  const users = [
    { name: 'ann', groups: ['staff'] },
    { name: 'bob', groups: ['contractors'] },
    { name: 'cy', groups: [] },
  ];

  it('says in words what the agents decide from auth.json (render/auth-policy.ts)', () => {
    for (const [kind, spec] of Object.entries(specs)) {
      const rendered = users.map((u) => ({ ...u, ipv4: '', ipv6: '', enabled: true }));
      const asked = authPolicy(spec, rendered)?.totpUsers ?? [];
      for (const u of users)
        expect(totpAsked(spec, u).asked, `${kind} ${u.name}`).toBe(asked.includes(u.name));
    }
    expect(totpAsked(specs.none, users[0]).why).toBe('fleet.yaml has no auth.totp');
    expect(totpAsked(specs.groups, users[0]).why).toBe('member of staff (auth.totp.groups)');
    expect(totpAsked(specs.groups, users[1]).why).toBe('in none of auth.totp.groups (dba, staff)');
    expect(totpAsked(specs.all, users[2]).why).toBe('auth.totp asks all users');
    expect(totpAsked(specs.sso, users[0]).why).toContain('auth.sso is set');
  });
});

describe('signInOf', () => {
  const at = '2026-03-01T12:00:00.000Z';
  it('reads a TOTP result, an SSO sign-in and an SSO refusal from their audit details', () => {
    expect(
      signInOf({
        at,
        actor: 'agent:vpn11',
        action: 'auth.totp',
        subject: 'ann',
        detail: { server: 'vpn11', from: '198.51.100.7:1194', ok: false, reason: 'wrong code' },
      }),
    ).toEqual({
      at,
      method: 'totp',
      ok: false,
      reason: 'wrong code',
      server: 'vpn11',
      realAddress: '198.51.100.7:1194',
    });
    expect(
      signInOf({
        at,
        actor: 'sso:abc',
        action: 'sso.sign-in',
        subject: 'ann',
        detail: { server: 'vpn21', remote: '203.0.113.9:5000', idpSubject: 'abc', browser: '::1' },
      }),
    ).toEqual({
      at,
      method: 'sso',
      ok: true,
      server: 'vpn21',
      realAddress: '203.0.113.9:5000',
      idpSubject: 'abc',
      browser: '::1',
    });
    // Free-form details: what is not text is left out, never shown as [object Object].
    expect(
      signInOf({
        at,
        actor: 'sso',
        action: 'sso.refused',
        subject: 'ann',
        detail: { server: { x: 1 }, reason: 'not allowed', remote: 7 },
      }),
    ).toEqual({ at, method: 'sso', ok: false, reason: 'not allowed' });
  });
});
