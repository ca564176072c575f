import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Conflict, InputError, NotFound } from '../errors.js';
import { type TempFleet, tempFleetDir } from '../testing.js';

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
});
afterEach(async () => await t.cleanup());

const users = () => t.fleet.users;
const clientCertsOf = async (name: string) =>
  (await t.fleet.store.listCerts('client')).filter((c) => c.subject === name);

describe('users', () => {
  it('adds users with a certificate and the next free addresses, refusing bad input whole', async () => {
    const [ann, bob] = await users().add([{ name: 'ann', groups: ['staff'] }, { name: 'bob' }]);
    expect(ann).toMatchObject({ name: 'ann', groups: ['staff'], status: 'enabled' });
    expect(ann.certSerial).toBeDefined();
    expect(ann.ipv4).not.toBe(bob.ipv4);
    await expect(users().add([{ name: 'cid' }, { name: 'cid' }])).rejects.toThrow(/twice/);
    await expect(users().add([{ name: 'cid', groups: ['ops'] }])).rejects.toThrow(
      /unknown group "ops"/,
    );
    await expect(users().add([{ name: 'ann' }])).rejects.toThrow(Conflict);
    await expect(users().add([{ name: 'acme-server-vpn11' }])).rejects.toThrow(/reserved/);
    expect((await users().list()).map((u) => u.name)).toEqual(['ann', 'bob']);
  });

  it("keeps a deleted user's addresses out of use for quarantineDays, and reuses them after", async () => {
    const quarantineDays = t.fleet.spec.pools.quarantineDays;
    const [ann] = await users().add([{ name: 'ann' }]);
    await users().delete('ann');

    t.clock.advanceDays(quarantineDays - 1);
    const [bob, ann2] = await users().add([{ name: 'bob' }, { name: 'ann' }]);
    for (const u of [bob, ann2]) {
      expect(u.ipv4).not.toBe(ann.ipv4);
      expect(u.ipv6).not.toBe(ann.ipv6);
    }
    await expect(users().add([{ name: 'pinned', ipv4: ann.ipv4 }])).rejects.toThrow(Conflict);

    t.clock.advanceDays(1);
    const [cid] = await users().add([{ name: 'cid' }]);
    expect({ ipv4: cid.ipv4, ipv6: cid.ipv6 }).toEqual({ ipv4: ann.ipv4, ipv6: ann.ipv6 });
  });

  it('revokes every certificate of the name on delete, so a re-added user starts clean', async () => {
    const [first] = await users().add([{ name: 'ann' }]);
    await users().delete('ann');
    const [again] = await users().add([{ name: 'ann' }]);
    expect(again.certSerial).not.toBe(first.certSerial);
    const certs = await clientCertsOf('ann');
    expect(certs.find((c) => c.serial === first.certSerial)?.revokedAt).toBeDefined();
    expect(certs.find((c) => c.serial === again.certSerial)?.revokedAt).toBeUndefined();
    await expect(users().delete('nobody')).rejects.toThrow(NotFound);
  });

  it('revoke revokes the current certificate and updates the CRL; disable keeps it', async () => {
    const [ann, bob] = await users().add([{ name: 'ann' }, { name: 'bob' }]);
    const crlBefore = (await t.fleet.store.revocationState()).crlNumber;
    await users().setStatus('bob', 'disabled');
    expect((await t.fleet.store.getCert(bob.certSerial!))?.revokedAt).toBeUndefined();
    expect((await users().setStatus('ann', 'revoked')).status).toBe('revoked');
    const state = await t.fleet.store.revocationState();
    expect(state.revoked.map((r) => r.serial)).toEqual([ann.certSerial]);
    expect(state.crlNumber).toBe(crlBefore + 1);
  });

  it('sets groups only to groups of fleet.yaml', async () => {
    await users().add([{ name: 'ann' }]);
    expect((await users().setGroups('ann', ['dba', 'staff'])).groups).toEqual(['dba', 'staff']);
    await expect(users().setGroups('ann', ['ops'])).rejects.toThrow(InputError);
  });

  it('imports a CSV all or nothing, without certificates, naming file:line of a bad row', async () => {
    const bad = 'name,groups\nann,staff\nbob,ops\n';
    await expect(users().importCsv(bad, 'people.csv')).rejects.toMatchObject({
      field: 'people.csv:3',
      message: expect.stringContaining('unknown group "ops"') as string,
    });
    await expect(users().importCsv('ann\nacme-server-x\n', 'people.csv')).rejects.toThrow(
      /^people\.csv:2: .*reserved/,
    );
    expect(await users().list()).toEqual([]);

    const added = await users().importCsv('name,groups\nann,staff;dba\nbob,\n', 'people.csv');
    expect(added.map((u) => [u.name, u.groups, u.certSerial])).toEqual([
      ['ann', ['dba', 'staff'], undefined],
      ['bob', [], undefined],
    ]);
  });

  it('issues missing certificates once per user, however many callers ask at once', async () => {
    await users().importCsv('ann\nbob\n');
    await users().setStatus('bob', 'revoked');
    const counts = await Promise.all([
      users().issueMissingCerts(['ann']),
      users().issueMissingCerts(['ann']),
      users().issueMissingCerts(),
    ]);
    expect(counts.reduce((a, b) => a + b)).toBe(1);
    // Serialised in-process: the later callers found the certificate and signed nothing.
    expect(await clientCertsOf('ann')).toHaveLength(1);
    expect(await clientCertsOf('bob')).toHaveLength(0);
    expect((await users().get('ann')).certSerial).toBe((await clientCertsOf('ann'))[0].serial);
  });
});

describe('bulk actions', () => {
  const statuses = async () =>
    Object.fromEntries((await users().list()).map((u) => [u.name, u.status]));

  it('revokes many users in one go: one audit entry each with the actor, one new CRL for all', async () => {
    const added = await users().add([{ name: 'ann' }, { name: 'bob' }, { name: 'cid' }]);
    const crlBefore = (await t.fleet.store.revocationState()).crlNumber;
    const lastId = await t.fleet.store.lastAuditId();
    const fleet = t.fleet.as('console:eve');
    const revoked = await fleet.bulkUsers('revoke', ['ann', 'cid']);
    expect(revoked.map((u) => [u.name, u.status])).toEqual([
      ['ann', 'revoked'],
      ['cid', 'revoked'],
    ]);
    expect(await statuses()).toEqual({ ann: 'revoked', bob: 'enabled', cid: 'revoked' });
    const state = await t.fleet.store.revocationState();
    expect(state.revoked.map((r) => r.serial).sort()).toEqual(
      [added[0].certSerial, added[2].certSerial].sort(),
    );
    expect(state.crlNumber).toBe(crlBefore + 1);
    expect(
      (await t.fleet.store.auditSince(lastId, 100)).map((e) => [e.actor, e.action, e.subject]),
    ).toEqual([
      ['console:eve', 'user.revoke', 'ann'],
      ['console:eve', 'user.revoke', 'cid'],
    ]);
  });

  it('changes nobody when one name is unknown or one transition is refused', async () => {
    await users().add([{ name: 'ann' }, { name: 'bob' }, { name: 'cid' }]);
    await users().setStatus('bob', 'revoked');
    await users().setStatus('ann', 'disabled');
    const before = await statuses();
    const lastId = await t.fleet.store.lastAuditId();
    const crl = (await t.fleet.store.revocationState()).crlNumber;
    // ann could be enabled, but bob is revoked: neither changes.
    await expect(users().bulk('enable', ['ann', 'bob'])).rejects.toThrow(/user bob is revoked/);
    await expect(users().bulk('disable', ['cid', 'zed'])).rejects.toThrow(
      /^names\[1\]: no user named zed$/,
    );
    await expect(users().bulk('delete', ['cid', 'zed'])).rejects.toThrow(NotFound);
    await expect(users().bulk('revoke', ['cid', 'cid'])).rejects.toThrow(
      /^names\[1\]: cid is listed twice$/,
    );
    await expect(users().bulk('revoke', ['cid', '../x'])).rejects.toThrow(/^names\[1\]: /);
    await expect(users().bulk('revoke', [])).rejects.toThrow(InputError);
    await expect(
      users().bulk(
        'disable',
        Array.from({ length: 1001 }, (_, i) => `u${i}`),
      ),
    ).rejects.toThrow(/at most 1000 users/);
    expect(await statuses()).toEqual(before);
    expect(await t.fleet.store.lastAuditId()).toBe(lastId);
    expect((await t.fleet.store.revocationState()).crlNumber).toBe(crl);
    expect((await users().get('cid')).certSerial).toBeDefined();
  });

  it('deletes many users, revoking every certificate of theirs', async () => {
    const added = await users().add([{ name: 'ann' }, { name: 'bob' }]);
    await users().bulk('delete', ['ann', 'bob']);
    expect(await users().list()).toEqual([]);
    for (const u of added)
      expect((await t.fleet.store.getCert(u.certSerial!))?.revokedAt).toBeDefined();
  });

  it('records a profile hand-out when asked, with the certificate serial and the actor', async () => {
    await users().add([{ name: 'ann' }]);
    const lastId = await t.fleet.store.lastAuditId();
    await t.fleet.profile('ann');
    expect(await t.fleet.store.lastAuditId()).toBe(lastId);
    await t.fleet.as('api:test').profile('ann', { audit: true });
    expect(await t.fleet.store.auditSince(lastId, 10)).toEqual([
      expect.objectContaining({
        actor: 'api:test',
        action: 'user.profile',
        subject: 'ann',
        detail: { serial: (await users().get('ann')).certSerial },
      }),
    ]);
  });
});
