/**
 * The one contract test suite of FleetStore: the same tests, unchanged, against every engine
 * (sqlite.contract.test.ts, pg.contract.test.ts). Each test gets a fresh, empty, migrated store
 * from `open`. Not part of the build.
 */
import { afterEach, describe, expect } from 'vitest';
import { mustParsePrefix } from '../core/ip.js';
import { Conflict, InputError, NotFound } from '../errors.js';
import { FIXED_NOW, itNeeds } from '../testing.js';
import type { FleetStore, NewUser, Pools, ServerReport } from './types.js';

export const POOLS: Pools = {
  ipv4: mustParsePrefix('10.200.0.0/24'),
  ipv6: mustParsePrefix('fd00:200::/120'),
  quarantineDays: 30,
};

const DAY_MS = 86_400_000;
const days = (n: number) => new Date(FIXED_NOW.getTime() + n * DAY_MS);
let serial = 0;

/** A new user with a (fake) certificate whose serial is unique in this process. */
export function newUser(name: string, extra: Partial<NewUser> = {}): NewUser {
  serial++;
  return {
    name,
    groups: ['staff'],
    cert: {
      serial: `${serial.toString(16)}c0ffee`,
      certPem: `cert of ${name}`,
      keyPem: `key of ${name}`,
      notAfter: days(365),
    },
    ...extra,
  };
}

const health = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };

/**
 * Registers the suite. `why`: the reason the engine cannot run here (itNeeds: skipped visibly
 * on a workstation, failed under CI=true).
 */
export function storeContract(engine: string, open: () => Promise<FleetStore>, why?: string): void {
  describe(`FleetStore contract on ${engine}`, () => {
    const opened: FleetStore[] = [];
    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close();
    });
    const fresh = async () => {
      const s = await open();
      opened.push(s);
      return s;
    };
    const test = (name: string, fn: (store: FleetStore) => Promise<void>) =>
      itNeeds(why, name, async () => fn(await fresh()), 60_000);

    test('tells its size on disk, for the store size metric', async (store) => {
      await store.createUsers([newUser('a'), newUser('b')], POOLS, FIXED_NOW, 't');
      const bytes = await store.sizeBytes();
      expect(Number.isInteger(bytes)).toBe(true);
      // An empty SQLite file is 4 KiB, an empty PostgreSQL database several MiB: holding users,
      // neither can be smaller than a page.
      expect(bytes).toBeGreaterThan(4096);
    });

    test('allocates distinct addresses, takes pins, and adds a batch all or nothing', async (store) => {
      const [a, b] = await store.createUsers([newUser('a'), newUser('b')], POOLS, FIXED_NOW, 't');
      expect(a).toMatchObject({ ipv4: '10.200.0.2', ipv6: 'fd00:200::2', groups: ['staff'] });
      expect(b).toMatchObject({ ipv4: '10.200.0.3', ipv6: 'fd00:200::3' });
      const [p] = await store.createUsers(
        [newUser('p', { ipv4: '10.200.0.77' })],
        POOLS,
        FIXED_NOW,
        't',
      );
      expect(p.ipv4).toBe('10.200.0.77');
      await expect(
        store.createUsers([newUser('q', { ipv4: '10.200.0.77' })], POOLS, FIXED_NOW, 't'),
      ).rejects.toThrow(Conflict);
      await expect(
        store.createUsers([newUser('r', { ipv4: '10.9.9.9' })], POOLS, FIXED_NOW, 't'),
      ).rejects.toThrow(InputError);
      const batch = [newUser('n1'), newUser('a'), newUser('n2')];
      await expect(store.createUsers(batch, POOLS, FIXED_NOW, 't')).rejects.toThrow(Conflict);
      expect((await store.listUsers()).map((u) => u.name)).toEqual(['a', 'b', 'p']);
      expect(await store.getCert(batch[0].cert!.serial)).toBeUndefined();
      expect(await store.getUser('a')).toMatchObject({
        certSerial: a.certSerial,
        status: 'enabled',
      });
    });

    test("keeps a deleted user's addresses in quarantine until quarantineDays pass", async (store) => {
      await store.createUsers([newUser('a'), newUser('b')], POOLS, FIXED_NOW, 't');
      await store.deleteUser('a', FIXED_NOW, 't');
      expect(await store.addressesHeld(POOLS, days(1))).toBe(2);
      const [c] = await store.createUsers([newUser('c')], POOLS, days(1), 't');
      expect(c.ipv4).toBe('10.200.0.4');
      await expect(
        store.createUsers([newUser('d', { ipv4: '10.200.0.2' })], POOLS, days(29), 't'),
      ).rejects.toThrow(/quarantined/);
      const [d] = await store.createUsers(
        [newUser('d', { ipv4: '10.200.0.2' })],
        POOLS,
        days(31),
        't',
      );
      expect(d.ipv4).toBe('10.200.0.2');
      await expect(store.deleteUser('nobody', FIXED_NOW, 't')).rejects.toThrow(NotFound);
    });

    test('changes status and groups, never re-enables a revoked user, audits each', async (store) => {
      await store.createUsers([newUser('a')], POOLS, FIXED_NOW, 't');
      expect(await store.setGroups('a', ['ops', 'dba', 'ops'], FIXED_NOW, 't')).toMatchObject({
        groups: ['dba', 'ops'],
      });
      expect((await store.getUser('a'))?.groups).toEqual(['dba', 'ops']);
      await store.setStatus('a', 'disabled', FIXED_NOW, 't');
      await store.setStatus('a', 'revoked', FIXED_NOW, 't');
      await expect(store.setStatus('a', 'enabled', FIXED_NOW, 't')).rejects.toThrow(Conflict);
      await expect(store.setGroups('zz', [], FIXED_NOW, 't')).rejects.toThrow(NotFound);
      expect((await store.auditLog(10)).map((e) => e.action)).toEqual([
        'user.revoke',
        'user.disable',
        'user.groups',
        'user.add',
      ]);
    });

    test('attaches one certificate per user; a late one is stored revoked', async (store) => {
      await store.createUsers([{ name: 'a', groups: [] }], POOLS, FIXED_NOW, 't');
      expect(await store.usersWithoutCert()).toEqual(['a']);
      const first = newUser('a').cert!;
      const second = newUser('a').cert!;
      expect((await store.attachCertIfNone('a', first, FIXED_NOW, 't')).attached).toBe(true);
      expect((await store.attachCertIfNone('a', second, FIXED_NOW, 't')).attached).toBe(false);
      expect((await store.getCert(second.serial))?.revokedAt).toBe(FIXED_NOW.toISOString());
      expect((await store.getUser('a'))?.certSerial).toBe(first.serial);
      expect(await store.revokeClientCerts('a', days(1))).toEqual([first.serial]);
      const state = await store.revocationState();
      expect(state.crlNumber).toBe(0);
      expect(state.revoked.map((r) => r.serial).sort()).toEqual(
        [first.serial, second.serial].sort(),
      );
      await store.setSetting('crl.number', '7');
      await store.setSetting('crl.number', '8');
      expect((await store.revocationState()).crlNumber).toBe(8);
    });

    test('searches users in the store: literal wildcards, ASCII case, sort and pages', async (store) => {
      await store.createUsers(
        [
          newUser('Mixed.Case', { groups: ['dba'] }),
          newUser('x_y', { groups: ['50%off'] }),
          newUser('xay'),
          newUser('bob'),
        ],
        POOLS,
        FIXED_NOW,
        't',
      );
      await store.setStatus('bob', 'disabled', FIXED_NOW, 't');
      const names = async (q: Parameters<FleetStore['searchUsers']>[0]) =>
        (await store.searchUsers(q)).users.map((u) => u.name);
      expect(await names({ q: 'x_y' })).toEqual(['x_y']);
      expect(await names({ q: '%' })).toEqual(['x_y']);
      expect(await names({ q: 'mixed' })).toEqual(['Mixed.Case']);
      expect(await names({ group: 'dba' })).toEqual(['Mixed.Case']);
      expect(await names({ status: 'disabled' })).toEqual(['bob']);
      // Byte order on both engines: upper case before lower case.
      expect(await names({})).toEqual(['Mixed.Case', 'bob', 'x_y', 'xay']);
      const page = await store.searchUsers({ limit: 2, offset: 1, descending: true });
      expect(page).toMatchObject({ total: 4 });
      expect(page.users.map((u) => u.name)).toEqual(['x_y', 'bob']);
      expect(await store.searchUsers({ q: 'nobody', offset: 5 })).toEqual({ total: 0, users: [] });
    });

    test('filters and tails the audit log; ids are never handed out twice', async (store) => {
      const at = (m: number) => new Date(FIXED_NOW.getTime() + m * 60_000).toISOString();
      const log = [
        { at: at(1), actor: 'cli:root', action: 'user.add', subject: 'ann' },
        { at: at(2), actor: 'agent:vpn11', action: 'session.connect', subject: 'ann' },
        { at: at(3), actor: 'agent:vpn11', action: 'session.move', subject: 'bob' },
        {
          at: at(4),
          actor: 'api:admin',
          action: 'sessionx.other',
          subject: 'bob',
          detail: { n: 1 },
        },
      ];
      for (const e of log) await store.audit(e);
      const q = async (f: Omit<Parameters<FleetStore['auditQuery']>[0], 'limit'>) =>
        (await store.auditQuery({ limit: 10, ...f })).map((e) => `${e.action}:${e.subject}`);
      expect(await q({ actionPrefix: 'session.' })).toEqual([
        'session.move:bob',
        'session.connect:ann',
      ]);
      expect(await q({ actor: 'agent:vpn11', subject: 'bob' })).toEqual(['session.move:bob']);
      expect(await q({ since: new Date(at(2)), until: new Date(at(4)) })).toEqual([
        'session.move:bob',
        'session.connect:ann',
      ]);
      const last = await store.lastAuditId();
      expect((await store.auditLog(1))[0]).toMatchObject({ id: last, detail: { n: 1 } });
      expect(await q({ before: last - 1 })).toHaveLength(2);
      expect((await store.auditSince(last - 2, 10)).map((e) => e.id)).toEqual([last - 1, last]);
      expect(await store.pruneAudit(new Date(at(10)))).toBe(4);
      expect(await store.lastAuditId()).toBe(0);
      await store.audit({ at: at(11), actor: 't', action: 'x', subject: 'y' });
      expect(await store.lastAuditId()).toBeGreaterThan(last);
    });

    test("reads one subject's entries of some actions, newest first, bounded", async (store) => {
      const at = (m: number) => new Date(FIXED_NOW.getTime() + m * 60_000).toISOString();
      const entry = (m: number, action: string, subject = 'ann', ok = true) => ({
        at: at(m),
        actor: 'agent:vpn11',
        action,
        subject,
        detail: { server: 'vpn11', ok },
      });
      const log = [
        entry(1, 'auth.totp', 'ann', false),
        entry(2, 'session.connect'),
        entry(3, 'sso.refused'),
        entry(4, 'auth.totp', 'bob'),
        entry(5, 'auth.totp'),
        entry(6, 'session.disconnect'),
        entry(7, 'sso.sign-in'),
        entry(8, 'auth.totpx'),
      ];
      for (const e of log) await store.audit(e);
      const read = async (actions: string[], limit: number) =>
        (await store.auditForSubject('ann', actions, limit)).map(
          (e) => `${e.action}@${e.at.slice(11, 16)}`,
        );
      const signIns = ['auth.totp', 'sso.sign-in', 'sso.refused'];
      expect(await read(signIns, 10)).toEqual([
        `sso.sign-in@${at(7).slice(11, 16)}`,
        `auth.totp@${at(5).slice(11, 16)}`,
        `sso.refused@${at(3).slice(11, 16)}`,
        `auth.totp@${at(1).slice(11, 16)}`,
      ]);
      // The limit holds for the whole answer, not per action; a repeated action counts once.
      expect(await read([...signIns, 'auth.totp'], 2)).toEqual([
        `sso.sign-in@${at(7).slice(11, 16)}`,
        `auth.totp@${at(5).slice(11, 16)}`,
      ]);
      const first = (await store.auditForSubject('ann', ['auth.totp'], 1))[0];
      expect(first).toMatchObject({ subject: 'ann', detail: { server: 'vpn11', ok: true } });
      expect(await read([], 10)).toEqual([]);
      expect(await store.auditForSubject('nobody', signIns, 10)).toEqual([]);
      await expect(
        store.auditForSubject(
          'ann',
          Array.from({ length: 17 }, (_, i) => `a${i}`),
          10,
        ),
      ).rejects.toThrow(InputError);
    });

    test("replaces a server's sessions per report and keeps the location history", async (store) => {
      const at = (s: number) => new Date(FIXED_NOW.getTime() + s * 1000).toISOString();
      const session = (user: string, clientId: number, bytes = 0) => ({
        user,
        realAddress: `198.51.100.${clientId}:1194`,
        ipv4: `10.200.0.${clientId}`,
        since: at(0),
        bytesIn: bytes,
        bytesOut: bytes,
        clientId,
      });
      const report = (s: number, sessions: ServerReport['sessions'], more = {}): ServerReport => ({
        at: at(s),
        health,
        sessions,
        ...more,
      });
      // Counters beyond 2^31 (a long session) survive both engines.
      await store.recordReport('vpn11', report(1, [session('ann', 1, 5_000_000_000)]));
      await store.recordReport(
        'vpn11',
        report(2, [session('ann', 1, 6_000_000_000), session('bob', 2)]),
      );
      expect(await store.listSessions('vpn11')).toMatchObject([
        { user: 'ann', firstSeen: at(1), bytesIn: 6_000_000_000 },
        { user: 'bob', firstSeen: at(2) },
      ]);
      await store.recordReport(
        'vpn11',
        report(3, [session('bob', 2)], {
          ended: [{ user: 'ann', since: at(0), clientId: 1, reason: 'eviction', at: at(3) }],
          routes: { ipv4: ['10.200.0.2'], ipv6: [] },
        }),
      );
      expect(await store.sessionHistory('ann', { limit: 10 })).toMatchObject([
        { server: 'vpn11', until: at(3), reason: 'eviction', bytesIn: 6_000_000_000 },
      ]);
      expect(await store.sessionHistory('ann', { limit: 10, after: at(4) })).toEqual([]);
      expect(await store.sessionHistory('bob', { limit: 10, after: at(4) })).toHaveLength(1);
      await store.setDraining('vpn11', true, FIXED_NOW, 't');
      expect(await store.listServerStates()).toMatchObject([
        { name: 'vpn11', draining: true, routes: { ipv4: ['10.200.0.2'], ipv6: [] }, health },
      ]);
      expect(await store.pruneHistory(new Date(at(100)), 1000)).toBe(1);
    });

    test('admin accounts and their sessions: a change of role or password ends them', async (store) => {
      const add = (name: string) =>
        store.createAdmin(
          { name, role: 'viewer', passwordHash: `h-${name}`, mustChangePassword: true },
          FIXED_NOW,
          't',
        );
      await add('ann');
      await expect(add('ann')).rejects.toThrow(Conflict);
      const session = (id: string) => ({
        idSha256: id,
        admin: 'ann',
        csrfToken: `csrf-${id}`,
        createdAt: FIXED_NOW.toISOString(),
        lastSeenAt: FIXED_NOW.toISOString(),
      });
      for (const id of ['s1', 's2', 's3']) await store.createAdminSession(session(id), 't');
      await expect(
        store.createAdminSession({ ...session('s4'), admin: 'nobody' }, 't'),
      ).rejects.toThrow(NotFound);
      expect(await store.getAdminSession('s1')).toMatchObject({
        session: { admin: 'ann', csrfToken: 'csrf-s1' },
        admin: { role: 'viewer', mustChangePassword: true },
      });
      await store.setAdminPassword(
        'ann',
        { passwordHash: 'h2', mustChangePassword: false, keepSession: 's2' },
        FIXED_NOW,
        't',
      );
      expect(await store.getAdminSession('s1')).toBeUndefined();
      expect(await store.getAdminSession('s2')).toBeDefined();
      await store.touchAdminSession('s2', days(1));
      expect((await store.getAdminSession('s2'))?.session.lastSeenAt).toBe(days(1).toISOString());
      expect(await store.endAdminSession('s2', 'logout', FIXED_NOW, 't')).toBe(true);
      expect(await store.endAdminSession('s2', 'logout', FIXED_NOW, 't')).toBe(false);
      await store.setAdminRole('ann', 'operator', FIXED_NOW, 't');
      expect((await store.listAdmins()).map((a) => [a.name, a.role])).toEqual([
        ['ann', 'operator'],
      ]);
      await store.deleteAdmin('ann', FIXED_NOW, 't');
      expect(await store.getAdmin('ann')).toBeUndefined();
    });

    test('a transaction keeps all or nothing, sees its own writes, and joins nested calls', async (store) => {
      await store.createUsers([newUser('a')], POOLS, FIXED_NOW, 't');
      await expect(
        store.transaction(async (tx) => {
          await tx.setStatus('a', 'disabled', FIXED_NOW, 't');
          // The store itself, called inside, is in the same transaction.
          expect((await store.getUser('a'))?.status).toBe('disabled');
          await store.transaction(async () => store.setGroups('a', ['x'], FIXED_NOW, 't'));
          throw new Error('changed my mind');
        }),
      ).rejects.toThrow('changed my mind');
      expect(await store.getUser('a')).toMatchObject({ status: 'enabled', groups: ['staff'] });
      expect((await store.auditLog(10)).map((e) => e.action)).toEqual(['user.add']);
      const result = await store.transaction(async (tx) => {
        await tx.setSetting('k', 'v');
        return tx.getSetting('k');
      });
      expect(result).toBe('v');
    });

    test('renews a certificate only if it is still the current one, and keeps the old one valid', async (store) => {
      const cert = (serialNo: string, issuer?: string) => ({
        serial: serialNo,
        certPem: 'C',
        keyPem: 'K',
        notAfter: days(365),
        ...(issuer ? { issuer } : {}),
      });
      await store.putCert({
        serial: 'ca1',
        kind: 'ca',
        subject: 'CA',
        notAfter: days(3650).toISOString(),
        certPem: 'C',
        keyPem: 'K',
      });
      await store.createUsers(
        [{ name: 'ann', groups: [], cert: cert('a1') }],
        POOLS,
        FIXED_NOW,
        't',
      );
      expect((await store.getCert('a1'))?.issuer).toBe('ca1');
      const won = await store.replaceClientCert('ann', 'a1', cert('a2', 'ca1'), days(340), 't');
      expect(won).toMatchObject({ attached: true, user: { certSerial: 'a2' } });
      const lost = await store.replaceClientCert('ann', 'a1', cert('a3'), days(340), 't');
      expect(lost).toMatchObject({ attached: false, user: { certSerial: 'a2' } });
      expect((await store.getCert('a3'))?.revokedAt).toBe(days(340).toISOString());
      expect((await store.liveClientCerts(days(340))).map((c) => c.serial)).toEqual(['a1', 'a2']);
      expect((await store.clientCertsOf('ann')).map((c) => [c.serial, c.issuedAt])).toEqual([
        ['a1', FIXED_NOW.toISOString()],
        ['a2', days(340).toISOString()],
        ['a3', days(340).toISOString()],
      ]);
      expect(await store.revokedCerts()).toEqual([
        { serial: 'a3', revokedAt: days(340).toISOString(), issuer: 'ca1' },
      ]);
      await store.markCertDelivered('a2', days(341));
      await store.markCertDelivered('a2', days(342));
      expect((await store.getCert('a2'))?.deliveredAt).toBe(days(341).toISOString());
      expect((await store.auditLog(10)).map((e) => e.action)).toEqual(
        expect.arrayContaining(['user.cert.renew', 'cert.discard']),
      );
      expect(await store.getCa()).toMatchObject({ serial: 'ca1', caState: 'active' });
      await store.setCaState('ca1', 'retiring');
      expect(await store.getCa()).toBeUndefined();
      await expect(store.setCaState('nope', 'active')).rejects.toThrow(NotFound);
    });

    test('keeps a rollout with its audit entries, and each server its restart generation', async (store) => {
      const at = FIXED_NOW.toISOString();
      const audit = { at, actor: 'api:admin', action: 'rollout.start', subject: 'rollout' };
      const first = await store.saveRollout(
        {
          strategy: 'rolling',
          status: 'running',
          startedBy: 'api:admin',
          startedAt: at,
          updatedAt: at,
          steps: [{ server: 'vpn11', state: 'waiting' }],
        },
        [audit],
      );
      expect(first.id).toEqual(expect.any(Number));
      const second = await store.saveRollout(
        { ...first, status: 'failed', detail: 'stopped at vpn11' },
        [],
      );
      expect(await store.latestRollout()).toEqual(second);
      expect(second).toMatchObject({ id: first.id, status: 'failed', detail: 'stopped at vpn11' });
      expect((await store.auditLog(1))[0]).toMatchObject(audit);
      await expect(store.saveRollout({ ...first, id: first.id + 99 }, [])).rejects.toThrow(
        NotFound,
      );
      expect(await store.restartGenerations()).toEqual(new Map());
      await store.setRestartGeneration('vpn11', 1);
      await store.setRestartGeneration('vpn11', 2);
      expect(await store.restartGenerations()).toEqual(new Map([['vpn11', 2]]));
    });

    test('parallel writers through one store get distinct addresses, none lost', async (store) => {
      const created = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          store.createUsers([newUser(`p${i}`)], POOLS, FIXED_NOW, 't'),
        ),
      );
      expect(new Set(created.map(([u]) => u.ipv4)).size).toBe(30);
      expect(await store.listUsers()).toHaveLength(30);
    });

    test('web sign-ins: started, claimed once, expired, finished with their result, pruned', async (store) => {
      const at = (s: number) => new Date(FIXED_NOW.getTime() + s * 1000);
      const base = { user: 'ann', server: 'vpn11', remote: '198.51.100.7' };
      for (const id of ['s1', 's2', 's3'])
        await store.createSsoSignIn({
          ...base,
          id,
          requestId: `r-${id}`,
          createdAt: at(0).toISOString(),
          expiresAt: at(60).toISOString(),
        });
      expect(await store.getSsoSignIn('s1')).toEqual({
        ...base,
        id: 's1',
        requestId: 'r-s1',
        createdAt: at(0).toISOString(),
        expiresAt: at(60).toISOString(),
      });
      expect(await store.ssoSignInOfRequest('r-s2')).toMatchObject({ id: 's2', user: 'ann' });
      expect(await store.ssoSignInOfRequest('r-nope')).toBeUndefined();
      const started = (state: string, s: number) => ({
        at: at(s).toISOString(),
        state,
        nonce: `n-${state}`,
        codeVerifier: `v-${state}`,
        browserSha256: `b-${state}`,
      });
      expect(await store.startSsoSignIn('s1', started('a', 1), at(1))).toBe(true);
      // Opened again: the new request replaces the first, whose state no longer finds it.
      expect(await store.startSsoSignIn('s1', started('b', 2), at(2))).toBe(true);
      expect(await store.startSsoSignIn('nope', started('x', 2), at(2))).toBe(false);
      expect(await store.startSsoSignIn('s2', started('c', 61), at(61))).toBe(false);
      expect(await store.claimSsoSignIn('a', at(3))).toEqual({ problem: 'unknown' });
      const claim = await store.claimSsoSignIn('b', at(3));
      expect(claim).toMatchObject({
        claimed: { id: 's1', started: { codeVerifier: 'v-b' }, finishedAt: at(3).toISOString() },
      });
      expect(await store.claimSsoSignIn('b', at(4))).toMatchObject({ problem: 'finished' });
      // Two claims at once (two controllers, one replayed callback): exactly one wins.
      await store.startSsoSignIn('s3', started('d', 5), at(5));
      const both = await Promise.all([
        store.claimSsoSignIn('d', at(6)),
        store.claimSsoSignIn('d', at(6)),
      ]);
      expect(both.filter((c) => 'claimed' in c)).toHaveLength(1);
      await store.startSsoSignIn('s2', started('e', 30), at(30));
      expect(await store.claimSsoSignIn('e', at(61))).toMatchObject({
        problem: 'expired',
        signIn: { id: 's2' },
      });
      expect(await store.claimSsoSignIn('e', at(62))).toMatchObject({ problem: 'finished' });

      const result = { id: 'r-s1', ok: true, subject: 'sub-1', groups: ['staff'] };
      const audit = {
        at: at(3).toISOString(),
        actor: 'sso:sub-1',
        action: 'sso.sign-in',
        subject: 'ann',
        detail: { server: 'vpn11' },
      };
      await store.finishSsoSignIn('s1', result, audit);
      expect(await store.getSsoSignIn('s1')).toMatchObject({
        result,
        finishedAt: at(3).toISOString(),
        started: { nonce: '', codeVerifier: '' },
      });
      expect((await store.auditLog(1))[0]).toMatchObject(audit);
      expect(await store.ssoResults(['s1', 's2', 'zz'])).toEqual(new Map([['s1', result]]));
      expect(await store.ssoResults([])).toEqual(new Map());
      expect(await store.pruneSsoSignIns(at(1))).toBe(3);
      expect(await store.getSsoSignIn('s1')).toBeUndefined();
    });

    test("a successful sign-in's groups become its user's session groups, with its audit entry", async (store) => {
      const at = (s: number) => new Date(FIXED_NOW.getTime() + s * 1000).toISOString();
      await store.createUsers([newUser('ann'), newUser('bob')], POOLS, FIXED_NOW, 't');
      expect((await store.getUser('ann'))!.sessionGroups).toBeUndefined();
      const signIn = (id: string, user: string) =>
        store.createSsoSignIn({
          id,
          requestId: `r-${id}`,
          user,
          server: 'vpn11',
          remote: '198.51.100.7',
          createdAt: at(0),
          expiresAt: at(60),
        });
      const audit = (user: string, s: number, groups: string[]) => ({
        at: at(s),
        actor: 'sso:sub',
        action: 'sso.sign-in',
        subject: user,
        detail: { groups },
      });
      await signIn('s1', 'ann');
      await store.finishSsoSignIn('s1', { ok: true }, audit('ann', 5, ['ops', 'dev']), [
        'ops',
        'dev',
        'ops',
      ]);
      const ann = await store.getUser('ann');
      // Sorted and without repeats; the spec's groups are left as they were.
      expect(ann).toMatchObject({
        groups: ['staff'],
        sessionGroups: { groups: ['dev', 'ops'], at: at(5) },
      });
      expect((await store.listUsers()).find((u) => u.name === 'ann')).toEqual(ann);
      expect((await store.searchUsers({ q: 'ann' })).users).toEqual([ann]);
      expect((await store.getUser('bob'))!.sessionGroups).toBeUndefined();
      // A later sign-in without groups replaces them: "none given" is kept, not skipped.
      await signIn('s2', 'ann');
      await store.finishSsoSignIn('s2', { ok: true }, audit('ann', 9, []), []);
      expect((await store.getUser('ann'))!.sessionGroups).toEqual({ groups: [], at: at(9) });
      // A refusal (no groups passed) leaves them alone.
      await signIn('s3', 'ann');
      await store.finishSsoSignIn(
        's3',
        { ok: false },
        { ...audit('ann', 12, []), action: 'sso.refused' },
      );
      expect((await store.getUser('ann'))!.sessionGroups).toEqual({ groups: [], at: at(9) });
      // All or nothing with the audit entry: a failing audit insert keeps the old groups.
      await signIn('s4', 'bob');
      await expect(
        store.transaction(async (tx) => {
          await tx.finishSsoSignIn('s4', { ok: true }, audit('bob', 14, ['dev']), ['dev']);
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect((await store.getUser('bob'))!.sessionGroups).toBeUndefined();
      expect((await store.auditLog(1))[0]).toMatchObject({ action: 'sso.refused' });
    });
  });
}
