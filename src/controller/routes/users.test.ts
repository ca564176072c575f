/**
 * The users routes the console uses: search and pages, bulk actions, CSV import and the profile
 * download, through fastify inject on a real temp fleet with fake timers.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Controller, buildController } from '../app.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from '../testing.js';

const admin = { authorization: 'Bearer admin-token' };

let t: ControllerFleet;
let ctl: Controller;
let logged: string[];

beforeEach(async () => {
  t = await controllerFleet();
  logged = [];
  ctl = await buildController({
    fleetDir: t.dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'admin-token',
    serverToken: (s) => `agent-token-${s}`,
    clock: t.clock,
    timers: new FakeTimers(t.clock),
    log: (line) => logged.push(line),
  });
});
afterEach(async () => {
  await ctl.close();
  await t.cleanup();
});

const get = (url: string) => ctl.app.inject({ url, headers: admin });
const post = (url: string, payload?: object) =>
  ctl.app.inject({ method: 'POST', url, headers: admin, ...(payload ? { payload } : {}) });
const names = (r: { json(): unknown }) => (r.json() as { name: string }[]).map((u) => u.name);

function expect400(r: { statusCode: number; json(): any }, re: RegExp) {
  expect(r.statusCode).toBe(400);
  expect(r.json().error).toMatch(re);
}

/** Users added by another process (a CLI), without certificates. */
async function seed(list: { name: string; groups?: string[] }[]) {
  await (await t.other()).addUsers(list, { issueCerts: false });
}

describe('GET /v1/users', () => {
  beforeEach(() =>
    seed([
      { name: 'ann', groups: ['staff'] },
      { name: 'bob', groups: ['dba'] },
      { name: 'b_c', groups: ['staff', 'dba'] },
      { name: 'dan' },
    ]),
  );

  it('without parameters answers every user as an array, as the CLI expects', async () => {
    const r = await get('/v1/users');
    expect(r.statusCode).toBe(200);
    expect(names(r)).toEqual(['ann', 'b_c', 'bob', 'dan']);
    expect(r.headers['x-total-count']).toBe('4');
  });

  it('searches, filters, sorts and pages in the store, with the total in X-Total-Count', async () => {
    await (await t.other()).setStatus('bob', 'disabled');
    const page = await get('/v1/users?q=B&sort=-name&limit=1&offset=1');
    expect(page.statusCode).toBe(200);
    expect(names(page)).toEqual(['b_c']);
    expect(page.headers['x-total-count']).toBe('2');
    // "_" matches itself, not any character
    expect(names(await get('/v1/users?q=_'))).toEqual(['b_c']);
    expect(names(await get('/v1/users?q=%25'))).toEqual([]);
    expect(names(await get('/v1/users?group=dba'))).toEqual(['b_c', 'bob']);
    expect(names(await get('/v1/users?q=staff&status=enabled'))).toEqual(['ann', 'b_c']);
    expect(names(await get('/v1/users?status=disabled'))).toEqual(['bob']);
    const dan = await t.fleet.getUser('dan');
    expect(names(await get(`/v1/users?q=${dan.ipv4}`))).toEqual(['dan']);
  });

  it('refuses bad parameters with a 400 naming the field', async () => {
    expect400(await get('/v1/users?offset=-1'), /^querystring\.offset: must be a whole number/);
    expect400(await get('/v1/users?limit=10000'), /^querystring\.limit: .*1 to 500, got "10000"/);
    expect400(await get('/v1/users?limit=0'), /^querystring\.limit: /);
    expect400(await get('/v1/users?limit=1e3'), /^querystring\.limit: /);
    expect400(await get('/v1/users?q=a%01b'), /^querystring\.q: control characters/);
    expect400(await get('/v1/users?q=a%0Ab'), /^querystring\.q: control characters/);
    expect400(
      await get('/v1/users?status=gone'),
      /^querystring\.status: must be one of enabled, disabled, revoked, got "gone"$/,
    );
    expect400(await get('/v1/users?sort=ipv4'), /^querystring\.sort: must be one of/);
    expect400(
      await get('/v1/users?page=2'),
      /^querystring\.page: is not a known field \(fields here: [a-z, ]+\)$/,
    );
    expect400(await get(`/v1/users?q=${'x'.repeat(201)}`), /^querystring\.q: /);
  });
});

describe('POST /v1/users/bulk', () => {
  beforeEach(async () => {
    await seed([{ name: 'ann' }, { name: 'bob' }, { name: 'cid' }]);
    await (await t.other()).issueMissingCerts();
  });
  const statuses = async () =>
    Object.fromEntries((await t.fleet.listUsers()).map((u) => [u.name, u.status]));

  it('revokes several users at once: audited per user with the actor, one CRL, off every server', async () => {
    const crl = (await t.fleet.store.revocationState()).crlNumber;
    const lastId = await t.fleet.store.lastAuditId();
    const r = await post('/v1/users/bulk', { action: 'revoke', names: ['ann', 'cid'] });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      action: 'revoke',
      users: [
        { name: 'ann', status: 'revoked' },
        { name: 'cid', status: 'revoked' },
      ],
    });
    expect(await statuses()).toEqual({ ann: 'revoked', bob: 'enabled', cid: 'revoked' });
    expect((await t.fleet.store.revocationState()).crlNumber).toBe(crl + 1);
    expect(
      (await t.fleet.store.auditSince(lastId, 10)).map((e) => [e.actor, e.action, e.subject]),
    ).toEqual([
      ['api:admin', 'user.revoke', 'ann'],
      ['api:admin', 'user.revoke', 'cid'],
    ]);
    // The answer came after the new bundles: no server admits them any more.
    const poll = await ctl.app.inject({
      url: '/v1/agent/poll',
      headers: { authorization: 'Bearer agent-token-vpn11' },
    });
    const ccd = poll
      .json<{ bundle: { files: { path: string }[] } }>()
      .bundle.files.map((f) => f.path)
      .filter((p) => p.startsWith('ccd/'));
    expect(ccd).toEqual(['ccd/bob']);
  });

  it('changes nobody on an unknown name, a refused transition or a bad body', async () => {
    await post('/v1/users/bulk', { action: 'revoke', names: ['bob'] });
    const before = await statuses();
    const lastId = await t.fleet.store.lastAuditId();
    let r = await post('/v1/users/bulk', { action: 'disable', names: ['ann', 'zed'] });
    expect(r.statusCode).toBe(404);
    expect(r.json().error).toBe('names[1]: no user named zed');
    r = await post('/v1/users/bulk', { action: 'enable', names: ['ann', 'bob'] });
    expect(r.statusCode).toBe(409);
    expect(r.json().error).toMatch(/^user bob is revoked/);
    expect400(
      await post('/v1/users/bulk', { action: 'purge', names: ['ann'] }),
      /^body\.action: must be one of enable, disable, revoke, delete, got "purge"$/,
    );
    expect400(await post('/v1/users/bulk', { action: 'delete', names: [] }), /^body\.names: /);
    expect400(
      await post('/v1/users/bulk', {
        action: 'delete',
        names: Array.from({ length: 1001 }, (_, i) => `u${i}`),
      }),
      /^body\.names: /,
    );
    expect400(
      await post('/v1/users/bulk', { action: 'delete', names: ['ann', 'ann'] }),
      /^names\[1\]: ann is listed twice$/,
    );
    expect400(await post('/v1/users/bulk', { action: 'delete' }), /^body\.names: is required$/);
    expect(await statuses()).toEqual(before);
    expect(await t.fleet.store.lastAuditId()).toBe(lastId);
  });

  it('deletes several users', async () => {
    const r = await post('/v1/users/bulk', { action: 'delete', names: ['ann', 'bob'] });
    expect(r.statusCode).toBe(200);
    expect(names(await get('/v1/users'))).toEqual(['cid']);
  });
});

describe('POST /v1/users/import', () => {
  const csv = (payload: string, type = 'text/csv') =>
    ctl.app.inject({
      method: 'POST',
      url: '/v1/users/import',
      headers: { ...admin, 'content-type': type },
      payload,
    });

  it('imports 10,000 users from CSV, which the search then finds page by page', async () => {
    const rows = ['name,groups'];
    for (let i = 0; i < 10_000; i++)
      rows.push(`user${String(i).padStart(5, '0')},${i % 3 ? 'staff' : 'staff;dba'}`);
    const r = await csv(rows.join('\n'));
    expect(r.statusCode).toBe(201);
    expect(r.json().users).toHaveLength(10_000);
    const page = await get('/v1/users?group=dba&q=user099&limit=500&sort=-name');
    expect(page.headers['x-total-count']).toBe('34');
    expect(names(page)[0]).toBe('user09999');
    expect(names(page).every((n) => Number(n.slice(4)) % 3 === 0 && n.startsWith('user099'))).toBe(
      true,
    );
    expect((await t.fleet.store.auditQuery({ limit: 1, action: 'user.add' }))[0].actor).toBe(
      'api:admin',
    );
  }, 60_000);

  it('refuses a bad file whole, naming the line, and anything but CSV text', async () => {
    let r = await csv('name,groups\nann,staff\nbob,nope\n');
    expect400(r, /^body:3: unknown group "nope"/);
    r = await csv('ann\n../etc\n');
    expect400(r, /^body:2: /);
    expect(names(await get('/v1/users'))).toEqual([]);
    r = await csv('{"name":"ann"}', 'application/json');
    expect400(r, /^body: must be a string, got an object$/);
    r = await csv(`name\n${'a'.repeat(2 * 1024 * 1024)}\n`);
    expect(r.statusCode).toBe(413);
    expect(names(await get('/v1/users'))).toEqual([]);
  });
});

describe('GET /v1/users/:name/profile', () => {
  it('is a download never cached or sniffed, audited with the actor, and never logged', async () => {
    await seed([{ name: 'ann' }]);
    const lastId = await t.fleet.store.lastAuditId();
    const r = await get('/v1/users/ann/profile');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-openvpn-profile');
    expect(r.headers['content-disposition']).toBe('attachment; filename="ann.ovpn"');
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body).toContain('<key>');
    const serial = (await t.fleet.getUser('ann')).certSerial;
    expect(
      (await t.fleet.store.auditSince(lastId, 10)).map((e) => [e.actor, e.action, e.detail]),
    ).toEqual([
      ['api:admin', 'user.cert', { serial }],
      ['api:admin', 'user.profile', { serial }],
    ]);
    expect(logged.join('\n')).not.toMatch(/PRIVATE KEY|<key>/);
  });

  it('inside the renewal window hands out the renewed certificate; GET /v1/users/:name tells what waits', async () => {
    await seed([{ name: 'ann' }]);
    await get('/v1/users/ann/profile');
    const first = (await t.fleet.getUser('ann')).certSerial;
    expect((await get('/v1/users/ann')).json()).toMatchObject({
      certSerial: first,
      certificate: { serial: first, renewalDue: false, newProfileAvailable: false, previous: [] },
    });
    // 340 days on: inside the 30-day window. Renewed by another process (the CLI) first.
    t.clock.advance(340 * 86_400_000);
    expect((await get('/v1/users/ann')).json().certificate).toMatchObject({
      renewalDue: true,
      daysLeft: 25,
    });
    await (await t.other()).renewUserCerts(['ann']);
    const view = (await get('/v1/users/ann')).json();
    expect(view.certificate).toMatchObject({
      renewalDue: false,
      newProfileAvailable: true,
      previous: [{ serial: first }],
    });
    const r = await get('/v1/users/ann/profile');
    expect(r.body).toContain('<cert>');
    expect((await get('/v1/users/ann')).json().certificate.newProfileAvailable).toBe(false);
  });

  it('names no file for a user that is not there or cannot have one', async () => {
    expect((await get('/v1/users/zed/profile')).statusCode).toBe(404);
    expect400(await get('/v1/users/a%22b/profile'), /^name: /);
  });
});
