/**
 * A test OpenID provider for the lab and the tests: `oidc-provider` in a child process of its
 * own (idp-server.ts), over HTTPS with a certificate made here, stopped by its pid. The relying
 * party trusts it through `auth.sso.caFile` (the certificate is its own CA): production keeps
 * refusing plain http and unknown CAs, nothing is weakened for the lab.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../sys/exec.js';
import { writeFileAtomic } from '../sys/files.js';
import { isAlive, spawnDetached, stopProcess, type TrackedProcess } from '../sys/proc.js';
import { waitFor } from '../sys/time.js';

export interface TestIdpUser {
  /** The login name, also `preferred_username`. */
  name: string;
  password: string;
  /** The `groups` claim. */
  groups: string[];
  /** Default `<name>@example.com`. */
  email?: string;
  /** The `sub` claim; default `sub-<name>`. */
  subject?: string;
}

export interface TestIdpClient {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}

/** What idp-server.ts reads (JSON). */
export interface TestIdpConfig {
  issuer: string;
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
  cookieKey: string;
  users: TestIdpUser[];
  clients: TestIdpClient[];
}

export interface TestIdp {
  issuer: string;
  /** The PEM the relying party must trust (`auth.sso.caFile`). */
  caFile: string;
  process: TrackedProcess;
  logFile: string;
  stop(): Promise<void>;
}

/** argv running idp-server: the built .js, or the .ts through tsx when running from source. */
function serverEntry(): string[] {
  const js = fileURLToPath(new URL('./idp-server.js', import.meta.url));
  if (existsSync(js)) return [process.execPath, js];
  // Under vitest import.meta.resolve is missing: the bare name resolves from the working
  // directory, the project's.
  const tsx = typeof import.meta.resolve === 'function' ? import.meta.resolve('tsx') : 'tsx';
  return [process.execPath, '--import', tsx, js.replace(/\.js$/, '.ts')];
}

/**
 * Starts the provider on `host:port` (loopback, or an address of `netns`), its files in `dir`;
 * resolves once its discovery document answers over HTTPS with the new certificate.
 */
export async function startTestIdp(opts: {
  dir: string;
  port: number;
  host?: string;
  netns?: string;
  users: TestIdpUser[];
  clients: TestIdpClient[];
  /**
   * A certificate made elsewhere (the lab's own CA, sso-lab.ts): `certFile` is the chain the
   * provider sends, `caFile` what a relying party trusts. Default: a self-signed one made here.
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
}): Promise<TestIdp> {
  const host = opts.host ?? '127.0.0.1';
  const hostPart = isIP(host) === 6 ? `[${host}]` : host;
  // https's own port is left out: the issuer must be exactly the one discovery returns.
  const issuer = `https://${hostPart}${opts.port === 443 ? '' : `:${opts.port}`}`;
  const certFile = opts.tls?.certFile ?? join(opts.dir, 'idp.crt');
  const keyFile = opts.tls?.keyFile ?? join(opts.dir, 'idp.key');
  if (!opts.tls) await selfSignedCertificate(host, certFile, keyFile);
  const config: TestIdpConfig = {
    issuer,
    host,
    port: opts.port,
    certFile,
    keyFile,
    cookieKey: randomBytes(24).toString('hex'),
    users: opts.users,
    clients: opts.clients,
  };
  const configFile = join(opts.dir, 'idp.json');
  writeFileAtomic(configFile, JSON.stringify(config), 0o600);
  const logFile = join(opts.dir, 'idp.log');
  // Emptied: the ready line of an earlier run in the same directory must not count.
  writeFileSync(logFile, '');
  const proc = spawnDetached([...serverEntry(), configFile], {
    logFile,
    ...(opts.netns ? { netns: opts.netns } : {}),
  });
  const stop = () => stopProcess(proc, 3000);
  // Ready when it says so in its log: the same wherever it listens (a lab namespace is not
  // reachable from here); a provider that died says why in the same log.
  const ready = `idp: ${issuer} ready`;
  try {
    await waitFor(
      `the test identity provider at ${issuer} (see ${logFile})`,
      () => {
        if (!isAlive(proc)) throw new Error(`the test identity provider exited: see ${logFile}`);
        return existsSync(logFile) && readFileSync(logFile, 'utf8').includes(ready);
      },
      20_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { issuer, caFile: opts.tls?.caFile ?? certFile, process: proc, logFile, stop };
}

/** A throwaway certificate for `host` that is its own CA (what the relying party trusts). */
async function selfSignedCertificate(host: string, certFile: string, keyFile: string) {
  await run([
    'openssl',
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=ovpn-fleet test identity provider',
    '-addext',
    `subjectAltName=${isIP(host) ? 'IP' : 'DNS'}:${host}`,
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ]);
}
