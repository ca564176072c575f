import { describe, expect, it } from 'vitest';
import { evictions, sessionChanges } from './directives.js';

const s = (server: string, user: string, since: string, firstSeen: string) => ({
  server,
  user,
  since,
  firstSeen,
});
const T = '2030-01-01T10:00:00.000Z';
const later = (ms: number) => new Date(Date.parse(T) + ms).toISOString();

describe('evictions', () => {
  it('ends the older session of a user who is on two servers', () => {
    const e = evictions(
      [s('vpn21', 'alice', later(5000), later(5100)), s('vpn11', 'alice', T, T)],
      new Set(),
    );
    expect([...e]).toEqual([['vpn11', [{ user: 'alice', since: T }]]]);
  });

  it('tells a move within one second by when the controller first saw each session', () => {
    // OpenVPN's "connected since" has one-second resolution: both say T. The server names
    // must not decide (vpn11 sorts first but holds the old session).
    const e = evictions(
      [s('vpn11', 'alice', T, later(200)), s('vpn21', 'alice', T, later(700))],
      new Set(),
    );
    expect([...e]).toEqual([['vpn11', [{ user: 'alice', since: T }]]]);
    const back = evictions(
      [s('vpn11', 'bob', T, later(900)), s('vpn21', 'bob', T, later(300))],
      new Set(),
    );
    expect([...back]).toEqual([['vpn21', [{ user: 'bob', since: T }]]]);
  });

  it('leaves a stale server out: its sessions neither end nor cause endings', () => {
    const e = evictions(
      [s('vpn11', 'alice', T, T), s('vpn21', 'alice', later(5000), later(5000))],
      new Set(['vpn21']),
    );
    expect(e.size).toBe(0);
  });
});

describe('sessionChanges', () => {
  const report = (user: string, clientId: number) => ({
    user,
    realAddress: '198.51.100.1:1194',
    since: T,
    bytesIn: 0,
    bytesOut: 0,
    clientId,
  });
  const stored = (user: string, clientId: number) => ({
    ...report(user, clientId),
    server: 'vpn11',
    reportedAt: T,
    firstSeen: T,
  });

  it('tells a reconnect within the same second (a new client id) from the same session', () => {
    const { connected, disconnected } = sessionChanges(
      [stored('alice', 1), stored('bob', 2)],
      [report('alice', 3), report('bob', 2)],
    );
    expect(connected.map((c) => `${c.user}#${c.clientId}`)).toEqual(['alice#3']);
    expect(disconnected.map((d) => `${d.user}#${d.clientId}`)).toEqual(['alice#1']);
  });
});
