/**
 * The certificate lifecycle over years, driven by the fixed clock: client renewal ahead of
 * expiry, server rotation, a CA rollover from start to retirement, revocation across two CAs.
 * Chains are checked with the real openssl the way OpenVPN checks them (crl-verify sets
 * X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL: `-crl_check_all`), at the clock's time.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { certificateInfo, certificateInfos, crlInfos } from '../core/pki.js';
import type { Bundle } from '../render/bundle.js';
import { type TempFleet, itNeeds, tempFleetDir } from '../testing.js';
import { VALIDITY } from './pki-lifecycle.js';

const OPENSSL_MISSING =
  spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed';

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
});
afterEach(() => t.cleanup());

const block = (profile: string, tag: string): string => {
  const m = new RegExp(`<${tag}>\\n([\\s\\S]*?)</${tag}>`).exec(profile);
  if (!m) throw new Error(`profile has no <${tag}> block`);
  return m[1];
};
const fileOf = (b: Bundle, path: string) => b.files.find((f) => f.path === path)!.content;
const pinsOf = (b: Bundle, user: string) =>
  fileOf(b, `ccd/${user}`)
    .split('\n')
    .filter((l) => l.startsWith('# cert-serial '))
    .map((l) => BigInt(`0x${l.slice('# cert-serial '.length).replaceAll(':', '')}`).toString(16));

let fileNo = 0;
/** `openssl verify` at the test clock's time, as OpenVPN checks a peer: CRLs of the whole chain. */
function verify(trustPem: string, certPem: string, crlPem?: string): { ok: boolean; out: string } {
  const n = fileNo++;
  const trust = join(t.dir, `trust-${n}.pem`);
  const cert = join(t.dir, `cert-${n}.pem`);
  writeFileSync(trust, trustPem);
  writeFileSync(cert, certPem);
  const args = ['verify', '-attime', String(Math.floor(t.clock.now().getTime() / 1000))];
  args.push('-CAfile', trust);
  if (crlPem !== undefined) {
    const crl = join(t.dir, `crl-${n}.pem`);
    writeFileSync(crl, crlPem);
    args.push('-crl_check_all', '-CRLfile', crl);
  }
  const r = spawnSync('openssl', [...args, cert], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
  });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
}

/** What a server running `bundle` would say to a client presenting the profile's certificate. */
const serverAccepts = (bundle: Bundle, profile: string) =>
  verify(fileOf(bundle, 'ca.crt'), block(profile, 'cert'), fileOf(bundle, 'crl.pem'));
/** What the client of `profile` would say to the server of `bundle`. */
const clientAccepts = (profile: string, bundle: Bundle) =>
  verify(block(profile, 'ca'), fileOf(bundle, 'server.crt'));

const audited = async (action: string) =>
  (await t.fleet.store.auditQuery({ action, limit: 1000 })).map((e) => e.subject).reverse();

describe('client renewal', () => {
  it('renews inside the window only, keeps the old certificate valid and pinned, and tells the user', async () => {
    const [ann] = await t.fleet.addUsers([{ name: 'ann' }]);
    const first = await t.fleet.profile('ann');
    const window = t.fleet.spec.pki.renewBeforeDays;
    t.clock.advanceDays(VALIDITY.userDays - window - 1);
    expect(await t.fleet.maintainPki()).toMatchObject({ renewed: [] });
    expect(await t.fleet.userCertificate('ann')).toMatchObject({
      renewalDue: false,
      newProfileAvailable: false,
    });

    t.clock.advanceDays(2);
    expect(await t.fleet.userCertificate('ann')).toMatchObject({ renewalDue: true });
    expect((await t.fleet.maintainPki()).renewed).toEqual(['ann']);
    const cert = (await t.fleet.userCertificate('ann'))!;
    expect(cert).toMatchObject({
      renewalDue: false,
      newProfileAvailable: true,
      previous: [{ serial: ann.certSerial }],
    });
    expect(cert.serial).not.toBe(ann.certSerial);
    expect(cert.daysLeft).toBe(VALIDITY.userDays);
    // Both certificates are accepted by every server until the old one expires.
    const [bundle] = await t.fleet.bundles();
    expect(pinsOf(bundle, 'ann').sort()).toEqual([ann.certSerial, cert.serial].sort());
    expect((await t.fleet.store.getCert(ann.certSerial!))?.revokedAt).toBeUndefined();
    // A second tick does nothing more.
    expect((await t.fleet.maintainPki()).renewed).toEqual([]);
    expect(await audited('user.cert.renew')).toEqual(['ann']);

    const second = await t.fleet.profile('ann');
    expect(block(second, 'cert')).not.toBe(block(first, 'cert'));
    expect(certificateInfo(block(second, 'cert')).serial).toBe(cert.serial);
    expect((await t.fleet.userCertificate('ann'))?.newProfileAvailable).toBe(false);

    // The old certificate leaves the pins when it expires.
    t.clock.advanceDays(window);
    const [later] = await t.fleet.bundles();
    expect(pinsOf(later, 'ann')).toEqual([cert.serial]);
    expect((await t.fleet.userCertificate('ann'))?.previous).toEqual([]);
  });

  it('a profile downloaded inside the window carries the renewed certificate at once', async () => {
    await t.fleet.addUsers([{ name: 'bob' }]);
    const before = (await t.fleet.getUser('bob')).certSerial;
    t.clock.advanceDays(VALIDITY.userDays - 5);
    const profile = await t.fleet.profile('bob');
    const after = (await t.fleet.getUser('bob')).certSerial;
    expect(after).not.toBe(before);
    expect(certificateInfo(block(profile, 'cert')).serial).toBe(after);
    expect((await t.fleet.userCertificate('bob'))?.newProfileAvailable).toBe(false);
  });

  it('`pki renew NAME` renews only when due unless forced; revoking revokes every live certificate', async () => {
    const [cat] = await t.fleet.addUsers([{ name: 'cat' }]);
    expect(await t.fleet.renewUserCerts(['cat'])).toEqual([]);
    expect(await t.fleet.renewUserCerts(['cat'], true)).toEqual(['cat']);
    const live = (await t.fleet.store.liveClientCerts(t.clock.now())).filter(
      (c) => c.subject === 'cat',
    );
    expect(live).toHaveLength(2);
    await t.fleet.setStatus('cat', 'revoked');
    const revoked = await t.fleet.store.clientCertsOf('cat');
    expect(revoked.every((c) => c.revokedAt)).toBe(true);
    const listed = crlInfos(await t.fleet.ensureCrl()).flatMap((i) => i.revokedSerials);
    expect(listed).toEqual(expect.arrayContaining([cat.certSerial, ...live.map((c) => c.serial)]));
    expect(await t.fleet.renewUserCerts(['cat'], true)).toEqual([]);
  });

  it('a renewal that lost a race is stored revoked and listed in the CRL', async () => {
    const [dan] = await t.fleet.addUsers([{ name: 'dan' }]);
    const [cert] = await t.fleet.pki.issueClientCerts(['dan'], t.clock.now());
    // Someone renewed first: the current serial is no longer the one this renewal replaces.
    await t.fleet.renewUserCerts(['dan'], true);
    const lost = await t.fleet.store.replaceClientCert(
      'dan',
      dan.certSerial!,
      cert,
      t.clock.now(),
      't',
    );
    expect(lost.attached).toBe(false);
    expect((await t.fleet.store.getCert(cert.serial))?.revokedAt).toBeDefined();
    expect(await audited('cert.discard')).toEqual(['dan']);
  });

  itNeeds(
    OPENSSL_MISSING,
    'a user who picks up each new profile a week after it appears stays connected for five years',
    async () => {
      await t.fleet.addUsers([{ name: 'eve' }]);
      let held = await t.fleet.profile('eve');
      let availableSince: number | undefined;
      const serials = new Set<string>();
      for (let day = 0; day <= 5 * 365; day += 7) {
        await t.fleet.maintainPki();
        const bundle = await t.fleet.bundle(t.fleet.serverNames()[0]);
        const serial = certificateInfo(block(held, 'cert')).serial;
        serials.add(serial);
        // What OpenVPN and the client-connect hook check, on the server's files of today.
        const accepted = serverAccepts(bundle, held);
        expect({ day, ...accepted }).toMatchObject({ day, ok: true });
        expect({ day, pinned: pinsOf(bundle, 'eve').includes(serial) }).toEqual({
          day,
          pinned: true,
        });
        expect({ day, ...clientAccepts(held, bundle) }).toMatchObject({ day, ok: true });
        if ((await t.fleet.userCertificate('eve'))?.newProfileAvailable) {
          availableSince ??= day;
          if (day - availableSince >= 7) {
            held = await t.fleet.profile('eve');
            availableSince = undefined;
          }
        }
        t.clock.advanceDays(7);
      }
      // Renewed about once a year, never more.
      expect(serials.size).toBeGreaterThanOrEqual(5);
      expect(serials.size).toBeLessThanOrEqual(6);
      // Servers were rotated inside their own window, each about every 765 days.
      const rotations = await audited('server.cert.rotate');
      expect(rotations.length).toBe(2 * t.fleet.serverNames().length);
    },
    300_000,
  );
});

describe('server rotation', () => {
  it('rotates a server certificate inside its window into server.crt and server.key only', async () => {
    const [before] = await t.fleet.bundles();
    t.clock.advanceDays(VALIDITY.serverDays - t.fleet.spec.pki.serverRenewBeforeDays - 1);
    expect((await t.fleet.maintainPki()).rotated).toEqual([]);
    t.clock.advanceDays(2);
    expect((await t.fleet.maintainPki()).rotated).toEqual(t.fleet.serverNames());
    const [after] = await t.fleet.bundles();
    const changed = after.files
      .filter((f) => f.content !== before.files.find((g) => g.path === f.path)?.content)
      .map((f) => f.path);
    // crl.pem was re-signed meanwhile (every 15 days); nothing else moved.
    expect(changed.sort()).toEqual(['crl.pem', 'server.crt', 'server.key']);
    const row = (await t.fleet.pkiStatus()).filter(
      (r) => r.kind === 'server' && r.subject === after.server,
    );
    expect(row.map((r) => r.state).sort()).toEqual(['superseded', 'valid']);
  });
});

describe('CA rollover', () => {
  itNeeds(
    OPENSSL_MISSING,
    'from rollover to retirement: both CAs trusted, the switch, users renewed onto the new CA, servers rotated, the old CA dropped',
    async () => {
      const fleet = t.fleet;
      const caStates = async () =>
        Object.fromEntries(
          (await fleet.pkiStatus()).filter((r) => r.kind === 'ca').map((r) => [r.subject, r.state]),
        );
      await fleet.addUsers([{ name: 'ann' }, { name: 'bob' }, { name: 'dan' }]);
      // ann keeps the profile she got before the rollover: it trusts only the first CA.
      const annOld = await fleet.profile('ann');
      const bobOld = await fleet.profile('bob');
      expect(certificateInfos(block(annOld, 'ca'))).toHaveLength(1);

      // 1. Rollover: both CAs in every trust bundle and a CRL for each.
      t.clock.advanceDays(100);
      const next = await fleet.pki.rolloverCa();
      expect(await caStates()).toEqual({ 'acme VPN CA': 'active', 'acme VPN CA 2': 'next' });
      await expect(fleet.pki.rolloverCa()).rejects.toThrow(/rollover is under way/);
      let [bundle] = await fleet.bundles();
      expect(certificateInfos(fileOf(bundle, 'ca.crt')).map((c) => c.commonName)).toEqual([
        'acme VPN CA',
        'acme VPN CA 2',
      ]);
      expect(
        crlInfos(fileOf(bundle, 'crl.pem'))
          .map((c) => c.issuerCommonName)
          .sort(),
      ).toEqual(['acme VPN CA', 'acme VPN CA 2']);
      expect(serverAccepts(bundle, annOld)).toMatchObject({ ok: true });
      expect(clientAccepts(annOld, bundle)).toMatchObject({ ok: true });
      const both = await fleet.profile('dan');
      expect(certificateInfos(block(both, 'ca'))).toHaveLength(2);
      // Still signed by the active CA until the switch.
      expect(certificateInfo(block(both, 'cert')).serial).toBe(
        (await fleet.getUser('dan')).certSerial,
      );
      expect((await fleet.userCertificate('dan'))?.issuer).toBe('acme VPN CA');

      // 2. The switch, automatically after the lead time.
      t.clock.advanceDays(fleet.spec.pki.caSwitchAfterDays - 1);
      expect((await fleet.maintainPki()).ca).toEqual([]);
      t.clock.advanceDays(1);
      expect((await fleet.maintainPki()).ca).toEqual([
        'switch: acme VPN CA 2 signs, acme VPN CA retiring',
      ]);
      expect(await caStates()).toEqual({ 'acme VPN CA': 'retiring', 'acme VPN CA 2': 'active' });
      await fleet.addUsers([{ name: 'carol' }]);
      const carol = await fleet.profile('carol');
      expect((await fleet.userCertificate('carol'))?.issuer).toBe('acme VPN CA 2');
      [bundle] = await fleet.bundles();
      expect(serverAccepts(bundle, carol)).toMatchObject({ ok: true });
      // The servers still present the old CA's certificate: ann's old profile must accept it.
      expect(clientAccepts(annOld, bundle)).toMatchObject({ ok: true });
      expect(clientAccepts(carol, bundle)).toMatchObject({ ok: true });
      // Why crl.pem holds a CRL per CA: with only the new CA's CRL, OpenVPN's CRL check would
      // refuse every client of the old CA ("unable to get certificate CRL").
      const onlyNew = crlInfos(fileOf(bundle, 'crl.pem')).length;
      expect(onlyNew).toBe(2);
      const newCrlOnly = fileOf(bundle, 'crl.pem')
        .split(/(?=-----BEGIN X509 CRL-----)/)
        .filter((p) => crlInfos(p)[0]?.issuerCommonName === 'acme VPN CA 2')
        .join('');
      const refused = verify(fileOf(bundle, 'ca.crt'), block(annOld, 'cert'), newCrlOnly);
      expect(refused.ok).toBe(false);
      expect(refused.out).toMatch(/unable to get certificate CRL/);

      // Revocation works for certificates of both CAs: dan renews onto the new CA, then is
      // revoked with both certificates still valid.
      expect(await fleet.renewUserCerts(['dan'], true)).toEqual(['dan']);
      const danNew = await fleet.profile('dan');
      expect((await fleet.userCertificate('dan'))?.issuer).toBe('acme VPN CA 2');
      await fleet.setStatus('dan', 'revoked');
      [bundle] = await fleet.bundles();
      for (const p of [both, danNew]) {
        const r = serverAccepts(bundle, p);
        expect(r.ok).toBe(false);
        expect(r.out).toMatch(/certificate revoked/);
      }
      const bySigner = Object.fromEntries(
        crlInfos(fileOf(bundle, 'crl.pem')).map((c) => [c.issuerCommonName, c.revokedSerials]),
      );
      expect(bySigner['acme VPN CA']).toContain(certificateInfo(block(both, 'cert')).serial);
      expect(bySigner['acme VPN CA 2']).toContain(certificateInfo(block(danNew, 'cert')).serial);

      // 3 and 4. Time passes: users renew onto the new CA in their window; the servers move
      // to the new CA once no client certificate of the old one is valid; a week later the
      // old CA is retired.
      let rotatedOn: number | undefined;
      let retiredOn: number | undefined;
      let lastOldClientExpiry = 0;
      for (let day = 0; day < 500 && retiredOn === undefined; day++) {
        t.clock.advanceDays(1);
        const live = await fleet.store.liveClientCerts(t.clock.now());
        if (live.some((c) => c.issuer !== next.serial)) lastOldClientExpiry = day;
        const report = await fleet.maintainPki();
        if (report.rotated.length) {
          expect(report.rotated).toEqual(fleet.serverNames());
          rotatedOn = day;
          // Nothing of the old CA is valid any more, and the users hold new profiles.
          expect(live.every((c) => c.issuer === next.serial)).toBe(true);
        }
        if (report.ca.length) {
          expect(report.ca).toEqual(['retire: acme VPN CA']);
          retiredOn = day;
        }
        // ann and bob download their new profile when told.
        for (const u of ['ann', 'bob'])
          if ((await fleet.userCertificate(u))?.newProfileAvailable) await fleet.profile(u);
      }
      expect(rotatedOn).toBe(lastOldClientExpiry + 1);
      expect(retiredOn! - rotatedOn!).toBe(VALIDITY.restartGraceDays);
      expect(await caStates()).toEqual({ 'acme VPN CA': 'retired', 'acme VPN CA 2': 'active' });
      [bundle] = await fleet.bundles();
      expect(certificateInfos(fileOf(bundle, 'ca.crt')).map((c) => c.commonName)).toEqual([
        'acme VPN CA 2',
      ]);
      expect(crlInfos(fileOf(bundle, 'crl.pem')).map((c) => c.issuerCommonName)).toEqual([
        'acme VPN CA 2',
      ]);
      const annNow = await fleet.profile('ann');
      expect(certificateInfos(block(annNow, 'ca')).map((c) => c.commonName)).toEqual([
        'acme VPN CA 2',
      ]);
      expect(serverAccepts(bundle, annNow)).toMatchObject({ ok: true });
      expect(clientAccepts(annNow, bundle)).toMatchObject({ ok: true });
      // bob's pre-rollover profile is long expired and its CA trusted nowhere.
      expect(serverAccepts(bundle, bobOld).ok).toBe(false);
      expect(await audited('ca.rollover')).toEqual(['acme VPN CA 2']);
      expect(await audited('ca.switch')).toEqual(['acme VPN CA 2']);
      expect(await audited('ca.retire')).toEqual(['acme VPN CA']);
      // The next rollover may start.
      await expect(fleet.pki.rolloverCa()).resolves.toMatchObject({ subject: 'acme VPN CA 3' });
    },
    300_000,
  );

  it('rolls over by itself when the CA nears its end, and switches only by hand before the lead time', async () => {
    t.clock.advanceDays(VALIDITY.caDays - t.fleet.spec.pki.caRolloverBeforeDays - 1);
    expect((await t.fleet.maintainPki()).ca).toEqual([]);
    t.clock.advanceDays(1);
    expect((await t.fleet.maintainPki()).ca).toEqual(['rollover: acme VPN CA 2 added']);
    expect(await audited('ca.rollover')).toEqual(['acme VPN CA 2']);
    const { to } = await t.fleet.pki.switchCa();
    expect(to.subject).toBe('acme VPN CA 2');
    await expect(t.fleet.pki.switchCa()).rejects.toThrow(/no next CA/);
    const status = await t.fleet.pkiStatus();
    expect(status.filter((r) => r.kind === 'crl')).toHaveLength(2);
    expect(status.find((r) => r.kind === 'ca' && r.state === 'retiring')?.note).toMatch(
      /valid client certificates left/,
    );
  });
});

describe('pki status', () => {
  it('shows every certificate with its issuer, days left, state and what happens next', async () => {
    await t.fleet.addUsers([{ name: 'ann' }]);
    t.clock.advanceDays(VALIDITY.userDays - 10);
    await t.fleet.maintainPki();
    const rows = await t.fleet.pkiStatus();
    const ann = rows.filter((r) => r.kind === 'client');
    expect(ann.map((r) => [r.state, r.current, r.note])).toEqual(
      expect.arrayContaining([
        ['superseded', false, 'still valid until it expires'],
        ['valid', true, 'new profile not picked up yet'],
      ]),
    );
    expect(ann.every((r) => r.issuer === 'acme VPN CA')).toBe(true);
    expect(rows.find((r) => r.kind === 'ca')).toMatchObject({ state: 'active', current: true });
  });
});

it('keeps the CA, server and client certificates apart by issuer in the store', async () => {
  const [u] = await t.fleet.addUsers([{ name: 'zed' }]);
  const ca = (await t.fleet.store.getCa())!;
  expect((await t.fleet.store.getCert(u.certSerial!))?.issuer).toBe(ca.serial);
  expect((await t.fleet.store.serverCert(t.fleet.serverNames()[0]))?.issuer).toBe(ca.serial);
  expect(ca.caState).toBe('active');
});
