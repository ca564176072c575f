import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crlInfo } from '../core/pki.js';
import type { FleetStore } from '../store/types.js';
import { type TempFleet, FIXED_NOW, tempFleetDir } from '../testing.js';
import { PkiLifecycle, VALIDITY } from './pki-lifecycle.js';
import { Secrets } from './secrets.js';

const DAY_MS = 86_400_000;

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
});
afterEach(async () => await t.cleanup());

const crlNow = async () => crlInfo((await t.fleet.store.getSetting('crl.pem'))!);

/** A PKI service of the temp fleet over another view of its store. */
function pkiOver(store: FleetStore): PkiLifecycle {
  const ctx = { dir: t.dir, spec: t.fleet.spec, store, clock: t.clock, actor: 'test' };
  return new PkiLifecycle(ctx, new Secrets(ctx));
}

describe('PKI lifecycle', () => {
  it('init makes the CA, one certificate per server and a CRL valid for crlDays', async () => {
    const { store, spec } = t.fleet;
    expect((await store.getCa())?.subject).toBe(`${spec.fleet} VPN CA`);
    expect((await store.listCerts('server')).map((c) => c.subject)).toEqual(
      expect.arrayContaining(t.fleet.serverNames()),
    );
    const info = await crlNow();
    expect(info.crlNumber).toBe(1);
    expect(info.nextUpdate?.getTime()).toBe(FIXED_NOW.getTime() + VALIDITY.crlDays * DAY_MS);
  });

  it('renews the CRL once no more than crlRenewDays are left, and not before', async () => {
    const pki = t.fleet.pki;
    const first = await pki.ensureCrl();
    const daysToRenewal = VALIDITY.crlDays - VALIDITY.crlRenewDays;

    t.clock.advanceDays(daysToRenewal - 0.01);
    expect(await pki.ensureCrl()).toBe(first);
    expect((await t.fleet.snapshot()).crlPem).toBe(first);
    const row = (await pki.status()).find((r) => r.kind === 'crl');
    expect(row).toMatchObject({ daysLeft: VALIDITY.crlRenewDays, state: 'ok' });

    t.clock.advanceDays(0.01);
    // The controller's hourly re-render takes a snapshot: that is what renews in service.
    const renewed = crlInfo((await t.fleet.snapshot()).crlPem);
    expect(renewed.crlNumber).toBe(2);
    expect(renewed.nextUpdate?.getTime()).toBe(t.clock.now().getTime() + VALIDITY.crlDays * DAY_MS);
    expect((await crlNow()).crlNumber).toBe(2);
  });

  it('shows a CRL close to its nextUpdate as "renew soon" in the status', async () => {
    // Renewal happens at the next snapshot; the status only reads.
    t.clock.advanceDays(VALIDITY.crlDays - 3);
    const row = (await t.fleet.pki.status()).find((r) => r.kind === 'crl');
    expect(row).toMatchObject({ daysLeft: 3, state: 'renew soon', serial: '1' });
    t.clock.advanceDays(4);
    expect((await t.fleet.pki.status()).find((r) => r.kind === 'crl')?.state).toBe('EXPIRED');
  });

  it('re-signs when another writer revokes between signing and writing, never losing it', async () => {
    const [ann] = await t.fleet.users.add([{ name: 'ann' }]);
    const store = t.fleet.store;
    const before = (await store.revocationState()).crlNumber;
    let raced = false;
    const racing = new Proxy(store, {
      get(target, prop) {
        if (prop === 'transaction')
          return async <T>(fn: (tx: FleetStore) => Promise<T>): Promise<T> => {
            if (!raced) {
              raced = true;
              // Another process revokes after our CRL was signed, before we write it.
              await target.revokeCert(ann.certSerial!, t.clock.now());
            }
            return target.transaction(fn);
          };
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
      },
    });
    const pem = await pkiOver(racing).ensureCrl(true);
    expect(raced).toBe(true);
    const info = crlInfo(pem);
    expect(info.revokedSerials).toEqual([ann.certSerial]);
    // The CRL signed without it was never written: the number moved by one.
    expect(info.crlNumber).toBe(before + 1);
    expect(await store.getSetting('crl.pem')).toBe(pem);
  });

  it('re-issues a CRL whose serials differ from the store, and leaves a current one alone', async () => {
    const [ann] = await t.fleet.users.add([{ name: 'ann' }]);
    const pki = t.fleet.pki;
    const first = await pki.ensureCrl();
    await t.fleet.store.revokeCert(ann.certSerial!, t.clock.now());
    const healed = await pki.ensureCrl();
    expect(healed).not.toBe(first);
    expect(crlInfo(healed).revokedSerials).toEqual([ann.certSerial]);
    expect(await pki.ensureCrl()).toBe(healed);
  });
});
