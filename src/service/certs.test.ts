/**
 * Issue 11 items 4, 8, 9 and 13 as attacks on a real fleet directory: concurrent first profile
 * downloads, revoke and delete + re-add checked with the real openssl, parallel revokes from
 * several processes against the CRL, file modes and reserved names.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crlInfo } from '../core/pki.js';
import { InputError } from '../errors.js';
import { Fleet } from './fleet.js';
import { initFleet, openFleet } from './open.js';

let dir: string;
const fleets: Fleet[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ovf-certs-'));
  // The wall clock, not a fixed one: openssl verify judges the CRL at the real time.
  fleets.push(await initFleet(dir));
});
afterEach(async () => {
  for (const f of fleets.splice(0)) await f.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Another Fleet on the same directory: its own SQLite connection, like a second process. */
async function openAgain(): Promise<Fleet> {
  const f = await openFleet(dir);
  fleets.push(f);
  return f;
}

const certOf = (profile: string): string => {
  const m = /<cert>\n([\s\S]*?)<\/cert>/.exec(profile);
  if (!m) throw new Error('profile has no <cert> block');
  return m[1];
};

/** `openssl verify -crl_check` of a profile's certificate against the fleet's CA and CRL now. */
async function verify(
  fleet: Fleet,
  profile: string,
  name: string,
): Promise<{ ok: boolean; output: string }> {
  const caFile = join(dir, 'ca+crl.pem');
  writeFileSync(
    caFile,
    `${(await fleet.store.getCa())!.certPem}${await fleet.store.getSetting('crl.pem')}`,
  );
  const certFile = join(dir, `${name}.pem`);
  writeFileSync(certFile, certOf(profile));
  const r = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', caFile, certFile], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
  });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
}

const clientCertsOf = async (fleet: Fleet, name: string) =>
  (await fleet.store.listCerts('client')).filter((c) => c.subject === name);

describe('client certificates', () => {
  it('ten concurrent first profile downloads from two processes attach one certificate; revoke stops all ten', async () => {
    const a = fleets[0];
    const b = await openAgain();
    await a.importCsv('name,groups\nalice,staff\n');
    expect((await a.getUser('alice')).certSerial).toBeUndefined();
    const profiles = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? b : a).profile('alice')),
    );
    const user = await a.getUser('alice');
    expect(user.certSerial).toBeDefined();
    // Every download got the one attached certificate.
    const attached = (await a.store.getCert(user.certSerial!))!;
    expect(new Set(profiles.map(certOf))).toEqual(new Set([attached.certPem]));
    // Whatever else was signed is stored, revoked, and in the CRL.
    const signed = await clientCertsOf(a, 'alice');
    const others = signed.filter((c) => c.serial !== user.certSerial);
    expect(others.every((c) => c.revokedAt !== undefined)).toBe(true);
    expect(attached.revokedAt).toBeUndefined();
    const listed = crlInfo(await a.ensureCrl()).revokedSerials;
    for (const c of others) expect(listed).toContain(c.serial);
    for (const [i, p] of profiles.entries())
      expect(await verify(a, p, `alice-${i}`)).toMatchObject({ ok: true });

    await b.setStatus('alice', 'revoked');
    for (const [i, p] of profiles.entries()) {
      const r = await verify(a, p, `alice-${i}`);
      expect(r.ok, r.output).toBe(false);
      expect(r.output).toMatch(/certificate revoked/);
    }
    expect((await clientCertsOf(a, 'alice')).every((c) => c.revokedAt !== undefined)).toBe(true);
  }, 60_000);

  it('a certificate that lost the race is stored revoked and never attached', async () => {
    const f = fleets[0];
    await f.importCsv('name,groups\nbob,\n');
    const { issueCertificate } = await import('../core/pki.js');
    const ca = (await f.store.getCa())!;
    const sign = () =>
      issueCertificate(ca, { kind: 'client', commonName: 'bob', now: new Date(), validDays: 1 });
    const [first, second] = await Promise.all([sign(), sign()]);
    const now = new Date();
    expect((await f.store.attachCertIfNone('bob', first, now, 'test')).attached).toBe(true);
    const lost = await f.store.attachCertIfNone('bob', second, now, 'test');
    expect(lost.attached).toBe(false);
    expect(lost.user?.certSerial).toBe(first.serial);
    expect((await f.store.getCert(second.serial))?.revokedAt).toBe(now.toISOString());
    // For a name nobody has, too.
    const ghost = await sign();
    expect(await f.store.attachCertIfNone('ghost', ghost, now, 'test')).toEqual({
      attached: false,
    });
    expect((await f.store.getCert(ghost.serial))?.revokedAt).toBeDefined();
  });

  it('after delete and re-add of a name, no older profile verifies and the ccd pins only the new serial', async () => {
    const a = fleets[0];
    const b = await openAgain();
    await a.importCsv('name,groups\ncarol,staff\n');
    const old = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? b : a).profile('carol')),
    );
    // An orphan the old code could have left behind: signed, stored, never attached.
    await a.deleteUser('carol');
    await b.addUsers([{ name: 'carol', groups: ['staff'] }]);
    const fresh = await a.profile('carol');
    expect(await verify(a, fresh, 'carol-new')).toMatchObject({ ok: true });
    for (const [i, p] of old.entries()) {
      const r = await verify(a, p, `carol-old-${i}`);
      expect(r.ok, r.output).toBe(false);
    }
    const serial = (await a.getUser('carol')).certSerial!;
    const [bundle] = await a.bundles();
    const ccd = bundle.files.find((f) => f.path === 'ccd/carol')!.content;
    const pins = ccd.split('\n').filter((l) => l.startsWith('# cert-serial '));
    expect(pins).toHaveLength(1);
    expect(pins[0].replace('# cert-serial ', '').replaceAll(':', '').replace(/^0/, '')).toBe(
      serial,
    );
    // Every carol certificate but the current one is revoked and in the CRL.
    const listed = crlInfo(bundle.files.find((f) => f.path === 'crl.pem')!.content).revokedSerials;
    for (const c of (await clientCertsOf(a, 'carol')).filter((c) => c.serial !== serial)) {
      expect(c.revokedAt).toBeDefined();
      expect(listed).toContain(c.serial);
    }
  }, 60_000);

  it('a user without a certificate gets a ccd file without a pin', async () => {
    const f = fleets[0];
    await f.importCsv('name,groups\ndan,\n');
    const [bundle] = await f.bundles();
    expect(bundle.files.find((x) => x.path === 'ccd/dan')?.content).not.toMatch(/cert-serial/);
  });
});

describe('the CRL', () => {
  it('thirty revokes from three processes at once: every serial listed, CRL numbers never reused', async () => {
    const f = fleets[0];
    const names = Array.from({ length: 30 }, (_, i) => `u${i}`);
    const users = await f.addUsers(names.map((name) => ({ name })));
    const openUrl = pathToFileURL(resolve(import.meta.dirname, 'open.ts')).href;
    const pkiUrl = pathToFileURL(resolve(import.meta.dirname, '../core/pki.ts')).href;
    const script = join(dir, 'revoker.mts');
    writeFileSync(
      script,
      `
const { openFleet } = await import(${JSON.stringify(openUrl)});
const { crlInfo } = await import(${JSON.stringify(pkiUrl)});
const [dir, startAt, ...names] = process.argv.slice(2);
const fleet = await openFleet(dir);
const seen = [];
// Every CRL this process writes goes through the PKI service, whoever asks for it.
const ensure = fleet.pki.ensureCrl.bind(fleet.pki);
fleet.pki.ensureCrl = async (force) => {
  const pem = await ensure(force);
  const info = crlInfo(pem);
  seen.push({ number: info.crlNumber, serials: info.revokedSerials.length, pem });
  return pem;
};
while (Date.now() < Number(startAt)) await new Promise((r) => setTimeout(r, 1));
// Two requests at a time in this process, three processes.
const queue = [...names];
await Promise.all([0, 1].map(async () => {
  for (let n = queue.shift(); n; n = queue.shift()) await fleet.setStatus(n, 'revoked');
}));
await fleet.close();
process.stdout.write(JSON.stringify(seen));
`,
    );
    const startAt = Date.now() + 1500;
    const runs = await Promise.all(
      [0, 1, 2].map(
        (p) =>
          new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
            const child = spawn(
              process.execPath,
              [
                '--import',
                'tsx',
                script,
                dir,
                String(startAt),
                ...names.filter((_, i) => i % 3 === p),
              ],
              { stdio: ['ignore', 'pipe', 'pipe'], cwd: resolve(import.meta.dirname, '../..') },
            );
            let stdout = '';
            let stderr = '';
            child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
            child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
            child.on('close', (code) => done({ code, stdout, stderr }));
          }),
      ),
    );
    for (const r of runs)
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const seen = runs.flatMap(
      (r) => JSON.parse(r.stdout) as { number: number; serials: number; pem: string }[],
    );
    expect(seen).toHaveLength(30);
    // One CRL per number, whoever saw it.
    const byNumber = new Map<number, Set<string>>();
    for (const s of seen) {
      const hashes = byNumber.get(s.number) ?? new Set<string>();
      hashes.add(createHash('sha256').update(s.pem).digest('hex'));
      byNumber.set(s.number, hashes);
    }
    for (const [number, hashes] of byNumber)
      expect({ number, crls: hashes.size }).toEqual({ number, crls: 1 });
    // Each process saw the numbers grow, and a larger number never lists fewer revocations.
    for (const r of runs) {
      const numbers = (JSON.parse(r.stdout) as { number: number }[]).map((s) => s.number);
      expect(numbers).toEqual([...numbers].sort((x, y) => x - y));
    }
    const ordered = [...seen].sort((x, y) => x.number - y.number);
    ordered.forEach(
      (s, i) => i && expect(s.serials).toBeGreaterThanOrEqual(ordered[i - 1].serials),
    );
    // The final CRL lists all thirty.
    const final = crlInfo((await (await openAgain()).snapshot()).crlPem);
    expect(final.revokedSerials.sort()).toEqual(users.map((u) => u.certSerial!).sort());
    expect(final.crlNumber).toBe(Math.max(...seen.map((s) => s.number)));
  }, 120_000);

  it('re-issues a CRL that misses a revoked certificate on the next snapshot', async () => {
    const f = fleets[0];
    const [u] = await f.addUsers([{ name: 'erin' }]);
    const before = crlInfo(await f.ensureCrl());
    // Revoked behind the CRL's back, as a crash between the two writes would leave it.
    await f.store.revokeCert(u.certSerial!, new Date());
    const after = crlInfo((await f.snapshot()).crlPem);
    expect(after.revokedSerials).toContain(u.certSerial);
    expect(after.crlNumber).toBe(before.crlNumber! + 1);
    // And leaves a current one alone.
    expect(crlInfo((await f.snapshot()).crlPem).crlNumber).toBe(after.crlNumber);
  });
});

describe('files and names', () => {
  it('writes fleet.yaml 0600, also after a group is added', async () => {
    const f = fleets[0];
    const mode = () => statSync(Fleet.specPath(dir)).mode & 0o777;
    expect(mode()).toBe(0o600);
    await f.addGroup('auditors');
    expect(mode()).toBe(0o600);
  });

  it("refuses a user named like a server's certificate, on add and on import", async () => {
    const f = fleets[0];
    const serverCn = `${f.spec.fleet}-server-${f.serverNames()[0]}`;
    await expect(f.addUsers([{ name: serverCn }])).rejects.toThrow(InputError);
    await expect(f.addUsers([{ name: `${f.spec.fleet}-server-later` }])).rejects.toThrow(
      /reserved/,
    );
    await expect(f.importCsv(`name,groups\n${serverCn},\n`)).rejects.toThrow(/import\.csv:2/);
    expect(await f.listUsers()).toEqual([]);
  });
});
