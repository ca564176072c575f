/**
 * OpenVPN restarts on the controller's word: files that need a restart wait for the directive's
 * restart generation (a rolling restart), unless the controller is older than rollouts.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { type Directive, RESTART_FILES } from '../api/index.js';
import type { Agent } from './agent.js';
import { FakeHost, agentOn, handleWhileTimePasses } from './testing.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function directive(digest: string, keepalive: number, more: Partial<Directive> = {}): Directive {
  return {
    token: `${digest}-${JSON.stringify(more)}`,
    bundle: {
      digest,
      files: [
        { path: 'server.conf', content: `port 1194\nkeepalive ${keepalive} 10\n`, mode: 0o644 },
        { path: 'ccd/alice', content: '# alice\n', mode: 0o644 },
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

beforeEach(() => {
  host = new FakeHost();
  log = [];
  // The server as the agent finds it: OpenVPN running with bundle A's files.
  for (const f of directive(A, 3).bundle.files) host.bundle.files.set(f.path, f.content);
  host.bundle.files.set('VERSION', `${A}\n`);
});

describe('the agent restarts OpenVPN when the controller says so', () => {
  it('lists the files a restart is for, server.conf and the server certificate among them', () => {
    expect(RESTART_FILES).toEqual(
      expect.arrayContaining(['server.conf', 'server.crt', 'server.key', 'ca.crt']),
    );
  });

  it('holds a server.conf change until its generation moves, then restarts once', async () => {
    const agent = newAgent();
    // The first generation it hears of is adopted: OpenVPN runs already.
    await handled(agent, directive(A, 3, { restart: 4 }));
    expect(host.signals).toEqual([]);
    expect(host.controller.lastReport?.restart).toEqual({ generation: 4, pending: false });

    await handled(agent, directive(B, 5, { restart: 4 }));
    expect(host.bundle.readFile('server.conf')).toContain('keepalive 5 10');
    expect(host.signals).toEqual([]);
    expect(host.controller.lastReport?.restart).toEqual({ generation: 4, pending: true });

    await handled(agent, directive(B, 5, { restart: 5 }));
    expect(host.signals).toEqual(['SIGHUP']);
    expect(host.controller.lastReport?.restart).toEqual({ generation: 5, pending: false });
    expect(log).toContain('OpenVPN restarted (restart generation 5)');

    // The same generation again (another token): no second restart.
    await handled(agent, directive(B, 5, { restart: 5, drain: true }));
    expect(host.signals).toEqual(['SIGHUP']);
  });

  it('restarts with the new files when they come with a higher generation (all at once)', async () => {
    const agent = newAgent();
    await handled(agent, directive(A, 3, { restart: 1 }));
    await handled(agent, directive(B, 5, { restart: 2 }));
    expect(host.signals).toEqual(['SIGHUP']);
    expect(host.controller.lastReport?.restart).toEqual({ generation: 2, pending: false });
  });

  it('remembers what it carried out across its own restart: no restart again, pending kept', async () => {
    await handled(newAgent(), directive(A, 3, { restart: 1 }));
    await handled(newAgent(), directive(B, 5, { restart: 1 }));
    const again = newAgent();
    await handled(again, directive(B, 5, { restart: 1 }));
    expect(host.signals).toEqual([]);
    expect(host.controller.lastReport?.restart).toEqual({ generation: 1, pending: true });
  });

  it('counts a restart whose OpenVPN does not come back as carried out, and says openvpn down', async () => {
    const agent = newAgent();
    await handled(agent, directive(A, 3, { restart: 1 }));
    host.onSighup = 'dies';
    await handled(agent, directive(B, 5, { restart: 2 }));
    expect(host.signals).toEqual(['SIGHUP']);
    expect(log).toContain('OpenVPN exited on its restart (see its log)');
    expect(host.controller.lastReport?.restart).toEqual({ generation: 2, pending: false });
    expect(host.controller.lastReport?.health.openvpn).toBe(false);
    await handled(agent, directive(B, 5, { restart: 2, drain: true }));
    expect(host.signals).toEqual(['SIGHUP']);
  });

  it('waits at most 30 s for an OpenVPN that hangs in its restart', async () => {
    const agent = newAgent();
    await handled(agent, directive(A, 3, { restart: 1 }));
    host.onSighup = 'hangs';
    await handled(agent, directive(B, 5, { restart: 2 }), 31_000);
    expect(log).toContain('OpenVPN did not come back within 30 s of its restart');
    expect(host.controller.lastReport?.restart).toEqual({ generation: 2, pending: false });
  });

  it('does not hide a new session that has the client id of one it killed before the restart', async () => {
    const agent = newAgent();
    const session = (user: string, since: string) => ({
      user,
      realAddress: '198.51.100.7:50000',
      since,
      bytesIn: 0,
      bytesOut: 0,
      clientId: 0,
    });
    host.management.sessions = [session('alice', '2026-03-01T11:00:00Z')];
    await handled(agent, directive(A, 3, { restart: 1, drain: true }));
    expect(host.management.kills).toEqual([{ clientId: 0, restartToNext: true }]);
    // Restarted: OpenVPN numbers its clients from 0 again; bob arrives as client 0.
    host.management.sessions = [session('bob', '2026-03-01T12:00:05Z')];
    await handled(agent, directive(A, 3, { restart: 2, drain: true }));
    expect(host.controller.lastReport?.sessions.map((s) => s.user)).toEqual(['bob']);
  });

  it('restarts at once and reports no restart field to a controller older than rollouts', async () => {
    const agent = newAgent();
    await handled(agent, directive(A, 3));
    host.signals.length = 0;
    await handled(agent, directive(B, 5));
    expect(host.signals).toEqual(['SIGHUP']);
    expect(host.controller.lastReport).toBeDefined();
    expect(host.controller.lastReport).not.toHaveProperty('restart');
  });
});
