/**
 * SSO in the lab (`lab up --sso`): a real OpenID provider (idp-server.ts, `oidc-provider`) in a
 * namespace of its own, `<prefix>-idp`, on the lab's "internet" bridge, and the first
 * controller's browser-facing listener as HTTPS on that bridge too, both with certificates of a
 * CA the lab makes. A VPN client's browser, started in the client's namespace, reaches both the
 * way a person's browser does: over the public segment, by address.
 *
 * Reachability, from the plan: clients sit on the bridge (198.51.100.100+) with on-link routes
 * to the documentation ranges only; the controller runs in the core's namespace, which has no
 * leg on the bridge. The least invasive way in is one veth from the bridge into the core,
 * carrying only the controller's public address as a /32 and two routes (to the provider's
 * address and back to the clients' range): the core does not become on-link with the servers'
 * public side, and nothing routes through it that did not before (clients have no route via
 * it). The core's FRR redistributes connected routes, so the /32 reaches the servers by OSPF;
 * they never dial it. The provider's namespace has its address on the bridge and on-link routes
 * like a client's. Nothing is added to the host's namespace.
 *
 * Trust: the lab's CA signs both certificates; the controller trusts the provider through
 * `auth.sso.caFile` (the CA), and only the lab's Chromium trusts the CA, through
 * `--ignore-certificate-errors-spki-list` with the CA's key hash (both servers send the CA in
 * their chain; Chromium honours the list only with a --user-data-dir, which playwright always
 * gives). The host's trust store is never touched.
 */
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Conflict, InputError } from '../errors.js';
import { run } from '../sys/exec.js';
import { writeFileAtomic } from '../sys/files.js';
import { isAlive, stopProcess } from '../sys/proc.js';
import { startTestIdp, type TestIdpUser } from './idp.js';
import type { LabOps } from './control-plane.js';
import { type LabIface, type LabPlan, PUBLIC_NETS } from './plan.js';
import { CHROMIUM } from './sso-browser.js';
import type { LabProcess, LabState } from './state.js';

/** The client id the lab's provider registers (auth.sso.clientId). */
export const LAB_SSO_CLIENT_ID = 'ovpn-fleet';
/** The provider's address on the bridge; its issuer is https://<it> (port 443). */
export const LAB_IDP_ADDRESS = '192.0.2.250';
/** The first controller's public address, on the core's leg on the bridge. */
export const LAB_CONTROLLER_WEB_ADDRESS = '192.0.2.251';
/** The clients' range on the bridge (plan.ts CLIENT_BASE + up to 150): the core routes back to it. */
const CLIENTS_RANGE = '198.51.100.0/24';
const IDP_PROCESS_ID = 'idp';

/** Where the lab's SSO lives (in LabState.sso). */
export interface LabSso {
  ns: string;
  idpAddress: string;
  webAddress: string;
  issuer: string;
  publicUrl: string;
  /** sso/ in the lab's directory: CA, certificates, secret, users. */
  dir: string;
  /** The lab CA (PEM): auth.sso.caFile. */
  caFile: string;
  /** base64 SHA-256 of the CA's SubjectPublicKeyInfo: what the lab's Chromium trusts. */
  caSpki: string;
  /** 0600: auth.sso.clientSecretFile. */
  clientSecretFile: string;
  /** 0600 JSON: the provider's users, their passwords and groups (the tests read it). */
  usersFile: string;
  /** The controller's certificate chain and key (--tls-cert, --tls-key). */
  controllerCert: string;
  controllerKey: string;
}

/** The values `auth.sso` takes to use the lab's provider: known before `lab up --sso`. */
export function labSsoSettings(labDirectory: string): {
  issuer: string;
  clientId: string;
  clientSecretFile: string;
  caFile: string;
  publicUrl: string;
} {
  const dir = join(labDirectory, 'sso');
  return {
    issuer: `https://${LAB_IDP_ADDRESS}`,
    clientId: LAB_SSO_CLIENT_ID,
    clientSecretFile: join(dir, 'client.secret'),
    caFile: join(dir, 'ca.crt'),
    publicUrl: `https://${LAB_CONTROLLER_WEB_ADDRESS}`,
  };
}

/**
 * The provider's namespace and the two legs on the bridge. Pure. Refuses a spec whose servers
 * or load balancers already use one of the two addresses.
 */
export function ssoLabPlan(plan: LabPlan) {
  const taken = new Map<string, string>([
    ...plan.servers.map((s) => [s.address, `server ${s.name}`] as [string, string]),
    ...plan.loadBalancers.map((l) => [l.address, `load balancer of ${l.site}`] as [string, string]),
  ]);
  for (const a of [LAB_IDP_ADDRESS, LAB_CONTROLLER_WEB_ADDRESS]) {
    const who = taken.get(a);
    if (who)
      throw new InputError(
        '--sso',
        `the lab's identity provider and controller use ${LAB_IDP_ADDRESS} and ${LAB_CONTROLLER_WEB_ADDRESS}, but ${a} is the ${who}'s address`,
      );
  }
  const ns = `${plan.prefix}-idp`;
  const onLink = PUBLIC_NETS.map((to) => ({ to, dev: 'eth0' }));
  return {
    ns,
    idpRoutes: onLink,
    coreRoutes: [
      { to: `${LAB_IDP_ADDRESS}/32`, dev: 'web0' },
      { to: CLIENTS_RANGE, dev: 'web0' },
    ],
    links: [
      {
        a: { ns: plan.inet, name: 'idp' },
        b: { ns, name: 'eth0', v4: `${LAB_IDP_ADDRESS}/24` },
      },
      {
        a: { ns: plan.inet, name: 'web' },
        b: { ns: plan.core, name: 'web0', v4: `${LAB_CONTROLLER_WEB_ADDRESS}/32` },
      },
    ] satisfies { a: LabIface; b: LabIface }[],
  };
}

/** Why the lab cannot run its provider here, or undefined (oidc-provider is a dev dependency). */
export function oidcProviderMissing(): string | undefined {
  try {
    createRequire(import.meta.url).resolve('oidc-provider');
    return undefined;
  } catch {
    return 'the dev dependency oidc-provider is missing (npm ci in a source checkout)';
  }
}

/** The provider's users: every fleet user, their groups as the `groups` claim, a random password. */
export function idpUsersFor(users: { name: string; groups: string[] }[]): TestIdpUser[] {
  return users.map((u) => ({
    name: u.name,
    password: randomBytes(12).toString('base64url'),
    groups: [...u.groups],
  }));
}

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's SPKI list format). */
export function spkiHash(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A certificate for `address` signed by the lab CA; the file holds it and the CA (the chain). */
async function issueServerCert(dir: string, name: string, address: string): Promise<void> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await run(['openssl', 'req', ...EC_KEY, '-subj', `/CN=${address}`, '-keyout', key, '-out', csr]);
  writeFileSync(
    ext,
    `subjectAltName=IP:${address}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n`,
  );
  const leaf = join(dir, `${name}.leaf.crt`);
  await run([
    'openssl',
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    join(dir, 'ca.crt'),
    '-CAkey',
    join(dir, 'ca.key'),
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    '7',
    '-extfile',
    ext,
    '-out',
    leaf,
  ]);
  chmodSync(key, 0o600);
  writeFileAtomic(
    join(dir, `${name}.crt`),
    readFileSync(leaf, 'utf8') + readFileSync(join(dir, 'ca.crt'), 'utf8'),
  );
}

/**
 * At `lab up --sso`, after the network and before the controllers: the CA and certificates, the
 * client secret, the provider's users (from the fleet's), its namespace and legs, and the
 * provider itself. The controllers then read the files auth.sso names.
 */
export async function startSsoLab(
  ops: LabOps,
  users: { name: string; groups: string[] }[],
  log: (l: string) => void,
): Promise<void> {
  const state = ops.state;
  const plan = ssoLabPlan(state.plan!);
  const settings = labSsoSettings(state.dir);
  const dir = join(state.dir, 'sso');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await run([
    'openssl',
    'req',
    '-x509',
    ...EC_KEY,
    '-days',
    '7',
    '-subj',
    `/CN=ovpn-fleet lab ${state.prefix} CA`,
    '-keyout',
    join(dir, 'ca.key'),
    '-out',
    settings.caFile,
  ]);
  chmodSync(join(dir, 'ca.key'), 0o600);
  await issueServerCert(dir, 'idp', LAB_IDP_ADDRESS);
  await issueServerCert(dir, 'controller', LAB_CONTROLLER_WEB_ADDRESS);
  writeFileAtomic(settings.clientSecretFile, `${randomBytes(24).toString('hex')}\n`, 0o600);
  const usersFile = join(dir, 'users.json');
  writeFileAtomic(usersFile, `${JSON.stringify(idpUsersFor(users), null, 2)}\n`, 0o600);
  const sso: LabSso = {
    ns: plan.ns,
    idpAddress: LAB_IDP_ADDRESS,
    webAddress: LAB_CONTROLLER_WEB_ADDRESS,
    issuer: settings.issuer,
    publicUrl: settings.publicUrl,
    dir,
    caFile: settings.caFile,
    caSpki: spkiHash(readFileSync(settings.caFile, 'utf8')),
    clientSecretFile: settings.clientSecretFile,
    usersFile,
    controllerCert: join(dir, 'controller.crt'),
    controllerKey: join(dir, 'controller.key'),
  };
  state.sso = sso;
  ops.save();
  await ops.addNamespace(plan.ns, false);
  for (const link of plan.links) await ops.addLink(link.a, link.b);
  await ops.addRoutes(plan.ns, plan.idpRoutes);
  await ops.addRoutes(state.plan!.core, plan.coreRoutes);
  await startLabIdp(ops);
  log(
    `sso: identity provider ${sso.issuer} in ${plan.ns} (${users.length} user${users.length === 1 ? '' : 's'}, passwords in ${usersFile}); controller's browser side ${sso.publicUrl}`,
  );
}

/** The provider's users as the lab made them (name, password, groups). */
export function labIdpUsers(sso: LabSso): TestIdpUser[] {
  return JSON.parse(readFileSync(sso.usersFile, 'utf8')) as TestIdpUser[];
}

/** Starts the provider in its namespace (again after `lab stop idp`) and records it. */
export async function startLabIdp(ops: LabOps): Promise<void> {
  const sso = ops.state.sso;
  if (!sso) throw new InputError('component', 'this lab runs no identity provider (lab up --sso)');
  const running = ops.state.processes.find((p) => p.id === IDP_PROCESS_ID);
  if (running && isAlive(running))
    throw new Conflict(`the identity provider already runs (pid ${running.pid})`);
  const secret = readFileSync(sso.clientSecretFile, 'utf8').trim();
  const idp = await startTestIdp({
    dir: sso.dir,
    host: sso.idpAddress,
    port: 443,
    netns: sso.ns,
    users: labIdpUsers(sso),
    clients: [
      {
        clientId: LAB_SSO_CLIENT_ID,
        clientSecret: secret,
        redirectUris: [`${sso.publicUrl}/sso/callback`],
      },
    ],
    tls: {
      certFile: join(sso.dir, 'idp.crt'),
      keyFile: join(sso.dir, 'idp.key'),
      caFile: sso.caFile,
    },
  });
  ops.recordProcess({ id: IDP_PROCESS_ID, kind: 'idp', ns: sso.ns, pid: idp.process.pid });
}

export async function stopLabIdp(p: LabProcess): Promise<void> {
  await stopProcess(p, 3000);
}

/** Arguments the first controller adds: its browser-facing HTTPS listener on the bridge. */
export function controllerSsoArgs(state: LabState): string[] {
  const sso = state.sso;
  if (!sso) return [];
  return [
    '--listen',
    `${sso.webAddress}:443`,
    '--tls-cert',
    sso.controllerCert,
    '--tls-key',
    sso.controllerKey,
  ];
}

/** The `lab status` row of the provider. */
export function idpStatus(
  state: LabState,
): { component: string; ns: string; running: boolean; where: string } | undefined {
  const sso = state.sso;
  if (!sso) return undefined;
  const p = state.processes.find((q) => q.id === IDP_PROCESS_ID);
  return { component: 'idp', ns: sso.ns, running: !!p && isAlive(p), where: sso.issuer };
}

export const IDP_COMPONENT = IDP_PROCESS_ID;

/**
 * A person's browser in a lab host's namespace (a VPN client's): an executable that runs
 * Debian's chromium there (playwright drives it over a pipe, which crosses namespaces), and the
 * flag that makes this browser alone trust the lab's CA. Pass both to launchChromium.
 */
export function labBrowser(
  state: LabState,
  ns: string,
): { executablePath: string; args: string[] } {
  const sso = state.sso;
  if (!sso) throw new InputError('--sso', 'this lab runs no identity provider (lab up --sso)');
  if (!state.namespaces.includes(ns)) throw new InputError('host', `no lab namespace ${ns}`);
  const executablePath = join(sso.dir, `chromium-in-${ns}`);
  // Namespace names are ours (prefix pattern + validated names): nothing here needs quoting.
  if (!existsSync(executablePath))
    writeFileAtomic(
      executablePath,
      `#!/bin/sh\nexec ip netns exec ${ns} ${CHROMIUM} "$@"\n`,
      0o755,
    );
  return { executablePath, args: [`--ignore-certificate-errors-spki-list=${sso.caSpki}`] };
}

/** One clear line for a `lab up --sso` that cannot run. */
export function checkSsoOption(o: { controlPlane: boolean }): void {
  if (!o.controlPlane)
    throw new InputError(
      '--sso',
      'a lab without control plane (--no-control-plane, --seed) has no controller to sign in at',
    );
  const missing = oidcProviderMissing();
  if (missing) throw new InputError('--sso', missing);
}

/**
 * What `lab up --sso` tells a fleet whose auth.sso does not use the lab's provider: the values
 * to put there (the controller reads auth.sso when it starts), one line each. Empty when it does.
 */
export function ssoSpecHint(
  spec: { auth?: { sso?: { issuer: string } } },
  labDirectory: string,
): string[] {
  const s = labSsoSettings(labDirectory);
  if (spec.auth?.sso?.issuer === s.issuer) return [];
  return [
    "sso: fleet.yaml's auth.sso does not use the lab's provider; to sign in with it, set",
    `  auth: { sso: { issuer: ${s.issuer}, clientId: ${s.clientId}, clientSecretFile: ${s.clientSecretFile},`,
    `    caFile: ${s.caFile}, publicUrl: ${s.publicUrl}, allowedGroups: [GROUP] } }`,
    '  in fleet.yaml, then "lab down" and "lab up --sso" again (controllers and servers read auth at start)',
  ];
}
