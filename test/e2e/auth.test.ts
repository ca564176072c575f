/**
 * Connect-time TOTP against real OpenVPN 2.6 servers with the control plane (issue 16): a
 * certificate-only user connects as before with management-client-auth on; a client that cannot
 * be asked for a code is refused with the reason; a TOTP user's client (with a management
 * interface answering CR_TEXT, as OpenVPN GUI does) is refused for a wrong code and let in for
 * the right one; when its server dies it reconnects to the other server with its token, asked
 * for no code. Two servers in one internal site, prefix ovfa.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TOTP, URI } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import {
  buildOnce,
  cli,
  cliOk,
  followManagement,
  netnsNames,
  newFleetDir,
  requireLab,
  statusOf,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfa';
const runs = requireLab();
let dir = '';
let totpUri = '';
const clientPids: number[] = [];

const lab = (sub: string, ...args: string[]) =>
  cliOk(dir, ['lab', sub, '--prefix', PREFIX, ...args]);
const clientDir = (user: string) => join(dir, '.lab', PREFIX, 'clients', user);

/**
 * Runs dave's OpenVPN client with a management socket (and IV_SSO crtext, as a client with a
 * UI announces) and answers every CR_TEXT challenge with `answer()`. Resolves once the client
 * is started; `challenges` counts the questions.
 */
async function startTotpClient(
  remotes: string[],
  answer: () => string,
): Promise<{ challenges: () => number; log: () => string; stop: () => void }> {
  const d = clientDir('dave');
  const profile = readFileSync(join(d, 'profile.ovpn'), 'utf8')
    .replace(/^remote .*\n/gm, '')
    .replace(/^client\n/m, `client\n${remotes.map((r) => `remote ${r} 1194\n`).join('')}`);
  writeFileSync(join(d, 'totp.ovpn'), profile, { mode: 0o600 });
  const sock = join(d, 'mgmt.sock');
  const log = join(d, 'totp.log');
  const pidFile = join(d, 'totp.pid');
  rmSync(sock, { force: true });
  rmSync(log, { force: true });
  const r = await cli(dir, [
    'lab',
    'exec',
    '--prefix',
    PREFIX,
    'dave',
    '--',
    'openvpn',
    '--config',
    join(d, 'totp.ovpn'),
    '--dev',
    'tun0',
    '--verb',
    '4',
    '--setenv',
    'IV_SSO',
    'crtext',
    '--management',
    sock,
    'unix',
    // Held until our management client is attached: a CR_TEXT sent before would be missed.
    '--management-hold',
    '--daemon',
    'ovfa-totp',
    '--writepid',
    pidFile,
    '--log',
    log,
  ]);
  expect(r.code).toBe(0);
  const pid = await waitUntilValue(() => Number(readFileSync(pidFile, 'utf8').trim()) || undefined);
  clientPids.push(pid);
  await waitUntil('management socket', () => existsSync(sock), 10_000);
  let asked = 0;
  const conn = followManagement(sock, (line, send) => {
    if (line.startsWith('>INFOMSG:CR_TEXT:')) {
      asked++;
      send(`cr-response ${Buffer.from(answer()).toString('base64')}`);
    }
  });
  return {
    challenges: () => asked,
    log: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
    stop: () => {
      conn.destroy();
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone already
      }
    },
  };
}

async function waitUntilValue<T>(fn: () => T | undefined, ms = 10_000): Promise<T> {
  let value: T | undefined;
  await waitUntil(
    'value',
    () => {
      try {
        value = fn();
      } catch {
        value = undefined;
      }
      return value !== undefined;
    },
    ms,
  );
  return value as T;
}

const codeNow = () => (URI.parse(totpUri) as TOTP).generate();

describe.runIf(runs)('TOTP at connect, and roaming with the token', () => {
  beforeAll(async () => {
    await buildOnce();
    dir = await newFleetDir();
    const file = join(dir, 'fleet.yaml');
    const doc = parseDocument(readFileSync(file, 'utf8'));
    doc.set(
      'sites',
      doc.createNode([
        {
          name: 'dc3',
          servers: [
            {
              name: 'vpn31',
              address: '192.0.2.31',
              backbone: '10.255.3.2/30',
              routerId: '10.255.3.2',
            },
            {
              name: 'vpn32',
              address: '192.0.2.32',
              backbone: '10.255.3.6/30',
              routerId: '10.255.3.6',
            },
          ],
        },
      ]),
    );
    doc.set('auth', doc.createNode({ totp: { groups: ['dba'] }, token: { lifetime: '1h' } }));
    writeFileSync(file, doc.toString());
    await cliOk(dir, ['validate']);
    await cliOk(dir, ['user', 'add', 'carol', '-g', 'staff']);
    await cliOk(dir, ['user', 'add', 'dave', '-g', 'dba']);
    totpUri = (
      JSON.parse(await cliOk(dir, ['user', 'totp', 'enroll', 'dave', '--json'])) as { uri: string }
    ).uri;
    console.log((await lab('up')).trim());
  }, 600_000);

  afterAll(async () => {
    for (const pid of clientPids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    if (!dir) return;
    console.log((await cliOk(dir, ['lab', 'down', '--prefix', PREFIX])).trim());
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('lets a certificate-only user in with client-auth on', async () => {
    const conf = readFileSync(join(dir, '.lab', PREFIX, 'servers', 'vpn31', 'server.conf'), 'utf8');
    expect(conf).toContain('management-client-auth');
    await lab('connect', 'carol', '--server', 'vpn31');
    await waitUntil(
      'carol on vpn31',
      async () => (await statusOf(dir, PREFIX, 'carol')).server === 'vpn31',
      15_000,
    );
  }, 120_000);

  it('refuses a TOTP user whose client cannot be asked, saying why', async () => {
    const r = await cli(dir, ['lab', 'connect', '--prefix', PREFIX, 'dave', '--server', 'vpn31']);
    expect(r.code).not.toBe(0);
    const log = readFileSync(join(clientDir('dave'), 'openvpn.log'), 'utf8');
    expect(log).toMatch(/AUTH_FAILED.*needs a TOTP code/);
  }, 120_000);

  it('refuses a wrong code with its reason, admits the right one, and roams with the token', async () => {
    const wrong = await startTotpClient(['192.0.2.31'], () =>
      codeNow() === '000000' ? '111111' : '000000',
    );
    await waitUntil('refused', () => /AUTH_FAILED/.test(wrong.log()), 30_000);
    expect(wrong.log()).toMatch(/AUTH_FAILED.*wrong code/);
    expect(wrong.challenges()).toBe(1);
    wrong.stop();

    const right = await startTotpClient(['192.0.2.31', '192.0.2.32'], codeNow);
    await waitUntil(
      'dave on vpn31',
      async () => (await statusOf(dir, PREFIX, 'dave')).server === 'vpn31',
      30_000,
    );
    const established = () => right.log().match(/Initialization Sequence Completed/g)?.length ?? 0;
    await waitUntil("dave's tunnel", () => established() === 1, 30_000);
    expect(right.challenges()).toBe(1);

    await lab('stop', 'openvpn', 'vpn31');
    // What the client and the new server said, when the move does not happen.
    const dump = () => {
      const tail = (text: string) => text.split('\n').slice(-40).join('\n');
      const server = join(dir, '.lab', PREFIX, 'servers', 'vpn32', 'run', 'openvpn.log');
      console.log(`client:\n${tail(right.log())}\nvpn32:\n${tail(readFileSync(server, 'utf8'))}`);
      console.log(`challenges: ${right.challenges()}`);
    };
    try {
      await waitUntil(
        'dave on vpn32',
        async () => (await statusOf(dir, PREFIX, 'dave')).server === 'vpn32',
        90_000,
      );
      await waitUntil("dave's tunnel again", () => established() === 2, 90_000);
    } catch (err) {
      dump();
      throw err;
    }
    // The token let dave in: no second question.
    expect(right.challenges()).toBe(1);
    right.stop();
  }, 240_000);
});
