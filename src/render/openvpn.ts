/** OpenVPN server config and client-config-dir files. Pure. */
import { gatewayAddress } from '../core/ipam.js';
import { ipv4Netmask, mustParsePrefix } from '../core/ip.js';
import { parseDuration } from '../spec/schema.js';
import { GENERATED_HEADER, type RenderUser, type ServerContext } from './types.js';

/** A user with the serials (lower-case hex, as in the store) their servers accept. */
export interface PinnedUser extends RenderUser {
  /** Usually one; two while a certificate is being renewed. None: the user is refused. */
  certSerials?: readonly string[];
}

/** The ccd line that pins a serial; the client-connect hook looks for exactly this text. */
export const CERT_SERIAL_PREFIX = '# cert-serial ';

/**
 * A serial as OpenVPN 2.6 (OpenSSL build) puts it in `tls_serial_hex_N`: the INTEGER's
 * magnitude octets, each as two lower-case hex digits, joined by ":" ("abc" → "0a:bc").
 * OpenVPN prints `ASN1_INTEGER->data`, which OpenSSL keeps without DER's sign-padding zero.
 * Here rather than in core/pki so that rendering does not load the X.509 library.
 */
export function openvpnSerialHex(serial: string): string {
  if (!/^[0-9a-fA-F]+$/.test(serial) || /^0*$/.test(serial))
    throw new Error(`certificate serial "${serial}" is not a positive hex number`);
  const hex = serial.toLowerCase().replace(/^0+/, '');
  const even = hex.length % 2 ? `0${hex}` : hex;
  return even.match(/../g)!.join(':');
}

/*
 * The pin is checked by a client-connect hook rather than tls-verify: tls-verify runs once per
 * certificate of the chain on every TLS handshake, renegotiations included, and would have to
 * find the user's file from the subject string; client-connect runs once per connection with
 * $common_name and $tls_serial_hex_0 set, and reads the same ccd file that already decides
 * whether the user may connect (OpenVPN refuses a renegotiation with another certificate).
 *
 * OpenVPN stays root (no `user`/`group`). OpenVPN 2.6 can drop to a user and keep
 * CAP_NET_ADMIN, but only in its own effective and permitted sets (libcap-ng,
 * platform_user_group_set): nothing is inheritable or ambient, so a hook it execs as that user
 * has no capabilities, and `ip route replace|del` in learn-address and client-disconnect fails
 * with EPERM — users would connect and get no host route. Giving /sbin/ip file capabilities
 * would hand route control to every local user; sudo or a setuid helper would put PATH, PAM and
 * a fork on OpenVPN's blocking path. Dropping privileges needs the route work moved out of the
 * hooks (the agent already reconciles routes with sessions) — not done here.
 */
export function renderServerConf(ctx: ServerContext): string {
  const { spec, server, site, options } = ctx;
  const o = spec.openvpn;
  const v4 = mustParsePrefix(spec.pools.ipv4);
  const v6 = mustParsePrefix(spec.pools.ipv6);
  const gw4 = gatewayAddress(v4);
  const gw6 = gatewayAddress(v6);
  const lines: string[] = [
    `# ${GENERATED_HEADER(`server ${server.name}, site ${site.name}`)}`,
    '# Relative paths below are relative to the bundle directory.',
    `cd ${options.baseDir}`,
    '',
    'mode server',
    'tls-server',
    `proto ${o.proto}`,
    `port ${o.port}`,
    `dev ${options.tunDevice}`,
    'dev-type tun',
    '',
    "# Every server uses the same gateway address in the user pools, so a user's ccd file",
    '# and pushed route-gateway are identical on every server.',
    'topology subnet',
    `ifconfig ${gw4} ${ipv4Netmask(v4.length)}`,
    `ifconfig-ipv6 ${gw6}/${v6.length} ${gw6}`,
    'push "topology subnet"',
    `push "route-gateway ${gw4}"`,
    '',
    '# Addresses come only from ccd/<user>; a user without a file (disabled, deleted) is refused.',
    'client-config-dir ccd',
    'ccd-exclusive',
    '',
    'ca ca.crt',
    'cert server.crt',
    'key server.key',
    'dh none',
    'tls-crypt tls-crypt.key',
    '# Only certificates made for TLS clients: a server certificate of the same CA is no user.',
    'remote-cert-tls client',
    '# Re-read whenever its mtime or size changes; revocation also needs a client-kill.',
    'crl-verify crl.pem',
    'tls-version-min 1.2',
    `data-ciphers ${o.dataCiphers.join(':')}`,
    '',
    `# Clients ping every ${o.keepalive.interval} s and restart after ${o.keepalive.timeout} s of silence; the`,
    `# server drops a silent client after ${2 * o.keepalive.timeout} s.`,
    `keepalive ${o.keepalive.interval} ${o.keepalive.timeout}`,
    `hand-window ${o.handWindow}`,
    'persist-key',
    'persist-tun',
  ];
  if (o.proto === 'udp') {
    lines.push(
      '# On shutdown or restart tell every client to reconnect to its next remote at once',
      '# instead of waiting out its ping-restart.',
      'explicit-exit-notify 2',
    );
  }
  lines.push('', '# What clients get.');
  for (const dns of o.push.dns)
    lines.push(`push "dhcp-option DNS${dns.includes(':') ? '6' : ''} ${dns}"`);
  if (o.push.domain) lines.push(`push "dhcp-option DOMAIN ${o.push.domain}"`);
  for (const route of o.push.routes) {
    const p = mustParsePrefix(route);
    if (p.family === 4) lines.push(`push "route ${route.split('/')[0]} ${ipv4Netmask(p.length)}"`);
    else lines.push(`push "route-ipv6 ${route}"`);
  }
  lines.push(
    '',
    '# The agent is the only client of the management interface.',
    'management run/management.sock unix management.pw',
    'status run/status.log 1',
    'status-version 3',
    '',
    ...authLines(ctx),
    "# Hooks: tiny POSIX sh, they add and remove the users' host routes that FRR announces.",
    '# client-connect admits a certificate only if ccd/<user> pins its serial: a name deleted',
    '# and added again is not reachable with any older certificate, CRL or not.',
    '# No user/group: the hooks run ip route, which needs root (see openvpn.ts).',
    'script-security 2',
    'client-connect hooks/client-connect',
    'learn-address hooks/learn-address',
    'client-disconnect hooks/client-disconnect',
    'verb 3',
    '',
  );
  return lines.join('\n');
}

/**
 * The same for every server (it depends on the pools and the user only). The pins are written
 * in OpenVPN's own tls_serial_hex format, so the hook compares text and needs no conversion.
 */
export function renderCcd(ctx: ServerContext, user: PinnedUser): string {
  const v4 = mustParsePrefix(ctx.spec.pools.ipv4);
  const v6 = mustParsePrefix(ctx.spec.pools.ipv6);
  return [
    `ifconfig-push ${user.ipv4} ${ipv4Netmask(v4.length)}`,
    `ifconfig-ipv6-push ${user.ipv6}/${v6.length} ${gatewayAddress(v6)}`,
    ...[...new Set(user.certSerials ?? [])]
      .map(openvpnSerialHex)
      .sort()
      .map((hex) => `${CERT_SERIAL_PREFIX}${hex}`),
    '',
  ].join('\n');
}

/** Bundle file holding the auth-gen-token secret (the same on every server). */
export const AUTH_TOKEN_KEY_FILE = 'auth-token.key';

/*
 * Connect-time authentication, checked in OpenVPN 2.6's source (ssl.c, ssl_verify.c,
 * auth_token.c, push.c, multi.c):
 *
 * - management-client-auth makes every connect and every renegotiation wait for the management
 *   client: OpenVPN sends `>CLIENT:CONNECT|REAUTH,CID,KID` + env and holds the key until
 *   `client-auth[-nt]` or `client-deny`. Without an answer within min(hand-window, reneg-sec/2)
 *   of the key's start (auth_deferred_expire_window) the key fails: an agent that is down refuses
 *   new connects after hand-window, established sessions go on until their next renegotiation.
 * - With management-client-auth OpenVPN also requires a username/password from every client
 *   (tls_session_user_pass_enabled) unless auth-user-pass-optional: certificate-only profiles
 *   send none, so it is on; the agent sees username and password as "".
 * - auth-gen-token pushes a token after a successful auth; the client sends it back as its
 *   password on every later handshake (also after a SIGUSR1 restart towards another remote, and
 *   with no auth-user-pass of its own: key_method_2_write sends it when one is defined). With
 *   `external-auth` OpenVPN still asks the management client and sets `session_state`:
 *   Initial (no token), Authenticated, Expired, Invalid, AuthenticatedEmptyUser /
 *   ExpiredEmptyUser (valid for the empty username: OpenVPN 3's behaviour; a certificate-only
 *   client has an empty username anyway). A token is valid for `lifetime` after the first
 *   sign-in, and only while renewed (every reneg-sec, default 3600 s) within 2 × renewal-time;
 *   renewal-time left out means reneg-sec (options.c); an explicit 0 is refused by 2.6.14
 *   ("Invalid argument to auth-gen-token: 0": valid_integer(…, positive)). The HMAC covers the username, session id and
 *   timestamps, not the certificate: the agent also checks the CN it comes with.
 * - The secret is read at start (auth_token_init_secret): a new one needs OpenVPN restarted
 *   (RESTART_FILES), and every token made with the old one is Invalid from then on: its users
 *   sign in again at their next connect (live sessions stay up until their next renegotiation,
 *   where REAUTH carries the token: the agent then asks for a sign-in again).
 * - client-pending-auth sets the key's deadline to now + TIMEOUT, capped by the server at
 *   max(reneg-sec/2, hand-window) minus the time already spent (push.c
 *   send_auth_pending_messages; management-notes.txt says "smaller", the code takes the larger),
 *   and the client caps its own wait the same way: with the default reneg-sec 3600, 1800 s.
 */
function authLines(ctx: ServerContext): string[] {
  const auth = ctx.spec.auth;
  if (!auth) return [];
  const lifetime = parseDuration(auth.token.lifetime);
  if (lifetime === undefined) throw new Error(`auth.token.lifetime: "${auth.token.lifetime}"`);
  return [
    '# Connect-time authentication: the agent decides every connect on the management',
    '# interface (certificates alone at once; SSO or TOTP users after their sign-in). A sign-in',
    `# gives a token valid ${auth.token.lifetime} on every server (one shared secret).`,
    'management-client-auth',
    'auth-user-pass-optional',
    `auth-gen-token ${lifetime} external-auth`,
    `auth-gen-token-secret ${AUTH_TOKEN_KEY_FILE}`,
    '',
  ];
}
