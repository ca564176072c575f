import { describe, expect, it } from 'vitest';
import type { SessionReport } from '../api/index.js';
import { AuditBudget, type KnownUser, admitSessions } from './reports.js';

const NOW = new Date('2026-06-01T12:00:00.000Z');
const users = new Map<string, KnownUser>([
  [
    'alice',
    { ipv4: '10.200.0.2', ipv6: 'fd7a:6ca6:e640:8000::2', enabled: true, status: 'enabled' },
  ],
  [
    'bob',
    { ipv4: '10.200.0.3', ipv6: 'fd7a:6ca6:e640:8000::3', enabled: false, status: 'disabled' },
  ],
]);

function s(user: string, extra: Partial<SessionReport> = {}): SessionReport {
  return {
    user,
    realAddress: '198.51.100.1:1194',
    since: '2026-06-01T11:00:00.000Z',
    bytesIn: 0,
    bytesOut: 0,
    clientId: 1,
    ...extra,
  };
}

describe('admitSessions', () => {
  const admit = (list: SessionReport[]) => admitSessions(list, (n) => users.get(n), NOW);

  it('accepts a real user with their own addresses, written either way', () => {
    const ok = [
      s('alice'),
      s('alice', { ipv4: '10.200.0.2', ipv6: 'FD7A:6CA6:E640:8000:0:0:0:2' }),
      s('alice', { since: '2026-06-01T12:00:59.000Z' }), // within the clock skew
    ];
    expect(admit(ok)).toEqual({ accepted: ok, refused: [] });
  });

  it('refuses, with a reason each, what cannot be a real session', () => {
    const { accepted, refused } = admit([
      s('mallory'),
      s('bob'),
      s('alice', { ipv4: '10.200.0.3' }),
      s('alice', { ipv6: 'fd7a:6ca6:e640:8000::3' }),
      s('alice', { since: '2026-06-01T12:02:00.000Z' }),
      s('alice', { since: 'yesterday' }),
    ]);
    expect(accepted).toEqual([]);
    expect(refused.map((r) => r.reason)).toEqual([
      'no such user',
      'user is not enabled',
      "ipv4 10.200.0.3 is not the user's",
      "ipv6 fd7a:6ca6:e640:8000::3 is not the user's",
      'since 2026-06-01T12:02:00.000Z is in the future',
      'since yesterday is not a time',
    ]);
  });
});

describe('AuditBudget', () => {
  const at = (s: number) => new Date(NOW.getTime() + s * 1000);

  it('grants a burst, then refills at its rate, counting what it drops', () => {
    const b = new AuditBudget(10, 2, at(0));
    expect(b.take(15, at(0))).toBe(10);
    expect(b.suppressed).toBe(5);
    expect(b.take(5, at(1))).toBe(2);
    expect(b.suppressed).toBe(8);
    // The entry saying so needs a token of its own.
    expect(b.drainSuppressed(at(1))).toBe(0);
    expect(b.drainSuppressed(at(2))).toBe(8);
    expect(b.drainSuppressed(at(3))).toBe(0);
    expect(b.take(100, at(1000))).toBe(10);
  });
});
