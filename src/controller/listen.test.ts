import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { listenOnAll, parseListen } from './listen.js';
import { refusal, selfSignedCert } from '../testing.js';

describe('parseListen', () => {
  it('listens in clear on loopback only, and anywhere with TLS', () => {
    expect(parseListen('127.0.0.1:8080', false)).toMatchObject({ tls: false });
    expect(parseListen('0.0.0.0:8443', true)).toMatchObject({ host: '0.0.0.0', tls: true });
    expect(refusal(() => parseListen('0.0.0.0:8443', false))).toMatch(/^--listen: /);
  });
});

/** GET `path` over a unix socket or TCP; the status, or the error code when nobody answers. */
function get(where: { socketPath: string } | { port: number }, path: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ ...where, host: '127.0.0.1', path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.statusCode)));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

describe('listenOnAll', () => {
  it('serves the same routes on a unix socket and on TCP, and closes both with the app', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'listen-test-'));
    const app = fastify();
    app.get('/ping', () => ({ pong: true }));
    try {
      const socketPath = join(dir, 'run', 'c.sock');
      const where = await listenOnAll(
        app,
        [
          parseListen(`unix:${socketPath}`, false),
          { kind: 'tcp', host: '127.0.0.1', port: 0, tls: false },
        ],
        {},
      );
      expect(where[0]).toBe(`unix:${socketPath}`);
      const port = Number(/:(\d+)$/.exec(where[1])?.[1]);
      expect(port).toBeGreaterThan(0);
      expect(await get({ socketPath }, '/ping')).toBe('200');
      expect(await get({ port }, '/ping')).toBe('200');
      expect(await get({ port }, '/nothing')).toBe('404');
      await app.close();
      expect(await get({ port }, '/ping')).toBe('ECONNREFUSED');
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with TLS, serves TCP over TLS and keeps the unix socket plain HTTP (the CLI and agents speak it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'listen-tls-test-'));
    const { cert: certFile, key: keyFile } = selfSignedCert(dir, '127.0.0.1', [
      'subjectAltName=IP:127.0.0.1',
    ]);
    const https = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
    const app = fastify({ https });
    app.get('/ping', () => ({ pong: true }));
    try {
      const socketPath = join(dir, 'run', 'c.sock');
      const where = await listenOnAll(
        app,
        [
          parseListen(`unix:${socketPath}`, true),
          { kind: 'tcp', host: '127.0.0.1', port: 0, tls: true },
        ],
        { https },
      );
      expect(where[0]).toBe(`unix:${socketPath}`);
      const port = Number(/:(\d+)$/.exec(where[1])?.[1]);
      expect(await get({ socketPath }, '/ping')).toBe('200');
      const overTls = await new Promise<string>((resolve) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port, path: '/ping', ca: https.cert, agent: false },
          (res) => {
            res.resume();
            res.on('end', () => resolve(String(res.statusCode)));
          },
        );
        req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        req.end();
      });
      expect(overTls).toBe('200');
      // Plain HTTP on the TLS port gets no answer of ours.
      expect(await get({ port }, '/ping')).not.toBe('200');
    } finally {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an empty list', async () => {
    const app = fastify();
    await expect(listenOnAll(app, [], {})).rejects.toThrow(/--listen/);
    await app.close();
  });
});
