/**
 * Groups from the identity provider through the controller (issue 16): a sign-in's groups,
 * stored as OidcWebSignIn stores them, reach the agent in the sign-in's outcome (to set on its
 * server before the client is in), every server's next bundle (nft sets, auth.json) without
 * anything else happening, the user's API view and the audit log. The browser side is a fake
 * here; oidc.test.ts runs the real provider.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { AuthOutcome, Directive, UserDetail } from '../api/index.js';
import type { Fleet } from '../service/fleet.js';
import { initFleet } from '../service/open.js';
import { EXAMPLE_FLEET_YAML } from '../spec/example.js';
import type { User } from '../store/types.js';
import { type Controller, buildController } from './app.js';
import type { WebSignIn, WebSignInResult } from './connect-auth/web-sign-in.js';
import { FakeTimers, ManualClock, settle } from './testing.js';

const ADMIN = { authorization: 'Bearer admin-token-of-the-test' };
let dir: string;
let fleet: Fleet;
let ctl: Controller;
let agent: { authorization: string };
let ann: User;
const listeners: ((r: WebSignInResult) => void)[] = [];
const clock = new ManualClock();
const web: WebSignIn = {
  begin: (req) => Promise.resolve(`https://vpn.example.test/sso/start/${req.id}`),
  onResult: (listener) => void listeners.push(listener),
};

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ovf-session-groups-'));
  const secretFile = join(dir, 'client.secret');
  writeFileSync(secretFile, 'a-secret\n', { mode: 0o600 });
  const yaml = `${EXAMPLE_FLEET_YAML}auth:
  sso:
    issuer: https://idp.example.test/realms/corp
    clientId: ovpn-fleet
    clientSecretFile: ${secretFile}
    publicUrl: https://vpn.example.test
    groupMap: { idp-dba: dba, idp-eng: engineering }
`;
  // Stays open as the sign-in's writer (OidcWebSignIn writes through the shared store).
  fleet = await initFleet(join(dir, 'fleet'), { yaml, clock });
  [ann] = await fleet.addUsers([{ name: 'ann', groups: ['staff'] }], { issueCerts: false });
  agent = { authorization: `Bearer ${await fleet.agentToken('vpn11')}` };
  listeners.length = 0;
  ctl = await buildController({
    fleetDir: join(dir, 'fleet'),
    baseDir: (s) => `/etc/ovpn-fleet/${s}`,
    adminToken: 'admin-token-of-the-test',
    clock,
    timers: new FakeTimers(clock),
    log: () => {},
    webSignIn: web,
  });
});

afterEach(async () => {
  await ctl?.close();
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function directive(known = ''): Promise<Directive> {
  const r = await ctl.app.inject({
    url: `/v1/agent/poll?known=${encodeURIComponent(known)}`,
    headers: agent,
  });
  expect(r.statusCode, r.body).toBe(200);
  return r.json();
}

/** The elements of one nft set in a bundle's nftables.nft. */
function elements(d: Directive, set: string): string[] {
  const nft = d.bundle.files.find((f) => f.path.endsWith('nftables.nft'))!.content;
  const block = new RegExp(`\\tset ${set} \\{[\\s\\S]*?\\n\\t\\}`).exec(nft)![0];
  return [...block.matchAll(/^\t\t\t([0-9a-f.:]+),?$/gm)].map((m) => m[1]);
}

/** An agent's sign-in for ann, finished by the provider with `groups` (ours, mapped). */
async function signIn(groups: string[], n: number): Promise<AuthOutcome> {
  const begun = await ctl.app.inject({
    method: 'POST',
    url: '/v1/agent/auth/begin',
    headers: agent,
    payload: { user: 'ann', realAddress: '198.51.100.7:51000' },
  });
  const { id } = begun.json<{ id: string }>();
  const at = new Date(clock.now().getTime() + n * 1000).toISOString();
  // What OidcWebSignIn.finish does: the result, its audit entry and the groups, in one write.
  await fleet.store.createSsoSignIn({
    id: `sso-${n}`,
    requestId: id,
    user: 'ann',
    server: 'vpn11',
    remote: '198.51.100.7:51000',
    createdAt: at,
    expiresAt: at,
  });
  const result: WebSignInResult = { id, ok: true, subject: 'sub-ann', groups };
  await fleet.store.finishSsoSignIn(
    `sso-${n}`,
    { ...result },
    { at, actor: 'sso:sub-ann', action: 'sso.sign-in', subject: 'ann', detail: { groups } },
    groups,
  );
  for (const l of listeners) l(result);
  await settle();
  const waited = await ctl.app.inject({ url: `/v1/agent/auth/wait?id=${id}`, headers: agent });
  expect(waited.statusCode, waited.body).toBe(200);
  return waited.json();
}

it("a sign-in's groups reach the agent, every server's sets, the user's view and the audit log", async () => {
  const before = await directive();
  expect(elements(before, 'g_staff_v4')).toEqual([ann.ipv4]);
  expect(elements(before, 'g_dba_v4')).toEqual([]);
  const authJson = before.bundle.files.find((f) => f.path.endsWith('auth.json'))!.content;
  expect(JSON.parse(authJson)).toMatchObject({ groups: ['dba', 'engineering', 'staff'] });

  // The agent is told the groups to set on its server before letting the client in.
  expect(await signIn(['dba'], 1)).toEqual({ ok: true, groups: ['dba'] });
  // And the bundles follow by themselves (no watcher tick here: FakeTimers never fire).
  const after = await directive(before.token);
  expect(elements(after, 'g_dba_v4')).toEqual([ann.ipv4]);
  expect(elements(after, 'g_dba_v6')).toEqual([ann.ipv6]);
  expect(elements(after, 'g_staff_v4')).toEqual([]);

  const view = (await ctl.app.inject({ url: '/v1/users/ann', headers: ADMIN })).json<UserDetail>();
  expect(view).toMatchObject({ groups: ['staff'], sessionGroups: { groups: ['dba'] } });
  const audit = await fleet.store.auditQuery({ action: 'auth.sso', limit: 5 });
  expect(audit[0].detail).toMatchObject({ ok: true, groups: ['dba'], sessionGroups: ['dba'] });
});

it('a sign-in without mapped groups puts the user back in the spec’s groups', async () => {
  await signIn(['engineering'], 1);
  const mid = await directive();
  expect(elements(mid, 'g_engineering_v4')).toEqual([ann.ipv4]);
  // The agent sets the spec's groups (the default), and the bundles follow.
  expect(await signIn([], 2)).toEqual({ ok: true, groups: ['staff'] });
  const after = await directive(mid.token);
  expect(elements(after, 'g_engineering_v4')).toEqual([]);
  expect(elements(after, 'g_staff_v4')).toEqual([ann.ipv4]);
  const view = (await ctl.app.inject({ url: '/v1/users/ann', headers: ADMIN })).json<UserDetail>();
  expect(view.sessionGroups).toBeUndefined();
});

it('the console user page shows the sign-in’s groups when it is given them', async () => {
  const { userPage } = await import('../console/pages/user.js');
  const page = (sessionGroups?: { groups: string[]; at: string }) =>
    userPage(
      { now: clock.now() },
      {
        user: ann,
        sessions: [],
        siteOf: new Map(),
        history: [],
        signIns: [],
        historyLimit: 100,
        totp: {
          status: { enrolled: false, confirmed: false, recoveryCodesLeft: 0 },
          asked: { asked: false, why: 'fleet.yaml has no auth.totp' },
        },
        audit: [],
        ...(sessionGroups ? { sessionGroups } : {}),
      },
    ).live.text;
  expect(page({ groups: ['dba'], at: clock.now().toISOString() })).toMatch(
    /data-testid="user-session-groups">\s*dba \(the firewall applies these/,
  );
  expect(page()).not.toContain('user-session-groups');
});
