import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TOTP, URI } from 'otpauth';
import { InputError, NotFound } from '../errors.js';
import { FIXED_NOW, type TempFleet, tempFleetDir } from '../testing.js';
import { LOCK_AFTER, LOCK_MS } from './totp.js';

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
  await t.fleet.users.add([{ name: 'bob', groups: [] }], { issueCerts: false });
});
afterEach(async () => await t.cleanup());

const WHERE = { server: 'vpn11', realAddress: '198.51.100.7:40000' };
const codeAt = (uri: string, offsetSteps = 0) =>
  (URI.parse(uri) as TOTP).generate({ timestamp: FIXED_NOW.getTime() + offsetSteps * 30_000 });

describe('TOTP', () => {
  it('enrols with an otpauth URI and ten recovery codes; the store holds neither in clear', async () => {
    const e = await t.fleet.totp.enroll('bob');
    expect(e.uri).toMatch(/^otpauth:\/\/totp\/ovpn-fleet%20acme:bob\?/);
    expect(e.recoveryCodes).toHaveLength(10);
    const secret = new URL(e.uri).searchParams.get('secret')!;
    const stored = await t.fleet.store.getTotp('bob');
    expect(stored?.sealedSecret).not.toContain(secret);
    expect(stored?.recoveryCodesLeft).toBe(10);
    const audit = await t.fleet.store.auditLog(10);
    expect(audit.find((a) => a.action === 'user.totp.enroll')?.subject).toBe('bob');
    expect(JSON.stringify(audit)).not.toContain(secret);
    await expect(t.fleet.totp.enroll('nobody')).rejects.toThrow(NotFound);
  });

  it('accepts a current code once, a neighbour step, and refuses a wrong one with its reason', async () => {
    const e = await t.fleet.totp.enroll('bob');
    expect(await t.fleet.totp.check('bob', codeAt(e.uri), WHERE)).toEqual({ ok: true });
    expect(await t.fleet.totp.check('bob', codeAt(e.uri), WHERE)).toEqual({
      ok: false,
      reason: 'this code was used already: wait for the next one',
    });
    expect(await t.fleet.totp.check('bob', codeAt(e.uri, 1), WHERE)).toEqual({ ok: true });
    const wrong = codeAt(e.uri, 10);
    expect(await t.fleet.totp.check('bob', wrong, WHERE)).toEqual({
      ok: false,
      reason: 'wrong code',
    });
    expect((await t.fleet.totp.status('bob')).confirmed).toBe(true);
    const audit = (await t.fleet.store.auditLog(20)).filter((a) => a.action === 'auth.totp');
    expect(audit).toHaveLength(4);
    expect(audit[0].detail).toEqual({
      server: 'vpn11',
      from: '198.51.100.7:40000',
      ok: false,
      reason: 'wrong code',
    });
    expect(JSON.stringify(audit)).not.toContain(wrong);
  });

  it('locks the answers out after five wrong ones in a row, for 15 minutes, even the right code', async () => {
    const e = await t.fleet.totp.enroll('bob');
    const now = () => (URI.parse(e.uri) as TOTP).generate({ timestamp: t.clock.now().getTime() });
    for (let i = 0; i < LOCK_AFTER; i++)
      expect(await t.fleet.totp.check('bob', '000000', WHERE)).toMatchObject({ ok: false });
    expect(await t.fleet.totp.check('bob', now(), WHERE)).toEqual({
      ok: false,
      reason: 'too many wrong codes: try again in 15 min',
    });
    t.clock.advanceDays(LOCK_MS / 86_400_000 + 1 / 1440);
    expect(await t.fleet.totp.check('bob', now(), WHERE)).toEqual({ ok: true });
    // A good answer ends the run of wrong ones.
    expect(await t.fleet.totp.check('bob', '000000', WHERE)).toMatchObject({ ok: false });
    expect(await t.fleet.totp.check('bob', e.recoveryCodes[0], WHERE)).toEqual({ ok: true });
  });

  it('takes each recovery code once', async () => {
    const e = await t.fleet.totp.enroll('bob');
    const code = e.recoveryCodes[3];
    expect(await t.fleet.totp.check('bob', code.toUpperCase(), WHERE)).toEqual({ ok: true });
    expect(await t.fleet.totp.check('bob', code, WHERE)).toEqual({
      ok: false,
      reason: 'unknown or used recovery code',
    });
    expect((await t.fleet.totp.status('bob')).recoveryCodesLeft).toBe(9);
  });

  it('confirms with a first code, resets, and refuses a user without enrolment', async () => {
    const e = await t.fleet.totp.enroll('bob');
    await expect(t.fleet.totp.confirm('bob', '000000')).rejects.toThrow(InputError);
    await t.fleet.totp.confirm('bob', codeAt(e.uri));
    expect(await t.fleet.totp.status('bob')).toEqual({
      enrolled: true,
      confirmed: true,
      recoveryCodesLeft: 10,
    });
    await t.fleet.totp.reset('bob');
    expect(await t.fleet.totp.check('bob', codeAt(e.uri, 1), WHERE)).toEqual({
      ok: false,
      reason: 'no TOTP is enrolled for you: ask an administrator',
    });
    await expect(t.fleet.totp.reset('bob')).rejects.toThrow(NotFound);
  });
});
