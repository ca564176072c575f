import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../sys/time.js';
import {
  type ClientAuthRequest,
  ManagementClient,
  ManagementError,
  managementArg,
  parseLogLine,
} from './management.js';

/** What OpenVPN 2.6.14 writes for `status 3` (captured from the lab), with our two clients. */
const STATUS_HEAD = [
  'TITLE\tOpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]',
  'TIME\t2026-11-26 07:34:06\t1795678446',
  'HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher',
  'CLIENT_LIST\talice\t198.51.100.100:54054\t10.200.0.2\tfd7a:6ca6:e640:8000::2\t2574\t2626\t2026-11-26 07:33:48\t1795678428\tUNDEF\t0\t0\tAES-256-GCM',
];
const STATUS_TAIL = [
  'CLIENT_LIST\tbob\t198.51.100.101:60859\t10.200.0.3\t\t2372\t2539\t2026-11-26 07:34:00\t1795678440\tUNDEF\t12\t1\tAES-256-GCM',
  'HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)',
  'ROUTING_TABLE\tfd7a:6ca6:e640:8000::2\talice\t198.51.100.100:54054\t2026-11-26 07:33:48\t1795678428',
  'ROUTING_TABLE\t10.200.0.2\talice\t198.51.100.100:54054\t2026-11-26 07:33:48\t1795678428',
  'ROUTING_TABLE\t10.200.0.3\tbob\t198.51.100.101:60859\t2026-11-26 07:34:00\t1795678440',
  'GLOBAL_STATS\tMax bcast/mcast queue length\t0',
  'GLOBAL_STATS\tdco_enabled\t0',
  'END',
];
const ESTABLISHED = [
  '>CLIENT:ESTABLISHED,7',
  '>CLIENT:ENV,n_clients=3',
  '>CLIENT:ENV,script_type=learn-address',
  '>CLIENT:ENV,ifconfig_pool_remote_ip=10.200.0.4',
  '>CLIENT:ENV,common_name=carol',
  '>CLIENT:ENV,tls_id_1=CN=acme VPN CA, O=a=b',
  '>CLIENT:ENV,END',
];
const crlf = (lines: string[]) => lines.map((l) => `${l}\r\n`).join('');

const ALICE = {
  user: 'alice',
  realAddress: '198.51.100.100:54054',
  ipv4: '10.200.0.2',
  ipv6: 'fd7a:6ca6:e640:8000::2',
  since: new Date(1795678428 * 1000).toISOString(),
  bytesIn: 2574,
  bytesOut: 2626,
  clientId: 0,
};
const BOB = {
  user: 'bob',
  realAddress: '198.51.100.101:60859',
  ipv4: '10.200.0.3',
  since: new Date(1795678440 * 1000).toISOString(),
  bytesIn: 2372,
  bytesOut: 2539,
  clientId: 12,
};

type Handler = (command: string, sock: Socket) => void;

/** A management interface that speaks like OpenVPN's: prompt, password, one line per command. */
class FakeOpenvpn {
  server?: Server;
  sockets: Socket[] = [];
  commands: string[] = [];
  logins = 0;
  handler: Handler = (cmd, sock) => {
    if (cmd === 'status 3') sock.write(crlf([...STATUS_HEAD, ...STATUS_TAIL]));
    else sock.write("ERROR: unknown command, enter 'help' for more options\r\n");
  };
  /** Send no prompt at all: what a second client sees while another one holds the socket. */
  silent = false;

  constructor(
    readonly path: string,
    readonly password: string,
  ) {}

  listen(): Promise<void> {
    this.server = createServer((sock) => {
      this.sockets.push(sock);
      sock.on('error', () => undefined);
      if (this.silent) return;
      let authed = false;
      let buf = '';
      sock.setEncoding('utf8');
      sock.write('ENTER PASSWORD:');
      sock.on('data', (d: string) => {
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (!authed) {
            if (line === this.password) {
              authed = true;
              this.logins++;
              sock.write(
                "SUCCESS: password is correct\r\n>INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n",
              );
            } else sock.write('ENTER PASSWORD:');
            continue;
          }
          this.commands.push(line);
          this.handler(line, sock);
        }
      });
    });
    const server = this.server;
    return new Promise((resolve) => server.listen(this.path, resolve));
  }

  /** Like OpenVPN exiting: the connection drops and the socket file goes away. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets = [];
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Polls fn every 5 ms until it holds (three seconds at most). */
const until = (what: string, fn: () => boolean) => waitFor(what, fn, 3000, 5);

let dir = '';
let fake: FakeOpenvpn;
let client: ManagementClient;
let logLines: string[];

function newClient(extra: Partial<ConstructorParameters<typeof ManagementClient>[0]> = {}) {
  client = new ManagementClient({
    socketPath: join(dir, 'management.sock'),
    passwordFile: join(dir, 'management.pw'),
    log: (l) => logLines.push(l),
    reconnectMinMs: 20,
    reconnectMaxMs: 100,
    ...extra,
  });
  return client;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ovpn-fleet-mgmt-'));
  writeFileSync(join(dir, 'management.pw'), 's3cret-Pw\n', { mode: 0o600 });
  fake = new FakeOpenvpn(join(dir, 'management.sock'), 's3cret-Pw');
  await fake.listen();
  logLines = [];
});

afterEach(async () => {
  client?.close();
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('parseLogLine', () => {
  it('splits off the client a line is about', () => {
    expect(
      parseLogLine('1795685241,,bob/[AF_INET6]2001:db8::7:1194 Delayed exit in 5 seconds'),
    ).toEqual({
      text: 'Delayed exit in 5 seconds',
      commonName: 'bob',
      realAddress: '[AF_INET6]2001:db8::7:1194',
    });
    expect(parseLogLine('1795685244,N,read UDPv4 [ECONNREFUSED]: refused')).toEqual({
      text: 'read UDPv4 [ECONNREFUSED]: refused',
    });
    expect(parseLogLine('1795685244,,TCP/UDP: Closing socket')).toEqual({
      text: 'TCP/UDP: Closing socket',
    });
    expect(parseLogLine('INFO:hello')).toBeUndefined();
  });
});

describe('ManagementClient', () => {
  it('logs in with the first line of the password file', async () => {
    newClient();
    expect(client.connected).toBe(false);
    await client.connect();
    expect(client.connected).toBe(true);
    expect(fake.logins).toBe(1);
  });

  it('refuses a wrong password with a typed error', async () => {
    writeFileSync(join(dir, 'management.pw'), 'wrong\n');
    newClient();
    const err = await client.connect().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagementError);
    expect((err as Error).message).toMatch(/wrong password/);
    expect(client.connected).toBe(false);
  });

  it('gives up when the server never prompts (another client holds the socket)', async () => {
    fake.silent = true;
    // A connect that waited on for ever would fail this test by its timeout.
    newClient({ connectTimeoutMs: 200 });
    await expect(client.connect()).rejects.toThrow(/no answer from OpenVPN/);
    expect(client.connected).toBe(false);
    expect(fake.logins).toBe(0);
  });

  it('reports both sessions from status 3, an empty IPv6 as undefined', async () => {
    newClient();
    await client.connect();
    const sessions = await client.status();
    expect(fake.commands).toEqual(['status 3']);
    expect(sessions).toEqual([ALICE, BOB]);
    expect('ipv6' in sessions[1]).toBe(false);
  });

  it('routes a notification that arrives in the middle of a status answer', async () => {
    fake.handler = (cmd, sock) => {
      if (cmd !== 'status 3') return;
      // Byte by byte: line ends, notifications and the answer arrive in arbitrary pieces.
      const text = crlf([...STATUS_HEAD, ...ESTABLISHED, ...STATUS_TAIL]);
      const step = (i: number) => {
        if (i >= text.length || sock.destroyed) return;
        sock.write(text.slice(i, i + 7));
        setImmediate(() => step(i + 7));
      };
      step(0);
    };
    newClient();
    await client.connect();
    const events: [number, string, Record<string, string>][] = [];
    client.on('client-established', (cid, cn, env) => events.push([cid, cn, env]));
    const sessions = await client.status();
    expect(sessions).toEqual([ALICE, BOB]);
    expect(events).toHaveLength(1);
    expect(events[0][0]).toBe(7);
    expect(events[0][1]).toBe('carol');
    expect(events[0][2].ifconfig_pool_remote_ip).toBe('10.200.0.4');
    // A value keeps its own commas and equals signs.
    expect(events[0][2].tls_id_1).toBe('CN=acme VPN CA, O=a=b');
  });

  it('emits client-disconnect and other notifications outside of any command', async () => {
    newClient();
    await client.connect();
    const gone: [number, string][] = [];
    const notes: string[] = [];
    client.on('client-disconnect', (cid, cn) => gone.push([cid, cn]));
    client.on('notification', (n) => notes.push(n));
    fake.sockets[0].write(
      crlf([
        '>NOTIFY:info,remote-exit,EXIT',
        '>CLIENT:DISCONNECT,4',
        '>CLIENT:ENV,common_name=dave',
        '>CLIENT:ENV,END',
      ]),
    );
    await until('client-disconnect', () => gone.length === 1);
    expect(gone).toEqual([[4, 'dave']]);
    expect(notes).toEqual(['NOTIFY:info,remote-exit,EXIT']);
  });

  it('hands over held keys (CONNECT, REAUTH) and CR_RESPONSE answers with their key ids', async () => {
    newClient();
    await client.connect();
    const requests: ClientAuthRequest[] = [];
    const answers: [number, number, string][] = [];
    client.clientAuth.onRequest((r) => requests.push(r));
    client.clientAuth.onResponse((cid, kid, b64) => answers.push([cid, kid, b64]));
    fake.sockets[0].write(
      crlf([
        '>CLIENT:CONNECT,5,1',
        '>CLIENT:ENV,common_name=alice',
        '>CLIENT:ENV,IV_SSO=webauth,crtext',
        '>CLIENT:ENV,session_state=Initial',
        '>CLIENT:ENV,END',
        '>CLIENT:REAUTH,5,2',
        '>CLIENT:ENV,common_name=alice',
        '>CLIENT:ENV,session_state=Authenticated',
        '>CLIENT:ENV,END',
        '>CLIENT:CR_RESPONSE,5,1,MTIzNDU2',
        '>CLIENT:ENV,common_name=alice',
        '>CLIENT:ENV,END',
      ]),
    );
    await until('three notifications', () => requests.length === 2 && answers.length === 1);
    expect(requests).toEqual([
      {
        clientId: 5,
        keyId: 1,
        reauth: false,
        env: { common_name: 'alice', IV_SSO: 'webauth,crtext', session_state: 'Initial' },
      },
      {
        clientId: 5,
        keyId: 2,
        reauth: true,
        env: { common_name: 'alice', session_state: 'Authenticated' },
      },
    ]);
    expect(answers).toEqual([[5, 1, 'MTIzNDU2']]);
  });

  it('answers held keys: client-auth-nt, client-deny and client-pending-auth, quoted', async () => {
    fake.handler = (cmd, sock) => {
      const name = cmd.split(' ')[0];
      sock.write(`SUCCESS: ${name} command succeeded\r\n`);
    };
    newClient();
    await client.connect();
    await client.authorize(5, 1);
    await client.deny(5, 1, 'alice: TOTP refused', 'wrong "code"\nagain\\');
    await client.pendingAuth(5, 1, 'CR_TEXT:R,E:Enter your code', 180);
    expect(fake.commands).toEqual([
      'client-auth-nt 5 1',
      'client-deny 5 1 "alice: TOTP refused" "wrong \\"code\\" again\\\\"',
      'client-pending-auth 5 1 "CR_TEXT:R,E:Enter your code" 180',
    ]);
    expect(managementArg('a\tb')).toBe('"a b"');
    await expect(client.authorize(-1, 0)).rejects.toThrow(ManagementError);
  });

  it('tells a remote exit and reads who is leaving from the log history', async () => {
    const t = Math.floor(Date.now() / 1000);
    // What OpenVPN 2.6.14 logged when alice's client exited with explicit-exit-notify; bob left
    // a minute ago and is long gone.
    const history = [
      `${t - 60},N,bob/198.51.100.101:60859 CC-EEN exit message received by peer`,
      `${t - 1},,alice/198.51.100.100:44510 Protocol options: explicit-exit-notify 2, protocol-flags cc-exit`,
      `${t},N,alice/198.51.100.100:44510 CC-EEN exit message received by peer`,
      `${t},,alice/198.51.100.100:44510 Delayed exit in 5 seconds`,
      `${t},N,read UDPv4 [ECONNREFUSED]: Connection refused (fd=6,code=111)`,
    ];
    fake.handler = (cmd, sock) => {
      if (cmd === 'log 100') sock.write(crlf([...history, 'END']));
      else sock.write("ERROR: unknown command, enter 'help' for more options\r\n");
    };
    newClient();
    await client.connect();
    let exits = 0;
    client.on('remote-exit', () => exits++);
    fake.sockets[0].write(crlf(['>NOTIFY:info,remote-exit,EXIT']));
    await until('remote-exit', () => exits === 1);
    expect(await client.exitingClients()).toEqual([
      { commonName: 'alice', realAddress: '198.51.100.100:44510' },
    ]);
    expect(await client.exitingClients(120)).toEqual([
      { commonName: 'alice', realAddress: '198.51.100.100:44510' },
      { commonName: 'bob', realAddress: '198.51.100.101:60859' },
    ]);
  });

  it('kills a session, telling it to move on to its next remote', async () => {
    fake.handler = (cmd, sock) => {
      sock.write(
        /^client-kill 3( RESTART,\[N\])?$/.test(cmd)
          ? 'SUCCESS: client-kill command succeeded\r\n'
          : 'ERROR: client-kill command failed\r\n',
      );
    };
    newClient();
    await client.connect();
    await client.kill(3, { restartToNext: true });
    await client.kill(3);
    expect(fake.commands).toEqual(['client-kill 3 RESTART,[N]', 'client-kill 3']);
  });

  it('rejects a failed kill with a typed error and stays usable', async () => {
    fake.handler = (cmd, sock) => {
      if (cmd.startsWith('client-kill')) sock.write('ERROR: client-kill command failed\r\n');
      else sock.write(crlf([...STATUS_HEAD, ...STATUS_TAIL]));
    };
    newClient();
    await client.connect();
    const err = await client.kill(99).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagementError);
    expect((err as ManagementError).command).toBe('client-kill 99');
    expect((err as Error).message).toMatch(/client-kill command failed/);
    expect(await client.status()).toHaveLength(2);
    await expect(client.kill(-1)).rejects.toBeInstanceOf(ManagementError);
    expect(fake.commands).toEqual(['client-kill 99', 'status 3']);
  });

  it('sends one command at a time, each answer to its own caller', async () => {
    const waiting: { cmd: string; sock: Socket }[] = [];
    fake.handler = (cmd, sock) => waiting.push({ cmd, sock });
    newClient();
    await client.connect();
    const status = client.status();
    const kill = client.kill(12);
    await until('first command', () => waiting.length === 1);
    // Nothing signals a write that did not happen: give a wrongly sent kill time to arrive.
    await sleep(50);
    // The kill is not on the wire before the status answer is complete.
    expect(fake.commands).toEqual(['status 3']);
    waiting[0].sock.write(crlf([...STATUS_HEAD, ...STATUS_TAIL]));
    await until('second command', () => waiting.length === 2);
    expect(waiting[1].cmd).toBe('client-kill 12');
    waiting[1].sock.write('SUCCESS: client-kill command succeeded\r\n');
    expect(await status).toEqual([ALICE, BOB]);
    await expect(kill).resolves.toBeUndefined();
  });

  it('fails a pending command when the connection drops, then reconnects by itself', async () => {
    fake.handler = (_cmd, sock) => {
      if (fake.logins === 1) sock.destroy();
      else sock.write(crlf([...STATUS_HEAD, ...STATUS_TAIL]));
    };
    newClient();
    await client.connect();
    const closes: boolean[] = [];
    let readies = 0;
    client.on('close', (reconnecting) => closes.push(reconnecting));
    client.on('ready', () => readies++);
    const err = await client.status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagementError);
    expect((err as Error).message).toMatch(/connection lost/);
    expect(closes).toEqual([true]);
    await until('reconnected', () => client.connected);
    expect(readies).toBe(1);
    expect(fake.logins).toBe(2);
    expect(await client.status()).toEqual([ALICE, BOB]);
  });

  it('waits out an OpenVPN restart (socket gone for a while) with backoff', async () => {
    newClient();
    await client.connect();
    await fake.stop();
    rmSync(join(dir, 'management.sock'), { force: true });
    await until('disconnected', () => !client.connected);
    await expect(client.status()).rejects.toThrow(/not connected/);
    // It keeps trying, and says why each try failed.
    await until('a failed reconnect logged', () =>
      logLines.some((l) => /ENOENT|ECONNREFUSED/.test(l)),
    );
    // The restarted OpenVPN may have a new password: it is read again on every login.
    writeFileSync(join(dir, 'management.pw'), 'rotated\n');
    fake = new FakeOpenvpn(join(dir, 'management.sock'), 'rotated');
    await fake.listen();
    await until('reconnected', () => client.connected);
    expect(await client.status()).toHaveLength(2);
  });

  it('a command that gets no answer times out and the connection starts afresh', async () => {
    fake.handler = (_cmd, sock) => {
      if (fake.logins > 1) sock.write(crlf([...STATUS_HEAD, ...STATUS_TAIL]));
    };
    newClient({ commandTimeoutMs: 100 });
    await client.connect();
    await expect(client.status()).rejects.toThrow(/timed out/);
    await until('reconnected', () => fake.logins === 2 && client.connected);
    expect(await client.status()).toHaveLength(2);
  });

  it('close() stops for good: no reconnect, commands refused', async () => {
    newClient();
    await client.connect();
    const closes: boolean[] = [];
    client.on('close', (r) => closes.push(r));
    client.close();
    expect(client.connected).toBe(false);
    expect(closes).toEqual([false]);
    await expect(client.status()).rejects.toBeInstanceOf(ManagementError);
    // Nothing signals a reconnect that did not happen: wait longer than its backoff (20-100 ms).
    await sleep(150);
    expect(fake.logins).toBe(1);
  });
});

describe('commands', () => {
  it('refuses a line OpenVPN would cut (its 1024-byte command buffer) before sending it', async () => {
    const c = newClient();
    await expect(c.send(`client-deny 1 0 "${'x'.repeat(1100)}"`, false)).rejects.toThrow(
      /command longer than 1023 bytes/,
    );
  });
});
