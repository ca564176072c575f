/**
 * The agents' waiting long-polls: at most one per server. A real agent holds one poll at a
 * time; a second one (a restarted agent, or a stolen token opening hundreds) answers the one
 * waiting before, so each change is sent once per server however many polls were opened.
 */
import type { Directive } from '../api/index.js';
import type { Timers } from '../sys/time.js';

/** A directive and its JSON, serialised once per version however many polls it answers. */
export interface Served {
  directive: Directive;
  json: string;
}

export function served(directive: Directive): Served {
  return { directive, json: JSON.stringify(directive) };
}

interface Waiter {
  done(served: Served | undefined): void;
}

export class PollWaiters {
  private readonly waiters = new Map<string, Waiter>();

  constructor(private readonly timers: Timers) {}

  /** How many polls wait now (one per server at most). */
  get size(): number {
    return this.waiters.size;
  }

  /**
   * Resolves with the next directive of `server`, or undefined after `waitMs`, when the client
   * goes away (`onGone` registers the callback and returns its removal), or on close.
   */
  wait(
    server: string,
    waitMs: number,
    onGone: (cb: () => void) => () => void,
  ): Promise<Served | undefined> {
    this.waiters.get(server)?.done(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        done: (result) => {
          this.timers.clearTimeout(timer);
          if (this.waiters.get(server) === waiter) this.waiters.delete(server);
          stopWatching();
          resolve(result);
        },
      };
      const timer = this.timers.setTimeout(() => waiter.done(undefined), waitMs);
      const stopWatching = onGone(() => waiter.done(undefined));
      this.waiters.set(server, waiter);
    });
  }

  /** Answers the server's waiting poll, if any. */
  wake(server: string, result: Served | undefined): void {
    this.waiters.get(server)?.done(result);
  }

  /** Answers every waiting poll with "nothing changed". */
  closeAll(): void {
    for (const server of [...this.waiters.keys()]) this.wake(server, undefined);
  }
}
