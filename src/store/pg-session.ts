/**
 * One controller's dedicated PostgreSQL connection (a pg.Client, not a pool client: LISTEN and
 * a session advisory lock belong to one connection and must outlive every query):
 *
 * - it LISTENs on CHANGES_CHANNEL: each committed write transaction of any store sends
 *   `<store id> <scope> <schema>` there (pg.ts beforeCommit), so a change through one
 *   controller reaches the others' watchers at once. The channel is the database's: a fleet in
 *   another schema of the same database is told apart by the schema;
 * - when asked (leadership()), it tries for the leader's advisory lock
 *   (pg_try_advisory_lock, session level, keyed by the schema too: one leader per fleet)
 *   every interval until it holds it. PostgreSQL releases
 *   the lock when the connection ends, however it ends (close, crash, kill -9, network), and
 *   another controller's connection takes it at its next try;
 * - every interval it asks `SELECT 1`, so a dead connection is noticed within an interval even
 *   when nothing else is said on it; then it is closed, leadership is dropped at once, and it
 *   connects again (and LISTENs again, and tries for the lock again) every interval until
 *   PostgreSQL answers.
 *
 * What was committed while it was not listening was not heard: on reconnecting both versions
 * move once, so the watcher rebuilds from the store.
 */
import pg from 'pg';

export const CHANGES_CHANNEL = 'ovpn_fleet_changes';
/** The leader's session advisory lock key ("lead" in ASCII), fixed for every controller. */
export const LEADER_LOCK = 0x6c656164;

interface Health {
  lost(err: unknown): void;
  back(): void;
}

export interface PgSessionOptions {
  config: pg.ClientConfig;
  /** This store's id: its own notifications do not move its versions. */
  storeId: string;
  intervalMs: number;
  health: Health;
}

export class PgSession {
  fleetVersion = 0;
  sessionsVersion = 0;
  leader = false;
  private wantsLeader = false;
  private stopped = false;
  private readonly listeners = new Set<() => void>();
  private wake: (() => void) | undefined;
  private readonly running: Promise<void>;
  /** The schema this store works in (current_schema()): notifications of others are not ours. */
  private schema: string | undefined;

  constructor(private readonly o: PgSessionOptions) {
    this.running = this.run();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** From now on, try for the leader's lock (at once, then every interval). */
  wantLeadership(): void {
    this.wantsLeader = true;
    this.wake?.();
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  private moved(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch {
        // a listener's failure is its own (the watcher reports its handlers' failures)
      }
    }
  }

  private notified(payload: string | undefined): void {
    const [from, scope, schema] = (payload ?? '').split(' ');
    if (from === this.o.storeId || schema !== this.schema) return;
    if (scope === 'sessions') this.sessionsVersion++;
    else this.fleetVersion++;
    this.moved();
  }

  /** Waits one interval, or less when woken (close, leadership wanted). */
  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.o.intervalMs);
      this.wake = done;
    });
  }

  private async run(): Promise<void> {
    let connectedBefore = false;
    while (!this.stopped) {
      const client = new pg.Client(this.o.config);
      // 'error' on an idle client (its server went away): the next query fails and ends the
      // inner loop; unhandled, the event would end the process.
      client.on('error', (err) => this.o.health.lost(err));
      client.on('notification', (n) => this.notified(n.payload));
      try {
        await client.connect();
        const { rows: here } = await client.query<{ schema: string }>(
          'SELECT current_schema() AS schema',
        );
        this.schema = here[0].schema;
        await client.query(`LISTEN ${CHANGES_CHANNEL}`);
        this.o.health.back();
        if (connectedBefore) {
          this.fleetVersion++;
          this.sessionsVersion++;
          this.moved();
        }
        connectedBefore = true;
        while (!this.stopped) {
          if (this.wantsLeader && !this.leader) {
            const { rows } = await client.query<{ locked: boolean }>(
              'SELECT pg_try_advisory_lock($1, hashtext(current_schema())) AS locked',
              [LEADER_LOCK],
            );
            this.leader = rows[0].locked;
          } else await client.query('SELECT 1');
          if (this.stopped) break;
          await this.pause();
        }
      } catch (err) {
        this.o.health.lost(err);
      }
      // Dropped before the connection ends: better no leader for a moment than two.
      this.leader = false;
      await client.end().catch(() => undefined);
      if (!this.stopped) await this.pause();
    }
  }
}
