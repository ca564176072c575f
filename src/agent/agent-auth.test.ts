/** The agent answers held keys from its bundle's auth.json (see connect-auth.test.ts for the decisions). */
import { beforeEach, describe, expect, it } from 'vitest';
import type { AuthOutcome } from '../api/index.js';
import { CLIENT_REASONS } from './connect-auth.js';
import { FakeHost, agentOn } from './testing.js';

let host: FakeHost;

const newAgent = () => agentOn(host);

const settle = () => new Promise<void>((r) => setImmediate(r));

beforeEach(() => {
  host = new FakeHost();
  host.bundle.files.set(
    'auth.json',
    JSON.stringify({ sso: false, totpUsers: ['bob'], pendingSeconds: 90 }),
  );
});

describe('the agent on the connect path', () => {
  it('answers from auth.json: a certificate-only user at once, a TOTP user with the challenge', async () => {
    newAgent();
    host.management.holdKey({
      clientId: 1,
      keyId: 0,
      reauth: false,
      env: { common_name: 'alice', session_state: 'Initial' },
    });
    host.management.holdKey({
      clientId: 2,
      keyId: 0,
      reauth: false,
      env: { common_name: 'bob', session_state: 'Initial', IV_SSO: 'crtext' },
    });
    await settle();
    expect(host.management.authAnswers).toEqual([
      'client-auth-nt 1 0',
      expect.stringMatching(/^client-pending-auth 2 0 CR_TEXT:R,E:.* 90$/),
    ]);
  });

  it('lets everyone in on the certificate when the bundle has no auth.json', async () => {
    host.bundle.files.delete('auth.json');
    newAgent();
    host.management.holdKey({
      clientId: 3,
      keyId: 1,
      reauth: false,
      env: { common_name: 'bob', session_state: 'Initial' },
    });
    await settle();
    expect(host.management.authAnswers).toEqual(['client-auth-nt 3 1']);
  });

  it("with auth.json groups, puts a signed-in user's addresses in the sign-in's sets before client-auth", async () => {
    host.bundle.files.set(
      'auth.json',
      JSON.stringify({ sso: true, totpUsers: [], pendingSeconds: 90, groups: ['dba', 'staff'] }),
    );
    host.bundle.files.set(
      'ccd/alice',
      'ifconfig-push 10.200.0.2 255.255.0.0\nifconfig-ipv6-push fd00::2/64 fd00::1\n',
    );
    let outcome: AuthOutcome = { ok: true, groups: ['dba'] };
    Object.assign(host.controller, {
      auth: {
        begin: () => Promise.resolve({ id: 's1', url: 'https://vpn.example/s1' }),
        wait: () => Promise.resolve(outcome),
        answer: () => Promise.reject(new Error('not asked')),
      },
    });
    // What OpenVPN had been told when nft ran: the client must still be held.
    const answeredBeforeNft: string[][] = [];
    const run = host.run;
    host.run = (argv, opts) => {
      if (argv.join(' ') === 'nft -f -') answeredBeforeNft.push([...host.management.authAnswers]);
      return run(argv, opts);
    };
    newAgent();
    const connect = (clientId: number) =>
      host.management.holdKey({
        clientId,
        keyId: 0,
        reauth: false,
        env: { common_name: 'alice', session_state: 'Initial', IV_SSO: 'webauth' },
      });
    connect(4);
    await settle();
    await settle();
    expect(host.commands.filter((c) => c.argv.join(' ') === 'nft -f -')).toEqual([
      {
        argv: ['nft', '-f', '-'],
        input: [
          'add element inet ovpn_fleet g_dba_v4 { 10.200.0.2 }',
          'add element inet ovpn_fleet g_dba_v6 { fd00::2 }',
          'add element inet ovpn_fleet g_staff_v4 { 10.200.0.2 }',
          'delete element inet ovpn_fleet g_staff_v4 { 10.200.0.2 }',
          'add element inet ovpn_fleet g_staff_v6 { fd00::2 }',
          'delete element inet ovpn_fleet g_staff_v6 { fd00::2 }',
          '',
        ].join('\n'),
      },
    ]);
    expect(answeredBeforeNft).toEqual([
      ['client-pending-auth 4 0 WEB_AUTH::https://vpn.example/s1 90'],
    ]);
    expect(host.management.authAnswers.at(-1)).toBe('client-auth-nt 4 0');

    // nft refuses (no ruleset loaded, say): the client is refused, not let in with old groups.
    host.answer('nft -f -', { code: 1, stderr: 'Error: No such file or directory\n' });
    outcome = { ok: true, groups: ['staff'] };
    connect(5);
    await settle();
    await settle();
    expect(host.management.authAnswers.at(-1)).toBe(`client-deny 5 0 ${CLIENT_REASONS.groups}`);
  });
});
