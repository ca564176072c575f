import { describe, expect, it } from 'vitest';
import type { Directive } from '../api/index.js';
import { PollWaiters, type Served, served } from './polls.js';
import { FakeTimers } from './testing.js';

const WAIT_MS = 25_000;

/** An HTTP client that can go away, as the route's `reply.raw.on('close')` sees it. */
class FakeClient {
  readonly listeners = new Set<() => void>();
  readonly onGone = (gone: () => void) => {
    this.listeners.add(gone);
    return () => {
      this.listeners.delete(gone);
    };
  };

  leave(): void {
    for (const gone of [...this.listeners]) gone();
  }
}

function directive(token: string): Served {
  const d: Directive = {
    token,
    bundle: { digest: `digest-${token}`, files: [] },
    evict: [],
    drain: false,
  };
  return served(d);
}

/** Whether a promise has settled yet, without waiting for it. */
async function settledNow<T>(p: Promise<T>): Promise<boolean> {
  let settled = false;
  void p.then(() => (settled = true));
  await new Promise<void>((r) => setImmediate(r));
  return settled;
}

describe('PollWaiters', () => {
  it('answers the waiting poll with the directive it is woken with, once', async () => {
    const timers = new FakeTimers();
    const polls = new PollWaiters(timers);
    const client = new FakeClient();
    const poll = polls.wait('vpn11', WAIT_MS, client.onGone);
    expect(polls.size).toBe(1);
    expect(await settledNow(poll)).toBe(false);

    const next = directive('t2');
    polls.wake('vpn12', directive('other server'));
    expect(await settledNow(poll)).toBe(false);
    polls.wake('vpn11', next);
    expect(await poll).toBe(next);
    expect(polls.size).toBe(0);
    expect(timers.pending).toBe(0);
    expect(client.listeners.size).toBe(0);
    polls.wake('vpn11', directive('t3'));
  });

  it('keeps one waiting poll per server: a second answers the first with nothing', async () => {
    const polls = new PollWaiters(new FakeTimers());
    const first = new FakeClient();
    const second = new FakeClient();
    const a = polls.wait('vpn11', WAIT_MS, first.onGone);
    const elsewhere = polls.wait('vpn21', WAIT_MS, new FakeClient().onGone);
    const b = polls.wait('vpn11', WAIT_MS, second.onGone);
    expect(await a).toBeUndefined();
    expect(first.listeners.size).toBe(0);
    expect(polls.size).toBe(2);

    const next = directive('t2');
    polls.wake('vpn11', next);
    expect(await b).toBe(next);
    expect(await settledNow(elsewhere)).toBe(false);
  });

  it('ends the wait with nothing after waitMs on the injected timers', async () => {
    const timers = new FakeTimers();
    const polls = new PollWaiters(timers);
    const client = new FakeClient();
    const poll = polls.wait('vpn11', WAIT_MS, client.onGone);
    await timers.advance(WAIT_MS - 1);
    expect(await settledNow(poll)).toBe(false);
    await timers.advance(1);
    expect(await poll).toBeUndefined();
    expect(polls.size).toBe(0);
    expect(client.listeners.size).toBe(0);
  });

  it('ends the wait when the client goes away, and stops listening for it', async () => {
    const timers = new FakeTimers();
    const polls = new PollWaiters(timers);
    const client = new FakeClient();
    const poll = polls.wait('vpn11', WAIT_MS, client.onGone);
    expect(client.listeners.size).toBe(1);
    client.leave();
    expect(await poll).toBeUndefined();
    expect(client.listeners.size).toBe(0);
    expect(polls.size).toBe(0);
    expect(timers.pending).toBe(0);
  });

  it('closeAll answers every waiting poll with nothing', async () => {
    const timers = new FakeTimers();
    const polls = new PollWaiters(timers);
    const clients = [new FakeClient(), new FakeClient()];
    const waiting = [
      polls.wait('vpn11', WAIT_MS, clients[0].onGone),
      polls.wait('vpn21', WAIT_MS, clients[1].onGone),
    ];
    polls.closeAll();
    expect(await Promise.all(waiting)).toEqual([undefined, undefined]);
    expect(polls.size).toBe(0);
    expect(timers.pending).toBe(0);
    expect(clients.map((c) => c.listeners.size)).toEqual([0, 0]);
  });
});
