/**
 * Everything one server needs, as a list of files with a version digest. Pure: the same spec
 * and snapshot give byte-identical output.
 */
import { createHash } from 'node:crypto';
import { compilePolicy } from '../core/policy.js';
import { AUTH_POLICY_FILE, authPolicy, renderAuthPolicy } from './auth-policy.js';
import type { FleetSpec } from '../spec/schema.js';
import { renderFrrConf } from './frr.js';
import { renderClientConnect, renderClientDisconnect, renderLearnAddress } from './hooks.js';
import { renderNftables } from './nftables.js';
import { AUTH_TOKEN_KEY_FILE, type PinnedUser, renderCcd, renderServerConf } from './openvpn.js';
import { renderSysctl } from './sysctl.js';
import type { RenderOptions, RenderSnapshot, RenderedFile, ServerContext } from './types.js';

/**
 * A snapshot whose users may carry the serials their servers accept. A user without any is
 * refused by the client-connect hook, so a snapshot without pins locks everyone out: only a
 * test or a seed bundle renders one.
 */
export interface PinnedSnapshot extends RenderSnapshot {
  users: PinnedUser[];
}

export interface Bundle {
  server: string;
  files: RenderedFile[];
  /** sha256 over every path, mode and content: changes iff the bundle changes. */
  digest: string;
}

export function bundleDigest(files: RenderedFile[]): string {
  const h = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    h.update(`${f.path}\0${f.mode.toString(8)}\0${f.content.length}\0`).update(f.content);
  }
  return h.digest('hex');
}

export function serverContexts(spec: FleetSpec, options: RenderOptions): ServerContext[] {
  return spec.sites.flatMap((site) =>
    site.servers.map((server) => ({ spec, site, server, options })),
  );
}

/**
 * Only enabled users get a ccd file; with ccd-exclusive everyone else is refused. The files
 * are the same on every server, so a fleet render makes them once.
 */
export function ccdFiles(ctx: ServerContext, snap: PinnedSnapshot): RenderedFile[] {
  return snap.users
    .filter((u) => u.enabled)
    .map((u) => ({ path: `ccd/${u.name}`, content: renderCcd(ctx, u), mode: 0o644 }));
}

export function renderBundle(
  ctx: ServerContext,
  snap: PinnedSnapshot,
  policy = compilePolicy(ctx.spec, snap.users),
  ccd = ccdFiles(ctx, snap),
): Bundle {
  const secrets = snap.servers.get(ctx.server.name);
  if (!secrets) throw new Error(`no certificate for server ${ctx.server.name}`);
  const file = (path: string, content: string, mode = 0o644): RenderedFile => ({
    path,
    content,
    mode,
  });
  const files: RenderedFile[] = [
    file('server.conf', renderServerConf(ctx)),
    file('ca.crt', snap.caPem),
    file('server.crt', secrets.certPem),
    file('server.key', secrets.keyPem, 0o600),
    file('tls-crypt.key', snap.tlsCryptKey, 0o600),
    file('management.pw', `${secrets.managementPassword}\n`, 0o600),
    file('crl.pem', snap.crlPem),
    file('hooks/learn-address', renderLearnAddress(ctx.options), 0o755),
    file('hooks/client-connect', renderClientConnect(), 0o755),
    file('hooks/client-disconnect', renderClientDisconnect(ctx.options), 0o755),
    // Routing passwords and keys: root and the frr group (frr-reload runs as root).
    file('frr.conf', renderFrrConf(ctx), 0o640),
    file('nftables.nft', renderNftables(ctx, policy)),
    file('sysctl.conf', renderSysctl()),
  ];
  if (ctx.spec.auth) {
    if (!snap.authTokenKey) throw new Error('auth in the spec but no auth-token secret');
    files.push(file(AUTH_TOKEN_KEY_FILE, snap.authTokenKey, 0o600));
    files.push(file(AUTH_POLICY_FILE, renderAuthPolicy(authPolicy(ctx.spec, snap.users)!)));
  }
  files.push(...ccd);
  return { server: ctx.server.name, files, digest: bundleDigest(files) };
}

/**
 * All servers' bundles; the policy and the ccd files are made once for the whole fleet.
 * `baseDirFor` places each server's bundle somewhere of its own (the lab, a controller with a
 * per-server layout); by default every server uses `options.baseDir`.
 */
export function renderFleet(
  spec: FleetSpec,
  snap: PinnedSnapshot,
  options: RenderOptions,
  baseDirFor?: (server: string) => string,
): Bundle[] {
  const policy = compilePolicy(spec, snap.users);
  const contexts = serverContexts(spec, options).map((ctx) =>
    baseDirFor ? { ...ctx, options: { ...options, baseDir: baseDirFor(ctx.server.name) } } : ctx,
  );
  const ccd = contexts.length ? ccdFiles(contexts[0], snap) : [];
  return contexts.map((ctx) => renderBundle(ctx, snap, policy, ccd));
}
