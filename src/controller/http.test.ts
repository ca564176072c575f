import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { SessionLookup } from '../service/console-sessions.js';
import { Authenticator } from './auth.js';
import { createHttp, loginRedirect, parseForm } from './http.js';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** An edge with one page for browsers and one JSON route; sessions as `find` says. */
async function edge(find: (id: string) => SessionLookup) {
  app = await createHttp(
    {},
    { tokens: new Authenticator('tok'), sessions: { find: (id) => Promise.resolve(find(id)) } },
    () => {},
  );
  app.get('/console/users', { config: { auth: 'viewer', html: true } }, () => 'page');
  app.get('/v1/thing', { config: { auth: 'viewer' } }, () => ({ ok: true }));
  app.post('/v1/thing', { config: { auth: 'viewer' } }, (req) => req.body ?? {});
  await app.ready();
  return app;
}

const session = {
  idSha256: 'd',
  name: 'ann',
  role: 'viewer' as const,
  csrfToken: 'the-csrf-token',
  mustChangePassword: false,
  createdAt: '',
  lastSeenAt: '',
};

describe('the HTTP edge', () => {
  it('sends a browser without a session to the login page with where it was going', async () => {
    const a = await edge(() => ({ problem: 'no such session' }));
    const page = await a.inject({ url: '/console/users?q=a%20b&page=2' });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe(
      `/console/login?next=${encodeURIComponent('/console/users?q=a%20b&page=2')}`,
    );
    expect(page.headers['set-cookie']).toBeUndefined();
    // A stale cookie is dropped on the way.
    const stale = await a.inject({
      url: '/console/users',
      headers: { cookie: 'ovpn_fleet_session=old' },
    });
    expect(stale.statusCode).toBe(303);
    expect(stale.headers['set-cookie']).toMatch(/^ovpn_fleet_session=; .*Max-Age=0/);
    // The JSON API keeps its 401.
    const api = await a.inject({ url: '/v1/thing' });
    expect(api.statusCode).toBe(401);
    expect(api.json().error).toMatch(/missing bearer token/);
  });

  it('never puts anything but a same-origin path into next', () => {
    expect(loginRedirect('/console/sessions')).toBe('/console/login?next=%2Fconsole%2Fsessions');
    for (const hostile of [
      '//evil.example/x',
      '/\\evil.example',
      'http://evil.example/',
      '/a\r\nSet-Cookie: x=1',
      '/a\\b',
      `/${'a'.repeat(3000)}`,
    ])
      expect(loginRedirect(hostile), hostile).toBe('/console/login');
  });

  it('reads form bodies into plain fields, arrays for repeats and x[]', () => {
    const f = parseForm('name=ann&g=a&g=b&h%5B%5D=c&__proto__=x&_csrf=t%2Bu');
    expect(Object.entries(f)).toEqual([
      ['name', 'ann'],
      ['g', ['a', 'b']],
      ['h', ['c']],
      ['__proto__', 'x'],
      ['_csrf', 't+u'],
    ]);
    expect(Object.getPrototypeOf(f)).toBeNull();
  });

  it('checks a form post by its _csrf field and hands the route the body without it', async () => {
    const a = await edge(() => ({ session }));
    const post = (payload: string) =>
      a.inject({
        method: 'POST',
        url: '/v1/thing',
        headers: {
          cookie: 'ovpn_fleet_session=x',
          'content-type': 'application/x-www-form-urlencoded',
        },
        payload,
      });
    const good = await post('_csrf=the-csrf-token&name=ann');
    expect(good.statusCode).toBe(200);
    expect(good.json()).toEqual({ name: 'ann' });
    for (const bad of ['name=ann', '_csrf=wrong&name=ann', '_csrf=a&_csrf=the-csrf-token']) {
      const r = await post(bad);
      expect(r.statusCode, bad).toBe(403);
      expect(r.json().error).toMatch(/^missing or wrong _csrf field/);
    }
    const big = await post(`_csrf=the-csrf-token&x=${'a'.repeat(20_000)}`);
    expect(big.statusCode).toBe(413);
  });
});
