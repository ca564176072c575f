import { describe, expect, it } from 'vitest';
import { FakeClock, settle } from '../agent/testing.js';
import {
  type Answer,
  type ControllerSwitch,
  EndpointSet,
  type FailoverOptions,
  type TransportFailure,
} from './failover.js';

class Down extends Error {
  constructor(
    readonly reason: string,
    readonly maybeDone = false,
  ) {
    super(reason);
  }
}

const failureOf = (err: unknown): TransportFailure | undefined =>
  err instanceof Down ? { reason: err.reason, maybeDone: err.maybeDone } : undefined;

function setOf(names: string[], o: Partial<FailoverOptions> = {}) {
  const clock = new FakeClock();
  const set = new EndpointSet(names, { clock, failureOf, ...o });
  const switches: ControllerSwitch[] = [];
  set.onSwitch((s) => switches.push(s));
  return { set, clock, switches };
}

const ok: Answer = { status: 200, text: 'ok' };

describe('EndpointSet', () => {
  it('sends to the next controller when one is gone, and stays there', async () => {
    const { set, switches } = setOf(['a', 'b', 'c']);
    const asked: number[] = [];
    const answer = await set.send(
      (i) => {
        asked.push(i);
        return i === 0 ? Promise.reject(new Down('ECONNREFUSED')) : Promise.resolve(ok);
      },
      { idempotent: false },
    );
    expect(answer).toEqual(ok);
    expect(asked).toEqual([0, 1]);
    expect(set.current).toBe(1);
    expect(switches.map((s) => `${s.fromName}->${s.toName}: ${s.reason}`)).toEqual([
      'a->b: ECONNREFUSED',
    ]);
    await set.send((i) => (asked.push(i), Promise.resolve(ok)), { idempotent: true });
    expect(asked).toEqual([0, 1, 1]);
  });

  it('returns a 4xx as it is, and a 5xx after trying every controller', async () => {
    const { set } = setOf(['a', 'b']);
    const refused = { status: 401, text: 'no' };
    expect(await set.send(() => Promise.resolve(refused), { idempotent: true })).toEqual(refused);
    expect(set.current).toBe(0);
    const asked: number[] = [];
    const broken = await set.send(
      (i) => (asked.push(i), Promise.resolve({ status: 500 + i, text: '' })),
      { idempotent: true },
    );
    expect(asked).toEqual([0, 1]);
    expect(broken.status).toBe(501);
  });

  it('moves a request that may have been done only when it is idempotent', async () => {
    const { set } = setOf(['a', 'b']);
    const reset = () => Promise.reject(new Down('ECONNRESET', true));
    await expect(set.send(reset, { idempotent: false })).rejects.toThrow('ECONNRESET');
    expect(set.current).toBe(0);
    // A 500 to a POST may have done the work; a 503 says it did not.
    expect(
      (await set.send(() => Promise.resolve({ status: 500, text: '' }), { idempotent: false }))
        .status,
    ).toBe(500);
    const asked: number[] = [];
    await set.send(
      (i) => (asked.push(i), Promise.resolve(i === 0 ? { status: 503, text: '' } : ok)),
      { idempotent: false },
    );
    expect(asked).toEqual([0, 1]);
  });

  it('throws the last failure when no controller answers, and errors that are no failure at once', async () => {
    const { set } = setOf(['a', 'b']);
    await expect(
      set.send((i) => Promise.reject(new Down(`down ${i}`)), { idempotent: true }),
    ).rejects.toThrow('down 1');
    await expect(
      set.send(() => Promise.reject(new Error('bug')), { idempotent: true }),
    ).rejects.toThrow('bug');
  });

  it('watching: leaves a silent controller within heartbeat + probe timeout, moving the request in flight', async () => {
    let silent = false;
    const { set, clock, switches } = setOf(['a', 'b'], {
      watch: true,
      probe: (i, signal) =>
        i === 0 && silent
          ? new Promise((_, reject) =>
              signal.addEventListener('abort', () => reject(new Error('aborted'))),
            )
          : Promise.resolve(),
    });
    const asked: number[] = [];
    const poll = set.send(
      (i, signal) => {
        asked.push(i);
        // A long-poll: answered by b at once, never by a.
        return i === 1
          ? Promise.resolve(ok)
          : new Promise((_, reject) =>
              signal.addEventListener('abort', () => reject(new Down('aborted', true))),
            );
      },
      { idempotent: true, longPoll: true },
    );
    await clock.advance(2000);
    expect(set.current).toBe(0);
    const since = clock.now();
    silent = true;
    await clock.advance(2000);
    expect(await poll).toEqual(ok);
    expect(asked).toEqual([0, 1]);
    expect(switches).toHaveLength(1);
    expect(switches[0].at - since).toBeLessThanOrEqual(1500);
    expect(switches[0].reason).toBe('no health answer: no answer within 1000 ms');
  });

  it('watching: returns to the first once it answers its health check, moving only the long-poll', async () => {
    let firstUp = false;
    const { set, clock, switches } = setOf(['a', 'b'], {
      watch: true,
      probe: (i) =>
        i === 0 && !firstUp ? Promise.reject(new Error('ECONNREFUSED')) : Promise.resolve(),
    });
    const flights: { i: number; kind: string; end(a: Answer): void }[] = [];
    const send = (kind: string) =>
      set.send(
        (i, signal) =>
          i === 0 && !firstUp
            ? Promise.reject(new Down('ECONNREFUSED'))
            : new Promise<Answer>((resolve, reject) => {
                flights.push({ i, kind, end: resolve });
                signal.addEventListener('abort', () => reject(new Down('aborted', true)));
              }),
        { idempotent: true, longPoll: kind === 'poll' },
      );
    const poll = send('poll');
    const report = send('report');
    await settle();
    expect(set.current).toBe(1);
    await clock.advance(9000);
    firstUp = true;
    await clock.advance(1500);
    expect(set.current).toBe(0);
    expect(switches.map((s) => `${s.fromName}->${s.toName}: ${s.reason}`)).toEqual([
      'a->b: ECONNREFUSED',
      'b->a: it answers again',
    ]);
    // The poll went to a again; the report to b was left to finish.
    expect(flights.map((f) => `${f.kind}@${f.i}`)).toEqual(['poll@1', 'report@1', 'poll@0']);
    for (const f of flights.slice(1)) f.end(ok);
    expect(await poll).toEqual(ok);
    expect(await report).toEqual(ok);
    set.close();
  });
});
