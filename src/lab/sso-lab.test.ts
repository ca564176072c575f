import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleSpec, refusal, selfSignedCert, specWith } from '../testing.js';
import { planLab } from './plan.js';
import {
  LAB_CONTROLLER_WEB_ADDRESS,
  LAB_IDP_ADDRESS,
  checkSsoOption,
  controllerSsoArgs,
  idpUsersFor,
  labSsoSettings,
  spkiHash,
  ssoLabPlan,
  ssoSpecHint,
} from './sso-lab.js';
import type { LabState } from './state.js';

describe('the lab identity provider: plan', () => {
  it('puts the provider in its own namespace and the controller on the bridge, nothing else', () => {
    const plan = planLab(exampleSpec(), 'ovt');
    const p = ssoLabPlan(plan);
    expect(p.ns).toBe('ovt-idp');
    // Two legs on the internet bridge: the provider's and the core's /32 (no on-link /24).
    expect(p.links.map((l) => [l.a.ns, l.b.ns, l.b.v4])).toEqual([
      ['ovt-inet', 'ovt-idp', `${LAB_IDP_ADDRESS}/24`],
      ['ovt-inet', 'ovt-core', `${LAB_CONTROLLER_WEB_ADDRESS}/32`],
    ]);
    // The core routes only the provider and the clients' range over its new leg.
    expect(p.coreRoutes).toEqual([
      { to: `${LAB_IDP_ADDRESS}/32`, dev: 'web0' },
      { to: '198.51.100.0/24', dev: 'web0' },
    ]);
    // The addresses are free in the example: no server or load balancer uses them.
    const used = [
      ...plan.servers.map((s) => s.address),
      ...plan.loadBalancers.map((l) => l.address),
    ];
    expect(used).not.toContain(LAB_IDP_ADDRESS);
    expect(used).not.toContain(LAB_CONTROLLER_WEB_ADDRESS);
  });

  it("refuses a fleet whose server has the provider's address, naming it", () => {
    const spec = specWith((i) => {
      i.sites[2].servers[0].address = LAB_IDP_ADDRESS;
    });
    expect(refusal(() => ssoLabPlan(planLab(spec, 'ovt')))).toBe(
      `--sso: the lab's identity provider and controller use ${LAB_IDP_ADDRESS} and ${LAB_CONTROLLER_WEB_ADDRESS}, but ${LAB_IDP_ADDRESS} is the server vpn31's address`,
    );
  });

  it('gives auth.sso values before the lab exists, and tells a fleet not using them what to set', () => {
    const s = labSsoSettings('/f/.lab/ovt');
    expect(s).toEqual({
      issuer: `https://${LAB_IDP_ADDRESS}`,
      clientId: 'ovpn-fleet',
      clientSecretFile: '/f/.lab/ovt/sso/client.secret',
      caFile: '/f/.lab/ovt/sso/ca.crt',
      publicUrl: `https://${LAB_CONTROLLER_WEB_ADDRESS}`,
    });
    expect(ssoSpecHint({ auth: { sso: { issuer: s.issuer } } }, '/f/.lab/ovt')).toEqual([]);
    expect(ssoSpecHint({}, '/f/.lab/ovt').join('\n')).toContain(
      `clientSecretFile: ${s.clientSecretFile}`,
    );
  });

  it('refuses --sso without a control plane', () => {
    expect(refusal(() => checkSsoOption({ controlPlane: false }))).toMatch(
      /^--sso: a lab without control plane/,
    );
  });

  it("gives the provider the fleet's users with their groups and a password each", () => {
    const users = idpUsersFor([
      { name: 'ann', groups: ['staff'] },
      { name: 'bob', groups: ['dba', 'staff'] },
    ]);
    expect(users.map((u) => [u.name, u.groups])).toEqual([
      ['ann', ['staff']],
      ['bob', ['dba', 'staff']],
    ]);
    expect(users[0].password).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(users[0].password).not.toBe(users[1].password);
  });

  it("adds the controller's HTTPS listener on the bridge only in an SSO lab", () => {
    const base = { prefix: 'ovt', dir: '/f/.lab/ovt' } as LabState;
    expect(controllerSsoArgs(base)).toEqual([]);
    const sso = { webAddress: '192.0.2.251', controllerCert: '/c.crt', controllerKey: '/c.key' };
    expect(controllerSsoArgs({ ...base, sso } as LabState)).toEqual([
      '--listen',
      '192.0.2.251:443',
      '--tls-cert',
      '/c.crt',
      '--tls-key',
      '/c.key',
    ]);
  });
});

describe('spkiHash', () => {
  it("is Chromium's SPKI pin: base64 SHA-256 of the DER public key, as openssl computes it", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ovf-spki-'));
    try {
      const { cert } = selfSignedCert(dir, 't');
      const der = execFileSync('sh', [
        '-c',
        `openssl x509 -in ${cert} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`,
      ]);
      expect(spkiHash(readFileSync(cert, 'utf8'))).toBe(der.toString().trim());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
