/** Client profile (.ovpn) with everything inline. Pure. */
import type { FleetSpec } from '../spec/schema.js';
import { GENERATED_HEADER, serverCommonName } from './types.js';

export interface ProfileInput {
  spec: FleetSpec;
  user: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  tlsCryptKey: string;
}

/** Remotes clients try in order: every load balancer first, then every server. */
export function profileRemotes(spec: FleetSpec): string[] {
  return [
    ...spec.sites.flatMap((s) => (s.loadBalancer ? [s.loadBalancer] : [])),
    ...spec.sites.flatMap((s) => s.servers.map((v) => v.address)),
  ];
}

export function renderProfile(p: ProfileInput): string {
  const o = p.spec.openvpn;
  const inline = (tag: string, body: string) => [`<${tag}>`, body.trim(), `</${tag}>`];
  return [
    `# ${GENERATED_HEADER(`profile of ${p.user}, fleet ${p.spec.fleet}`)}`,
    'client',
    'dev tun',
    `proto ${o.proto}`,
    ...profileRemotes(p.spec).map((r) => `remote ${r} ${o.port}`),
    '# Keep trying forever, through every remote in turn.',
    'resolv-retry infinite',
    'nobind',
    'persist-key',
    'persist-tun',
    '# Failover: the server pushes keepalive (ping every',
    `# ${o.keepalive.interval} s, restart after ${o.keepalive.timeout} s of silence). After a restart the client dials the`,
    '# same remote once more (a load balancer sends it to a live server; a dead server is left',
    '# after server-poll-timeout), so a crashed server costs at most ping-restart + 1 s timer',
    '# tick + server-poll-timeout + handshake.',
    '# Reconnect without a pause; only after 5 failed rounds through all remotes back off, to at',
    '# most 5 s between attempts.',
    'connect-retry 0 5',
    `# A remote that has not answered within ${o.serverPollTimeout} s (dead server, dead site) is skipped.`,
    `server-poll-timeout ${o.serverPollTimeout}`,
    `# Give up on a remote whose TLS handshake has not finished within ${o.handWindow} s.`,
    `hand-window ${o.handWindow}`,
    "# Only a certificate issued to one of this fleet's servers is accepted.",
    'remote-cert-tls server',
    `verify-x509-name ${serverCommonName(p.spec.fleet, '')} name-prefix`,
    'tls-version-min 1.2',
    `data-ciphers ${o.dataCiphers.join(':')}`,
    ...(o.proto === 'udp'
      ? [
          '# Tell the server when we leave: its agent withdraws our routes at once instead of',
          "# after OpenVPN's 5 s delayed exit.",
          'explicit-exit-notify 1',
        ]
      : []),
    'verb 3',
    ...(p.spec.auth
      ? [
          // OpenVPN 2.6 keeps a pushed auth-token only for a non-empty user name (misc.c
          // set_auth_token): without one the client never sends it back and every reconnect
          // would ask for a new sign-in. The name also binds the token: its HMAC covers it,
          // and the agent takes a token only with the certificate's own name.
          '# Sign-in at connect: the name lets the roaming token name you; the password is unused.',
          ...inline('auth-user-pass', `${p.user}\n-`),
        ]
      : []),
    ...inline('ca', p.caPem),
    ...inline('cert', p.certPem),
    ...inline('key', p.keyPem),
    ...inline('tls-crypt', p.tlsCryptKey),
    '',
  ].join('\n');
}
