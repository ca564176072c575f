import { GENERATED_HEADER } from './types.js';

/** A VPN server routes between the tun and the backbone for both families. */
export function renderSysctl(): string {
  return [
    `# ${GENERATED_HEADER('sysctl')}`,
    'net.ipv4.ip_forward = 1',
    'net.ipv6.conf.all.forwarding = 1',
    '',
  ].join('\n');
}
