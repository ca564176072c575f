import { describe, expect, it } from 'vitest';
import { compilePolicy, groupSetName } from './policy.js';
import {
  type SessionGroupsSpec,
  differingSessionGroups,
  effectiveGroups,
  ssoMapsGroups,
} from './session-groups.js';
import { exampleSpec, specWith } from '../testing.js';

const withMap = (groupMap: Record<string, string>) =>
  specWith((i) => {
    i.auth = {
      sso: {
        issuer: 'https://idp.example.com',
        clientId: 'vpn',
        publicUrl: 'https://vpn.example.com',
        clientSecretFile: '/etc/ovpn-fleet/sso.secret',
        groupMap,
      },
    };
  });

const mapped = withMap({ 'idp-eng': 'engineering', 'idp-dba': 'dba' });
const ann = (sessionGroups?: string[]) => ({
  groups: ['staff', 'staff'],
  ...(sessionGroups ? { sessionGroups: { groups: sessionGroups } } : {}),
});

describe('effective groups: the last sign-in, else the spec', () => {
  it('a sign-in that gave groups puts the user in exactly those, instead of the spec’s', () => {
    expect(effectiveGroups(mapped, ann(['engineering', 'dba', 'dba']))).toEqual([
      'dba',
      'engineering',
    ]);
  });

  it('no sign-in yet, or one that gave no group: the spec’s groups (the default)', () => {
    expect(effectiveGroups(mapped, ann())).toEqual(['staff']);
    expect(effectiveGroups(mapped, ann([]))).toEqual(['staff']);
  });

  it('groups the spec no longer has are dropped; none left grants nothing', () => {
    expect(effectiveGroups(mapped, ann(['gone', 'dba']))).toEqual(['dba']);
    expect(effectiveGroups(mapped, ann(['gone']))).toEqual([]);
  });

  it('without a group map (no auth.sso, or an empty map) session groups are ignored', () => {
    expect(ssoMapsGroups(exampleSpec())).toBe(false);
    expect(ssoMapsGroups(withMap({}))).toBe(false);
    expect(ssoMapsGroups(mapped)).toBe(true);
    expect(effectiveGroups(exampleSpec(), ann(['dba']))).toEqual(['staff']);
    expect(effectiveGroups(withMap({}), ann(['dba']))).toEqual(['staff']);
  });

  it('tells the session groups only where they differ from the spec’s', () => {
    expect(differingSessionGroups(mapped, ann(['dba']))).toEqual(['dba']);
    expect(differingSessionGroups(mapped, ann(['gone']))).toEqual([]);
    expect(differingSessionGroups(mapped, ann(['staff']))).toBeUndefined();
    expect(differingSessionGroups(mapped, ann([]))).toBeUndefined();
    expect(differingSessionGroups(exampleSpec(), ann(['dba']))).toBeUndefined();
  });
});

describe('the policy compiled from effective groups', () => {
  const users = [
    { ipv4: '10.200.0.2', ipv6: 'fd00:200::2', enabled: true, ...ann(['dba']) },
    { ipv4: '10.200.0.3', ipv6: 'fd00:200::3', enabled: true, ...ann() },
    { ipv4: '10.200.0.4', ipv6: 'fd00:200::4', enabled: true, ...ann(['gone']) },
  ];
  const members = (spec: SessionGroupsSpec & Parameters<typeof compilePolicy>[0]) => {
    const policy = compilePolicy(
      spec,
      users.map((u) => ({ ...u, groups: effectiveGroups(spec, u) })),
    );
    return Object.fromEntries(
      ['staff', 'dba', 'engineering'].map((g) => [
        g,
        policy.groupSets.find((s) => s.name === groupSetName(g, 4))!.elements,
      ]),
    );
  };

  it('puts each user in the sets of their sign-in’s groups, the others in the spec’s', () => {
    expect(members(mapped)).toEqual({
      staff: ['10.200.0.3'],
      dba: ['10.200.0.2'],
      engineering: [],
    });
  });

  it('a fleet without the map compiles the spec’s groups, as before', () => {
    expect(members(exampleSpec())).toEqual({
      staff: ['10.200.0.2', '10.200.0.3', '10.200.0.4'],
      dba: [],
      engineering: [],
    });
  });
});
