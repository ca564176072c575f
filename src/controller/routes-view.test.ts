import { describe, expect, it } from 'vitest';
import type { RouteRow } from '../api/index.js';
import type { HostRoutes } from '../store/types.js';
import { type RoutesInput, routesView } from './routes-view.js';

const SERVERS = ['a', 'b', 'c'];
const USERS = [
  { name: 'ann', ipv4: '10.200.0.2', ipv6: 'fd00:200::2' },
  { name: 'bob', ipv4: '10.200.0.3', ipv6: 'fd00:200::3' },
];
const ANN = { v4: '10.200.0.2', v6: 'fd00:200::2' };

function on(server: string, user: string, since = '2030-01-01T10:00:00Z', v6 = true) {
  const u = USERS.find((x) => x.name === user)!;
  return {
    server,
    user,
    ipv4: u.ipv4,
    ...(v6 ? { ipv6: u.ipv6 } : {}),
    since,
    firstSeen: since,
  };
}

const holds = (ipv4: string[], ipv6: string[]): HostRoutes => ({ ipv4, ipv6 });

interface Case {
  name: string;
  sessions: RoutesInput['sessions'];
  routes: Record<string, HostRoutes | undefined>;
  stale?: string[];
  /** The rows, as [user, server, ipv4Servers, ipv6Servers, problems, unverified]. */
  rows: [string | null, string | null, string[], string[], string[], boolean][];
}

const cases: Case[] = [
  {
    name: 'a session whose server holds both routes: no problem',
    sessions: [on('a', 'ann')],
    routes: { a: holds([ANN.v4], [ANN.v6]), b: holds([], []), c: holds([], []) },
    rows: [['ann', 'a', ['a'], ['a'], [], false]],
  },
  {
    name: 'its server lacks the /128: missing',
    sessions: [on('a', 'ann')],
    routes: { a: holds([ANN.v4], []), b: holds([], []), c: holds([], []) },
    rows: [['ann', 'a', ['a'], [], ['missing'], false]],
  },
  {
    name: 'a session without an IPv6 address needs no /128',
    sessions: [on('a', 'ann', undefined, false)],
    routes: { a: holds([ANN.v4], []), b: holds([], []), c: holds([], []) },
    rows: [['ann', 'a', ['a'], [], [], false]],
  },
  {
    name: 'the route is on another server only: missing and stale',
    sessions: [on('a', 'ann')],
    routes: { a: holds([], []), b: holds([ANN.v4], [ANN.v6]), c: holds([], []) },
    rows: [['ann', 'a', ['b'], ['b'], ['missing', 'stale'], false]],
  },
  {
    name: 'a user who moved, the old server still routes: duplicate and stale',
    sessions: [on('b', 'ann')],
    routes: { a: holds([ANN.v4], [ANN.v6]), b: holds([ANN.v4], [ANN.v6]), c: holds([], []) },
    rows: [['ann', 'b', ['a', 'b'], ['a', 'b'], ['duplicate', 'stale'], false]],
  },
  {
    name: 'two sessions, both routed (eviction under way): duplicate only, the newest is live',
    sessions: [on('a', 'ann'), on('b', 'ann', '2030-01-01T10:05:00Z')],
    routes: { a: holds([ANN.v4], [ANN.v6]), b: holds([ANN.v4], [ANN.v6]), c: holds([], []) },
    rows: [['ann', 'b', ['a', 'b'], ['a', 'b'], ['duplicate'], false]],
  },
  {
    name: 'a route with no session anywhere: stale',
    sessions: [],
    routes: { a: holds([], []), b: holds([], [ANN.v6]), c: holds([], []) },
    rows: [['ann', null, [], ['b'], ['stale'], false]],
  },
  {
    name: 'an address no user owns: its own row, stale',
    sessions: [],
    routes: { a: holds(['10.200.9.9'], []), b: holds([], []), c: holds([], []) },
    rows: [[null, null, ['a'], [], ['stale'], false]],
  },
  {
    name: 'a session on a stale server: unverified, not missing; its old routes are not counted',
    sessions: [on('a', 'ann')],
    routes: { a: holds([], []), b: holds([], []), c: holds([], []) },
    stale: ['a'],
    rows: [['ann', 'a', [], [], [], true]],
  },
  {
    name: "a stale server's leftover route is no duplicate",
    sessions: [on('b', 'ann')],
    routes: { a: holds([ANN.v4], [ANN.v6]), b: holds([ANN.v4], [ANN.v6]), c: holds([], []) },
    stale: ['a'],
    rows: [['ann', 'b', ['b'], ['b'], [], false]],
  },
  {
    name: 'a server whose agent reports no routes (older agent) is unverified',
    sessions: [on('c', 'ann')],
    routes: { a: holds([], []), b: holds([], []), c: undefined },
    rows: [['ann', 'c', [], [], [], true]],
  },
  {
    name: 'addresses compare by value, not by text',
    sessions: [{ ...on('a', 'ann'), ipv6: 'FD00:200:0:0:0:0:0:2' }],
    routes: { a: holds([ANN.v4], ['fd00:0200::0002']), b: holds([], []), c: holds([], []) },
    rows: [['ann', 'a', ['a'], ['a'], [], false]],
  },
  {
    name: 'garbage in a stored route list is skipped',
    sessions: [],
    routes: {
      a: holds(['not-an-address', '300.1.1.1'], ['zz::1']),
      b: holds([], []),
      c: holds([], []),
    },
    rows: [],
  },
];

describe('routesView', () => {
  it.each(cases)('$name', (c) => {
    const view = routesView({
      servers: SERVERS,
      routes: new Map(SERVERS.map((s) => [s, c.routes[s]])),
      stale: new Set(c.stale ?? []),
      sessions: c.sessions,
      users: USERS,
    });
    const short = (r: RouteRow) => [
      r.user,
      r.server,
      r.ipv4Servers,
      r.ipv6Servers,
      r.problems,
      r.unverified,
    ];
    expect(view.rows.map(short)).toEqual(c.rows);
    for (const r of view.rows) expect(r.problem).toBe(r.problems[0] ?? null);
  });

  it('counts rows per problem, lists unverified servers, and orders users before bare addresses', () => {
    const view = routesView({
      servers: SERVERS,
      routes: new Map<string, HostRoutes | undefined>([
        ['a', holds([ANN.v4, '10.200.9.9'], [ANN.v6])],
        ['b', holds([ANN.v4, '10.200.0.3'], [])],
        ['c', undefined],
      ]),
      stale: new Set(['b']),
      sessions: [on('a', 'ann'), on('a', 'bob')],
      users: USERS,
    });
    expect(view.rows.map((r) => [r.user, r.ipv4, r.ipv6, r.problem])).toEqual([
      ['ann', '10.200.0.2', 'fd00:200::2', null],
      ['bob', '10.200.0.3', 'fd00:200::3', 'missing'],
      [null, '10.200.9.9', null, 'stale'],
    ]);
    expect(view.counts).toEqual({ missing: 1, duplicate: 0, stale: 1 });
    expect(view.unverifiedServers).toEqual(['b', 'c']);
  });
});
