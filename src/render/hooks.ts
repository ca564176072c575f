/**
 * OpenVPN hook scripts. They run synchronously inside OpenVPN's single-threaded event loop, so
 * every client on the server waits while one runs: POSIX sh, no Node, one exec of `ip`, no
 * subshells. The device name and route protocol are baked in because `learn-address delete`
 * runs with an empty environment (no $dev, no PATH).
 */
import { GENERATED_HEADER, type RenderOptions } from './types.js';

/** Characters an IPv4/IPv6 address (optionally with /len) may contain. */
const ADDRESS_GUARD = "''|*[!0-9A-Fa-f.:/]*";

export function renderLearnAddress(o: RenderOptions): string {
  return `#!/bin/sh
# ${GENERATED_HEADER('learn-address hook')}
# learn-address OPERATION ADDRESS [COMMON_NAME]; IPv4 and IPv6 addresses alike.
# "update" means the address was already known (a quick reconnect): same as "add".
case $2 in
  ${ADDRESS_GUARD}) echo "learn-address: refusing address '$2'" >&2; exit 1 ;;
esac
case $1 in
  add|update) exec /sbin/ip route replace "$2" dev ${o.tunDevice} proto ${o.routeProtocol} ;;
  delete) exec /sbin/ip route del "$2" dev ${o.tunDevice} proto ${o.routeProtocol} 2>/dev/null ;;
  *) echo "learn-address: unknown operation '$1'" >&2; exit 1 ;;
esac
`;
}

/**
 * client-disconnect fires as soon as a client leaves, whereas learn-address "delete" waits for
 * OpenVPN's reaper (up to ~16 s later): remove both host routes here, in one exec of ip.
 */
export function renderClientDisconnect(o: RenderOptions): string {
  return `#!/bin/sh
# ${GENERATED_HEADER('client-disconnect hook')}
# OpenVPN sets ifconfig_pool_remote_ip / ifconfig_pool_remote_ip6 to the user's addresses.
v4=$ifconfig_pool_remote_ip
v6=$ifconfig_pool_remote_ip6
case $v4 in ${ADDRESS_GUARD}) v4= ;; esac
case $v6 in ${ADDRESS_GUARD}) v6= ;; esac
[ -n "$v4$v6" ] || exit 0
exec /sbin/ip -force -batch - 2>/dev/null <<ROUTES
\${v4:+route del $v4 dev ${o.tunDevice} proto ${o.routeProtocol}}
\${v6:+route del $v6 dev ${o.tunDevice} proto ${o.routeProtocol}}
ROUTES
`;
}
