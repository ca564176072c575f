import { describe, expect, it } from 'vitest';
import { RouteTable, parseMonitorLine, parseRouteDump } from './route-view.js';

const route = (line: string) => {
  const e = parseMonitorLine(line);
  if (e?.kind !== 'route') throw new Error(`not a route line: ${line}`);
  return e;
};

describe('parseMonitorLine', () => {
  it('reads a host route the hook adds, and its deletion', () => {
    const add = route('10.200.0.5 dev vpn0 proto 201 scope link ');
    expect(add).toMatchObject({
      deleted: false,
      route: { family: 4, dst: '10.200.0.5', dev: 'vpn0', proto: '201' },
    });
    const del = route('Deleted 10.200.0.5 dev vpn0 proto 201 scope link ');
    expect(del.deleted).toBe(true);
    expect(del.key).toBe(add.key);
  });

  it('tells IPv6 by the address or by the preference IPv6 routes always print', () => {
    expect(
      route('fd7a:6ca6:e640:8000::5 dev vpn0 proto 201 metric 1024 pref medium').route.family,
    ).toBe(6);
    expect(
      route('default via fe80::1 dev eth0 proto ospf metric 20 pref medium').route.family,
    ).toBe(6);
    expect(route('default via 10.0.1.1 dev eth0 proto ospf metric 20').route.family).toBe(4);
  });

  it('keeps the first line of a multipath route and skips its nexthop lines', () => {
    expect(route('10.30.0.0/24 nhid 40 proto ospf metric 20 ').route).toEqual({
      family: 4,
      dst: '10.30.0.0/24',
      proto: 'ospf',
    });
    expect(parseMonitorLine('\tnexthop via 10.0.1.1 dev eth0 weight 1 ')).toBeUndefined();
  });

  it('ignores other tables and reports link changes', () => {
    expect(
      parseMonitorLine(
        'local fe80::14a4:adff:fe38:731e dev d1 table local proto kernel metric 0 pref medium',
      ),
    ).toBeUndefined();
    expect(
      parseMonitorLine(
        'broadcast 10.0.1.255 dev eth0 table local proto kernel scope link src 10.0.1.2',
      ),
    ).toBeUndefined();
    expect(
      parseMonitorLine(
        '7: vpn0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1500 qdisc fq_codel state UNKNOWN group default qlen 500',
      ),
    ).toEqual({ kind: 'link' });
    expect(
      parseMonitorLine(
        'Deleted 7: vpn0: <POINTOPOINT,MULTICAST,NOARP> mtu 1500 qdisc noop state DOWN group default',
      ),
    ).toEqual({ kind: 'link' });
    expect(parseMonitorLine('    link/none ')).toBeUndefined();
    expect(parseMonitorLine('')).toBeUndefined();
  });

  it('keeps routes of different types or metrics to one destination apart', () => {
    expect(route('unreachable 10.200.0.0/16 proto static metric 20').key).not.toBe(
      route('10.200.0.0/16 dev vpn0 proto static metric 20').key,
    );
    expect(route('fd00::/64 dev a proto ospf metric 20 pref medium').key).not.toBe(
      route('fd00::/64 dev a proto ospf metric 1024 pref medium').key,
    );
  });
});

describe('RouteTable', () => {
  const dump4 = JSON.stringify([
    {
      dst: '10.0.1.0/30',
      dev: 'eth0',
      protocol: 'kernel',
      scope: 'link',
      prefsrc: '10.0.1.2',
      flags: [],
    },
    {
      dst: '10.20.0.0/24',
      gateway: '10.0.1.1',
      dev: 'eth0',
      protocol: 'ospf',
      metric: 20,
      flags: [],
    },
    { dst: '10.200.0.7', dev: 'vpn0', protocol: '201', scope: 'link', flags: [] },
  ]);
  const dump6 = JSON.stringify([
    {
      dst: 'fd7a:6ca6:e640:8000::7',
      dev: 'vpn0',
      protocol: '201',
      metric: 1024,
      flags: [],
      pref: 'medium',
    },
  ]);

  it('answers from a dump and keeps up with monitor lines that match its keys', () => {
    const t = new RouteTable();
    t.replaceAll(new Map([...parseRouteDump(4, dump4), ...parseRouteDump(6, dump6)]));
    expect(t.on('vpn0', '201').sort()).toEqual(['10.200.0.7', 'fd7a:6ca6:e640:8000::7']);
    expect(t.hasProto(new Set(['ospf']))).toBe(true);

    t.apply(route('Deleted 10.200.0.7 dev vpn0 proto 201 scope link '));
    t.apply(route('Deleted fd7a:6ca6:e640:8000::7 dev vpn0 proto 201 metric 1024 pref medium'));
    t.apply(route('10.200.0.9 dev vpn0 proto 201 scope link '));
    expect(t.on('vpn0', '201')).toEqual(['10.200.0.9']);

    t.apply(route('Deleted 10.20.0.0/24 nhid 12 via 10.0.1.1 dev eth0 proto ospf metric 20 '));
    expect(t.hasProto(new Set(['ospf']))).toBe(false);
  });

  it('reads an empty table', () => {
    expect(parseRouteDump(4, '').size).toBe(0);
    expect(parseRouteDump(6, '[]').size).toBe(0);
  });
});
