/** `GET /v1/audit`: filters, the paging cursor, and the JSON-lines and CSV exports. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../store/types.js';
import { type Controller, buildController } from '../app.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from '../testing.js';

const admin = { authorization: 'Bearer admin-token' };

let t: ControllerFleet;
let ctl: Controller;

beforeEach(async () => {
  t = await controllerFleet();
  ctl = await buildController({
    fleetDir: t.dir,
    baseDir: (server) => `/etc/ovpn-fleet/${server}`,
    adminToken: 'admin-token',
    serverToken: (s) => `agent-token-${s}`,
    clock: t.clock,
    timers: new FakeTimers(t.clock),
    log: () => {},
  });
});
afterEach(async () => {
  await ctl.close();
  await t.cleanup();
});

const get = (url: string) => ctl.app.inject({ url, headers: admin });
const at = (minute: number) => new Date(Date.UTC(2030, 0, 1, 10, minute)).toISOString();

/** Entries written by another process (a CLI), as they would be. */
async function write(entries: AuditEntry[]) {
  const store = (await t.other()).store;
  await store.transaction(async (tx) => {
    for (const e of entries) await tx.audit(e);
  });
}

const LOG: AuditEntry[] = [
  { at: at(0), actor: 'cli:root', action: 'user.add', subject: 'alice' },
  { at: at(1), actor: 'api:admin', action: 'user.disable', subject: 'alice' },
  { at: at(2), actor: 'controller', action: 'session.connect', subject: 'alice' },
  { at: at(3), actor: 'controller', action: 'session.disconnect', subject: 'bob' },
  { at: at(4), actor: 'api:admin', action: 'server.drain', subject: 'vpn11' },
  {
    at: at(5),
    actor: '=HYPERLINK("http://x")',
    action: 'user.groups',
    subject: 'bob',
    detail: { groups: ['a,b', 'say "hi"\nthere'] },
  },
];

/** Only the entries of LOG (initialising the fleet writes some of its own). */
const ours = (list: { at: string }[]) => list.filter((e) => e.at.startsWith('2030-'));

function expect400(r: { statusCode: number; json(): any }, re: RegExp) {
  expect(r.statusCode).toBe(400);
  expect(r.json().error).toMatch(re);
}

describe('GET /v1/audit', () => {
  beforeEach(async () => await write(LOG));

  it('answers the newest entries first, with ids, filtered by actor, user, kind and time', async () => {
    const all = (await get('/v1/audit')).json<(AuditEntry & { id: number })[]>();
    expect(ours(all).map((e) => e.at)).toEqual(LOG.map((e) => e.at).reverse());
    expect(all.every((e, i) => i === 0 || e.id < all[i - 1].id)).toBe(true);
    const subjects = async (q: string) =>
      (await get(`/v1/audit?${q}`)).json<AuditEntry[]>().map((e) => `${e.action}:${e.subject}`);
    expect(await subjects('actor=controller')).toEqual([
      'session.disconnect:bob',
      'session.connect:alice',
    ]);
    expect(await subjects('user=alice&kind=session.')).toEqual(['session.connect:alice']);
    expect(await subjects('kind=user.disable')).toEqual(['user.disable:alice']);
    expect(
      await subjects(`since=${at(2)}&until=${encodeURIComponent('2030-01-01T11:04:00+01:00')}`),
    ).toEqual(['session.disconnect:bob', 'session.connect:alice']);
    expect(await subjects('since=2030-01-02')).toEqual([]);
    // Paging: the next page starts below the last id of this one.
    const first = (await get('/v1/audit?limit=2')).json<{ id: number }[]>();
    const next = (await get(`/v1/audit?limit=2&before=${first[1].id}`)).json<AuditEntry[]>();
    expect(next.map((e) => e.at)).toEqual([at(3), at(2)]);
  });

  it('refuses bad filters with a 400 naming the field', async () => {
    expect400(await get('/v1/audit?since=yesterday'), /^querystring\.since: "yesterday" is not/);
    expect400(await get('/v1/audit?since=2030-02-31'), /^querystring\.since: /);
    expect400(await get('/v1/audit?until=2030-01-01T10:00:00'), /^querystring\.until: /);
    expect400(
      await get(`/v1/audit?since=${at(3)}&until=${at(2)}`),
      /^querystring\.until: must be later/,
    );
    expect400(await get('/v1/audit?limit=10000'), /^querystring\.limit: .*1 to 9999/);
    expect400(await get('/v1/audit?limit=-1'), /^querystring\.limit: /);
    expect400(await get('/v1/audit?before=0'), /^querystring\.before: /);
    expect400(await get('/v1/audit?kind=a%20b'), /^querystring\.kind: /);
    expect400(await get('/v1/audit?actor=a%00'), /^querystring\.actor: control characters/);
    expect400(
      await get('/v1/audit?format=xml'),
      /^querystring\.format: must be one of json, jsonl, csv, got "xml"$/,
    );
  });

  it('exports CSV with a header, quoted fields and no formula a spreadsheet would run', async () => {
    const r = await get('/v1/audit?format=csv&user=bob');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(r.headers['content-disposition']).toMatch(
      /^attachment; filename="audit-\d{8}T\d{6}Z\.csv"$/,
    );
    const [header, groups, disconnect, end] = r.body.split('\r\n');
    expect(header).toBe('id,at,actor,action,subject,detail');
    expect(groups).toMatch(
      /^\d+,2030-01-01T10:05:00.000Z,"'=HYPERLINK\(""http:\/\/x""\)",user.groups,bob,"\{""groups"":\[""a,b"",""say \\""hi\\""\\nthere""\]\}"$/,
    );
    expect(disconnect).toMatch(/^\d+,2030-01-01T10:03:00.000Z,controller,session.disconnect,bob,$/);
    expect(end).toBe('');
  });

  it('exports JSON lines equal to the JSON answer, past the size of one read', async () => {
    await write(
      Array.from({ length: 2500 }, (_, i) => ({
        at: at(10),
        actor: 'bulk',
        action: 'test.event',
        subject: `u${i}`,
      })),
    );
    const r = await get('/v1/audit?format=jsonl&actor=bulk');
    expect(r.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
    expect(r.headers['content-disposition']).toMatch(/^attachment; filename="audit-.*\.jsonl"$/);
    const lines = r.body.trimEnd().split('\n');
    expect(lines).toHaveLength(2500);
    const parsed = lines.map((l) => JSON.parse(l) as AuditEntry);
    expect(parsed[0].subject).toBe('u2499');
    expect(parsed[2499].subject).toBe('u0');
    expect(parsed.slice(0, 100)).toEqual((await get('/v1/audit?actor=bulk&limit=100')).json());
    const limited = await get('/v1/audit?format=jsonl&actor=bulk&limit=1200');
    expect(limited.body.trimEnd().split('\n')).toHaveLength(1200);
  });
});
