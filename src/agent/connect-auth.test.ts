import { describe, expect, it } from 'vitest';
import type { AuthOutcome } from '../api/index.js';
import type { AuthPolicy } from '../render/auth-policy.js';
import {
  type AuthController,
  CLIENT_REASONS,
  ConnectAuth,
  PENDING_MARGIN_MS,
  TOTP_CHALLENGE,
  UNREADABLE_POLICY,
  decideConnect,
} from './connect-auth.js';
import type { ClientAuthRequest } from './management.js';

const TOTP: AuthPolicy = { sso: false, totpUsers: ['bob'], pendingSeconds: 120 };
const SSO: AuthPolicy = { sso: true, totpUsers: [], pendingSeconds: 120 };

const req = (
  user: string,
  env: Record<string, string> = {},
  reauth = false,
  clientId = 3,
  keyId = 0,
): ClientAuthRequest => ({
  clientId,
  keyId,
  reauth,
  env: {
    common_name: user,
    untrusted_ip: '198.51.100.100',
    untrusted_port: '40000',
    session_state: 'Initial',
    ...env,
  },
});

/** A controller that never answers: what the agent sees of one that is down or stuck. */
const never = <T>() => new Promise<T>(() => undefined);
const STUCK: AuthController = { begin: never, wait: never, answer: never };

function harness(
  policy: AuthPolicy | undefined,
  controller: AuthController = STUCK,
  applyGroups?: (user: string, groups: string[], all: string[]) => Promise<void>,
) {
  const commands: string[] = [];
  const logs: string[] = [];
  let now = 0;
  const auth = new ConnectAuth({
    management: {
      authorize: (c, k) => (commands.push(`auth ${c} ${k}`), Promise.resolve()),
      deny: (c, k, _r, cr) => (commands.push(`deny ${c} ${k} ${cr}`), Promise.resolve()),
      pendingAuth: (c, k, extra, t) => (
        commands.push(`pending ${c} ${k} ${extra} ${t}`),
        Promise.resolve()
      ),
    },
    controller,
    policy: () => policy,
    ...(applyGroups
      ? {
          applyGroups: (user: string, groups: string[], all: string[]) => {
            commands.push(`groups ${user} [${groups.join(',')}] of [${all.join(',')}]`);
            return applyGroups(user, groups, all);
          },
        }
      : {}),
    now: () => now,
    // Time passes when a sleep ends, on a later turn: a long-poll that answers at once wins
    // the agent's race against its deadline, as it does for real.
    sleep: (ms) =>
      new Promise<void>((resolve) =>
        setTimeout(() => {
          now += ms;
          resolve();
        }, 0),
      ),
    log: (l) => logs.push(l),
  });
  return { auth, commands, logs, advance: (ms: number) => (now += ms), now: () => now };
}

describe('decideConnect', () => {
  it("refuses everyone, a valid token too, while the bundle's auth.json is unreadable", () => {
    for (const r of [req('alice'), req('bob', { session_state: 'Authenticated', username: 'bob' })])
      expect(decideConnect(UNREADABLE_POLICY, r)).toEqual({
        action: 'deny',
        reason: 'auth.json unreadable',
        clientReason: CLIENT_REASONS.noPolicy,
      });
  });

  it('lets certificate-only users and valid tokens in; asks for a sign-in otherwise', () => {
    expect(decideConnect(TOTP, req('alice')).action).toBe('allow');
    expect(decideConnect(undefined, req('bob')).action).toBe('allow');
    expect(
      decideConnect(TOTP, req('bob', { session_state: 'Authenticated', username: 'bob' })),
    ).toEqual({ action: 'allow', why: 'token' });
    // A token made for another name (taken from someone else's client) is no sign-in of bob's.
    expect(
      decideConnect(
        TOTP,
        req('bob', { session_state: 'Authenticated', username: 'alice', IV_SSO: 'crtext' }),
      ).action,
    ).toBe('totp');
    expect(decideConnect(TOTP, req('bob', { IV_SSO: 'openurl,crtext' })).action).toBe('totp');
    expect(
      decideConnect(TOTP, req('bob', { IV_SSO: 'crtext', session_state: 'Expired' })).action,
    ).toBe('totp');
    expect(decideConnect(SSO, req('alice', { IV_SSO: 'webauth' })).action).toBe('web');
  });

  it('refuses a client that cannot be asked, and a renegotiation without a valid token', () => {
    expect(decideConnect(SSO, req('alice', { IV_SSO: 'crtext' }))).toMatchObject({
      action: 'deny',
      clientReason: CLIENT_REASONS.noWebAuth,
    });
    expect(decideConnect(TOTP, req('bob'))).toMatchObject({
      action: 'deny',
      clientReason: CLIENT_REASONS.noCrText,
    });
    expect(decideConnect(TOTP, req('bob', { session_state: 'Invalid' }, true))).toMatchObject({
      action: 'deny',
      clientReason: CLIENT_REASONS.expired,
    });
  });
});

describe('ConnectAuth', () => {
  it('never waits for the controller for a certificate-only user or a token reconnect', async () => {
    const h = harness(TOTP); // the controller never answers
    await h.auth.onRequest(req('alice', {}, false, 1, 0));
    const token = { session_state: 'Authenticated', username: 'bob' };
    await h.auth.onRequest(req('bob', token, false, 2, 0));
    await h.auth.onRequest(req('bob', token, true, 2, 1));
    expect(h.commands).toEqual(['auth 1 0', 'auth 2 0', 'auth 2 1']);
  });

  it('asks a TOTP user for a code and lets them in when the controller accepts it', async () => {
    const answers: unknown[] = [];
    const h = harness(TOTP, {
      ...STUCK,
      answer: (body) => {
        answers.push(body);
        return Promise.resolve<AuthOutcome>(
          body.response === '123456' ? { ok: true } : { ok: false, reason: 'wrong code' },
        );
      },
    });
    await h.auth.onRequest(req('bob', { IV_SSO: 'crtext' }, false, 4, 0));
    expect(h.commands).toEqual([`pending 4 0 ${TOTP_CHALLENGE} 120`]);
    await h.auth.onResponse(4, 0, Buffer.from('123456\n').toString('base64'));
    expect(h.commands.at(-1)).toBe('auth 4 0');
    expect(answers).toEqual([
      { user: 'bob', realAddress: '198.51.100.100:40000', method: 'totp', response: '123456' },
    ]);

    await h.auth.onRequest(req('bob', { IV_SSO: 'crtext' }, false, 5, 0));
    await h.auth.onResponse(5, 0, Buffer.from('000000').toString('base64'));
    expect(h.commands.at(-1)).toBe('deny 5 0 wrong code');
    // An answer nobody asked for (or a second one) is ignored.
    await h.auth.onResponse(5, 0, Buffer.from('123456').toString('base64'));
    expect(h.commands).toHaveLength(4);
  });

  it('refuses a code it cannot check, and one that comes after the challenge timed out', async () => {
    const h = harness(TOTP, { ...STUCK, answer: () => Promise.reject(new Error('ECONNREFUSED')) });
    await h.auth.onRequest(req('bob', { IV_SSO: 'crtext' }, false, 6, 0));
    await h.auth.onResponse(6, 0, Buffer.from('123456').toString('base64'));
    expect(h.commands.at(-1)).toBe(`deny 6 0 ${CLIENT_REASONS.unavailable}`);
    await h.auth.onRequest(req('bob', { IV_SSO: 'crtext' }, false, 7, 0));
    h.advance(121_000);
    await h.auth.onResponse(7, 0, Buffer.from('123456').toString('base64'));
    expect(h.commands.at(-1)).toBe(`pending 7 0 ${TOTP_CHALLENGE} 120`);
  });

  it('sends an SSO user to the sign-in page and answers with its outcome', async () => {
    let waits = 0;
    const h = harness(SSO, {
      begin: (body) => {
        expect(body).toEqual({ user: 'alice', realAddress: '198.51.100.100:40000' });
        return Promise.resolve({ id: 's1', url: 'https://vpn.example/sign-in/s1' });
      },
      // The first long-poll ends without an outcome; the second brings it.
      wait: () => Promise.resolve(waits++ === 0 ? undefined : { ok: true, groups: ['dba'] }),
      answer: never,
    });
    await h.auth.onRequest(req('alice', { IV_SSO: 'webauth,crtext' }, false, 8, 0));
    expect(h.commands).toEqual([
      'pending 8 0 WEB_AUTH::https://vpn.example/sign-in/s1 120',
      'auth 8 0',
    ]);
  });

  it('refuses an SSO user with the reason when the sign-in fails or the controller is away', async () => {
    const refused = harness(SSO, {
      begin: () => Promise.resolve({ id: 's2', url: 'https://vpn.example/s2' }),
      wait: () => Promise.resolve({ ok: false, reason: 'not in an allowed group' }),
      answer: never,
    });
    await refused.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 9, 0));
    expect(refused.commands.at(-1)).toBe('deny 9 0 not in an allowed group');
    const away = harness(SSO, { ...STUCK, begin: () => Promise.reject(new Error('timeout')) });
    await away.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 10, 0));
    expect(away.commands).toEqual([`deny 10 0 ${CLIENT_REASONS.unavailable}`]);
  });

  it('answers no key that is gone: a sign-in ending after OpenVPN restarted lets nobody in', async () => {
    let finish: (o: AuthOutcome) => void = () => undefined;
    const h = harness(SSO, {
      begin: () => Promise.resolve({ id: 's4', url: 'https://vpn.example/s4' }),
      wait: () => new Promise<AuthOutcome>((r) => (finish = r)),
      answer: never,
    });
    const signIn = h.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 3, 0));
    await new Promise((r) => setTimeout(r, 0));
    // OpenVPN restarts (the management connection comes back): a new client may get id 3.
    h.auth.forget(undefined);
    finish({ ok: true, groups: [] });
    await signIn;
    expect(h.commands).toEqual(['pending 3 0 WEB_AUTH::https://vpn.example/s4 120']);
    expect(h.logs.at(-1)).toMatch(/alice: client 3 gone before sign-in s4 ended: not answered/);

    // A second connect of the same user replaces the first: its sign-in is no longer awaited.
    let second: (o: AuthOutcome) => void = () => undefined;
    const twice = harness(SSO, {
      begin: () => Promise.resolve({ id: 's5', url: 'https://vpn.example/s5' }),
      wait: () => new Promise<AuthOutcome>((r) => (second = r)),
      answer: never,
    });
    const first = twice.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 6, 0));
    await new Promise((r) => setTimeout(r, 0));
    const firstDone = second;
    const again = twice.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 7, 0));
    await new Promise((r) => setTimeout(r, 0));
    firstDone({ ok: true, groups: [] });
    second({ ok: true, groups: [] });
    await Promise.all([first, again]);
    expect(twice.commands.filter((c) => c.startsWith('auth'))).toEqual(['auth 7 0']);

    // A TOTP answer for a client that disconnected meanwhile is not taken either.
    const t = harness(TOTP, { ...STUCK, answer: () => Promise.resolve({ ok: true }) });
    await t.auth.onRequest(req('bob', { IV_SSO: 'crtext' }, false, 5, 0));
    t.auth.forget(5);
    await t.auth.onResponse(5, 0, Buffer.from('123456').toString('base64'));
    expect(t.commands).toEqual([`pending 5 0 ${TOTP_CHALLENGE} 120`]);
  });

  it('gives up on a sign-in that is not finished in time', async () => {
    const h = harness(SSO, {
      begin: () => Promise.resolve({ id: 's3', url: 'https://vpn.example/s3' }),
      wait: () => Promise.reject(new Error('controller gone')),
      answer: never,
    });
    await h.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 11, 0));
    expect(h.commands.at(-1)).toBe(`deny 11 0 ${CLIENT_REASONS.timedOut}`);

    // A long-poll still open at the deadline (it lasts 25 s) does not delay the refusal past
    // OpenVPN's own deadline, where the client would give up without a reason.
    const open = harness(SSO, {
      begin: () => Promise.resolve({ id: 's6', url: 'https://vpn.example/s6' }),
      wait: never,
      answer: never,
    });
    await open.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 12, 0));
    expect(open.commands).toEqual([
      'pending 12 0 WEB_AUTH::https://vpn.example/s6 120',
      `deny 12 0 ${CLIENT_REASONS.timedOut}`,
    ]);
    expect(open.now()).toBe(120_000 - PENDING_MARGIN_MS);
  });

  describe('groups from the sign-in (auth.json groups)', () => {
    const MAPPED: AuthPolicy = { ...SSO, groups: ['dba', 'engineering', 'staff'] };
    const signedIn = (outcome: AuthOutcome): AuthController => ({
      begin: () => Promise.resolve({ id: 's6', url: 'https://vpn.example/s6' }),
      wait: () => Promise.resolve(outcome),
      answer: never,
    });

    it("sets the user's groups on this server before letting the client in", async () => {
      const h = harness(MAPPED, signedIn({ ok: true, groups: ['dba'] }), () => Promise.resolve());
      await h.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 12, 0));
      expect(h.commands).toEqual([
        'pending 12 0 WEB_AUTH::https://vpn.example/s6 120',
        'groups alice [dba] of [dba,engineering,staff]',
        'auth 12 0',
      ]);
      // No groups at all is an answer too: the user leaves every set.
      const none = harness(MAPPED, signedIn({ ok: true, groups: [] }), () => Promise.resolve());
      await none.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 13, 0));
      expect(none.commands.slice(1)).toEqual([
        'groups alice [] of [dba,engineering,staff]',
        'auth 13 0',
      ]);
    });

    it('refuses the client when the sets cannot be changed (fail closed)', async () => {
      const h = harness(MAPPED, signedIn({ ok: true, groups: ['dba'] }), () =>
        Promise.reject(new Error("nft refused alice's groups: Error: No such file or directory")),
      );
      await h.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 14, 0));
      expect(h.commands.slice(1)).toEqual([
        'groups alice [dba] of [dba,engineering,staff]',
        `deny 14 0 ${CLIENT_REASONS.groups}`,
      ]);
      expect(h.logs.at(-1)).toMatch(
        /^alice refused: groups not set: nft refused alice's groups: Error: No such file/,
      );
    });

    it('leaves the sets alone without auth.json groups, an outcome without groups, or a refusal', async () => {
      const plain = harness(SSO, signedIn({ ok: true, groups: ['dba'] }), () => Promise.resolve());
      await plain.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 15, 0));
      const unnamed = harness(MAPPED, signedIn({ ok: true }), () => Promise.resolve());
      await unnamed.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 16, 0));
      const refused = harness(MAPPED, signedIn({ ok: false, reason: 'no' }), () =>
        Promise.resolve(),
      );
      await refused.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 17, 0));
      expect([plain, unnamed, refused].map((h) => h.commands.slice(1))).toEqual([
        ['auth 15 0'],
        ['auth 16 0'],
        ['deny 17 0 no'],
      ]);
    });

    it('answers nobody when the client left while its groups were being set', async () => {
      const h: ReturnType<typeof harness> = harness(
        MAPPED,
        signedIn({ ok: true, groups: ['dba'] }),
        () => {
          h.auth.forget(18);
          return Promise.resolve();
        },
      );
      await h.auth.onRequest(req('alice', { IV_SSO: 'webauth' }, false, 18, 0));
      expect(h.commands.slice(1)).toEqual(['groups alice [dba] of [dba,engineering,staff]']);
      expect(h.logs.at(-1)).toMatch(/client 18 gone while its groups were set/);
    });
  });
});
