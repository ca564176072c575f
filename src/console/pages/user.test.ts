import { describe, expect, it } from 'vitest';
import type { HistoryEntry } from '../../api/index.js';
import type { SignInEntry } from '../data.js';
import { mergeHistory } from './user.js';

const at = (minute: number) => new Date(Date.UTC(2030, 0, 1, 10, minute)).toISOString();

const session = (minute: number): HistoryEntry => ({
  user: 'ann',
  server: 'vpn11',
  realAddress: '198.51.100.7:1194',
  ipv4: null,
  ipv6: null,
  since: at(minute),
  until: null,
  bytesIn: 0,
  bytesOut: 0,
  reason: null,
});
const signIn = (minute: number): SignInEntry => ({ at: at(minute), method: 'totp', ok: true });
const order = (rows: ReturnType<typeof mergeHistory>['rows']) =>
  rows.map((r) => `${'session' in r ? 's' : 'i'}${new Date(r.at).getUTCMinutes()}`);

describe('mergeHistory', () => {
  it('interleaves sessions and sign-ins newest first, a sign-in below the session it let in', () => {
    const { rows, cutAt } = mergeHistory([session(9), session(5)], [signIn(9), signIn(4)], 10);
    expect(order(rows)).toEqual(['s9', 'i9', 's5', 'i4']);
    expect(cutAt).toBeUndefined();
  });

  it('stops where a full list stops, so no stretch shows connects without their sign-ins', () => {
    // Two sessions asked for, two came: older than minute 8, sessions may be missing.
    const { rows, cutAt } = mergeHistory(
      [session(9), session(8)],
      [signIn(9), signIn(8), signIn(3)],
      2,
    );
    expect(cutAt).toBe(at(8));
    expect(order(rows)).toEqual(['s9', 'i9', 's8', 'i8']);
  });
});
