/** The agent answers held keys from its bundle's auth.json (see connect-auth.test.ts for the decisions). */
import { beforeEach, describe, expect, it } from 'vitest';
import { Agent } from './agent.js';
import { FakeHost } from './testing.js';

let host: FakeHost;

const newAgent = () =>
  new Agent({
    server: 'vpn1',
    bundleDir: '/fake/bundle',
    controller: 'unix:/nowhere/controller.sock',
    token: 'x',
    tunDevice: 'vpn0',
    routeProtocol: 201,
    log: () => undefined,
    host,
  });

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
});
