/**
 * A plain-HTTP listener that answers only `GET /metrics` (Prometheus text format), for the
 * controller's and the agents' optional `--metrics-listen ADDR:PORT`. Prometheus scrapes plain
 * HTTP most easily; whoever calls this has already refused a non-loopback address without a
 * token (see src/cli/metrics-options.ts). With a token, every scrape must present it as
 * `Authorization: Bearer TOKEN` (Prometheus: `authorization: { credentials_file: … }`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, createServer } from 'node:http';

export interface MetricsText {
  contentType: string;
  body: string;
}

/** Why a request for /metrics is refused, or undefined when it may have them. */
export type MetricsRefusal = { status: 401 | 403; message: string } | undefined;

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

/**
 * Checks `Authorization: Bearer …` against `token` (none configured: everyone may read).
 * Both sides are hashed first, so timingSafeEqual compares equal lengths and the time taken
 * says nothing about how much of the token matched.
 */
export function metricsRefusal(
  authorization: string | undefined,
  token: string | undefined,
): MetricsRefusal {
  if (token === undefined) return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
  if (!m) return { status: 401, message: 'missing bearer token (Authorization: Bearer TOKEN)' };
  return timingSafeEqual(digest(m[1]), digest(token))
    ? undefined
    : { status: 401, message: 'invalid token' };
}

export interface MetricsListener {
  /** The port actually bound (for port 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on `host:port` and serves `render()` at GET /metrics; every other path is 404, every
 * other method 405. Connections are few (Prometheus scrapes every 15 s or so): a small cap and
 * short timeouts keep an idle or slow client from holding the listener.
 */
export async function serveMetrics(o: {
  host: string;
  port: number;
  render: () => Promise<MetricsText>;
  token?: string;
  log?: (line: string) => void;
}): Promise<MetricsListener> {
  const server = createServer(
    { requestTimeout: 10_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 },
    (req, res) => {
      const answer = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
        res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(body);
      };
      if (pathOf(req) !== '/metrics') return answer(404, 'only /metrics here\n');
      if (req.method !== 'GET' && req.method !== 'HEAD') return answer(405, 'GET only\n');
      const refused = metricsRefusal(req.headers.authorization, o.token);
      if (refused) {
        res.setHeader('connection', 'close');
        return answer(refused.status, `${refused.message}\n`);
      }
      o.render().then(
        (m) => answer(200, m.body, m.contentType),
        (err: unknown) => {
          o.log?.(`metrics: ${err instanceof Error ? err.message : String(err)}`);
          answer(500, 'metrics could not be collected (logged)\n');
        },
      );
    },
  );
  server.maxConnections = 32;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: o.host, port: o.port }, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : o.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '').split('?')[0];
}
