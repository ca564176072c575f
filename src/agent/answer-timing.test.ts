import { describe, expect, it } from 'vitest';
import { ANSWER_LINE, AnswerTiming } from './answer-timing.js';
import type { AuthManagement } from './connect-auth.js';

function harness() {
  let clock = 1000;
  const sent: string[] = [];
  const lines: string[] = [];
  const management: AuthManagement = {
    authorize: (cid, kid) => {
      clock += 0.25; // OpenVPN's SUCCESS comes back a quarter of a millisecond later
      sent.push(`auth ${cid} ${kid}`);
      return Promise.resolve();
    },
    deny: (cid, kid) => {
      sent.push(`deny ${cid} ${kid}`);
      return Promise.resolve();
    },
    pendingAuth: (cid, kid) => {
      sent.push(`pending ${cid} ${kid}`);
      return Promise.resolve();
    },
  };
  const timing = new AnswerTiming(
    management,
    () => clock,
    (l) => lines.push(l),
  );
  const arrive = (clientId: number, keyId: number, reauth = false) =>
    timing.arrived({ clientId, keyId, reauth, env: {} });
  return { timing, sent, lines, arrive, advance: (ms: number) => (clock += ms) };
}

describe('AnswerTiming', () => {
  it('logs how long a held key waited for its answer, up to OpenVPN taking it', async () => {
    const h = harness();
    h.arrive(3, 0);
    h.advance(1.5);
    await h.timing.authorize(3, 0);
    expect(h.sent).toEqual(['auth 3 0']);
    expect(h.lines).toEqual(['client 3 key 0 CONNECT answered (client-auth-nt) in 1.75 ms']);
    const m = ANSWER_LINE.exec(h.lines[0]);
    expect(m?.slice(1)).toEqual(['3', '0', 'CONNECT', 'client-auth-nt', '1.75']);
  });

  it('times only the first answer: the end of a sign-in is not the hold', async () => {
    const h = harness();
    h.arrive(4, 1, true);
    await h.timing.pendingAuth(4, 1, 'CR_TEXT:R,E:code', 120);
    h.advance(20_000);
    await h.timing.authorize(4, 1);
    expect(h.sent).toEqual(['pending 4 1', 'auth 4 1']);
    expect(h.lines).toEqual(['client 4 key 1 REAUTH answered (client-pending-auth) in 0.00 ms']);
  });

  it('does not time keys of a client that went away, or of a restarted OpenVPN', async () => {
    const h = harness();
    h.arrive(5, 0);
    h.arrive(6, 0);
    h.arrive(7, 0);
    h.timing.forget(5);
    await h.timing.deny(5, 0, 'x', 'y');
    await h.timing.authorize(6, 0);
    h.timing.forget(undefined);
    await h.timing.authorize(7, 0);
    expect(h.sent).toEqual(['deny 5 0', 'auth 6 0', 'auth 7 0']);
    expect(h.lines.map((l) => ANSWER_LINE.exec(l)?.[1])).toEqual(['6']);
  });
});
