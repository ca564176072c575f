import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Conflict, NotFound } from '../errors.js';
import { type TempFleet, tempFleetDir } from '../testing.js';

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
});
afterEach(async () => await t.cleanup());

const certOf = (profile: string) => /<cert>\n([\s\S]*?)<\/cert>/.exec(profile)?.[1];

describe('bundles and profiles', () => {
  it("pins each user's current certificate serial in the snapshot, only the current one", async () => {
    const [first] = await t.fleet.users.add([{ name: 'ann' }]);
    await t.fleet.users.importCsv('bob\n');
    await t.fleet.users.delete('ann');
    const [again] = await t.fleet.users.add([{ name: 'ann' }]);
    await t.fleet.users.setStatus('bob', 'disabled');

    const snap = await t.fleet.output.snapshot();
    const byName = new Map(snap.users.map((u) => [u.name, u]));
    expect(byName.get('ann')).toMatchObject({ enabled: true, certSerials: [again.certSerial] });
    expect(byName.get('ann')?.certSerials).not.toContain(first.certSerial);
    expect(byName.get('bob')).toMatchObject({ enabled: false, certSerials: [] });
    expect(snap.servers.get('vpn11')?.managementPassword).toBe(
      await t.fleet.secrets.managementPassword('vpn11'),
    );
  });

  it("renders one server's bundle, and refuses a server that is not in fleet.yaml", async () => {
    const bundle = await t.fleet.output.bundle('vpn11');
    expect(bundle.server).toBe('vpn11');
    await expect(t.fleet.output.bundle('vpn99')).rejects.toThrow(NotFound);
    expect((await t.fleet.output.bundles()).map((b) => b.server)).toEqual(t.fleet.serverNames());
  });

  it("issues an imported user's certificate with the first profile, and the same one after", async () => {
    await t.fleet.users.importCsv('ann\n');
    const [one, two] = await Promise.all([
      t.fleet.output.profile('ann'),
      t.fleet.output.profile('ann'),
    ]);
    const serial = (await t.fleet.users.get('ann')).certSerial;
    expect(serial).toBeDefined();
    expect(certOf(one)).toBe(certOf(two));
    expect(
      (await t.fleet.store.listCerts('client')).filter((c) => c.subject === 'ann'),
    ).toHaveLength(1);
  });

  it('gives no profile to a disabled or revoked user, except to the lab (anyStatus)', async () => {
    await t.fleet.users.add([{ name: 'ann' }]);
    await t.fleet.users.setStatus('ann', 'disabled');
    await expect(t.fleet.output.profile('ann')).rejects.toThrow(Conflict);
    expect(certOf(await t.fleet.output.profile('ann', { anyStatus: true }))).toBeDefined();
  });
});
