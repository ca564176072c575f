/**
 * `GET /console/events`: server-sent events telling open console pages that something moved,
 * so they re-fetch their live region. One event names every kind of change since the last one
 * (`event: change`, `data: {"what":["sessions"]}`), at most one per `coalesceMs` (250 ms: four
 * a second, however fast agents report); a comment line every `heartbeatMs` keeps proxies and
 * the socket's idle timeout from cutting a quiet stream. Streams are bounded: beyond
 * `maxStreams` in all, or `maxPerSession` of one console session (bearer-token callers share
 * one such allowance), a new one is refused with 503. A session's stream ends when the session
 * does: each heartbeat checks it is still there (not signed out, idle, or its account changed),
 * and its lifetime ends the stream at the latest.
 */
import type { FastifyInstance } from 'fastify';
import type { ChangeKind, ControllerState } from '../controller/state.js';

/** The timers the stream needs (the controller's Timers, or a test's fake ones). */
export interface StreamTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface EventOptions {
  timers: StreamTimers;
  maxStreams?: number;
  /** Streams of one console session (default 4). */
  maxPerSession?: number;
  coalesceMs?: number;
  heartbeatMs?: number;
  /** Headers every console answer carries (the CSP). */
  headers: Record<string, string>;
}

export interface EventStreams {
  /** Streams open now. */
  readonly open: number;
}

export function eventRoutes(
  app: FastifyInstance,
  state: ControllerState,
  opts: EventOptions,
): EventStreams {
  const maxStreams = opts.maxStreams ?? 100;
  const coalesceMs = opts.coalesceMs ?? 250;
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const { timers } = opts;
  const maxPerSession = opts.maxPerSession ?? 4;
  const closers = new Set<() => void>();
  /** Streams open per session (by its id's hash; `bearer` for token callers). */
  const perSession = new Map<string, number>();

  // A stream never ends by itself: end them all before the server waits for its connections.
  app.addHook('preClose', (done) => {
    for (const close of [...closers]) close();
    done();
  });

  app.get(
    '/console/events',
    { config: { auth: 'viewer' }, schema: { hide: true } },
    (req, reply) => {
      if (closers.size >= maxStreams) {
        void reply
          .code(503)
          .send({ error: `too many console event streams open (${maxStreams}); try again later` });
        return;
      }
      const session = req.who?.session;
      const owner = session?.idSha256 ?? 'bearer';
      const mine = perSession.get(owner) ?? 0;
      if (mine >= maxPerSession) {
        void reply.code(503).send({
          error: `too many console event streams open for this session (${maxPerSession}); close a tab or try again later`,
        });
        return;
      }
      perSession.set(owner, mine + 1);
      // Quiet between changes, but never for longer than a heartbeat: a socket silent for three
      // is a client gone without a word. Writes count as activity for Node's socket timeout.
      req.raw.socket?.setTimeout?.(3 * heartbeatMs);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        ...opts.headers,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        // Tells a reverse proxy (nginx) not to hold the events back in a buffer.
        'x-accel-buffering': 'no',
      });
      res.write(': connected\nretry: 2000\n\n');

      const pending = new Set<ChangeKind>();
      let flushTimer: unknown;
      const flush = () => {
        flushTimer = undefined;
        if (!pending.size) return;
        res.write(`event: change\ndata: ${JSON.stringify({ what: [...pending] })}\n\n`);
        pending.clear();
      };
      const unsubscribe = state.onChange((what) => {
        pending.add(what);
        flushTimer ??= timers.setTimeout(flush, coalesceMs);
      });
      const heartbeat = timers.setInterval(() => {
        if (!session) {
          res.write(': heartbeat\n\n');
          return;
        }
        // A store that cannot answer ends the stream too: the browser reconnects and signs in
        // again if it must.
        state.consoleSessions.alive(session.idSha256).then(
          (alive) => (alive ? res.write(': heartbeat\n\n') : close()),
          () => close(),
        );
      }, heartbeatMs);
      const lifetime = session
        ? timers.setTimeout(() => close(), state.consoleSessions.remainingMs(session))
        : undefined;
      const close = () => {
        if (!closers.delete(close)) return;
        const left = (perSession.get(owner) ?? 1) - 1;
        if (left > 0) perSession.set(owner, left);
        else perSession.delete(owner);
        unsubscribe();
        if (flushTimer !== undefined) timers.clearTimeout(flushTimer);
        timers.clearInterval(heartbeat);
        if (lifetime !== undefined) timers.clearTimeout(lifetime);
        res.end();
      };
      closers.add(close);
      res.on('close', close);
    },
  );

  return {
    get open() {
      return closers.size;
    },
  };
}
