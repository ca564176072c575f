/**
 * The audit sink: to a temp file (0600, symlink refused, reopened after a rotation) and to a
 * stand-in for `logger` (a shell appending its stdin to a file), restarted by pid when it dies;
 * entries written by another process are shipped too, and a restart neither repeats nor skips.
 */
import {
  existsSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../sys/time.js';
import { buildController } from './app.js';
import { AuditSink, type AuditSinkOptions, defaultSyslogArgv } from './audit-sink.js';
import { type ControllerFleet, FakeTimers, controllerFleet } from './testing.js';

let t: ControllerFleet;
let timers: FakeTimers;
let logged: string[];
const sinks: AuditSink[] = [];

beforeEach(async () => {
  t = await controllerFleet();
  timers = new FakeTimers(t.clock);
  logged = [];
});
afterEach(async () => {
  for (const s of sinks.splice(0)) await s.stop();
  await t.cleanup();
});

function sink(opts: AuditSinkOptions): AuditSink {
  const s = new AuditSink(t.fleet.store, timers, (l) => logged.push(l), opts);
  sinks.push(s);
  return s;
}

/** An entry as the CLI writes it: through another connection to the store. */
async function cliEntry(subject: string) {
  await (
    await t.other()
  ).store.audit({
    at: t.clock.now().toISOString(),
    actor: 'cli:root',
    action: 'test.event',
    subject,
  });
}

const ids = async () => (await t.fleet.store.auditSince(0, 10_000)).map((e) => e.id);
const linesOf = (path: string) =>
  existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { id: number; subject: string })
    : [];

describe('audit sink to a file', () => {
  it('appends every entry once, including those other processes write, across restarts', async () => {
    const path = join(t.dir, 'audit.jsonl');
    const first = sink({ file: path });
    await first.start();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    await cliEntry('from-the-cli');
    const at = t.clock.now().toISOString();
    await t.fleet.store.audit({
      at,
      actor: 'api:admin',
      action: 'user.revoke',
      subject: 'ann',
      detail: { why: 'line\nbreak' },
    });
    // The interval ships them.
    await timers.advance(1000);
    await waitFor(
      'the first entries',
      async () => linesOf(path).length === (await ids()).length,
      5000,
      10,
    );
    const shipped = linesOf(path);
    expect(shipped.map((e) => e.id)).toEqual(await ids());
    expect(shipped.at(-1)).toEqual({
      id: (await ids()).at(-1),
      at,
      actor: 'api:admin',
      action: 'user.revoke',
      subject: 'ann',
      detail: { why: 'line\nbreak' },
    });
    await first.stop();

    // Written while no controller ran: shipped by the next one, nothing shipped twice.
    await cliEntry('while-stopped');
    const second = sink({ file: path });
    await second.start();
    await second.pump();
    expect(linesOf(path).map((e) => e.id)).toEqual(await ids());
    expect(linesOf(path).at(-1)?.subject).toBe('while-stopped');
  });

  it('refuses a symlink and never writes through it', async () => {
    const target = join(t.dir, 'target');
    writeFileSync(target, 'untouched\n');
    const link = join(t.dir, 'audit.jsonl');
    symlinkSync(target, link);
    await expect(sink({ file: link }).start()).rejects.toThrow(`${link} is a symlink: refused`);
    expect(readFileSync(target, 'utf8')).toBe('untouched\n');
    await expect(sink({ file: t.dir }).start()).rejects.toThrow(/not a regular file|EISDIR/);
  });

  it('writes to a new file after logrotate moved the old one and sent SIGHUP', async () => {
    const path = join(t.dir, 'audit.jsonl');
    const s = sink({ file: path });
    await s.start();
    await cliEntry('before-rotation');
    await s.pump();
    renameSync(path, `${path}.1`);
    s.reopen();
    await cliEntry('after-rotation');
    await s.pump();
    expect(linesOf(`${path}.1`).at(-1)?.subject).toBe('before-rotation');
    expect(linesOf(path).map((e) => e.subject)).toEqual(['after-rotation']);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('goes on from the newest entry when the store went back in time (a restored backup)', async () => {
    await t.fleet.store.setSetting('audit.sink.file.lastId', '1000000');
    const path = join(t.dir, 'audit.jsonl');
    const s = sink({ file: path });
    await s.start();
    expect(logged.join('\n')).toMatch(/beyond the newest in the store/);
    await cliEntry('after-restore');
    await s.pump();
    expect(linesOf(path).map((e) => e.subject)).toEqual(['after-restore']);
  });
});

describe('audit sink to syslog', () => {
  it('feeds one line per entry to a long-running command and starts it again when it dies', async () => {
    const out = join(t.dir, 'syslog.out');
    // A stand-in for logger: sh replaces itself with cat, so the pid is the reader's.
    const argv = ['sh', '-c', 'exec cat >> "$0"', out];
    const s = sink({ syslog: true, syslogArgv: argv, restartMs: 500 });
    await s.start();
    const firstPid = s.syslogPid;
    expect(firstPid).toBeGreaterThan(0);
    await cliEntry('one');
    await s.pump();
    await waitFor(
      'the first lines',
      async () => linesOf(out).length === (await ids()).length,
      5000,
      10,
    );

    process.kill(firstPid!, 'SIGKILL');
    await waitFor('the sink to notice', () => logged.some((l) => /ended/.test(l)), 5000, 10);
    expect(logged.join('\n')).toMatch(
      /audit syslog: sh ended \(killed by SIGKILL\); starting it again in 0.5 s/,
    );
    // While it is down nothing is recorded as shipped.
    await cliEntry('two');
    await s.pump();
    expect(await t.fleet.store.getSetting('audit.sink.syslog.lastId')).toBe(
      String((await ids()).at(-2)),
    );
    await timers.advance(500);
    expect(s.syslogPid).toBeGreaterThan(0);
    expect(s.syslogPid).not.toBe(firstPid);
    await s.pump();
    await waitFor(
      'the line written after the restart',
      async () => linesOf(out).length === (await ids()).length,
      5000,
      10,
    );
    expect(linesOf(out).map((e) => e.id)).toEqual(await ids());
  });

  it('keeps the file going when syslog cannot start, and says why', async () => {
    const path = join(t.dir, 'audit.jsonl');
    const s = sink({ file: path, syslog: true, syslogArgv: ['/nonexistent/logger'] });
    await s.start();
    await waitFor('the failed start', () => logged.length > 0, 5000, 10);
    await cliEntry('x');
    await s.pump();
    await s.pump();
    expect(linesOf(path).map((e) => e.id)).toEqual(await ids());
    expect(logged.filter((l) => /nonexistent/.test(l))).toHaveLength(1);
    expect(await t.fleet.store.getSetting('audit.sink.syslog.lastId')).toBeUndefined();
  });

  it('runs util-linux logger tagged ovpn-fleet with our pid, authpriv.info, long lines whole', () => {
    expect(defaultSyslogArgv(4242)).toEqual([
      'logger',
      '-t',
      'ovpn-fleet',
      '--id=4242',
      '-p',
      'authpriv.info',
      '--size',
      '65536',
    ]);
  });
});

describe('the controller with an audit sink', () => {
  it('ships the API’s own entries and stops the sink with the controller', async () => {
    const path = join(t.dir, 'audit.jsonl');
    const ctl = await buildController({
      fleetDir: t.dir,
      baseDir: (server) => `/etc/ovpn-fleet/${server}`,
      adminToken: 'admin-token',
      serverToken: (s) => `agent-token-${s}`,
      clock: t.clock,
      timers,
      log: () => {},
      auditSink: { file: path },
    });
    try {
      const r = await ctl.app.inject({
        method: 'POST',
        url: '/v1/servers/vpn11/drain',
        headers: { authorization: 'Bearer admin-token' },
      });
      expect(r.statusCode).toBe(200);
    } finally {
      await ctl.close();
    }
    // close() shipped what was left.
    expect(linesOf(path).at(-1)).toMatchObject({ action: 'server.drain', subject: 'vpn11' });
    expect(linesOf(path).map((e) => e.id)).toEqual(await ids());
  });

  it('refuses to start on an audit log path it cannot use', async () => {
    const link = join(t.dir, 'audit.jsonl');
    symlinkSync('/etc/passwd', link);
    await expect(
      buildController({
        fleetDir: t.dir,
        baseDir: () => '/etc/ovpn-fleet',
        adminToken: 'admin-token',
        serverToken: (s) => `agent-token-${s}`,
        clock: t.clock,
        timers,
        log: () => {},
        auditSink: { file: link },
      }),
    ).rejects.toThrow(/is a symlink: refused/);
  });
});
