/**
 * The certificate pin against a real OpenVPN 2.6 server (issue 11 item 4): a user deleted and
 * added again under the same name cannot get in with the old profile even when the CRL does
 * not list the old certificate, because the server's client-connect hook admits only the
 * serial pinned in ccd/<user>; the new profile gets in. One server, no control plane.
 */
import { copyFileSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import {
  buildOnce,
  cli,
  cliOk,
  netnsNames,
  newFleetDir,
  requireLab,
  statusOf,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfk';
const SERVER = 'vpn31';
const runs = requireLab();
let dir = '';

const lab = (sub: string, ...args: string[]) =>
  cliOk(dir, ['lab', sub, '--prefix', PREFIX, ...args]);
const serverFile = (name: string) => join(dir, '.lab', PREFIX, 'servers', SERVER, name);
const serverLog = () => readFileSync(serverFile('run/openvpn.log'), 'utf8');

/** Replaces a file the way OpenVPN expects for crl-verify: a rename, so mtime and inode move. */
function replaceFile(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}

interface UserJson {
  ipv4: string;
  ipv6: string;
}

async function serialOf(user: string): Promise<string> {
  const users = JSON.parse(await cliOk(dir, ['user', 'list', '--json'])) as {
    name: string;
    certSerial?: string;
  }[];
  const serial = users.find((u) => u.name === user)?.certSerial;
  if (!serial) throw new Error(`${user} has no certificate`);
  return serial;
}

/** The serial as OpenVPN prints it in tls_serial_hex_0 (and as ccd pins it). */
const openvpnHex = (serial: string) =>
  (serial.length % 2 ? `0${serial}` : serial).match(/../g)!.join(':');

describe.runIf(runs)(
  'certificate pin: a re-added name is not reachable with an old certificate',
  () => {
    beforeAll(async () => {
      await buildOnce();
      dir = await newFleetDir();
      // The smallest lab that has a server: one internal site with one server.
      const file = join(dir, 'fleet.yaml');
      const doc = parseDocument(readFileSync(file, 'utf8'));
      doc.set(
        'sites',
        doc.createNode([
          {
            name: 'dc3',
            servers: [
              {
                name: SERVER,
                address: '192.0.2.31',
                backbone: '10.255.3.2/30',
                routerId: '10.255.3.2',
              },
            ],
          },
        ]),
      );
      writeFileSync(file, doc.toString());
      await cliOk(dir, ['validate']);
      await cliOk(dir, ['user', 'add', 'carol', '-g', 'staff']);
      console.log((await lab('up', '--no-control-plane')).trim());
    }, 600_000);

    afterAll(async () => {
      if (!dir) return;
      console.log((await cliOk(dir, ['lab', 'down', '--prefix', PREFIX])).trim());
      expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
      rmSync(dir, { recursive: true, force: true });
    }, 120_000);

    it('refuses the old profile by its serial alone, and admits the new one', async () => {
      // The first carol connects.
      await lab('connect', 'carol', '--server', SERVER);
      // The tunnel is up; the server's status file follows within a second or so.
      await waitUntil(
        'carol on the server',
        async () => (await statusOf(dir, PREFIX, 'carol')).server === SERVER,
        15_000,
      );
      const oldSerial = await serialOf('carol');
      const oldProfile = join(dir, 'old-carol.ovpn');
      copyFileSync(join(dir, '.lab', PREFIX, 'clients', 'carol', 'profile.ovpn'), oldProfile);
      await lab('disconnect', 'carol');
      // A CRL that does not list the old certificate: what the server would hold if the CRL
      // had lost the revocation, or were not checked at all.
      const staleCrl = readFileSync(serverFile('crl.pem'), 'utf8');

      // Deleted and added again under the same name: a new certificate, pinned alone.
      await cliOk(dir, ['user', 'delete', 'carol']);
      const fresh = JSON.parse(
        await cliOk(dir, ['user', 'add', 'carol', '-g', 'staff', '--json']),
      ) as UserJson;
      await lab('sync');
      const newSerial = await serialOf('carol');
      expect(newSerial).not.toBe(oldSerial);
      const pins = readFileSync(serverFile('ccd/carol'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('# cert-serial '));
      expect(pins).toEqual([`# cert-serial ${openvpnHex(newSerial)}`]);

      const goodCrl = readFileSync(serverFile('crl.pem'), 'utf8');
      replaceFile(serverFile('crl.pem'), staleCrl);
      try {
        const logBefore = serverLog().length;
        // The old profile, dialled from carol's client namespace, until the server answers.
        const r = await cli(
          dir,
          [
            'lab',
            'exec',
            '--prefix',
            PREFIX,
            'carol',
            '--',
            'timeout',
            '60',
            'openvpn',
            '--config',
            oldProfile,
            '--dev',
            'tun0',
            '--verb',
            '3',
          ],
          90_000,
        );
        const clientOut = `${r.stdout}${r.stderr}`;
        const serverSaid = serverLog().slice(logBefore);
        console.log(
          serverSaid
            .split('\n')
            .filter((l) => /client-connect|carol/.test(l))
            .join('\n'),
        );
        // TLS succeeded (the stale CRL let the old certificate through)…
        expect(serverSaid).toMatch(/VERIFY OK: depth=0, CN=carol/);
        // …and the hook refused it for its serial.
        expect(serverSaid).toContain(
          `client-connect: carol: certificate ${openvpnHex(oldSerial)} is not pinned`,
        );
        expect(clientOut).toMatch(/AUTH_FAILED/);
        expect(clientOut).not.toMatch(/Initialization Sequence Completed/);
      } finally {
        replaceFile(serverFile('crl.pem'), goodCrl);
      }

      // The new profile gets in, with the new user's addresses.
      await lab('connect', 'carol', '--server', SERVER);
      await waitUntil(
        'the new carol on the server',
        async () => (await statusOf(dir, PREFIX, 'carol')).server === SERVER,
        15_000,
      );
      const s = await statusOf(dir, PREFIX, 'carol');
      expect({ ipv4: s.ipv4, ipv6: s.ipv6 }).toEqual({ ipv4: fresh.ipv4, ipv6: fresh.ipv6 });
      await lab('disconnect', 'carol');
    }, 300_000);
  },
);
