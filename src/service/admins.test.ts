import { scryptSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Conflict, InputError, NotFound } from '../errors.js';
import { SqliteStore } from '../store/sqlite.js';
import { ManualClock } from '../controller/testing.js';
import type { ServiceContext } from './context.js';
import { Admins } from './admins.js';
import { ConsoleSessions, sessionDigest } from './console-sessions.js';
import { generatePassword, hashPassword, verifyPassword } from './passwords.js';

const GOOD = 'correct horse battery';
const MINUTE = 60_000;

let dir: string;
let store: SqliteStore;
let clock: ManualClock;
let admins: Admins;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ovf-admins-'));
  store = new SqliteStore(join(dir, 'fleet.db'));
  clock = new ManualClock();
  // Admins needs only the store, the clock and the actor of a context.
  const ctx = { store, clock, actor: 'cli:root' } as unknown as ServiceContext;
  admins = new Admins(ctx);
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const failure = (p: Promise<unknown> | (() => unknown)) =>
  (typeof p === 'function' ? Promise.resolve().then(p) : p).then(
    () => undefined,
    (e: unknown) => e as Error,
  );

describe('passwords', () => {
  it('stores scrypt with its cost and a salt, verifies, and still verifies a lower cost', async () => {
    const a = await hashPassword(GOOD);
    const b = await hashPassword(GOOD);
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword(GOOD, a)).toBe(true);
    expect(await verifyPassword(`${GOOD}!`, a)).toBe(false);
    // A hash made with older, cheaper parameters keeps working after the default is raised.
    const salt = Buffer.from('0123456789abcdef');
    const key = scryptSync(GOOD, salt, 32, { N: 1024, r: 8, p: 1 });
    const old = `$scrypt$ln=10,r=8,p=1$${salt.toString('base64')}$${key.toString('base64')}`;
    expect(await verifyPassword(GOOD, old)).toBe(true);
    // A tampered cost is refused, not run (2^30 would take gigabytes).
    expect(await verifyPassword(GOOD, old.replace('ln=10', 'ln=30'))).toBe(false);
    expect(await verifyPassword(GOOD, 'plain text')).toBe(false);
    expect(await verifyPassword(GOOD, undefined)).toBe(false);
  });

  it('generates printable one-time passwords without look-alike characters', () => {
    const seen = new Set(Array.from({ length: 50 }, generatePassword));
    expect(seen.size).toBe(50);
    for (const p of seen) expect(p).toMatch(/^[a-km-zA-HJ-NP-Z2-9]{20}$/);
  });
});

describe('Admins', () => {
  it('adds with a one-time password that must be changed, or with a chosen one', async () => {
    const ann = await admins.add('ann', 'operator');
    expect(ann.admin).toMatchObject({ name: 'ann', role: 'operator', mustChangePassword: true });
    expect(ann.oneTimePassword).toMatch(/^\S{20}$/);
    expect(await admins.authenticate('ann', ann.oneTimePassword!)).toMatchObject({ name: 'ann' });

    const bob = await admins.add('bob', 'viewer', GOOD);
    expect(bob.oneTimePassword).toBeUndefined();
    expect(bob.admin.mustChangePassword).toBe(false);
    expect(await admins.authenticate('bob', GOOD)).toMatchObject({ role: 'viewer' });
    expect(await admins.authenticate('bob', 'correct horse battery ')).toBeUndefined();
    expect(await admins.authenticate('nobody', GOOD)).toBeUndefined();
    expect(await admins.authenticate('bad name\n', GOOD)).toBeUndefined();

    expect(await failure(admins.add('bob', 'admin', GOOD))).toBeInstanceOf(Conflict);
    expect((await admins.list()).map((a) => [a.name, a.role])).toEqual([
      ['ann', 'operator'],
      ['bob', 'viewer'],
    ]);
    expect(JSON.stringify(await admins.list())).not.toContain('scrypt');
  });

  it('refuses bad names, roles and passwords in one line naming the field, never echoing a password', async () => {
    const cases: [Promise<unknown>, RegExp][] = [
      [admins.add('ev\u001bil', 'viewer'), /^name: "ev\\u001bil" is not a valid admin name/],
      [admins.add('../x', 'viewer'), /^name: "..\/x" is not a valid admin name/],
      [admins.add('ann', 'root'), /^role: "root" is not a role: use viewer, operator, admin$/],
      [
        admins.add('ann', 'admin', 'short-pw'),
        /^password: must be at least 12 characters \(got 8\)$/,
      ],
      [admins.add('ann', 'admin', 'x'.repeat(10_000)), /^password: must be at most 1024/],
      [admins.add('ann', 'admin', 'tab\there and more'), /^password: must not contain control/],
    ];
    for (const [p, re] of cases) {
      const e = await failure(p);
      expect(e).toBeInstanceOf(InputError);
      expect(e!.message).toMatch(re);
      expect(e!.message).not.toContain('\n');
      expect(e!.message).not.toContain('short-pw');
    }
    expect(await admins.list()).toEqual([]);
    expect(await store.auditLog(10)).toEqual([]);
  });

  it('role, password and removal end the sessions; an own change keeps the session asking', async () => {
    const sessions = new ConsoleSessions(store, clock);
    await admins.add('ann', 'operator', GOOD);
    const live = async () => {
      const found: string[] = [];
      for (const s of [s1, s2])
        if ('session' in (await sessions.find(s.id))) found.push(s === s1 ? 's1' : 's2');
      return found;
    };
    let s1 = await sessions.open('ann');
    let s2 = await sessions.open('ann');
    expect(await live()).toEqual(['s1', 's2']);

    expect(
      await admins.changeOwnPassword('ann', 'wrong password!', 'a new password 1'),
    ).toBeUndefined();
    expect((await failure(admins.changeOwnPassword('ann', GOOD, GOOD)))?.message).toBe(
      'next: must differ from the current password',
    );
    expect((await failure(admins.changeOwnPassword('ann', GOOD, 'short')))?.message).toMatch(
      /^next: /,
    );
    const changed = await admins.changeOwnPassword(
      'ann',
      GOOD,
      'a new password 1',
      s2.session.idSha256,
    );
    expect(changed?.mustChangePassword).toBe(false);
    expect(await live()).toEqual(['s2']);

    s1 = await sessions.open('ann');
    expect((await admins.setRole('ann', 'admin')).role).toBe('admin');
    expect(await live()).toEqual([]);

    s1 = await sessions.open('ann');
    const reset = await admins.setPassword('ann');
    expect(reset.admin.mustChangePassword).toBe(true);
    expect(await live()).toEqual([]);

    s2 = await sessions.open('ann');
    await admins.remove('ann');
    expect(await live()).toEqual([]);
    await expect(admins.remove('ann')).rejects.toThrow(NotFound);
    await expect(admins.setRole('ann', 'viewer')).rejects.toThrow(NotFound);
    expect(await failure(admins.setPassword('ann', GOOD))).toBeInstanceOf(NotFound);
  });
});

describe('ConsoleSessions', () => {
  let sessions: ConsoleSessions;
  beforeEach(async () => {
    sessions = new ConsoleSessions(store, clock, {
      idleTimeoutMs: 30 * MINUTE,
      lifetimeMs: 12 * 60 * MINUTE,
    });
    await admins.add('ann', 'viewer', GOOD);
  });

  it('hands out a 32-byte id once and stores only its SHA-256', async () => {
    const { id, session } = await sessions.open('ann', '192.0.2.7');
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(id, 'base64url')).toHaveLength(32);
    expect(session).toMatchObject({ name: 'ann', role: 'viewer', mustChangePassword: false });
    expect(session.idSha256).toBe(sessionDigest(id));
    expect(await store.getAdminSession(id)).toBeUndefined();
    expect(await store.getAdminSession(sessionDigest(id))).toBeDefined();
    expect(await sessions.find(id)).toEqual({ session });
    expect(await sessions.find('x'.repeat(43))).toHaveProperty('problem');
    expect(await sessions.find("' OR 1=1 --")).toHaveProperty('problem');
  });

  it('ends a session idle for the timeout, and any session after its lifetime', async () => {
    const { id } = await sessions.open('ann');
    clock.advance(29 * MINUTE);
    expect(await sessions.find(id)).toHaveProperty('session');
    // Activity moved the idle window: 29 more minutes are fine, 30 without a request are not.
    clock.advance(29 * MINUTE);
    expect(await sessions.find(id)).toHaveProperty('session');
    clock.advance(30 * MINUTE);
    expect(await sessions.find(id)).toEqual({
      problem: 'session ended after 30 minutes without activity: sign in again',
    });
    expect(await sessions.find(id)).toHaveProperty(
      'problem',
      expect.stringMatching(/^no such session/),
    );

    const busy = await sessions.open('ann');
    for (let i = 0; i < 12 * 4 - 1; i++) {
      clock.advance(15 * MINUTE);
      expect(await sessions.find(busy.id)).toHaveProperty('session');
    }
    clock.advance(15 * MINUTE);
    expect(await sessions.find(busy.id)).toEqual({
      problem: 'session ended after 12 hours: sign in again',
    });
    expect((await store.auditLog(3)).map((e) => [e.action, e.subject, e.detail])).toEqual([
      ['admin.logout', 'ann', { reason: 'expired' }],
      ['admin.login', 'ann', undefined],
      ['admin.logout', 'ann', { reason: 'idle' }],
    ]);
  });

  it('signs out; records a failed sign-in without an unknown name', async () => {
    const { id, session } = await sessions.open('ann');
    expect(await sessions.close(session.idSha256, 'console:ann')).toBe(true);
    expect(await sessions.find(id)).toHaveProperty('problem');
    await sessions.recordFailure('ann', '192.0.2.7', 'wrong password');
    await sessions.recordFailure(undefined, '192.0.2.7', 'wrong password');
    expect((await store.auditLog(2)).map((e) => [e.actor, e.action, e.subject, e.detail])).toEqual([
      [
        'console',
        'admin.login-failed',
        '(unknown name)',
        { reason: 'wrong password', address: '192.0.2.7' },
      ],
      ['console', 'admin.login-failed', 'ann', { reason: 'wrong password', address: '192.0.2.7' }],
    ]);
  });
});
