import { describe, expect, it } from 'vitest';
import type { ServerState, StoredSession } from '../store/types.js';
import { FIXED_NOW, exampleSpec } from '../testing.js';
import { isStale, serverViews, sessionView, staleServers } from './views.js';

const ago = (ms: number) => new Date(FIXED_NOW.getTime() - ms).toISOString();
const HEALTHY = { openvpn: true, routing: true, ruleset: true, draining: false, ok: true };

function stored(server: string, user: string): StoredSession {
  return {
    server,
    user,
    realAddress: '198.51.100.7:1194',
    ipv4: '10.200.0.2',
    since: ago(60_000),
    bytesIn: 1,
    bytesOut: 2,
    clientId: 3,
    reportedAt: ago(1000),
    firstSeen: ago(60_000),
  };
}

describe('views', () => {
  it('counts a server stale once its last report is more than staleAfterMs old, or never came', () => {
    expect(isStale(undefined, FIXED_NOW, 10_000)).toBe(true);
    expect(isStale(ago(10_000), FIXED_NOW, 10_000)).toBe(false);
    expect(isStale(ago(10_001), FIXED_NOW, 10_000)).toBe(true);
  });

  it('counts a server stale when its agent cannot read its sessions, however recent its report', () => {
    const states: ServerState[] = [
      { name: 'vpn11', draining: false, reportedAt: ago(0) },
      { name: 'vpn12', draining: false, reportedAt: ago(0) },
      { name: 'vpn21', draining: false, reportedAt: ago(20_000) },
    ];
    const names = ['vpn11', 'vpn12', 'vpn21', 'vpn22'];
    expect([...staleServers(names, states, FIXED_NOW, 10_000, new Set(['vpn12']))]).toEqual([
      'vpn12',
      'vpn21',
      'vpn22',
    ]);
  });

  it('shows every server of fleet.yaml in file order, with or without a report', () => {
    const states: ServerState[] = [
      { name: 'vpn12', draining: true, health: HEALTHY, bundleDigest: 'd2', reportedAt: ago(0) },
      { name: 'vpn11', draining: false, health: HEALTHY, bundleDigest: 'old', reportedAt: ago(0) },
    ];
    const sessions = [stored('vpn12', 'ann'), stored('vpn12', 'bob'), stored('vpn11', 'cid')];
    const views = serverViews(
      exampleSpec(),
      states,
      sessions,
      (s) => (s === 'vpn12' ? 'd2' : 'd1'),
      new Set(['vpn21']),
    );
    expect(views.map((v) => [v.name, v.site])).toEqual([
      ['vpn11', 'dc1'],
      ['vpn12', 'dc1'],
      ['vpn21', 'dc2'],
      ['vpn22', 'dc2'],
      ['vpn31', 'dc3'],
      ['vpn32', 'dc3'],
    ]);
    expect(views[1]).toEqual({
      name: 'vpn12',
      site: 'dc1',
      draining: true,
      stale: false,
      health: HEALTHY,
      reportedAt: ago(0),
      appliedDigest: 'd2',
      currentDigest: 'd2',
      upToDate: true,
      sessions: 2,
    });
    expect(views[0]).toMatchObject({
      appliedDigest: 'old',
      currentDigest: 'd1',
      upToDate: false,
      sessions: 1,
    });
    expect(views[2]).toMatchObject({
      stale: true,
      draining: false,
      health: null,
      reportedAt: null,
      appliedDigest: null,
      upToDate: false,
      sessions: 0,
    });
  });

  it('shows a session with null for an address it does not have, and its staleness', () => {
    const noV4: StoredSession = { ...stored('vpn11', 'ann'), ipv4: undefined };
    expect(sessionView(noV4, true)).toMatchObject({
      ipv4: null,
      ipv6: null,
      stale: true,
      user: 'ann',
    });
  });
});
