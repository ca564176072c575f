/**
 * What one stolen agent token can make the controller do (issue 11): a fleet of 10,000 users,
 * the controller as its own process on loopback, and an attacker that opens 500 long-polls with
 * one server's token, then an admin change wakes them. Printed: what the polls received, and the
 * controller's peak RSS. Then 300 clients trickle request bodies in: how long until the
 * controller has closed them all, and whether its health endpoint answers meanwhile.
 *
 *   npm run bench:flood [-- USERS]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { initFleet } from '../src/service/open.js';
import { Timeout } from '../src/errors.js';
import { sleep, waitFor } from '../src/sys/time.js';

const USERS = Number(process.argv[2] ?? 10_000);
const POLLS = 500;
const SLOW_CLIENTS = 300;
const BIN = resolve(import.meta.dirname, '..', 'bin', 'ovpn-fleet.js');

interface Answer {
  status: number;
  bytes: number;
  text?: string;
}

function get(port: number, path: string, token: string, keepText = false): Promise<Answer> {
  return new Promise((done, fail) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        agent: false,
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        let bytes = 0;
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          if (keepText) chunks.push(d);
        });
        res.on('end', () =>
          done({
            status: res.statusCode ?? 0,
            bytes,
            ...(keepText ? { text: Buffer.concat(chunks).toString('utf8') } : {}),
          }),
        );
      },
    );
    req.on('error', fail);
    req.end();
  });
}

/** A port nobody listens on now (the controller's --listen takes no port 0). */
function freePort(): Promise<number> {
  return new Promise((done) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-flood-'));
  const fleet = await initFleet(dir);
  const lines = ['name,groups', ...Array.from({ length: USERS }, (_, i) => `user${i},staff`)];
  await fleet.importCsv(lines.join('\n'), 'bench.csv');
  const agentToken = await fleet.agentToken('vpn11');
  await fleet.close();

  const free = await freePort();
  const child = spawn(
    process.execPath,
    [BIN, '--dir', dir, 'controller', '--listen', `127.0.0.1:${free}`],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    const port = await new Promise<number>((done, fail) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
        if (m) done(Number(m[1]));
      });
      child.once('exit', (code) => fail(new Error(`controller exited ${code}: ${out}`)));
    });
    const adminToken = readFileSync(join(dir, 'controller.token'), 'utf8').trim();
    process.stdout.write(`ovpn-fleet flood benchmark: ${USERS} users, node ${process.version}\n`);

    const first = await get(port, '/v1/agent/poll?known=', agentToken, true);
    const { token } = JSON.parse(first.text ?? '{}') as { token: string };
    const rssBefore = peakRssMiB(child.pid!);
    const started = performance.now();
    const polls = Array.from({ length: POLLS }, () =>
      get(port, `/v1/agent/poll?known=${token}`, agentToken),
    );
    // Let them all arrive, then make a change that wakes whoever still waits.
    await sleep(2000);
    await new Promise<void>((done) => {
      const body = JSON.stringify({ name: 'newcomer' });
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1/users',
          headers: {
            authorization: `Bearer ${adminToken}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => res.resume().on('end', () => done()),
      );
      req.end(body);
    });
    const answers = await Promise.all(polls);
    const took = performance.now() - started;
    const by = (s: number) => answers.filter((a) => a.status === s).length;
    const sent = answers.reduce((n, a) => n + a.bytes, 0);
    process.stdout.write(
      `${POLLS} polls with one token: ${by(200)} got the directive, ${by(204)} were answered 204 ` +
        `(one waiting poll per server); bytes sent ${(sent / 1048576).toFixed(1)} MiB ` +
        `(directive ${(first.bytes / 1048576).toFixed(1)} MiB); ${(took / 1000).toFixed(1)} s\n`,
    );
    process.stdout.write(
      `controller peak RSS: ${rssBefore.toFixed(0)} MiB before the polls, ${peakRssMiB(child.pid!).toFixed(0)} MiB after\n`,
    );

    // Slow bodies: each client sends headers and one byte of body a second, for ever.
    const slowStart = performance.now();
    const closedAt: number[] = [];
    const drips: NodeJS.Timeout[] = [];
    for (let i = 0; i < SLOW_CLIENTS; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.write(
        `POST /v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{`,
      );
      const t = setInterval(() => s.write(' '), 1000);
      drips.push(t);
      s.once('close', () => {
        clearInterval(t);
        closedAt.push(performance.now() - slowStart);
      });
    }
    await sleep(1000);
    const health = await get(port, '/v1/health', '').catch(() => ({ status: 0, bytes: 0 }));
    // Those still open after a minute are reported as such, not as a failure.
    await waitFor(
      'the slow clients to be closed',
      () => closedAt.length >= SLOW_CLIENTS,
      60_000,
    ).catch((err: unknown) => {
      if (!(err instanceof Timeout)) throw err;
    });
    drips.forEach(clearInterval);
    const last = closedAt.length
      ? `the last after ${(Math.max(...closedAt) / 1000).toFixed(2)} s`
      : 'none within 60 s';
    process.stdout.write(
      `${SLOW_CLIENTS} slow bodies with a wrong token: ${closedAt.length} closed by the controller, ` +
        `${last}; /v1/health meanwhile: ${health.status}\n`,
    );
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
