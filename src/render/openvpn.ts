/** OpenVPN server config and client-config-dir files. Pure. */
import { gatewayAddress } from '../core/ipam.js';
import { ipv4Netmask, mustParsePrefix } from '../core/ip.js';
import { GENERATED_HEADER, type RenderUser, type ServerContext } from './types.js';

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
    "# Hooks: tiny POSIX sh, they add and remove the users' host routes that FRR announces.",
    'script-security 2',
    'learn-address hooks/learn-address',
    'client-disconnect hooks/client-disconnect',
    'verb 3',
    '',
  );
  return lines.join('\n');
}

export function renderCcd(ctx: ServerContext, user: RenderUser): string {
  const v4 = mustParsePrefix(ctx.spec.pools.ipv4);
  const v6 = mustParsePrefix(ctx.spec.pools.ipv6);
  return [
    `ifconfig-push ${user.ipv4} ${ipv4Netmask(v4.length)}`,
    `ifconfig-ipv6-push ${user.ipv6}/${v6.length} ${gatewayAddress(v6)}`,
    '',
  ].join('\n');
}
