import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type MetricsListener, metricsRefusal, serveMetrics } from './metrics-http.js';

const listeners: MetricsListener[] = [];
afterEach(async () => {
  for (const l of listeners.splice(0)) await l.close();
});

function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

async function listener(token?: string): Promise<number> {
  const l = await serveMetrics({
    host: '127.0.0.1',
    port: 0,
    render: () => Promise.resolve({ contentType: 'text/plain; version=0.0.4', body: 'up 1\n' }),
    ...(token ? { token } : {}),
  });
  listeners.push(l);
  return l.port;
}

describe('the metrics listener', () => {
  it('serves only GET /metrics', async () => {
    const port = await listener();
    expect(await get(port, '/metrics')).toEqual({
      status: 200,
      type: 'text/plain; version=0.0.4',
      body: 'up 1\n',
    });
    expect((await get(port, '/v1/users')).status).toBe(404);
    expect((await get(port, '/metrics', {}, 'POST')).status).toBe(405);
  });

  it('with a token, answers 401 without it or with another', async () => {
    const port = await listener('the-metrics-token-0123');
    expect((await get(port, '/metrics')).status).toBe(401);
    expect((await get(port, '/metrics', { authorization: 'Bearer other' })).status).toBe(401);
    const ok = await get(port, '/metrics', { authorization: 'Bearer the-metrics-token-0123' });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('up 1\n');
  });

  it('no token configured lets everyone read', () => {
    expect(metricsRefusal(undefined, undefined)).toBeUndefined();
    expect(metricsRefusal('Bearer x', 'x')).toBeUndefined();
    expect(metricsRefusal('Basic eDp4', 'x')?.status).toBe(401);
  });
});
