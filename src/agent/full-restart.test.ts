/**
 * Turning `auth` on or off must take effect: OpenVPN keeps management-client-auth from its first
 * start across a SIGHUP, so the agent restarts it fully then (a new process), and meanwhile
 * kills clients a non-asking OpenVPN let in on their certificate alone.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { Directive } from '../api/index.js';
import { InputError } from '../errors.js';
import type { Agent } from './agent.js';
import { parseOpenvpnStartArgv } from './openvpn-start.js';
import { FakeHost, agentOn, handleWhileTimePasses, settle } from './testing.js';

const OFF = 'a'.repeat(64);
const ON = 'b'.repeat(64);
const ON_SLOWER = 'c'.repeat(64);
const AUTH_JSON = JSON.stringify({ sso: false, totpUsers: ['bob'], pendingSeconds: 90 });

/** A bundle with `auth` (management-client-auth + auth.json) or without. */
function directive(digest: string, auth: boolean, more: Partial<Directive> = {}): Directive {
  const conf = `port 1194\nkeepalive ${digest === ON_SLOWER ? 20 : 10} 60\n${
    auth ? 'management-client-auth\nauth-user-pass-optional\n' : ''
  }`;
  return {
    token: `${digest}-${JSON.stringify(more)}`,
    bundle: {
      digest,
      files: [
        { path: 'server.conf', content: conf, mode: 0o644 },
        { path: 'ccd/alice', content: '# alice\n', mode: 0o644 },
        ...(auth ? [{ path: 'auth.json', content: AUTH_JSON, mode: 0o644 }] : []),
      ],
    },
    evict: [],
    drain: false,
    ...more,
  };
}

let host: FakeHost;
let log: string[];

const newAgent = (): Agent => agentOn(host, (l) => log.push(l));

const handled = (agent: Agent, d: Directive, ms = 1000): Promise<boolean> =>
  handleWhileTimePasses(agent, host, d, ms);

/** The server as the agent finds it: OpenVPN running with this bundle's files. */
function running(d: Directive): void {
  host.bundle.files.clear();
  for (const f of d.bundle.files) host.bundle.files.set(f.path, f.content);
  host.bundle.files.set('VERSION', `${d.bundle.digest}\n`);
}

beforeEach(() => {
  host = new FakeHost();
  log = [];
});

describe('a change of management-client-auth restarts OpenVPN fully', () => {
  it('auth off → on in a rollout: SIGTERM and a new OpenVPN (new pid), not SIGHUP', async () => {
    running(directive(OFF, false));
    const agent = newAgent();
    await handled(agent, directive(OFF, false, { restart: 1 }));
    await handled(agent, directive(ON, true, { restart: 1 }));
    expect(host.signals).toEqual([]);

    await handled(agent, directive(ON, true, { restart: 2 }));
    expect(host.signals).toEqual(['SIGTERM']);
    expect(host.pid).toBe(1001);
    expect(log).toContain(
      'management-client-auth changed (off → on): OpenVPN restarted fully (SIGHUP keeps management settings)',
    );
    expect(log).toContain('OpenVPN restarted (restart generation 2)');
    expect(host.controller.lastReport?.restart).toEqual({ generation: 2, pending: false });
    expect(host.controller.lastReport?.health.openvpn).toBe(true);

    // The new OpenVPN asks: the next server.conf change is a SIGHUP again.
    await handled(agent, directive(ON_SLOWER, true, { restart: 3 }));
    expect(host.signals).toEqual(['SIGTERM', 'SIGHUP']);
  });

  it('auth on → off: likewise (a SIGHUP would keep holding every connect for client-auth)', async () => {
    running(directive(ON, true));
    const agent = newAgent();
    await handled(agent, directive(ON, true, { restart: 1 }));
    await handled(agent, directive(OFF, false, { restart: 2 }));
    expect(host.signals).toEqual(['SIGTERM']);
    expect(host.pid).toBe(1001);
    expect(log).toContain(
      'management-client-auth changed (on → off): OpenVPN restarted fully (SIGHUP keeps management settings)',
    );
  });

  it('an unrelated server.conf change still SIGHUPs', async () => {
    running(directive(ON, true));
    const agent = newAgent();
    await handled(agent, directive(ON, true, { restart: 1 }));
    await handled(agent, directive(ON_SLOWER, true, { restart: 2 }));
    expect(host.signals).toEqual(['SIGHUP']);
    expect(host.pid).toBe(1000);
  });

  it('restarts fully at once for a controller older than rollouts', async () => {
    running(directive(OFF, false));
    const agent = newAgent();
    await handled(agent, directive(ON, true));
    expect(host.signals).toEqual(['SIGTERM']);
    expect(host.pid).toBe(1001);
  });

  it('starts the new OpenVPN itself where nothing supervises it (the lab)', async () => {
    running(directive(OFF, false));
    host.onSigterm = 'stays-down';
    host.startOpenvpn = () => host.startNewOpenvpn();
    const agent = newAgent();
    await handled(agent, directive(OFF, false, { restart: 1 }));
    await handled(agent, directive(ON, true, { restart: 2 }));
    expect(host.signals).toEqual(['SIGTERM']);
    expect(host.starts).toBe(1);
    expect(log).toContain('OpenVPN restarted (restart generation 2)');
  });

  it('reports a full restart that does not bring OpenVPN back as a failed restart', async () => {
    running(directive(OFF, false));
    host.onSigterm = 'stays-down';
    const agent = newAgent();
    await handled(agent, directive(OFF, false, { restart: 1 }));
    await handled(agent, directive(ON, true, { restart: 2 }), 31_000);
    expect(log).toContain('OpenVPN did not come back within 30 s of its restart');
    expect(host.controller.lastReport?.restart).toEqual({ generation: 2, pending: false });
    expect(host.controller.lastReport?.health.openvpn).toBe(false);
  });

  it('kills an OpenVPN that does not exit on SIGTERM', async () => {
    running(directive(OFF, false));
    host.onSigterm = 'ignores';
    host.startOpenvpn = () => host.startNewOpenvpn();
    const agent = newAgent();
    await handled(agent, directive(OFF, false, { restart: 1 }));
    await handled(agent, directive(ON, true, { restart: 2 }), 12_000);
    expect(host.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(log).toContain('OpenVPN restarted (restart generation 2)');
  });

  it('knows across its own restart that OpenVPN still runs without client-auth', async () => {
    running(directive(OFF, false));
    const first = newAgent();
    await handled(first, directive(OFF, false, { restart: 1 }));
    await handled(first, directive(ON, true, { restart: 1 }));
    await first.stop();
    // server.conf on disk now has management-client-auth; the OpenVPN (pid 1000) does not.
    const again = newAgent();
    await handled(again, directive(ON, true, { restart: 2 }));
    expect(host.signals).toEqual(['SIGTERM']);
  });

  it('learns from server.conf when OpenVPN was restarted by someone else (a new pid)', async () => {
    running(directive(OFF, false));
    const agent = newAgent();
    await handled(agent, directive(OFF, false, { restart: 1 }));
    await handled(agent, directive(ON, true, { restart: 1 }));
    host.startNewOpenvpn(); // systemd after a crash: it read the new server.conf
    await handled(agent, directive(ON, true, { restart: 2 }));
    expect(host.signals).toEqual(['SIGHUP']);
  });
});

describe('fail closed while auth is on and OpenVPN does not ask', () => {
  const established = (clientId: number, user: string) =>
    host.management.notify('client-established', clientId, user, {
      common_name: user,
      time_unix: '1772366400',
      ifconfig_pool_remote_ip: `10.200.0.${clientId + 1}`,
    });

  it('kills every new client until OpenVPN restarts fully, and says so once', async () => {
    running(directive(OFF, false));
    const agent = newAgent();
    await handled(agent, directive(OFF, false, { restart: 1 }));
    established(0, 'carol'); // auth off: let in
    await settle();
    await handled(agent, directive(ON, true, { restart: 1 }));
    established(1, 'bob');
    established(2, 'alice');
    await settle();
    expect(host.management.kills).toEqual([
      { clientId: 1, restartToNext: false },
      { clientId: 2, restartToNext: false },
    ]);
    expect(log.filter((l) => l.includes('without management-client-auth'))).toHaveLength(1);

    // The rollout reaches the server: the new OpenVPN asks, nobody is killed for it.
    await handled(agent, directive(ON, true, { restart: 2 }));
    established(0, 'bob');
    await settle();
    expect(host.management.kills).toHaveLength(2);
  });

  it('keeps a killed client out of the report while OpenVPN still lists it', async () => {
    running(directive(OFF, false));
    const agent = newAgent();
    await handled(agent, directive(ON, true, { restart: 1 }));
    host.management.sessions = [
      {
        user: 'bob',
        realAddress: '198.51.100.7:50000',
        ipv4: '10.200.0.2',
        since: new Date(1772366400 * 1000).toISOString(),
        bytesIn: 0,
        bytesOut: 0,
        clientId: 1,
      },
    ];
    established(1, 'bob');
    await host.clock.advance(1500);
    expect(host.management.kills).toEqual([{ clientId: 1, restartToNext: false }]);
    expect(host.controller.lastReport?.sessions).toEqual([]);
  });
});

describe('the lab start argv file', () => {
  it('is a JSON array of strings', () => {
    expect(parseOpenvpnStartArgv('["openvpn","--config","/x/server.conf"]\n', 'f.json')).toEqual([
      'openvpn',
      '--config',
      '/x/server.conf',
    ]);
  });

  it.each(['', '{}', '[]', '["openvpn", 3]', '["openvpn", ""]', 'openvpn --config x'])(
    'refuses %j in one line naming the flag and the file',
    (text) => {
      let err: unknown;
      try {
        parseOpenvpnStartArgv(text, '/lab/run/openvpn-start.json');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      const message = (err as Error).message;
      expect(message).toMatch(
        /^--openvpn-start-argv-file: \/lab\/run\/openvpn-start\.json must hold OpenVPN's command line as a JSON array/,
      );
      expect(message).not.toContain('\n');
    },
  );
});
