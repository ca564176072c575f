/** The outcome an agent gets for a web sign-in: the groups it sets on its server (issue 16). */
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../store/types.js';
import { SignIns, type SignInsOptions } from './sign-ins.js';
import type { WebSignIn, WebSignInResult } from './web-sign-in.js';

function signIns(groupsFor?: SignInsOptions['groupsFor']) {
  let emit: (r: WebSignInResult) => void = () => undefined;
  const web: WebSignIn = {
    begin: (req) => Promise.resolve(`https://vpn.example/sso/start/${req.id}`),
    onResult: (listener) => (emit = listener),
  };
  const audit: AuditEntry[] = [];
  const logs: string[] = [];
  const s = new SignIns({
    web,
    now: () => 0,
    audit: (e) => (audit.push(e), Promise.resolve()),
    log: (l) => logs.push(l),
    pendingMs: () => 60_000,
    ...(groupsFor ? { groupsFor } : {}),
  });
  const outcome = async (groups: string[]) => {
    const { id } = await s.begin('vpn11', 'ann', '198.51.100.7:1194');
    emit({ id, ok: true, subject: 'sub-ann', groups });
    // A second report of the same result (another controller's poll) changes nothing.
    emit({ id, ok: true, subject: 'sub-ann', groups: ['other'] });
    return s.wait('vpn11', id, 1000, () => () => undefined);
  };
  return { outcome, audit, logs };
}

describe('a web sign-in’s outcome', () => {
  it('names the groups the controller says the session has (the effective ones)', async () => {
    const asked: string[] = [];
    const h = signIns((user) => (asked.push(user), Promise.resolve(['staff'])));
    expect(await h.outcome([])).toEqual({ ok: true, groups: ['staff'] });
    expect(asked).toEqual(['ann']);
    expect(h.audit[0].detail).toMatchObject({ ok: true, groups: [], sessionGroups: ['staff'] });
  });

  it('names none where sign-ins do not decide groups, and the provider’s without a lookup', async () => {
    expect(await signIns(() => Promise.resolve(undefined)).outcome(['dba'])).toEqual({ ok: true });
    expect(await signIns().outcome(['dba'])).toEqual({ ok: true, groups: ['dba'] });
  });

  it('refuses the client when the groups cannot be read (fail closed), and audits that', async () => {
    const h = signIns(() => Promise.reject(new Error('store unavailable')));
    expect(await h.outcome(['dba'])).toEqual({
      ok: false,
      reason: 'your groups could not be read: try again in a minute',
    });
    expect(h.audit[0].detail).toMatchObject({
      ok: false,
      groups: ['dba'],
      reason: 'your groups could not be read: try again in a minute',
    });
    expect(h.logs).toEqual(["cannot read ann's groups after their sign-in: store unavailable"]);
  });
});
