/**
 * OpenVPN hook scripts. They run synchronously inside OpenVPN's single-threaded event loop, so
 * every client on the server waits while one runs: POSIX sh, no Node, one exec of `ip`, no
 * subshells. The device name and route protocol are baked in because `learn-address delete`
 * runs with an empty environment (no $dev, no PATH).
 */
import { CERT_SERIAL_PREFIX } from './openvpn.js';
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

/**
 * Admits a client only if ccd/<common name> pins the serial of the certificate it presented
 * (see renderCcd). OpenVPN runs it with the bundle directory as working directory, the
 * client's CN in $common_name and its certificate's serial in $tls_serial_hex_0; a non-zero
 * exit refuses the connection. Builtins only: no PATH, no subshell, no exec.
 */
export function renderClientConnect(): string {
  return `#!/bin/sh
# ${GENERATED_HEADER('client-connect hook')}
# Refuse unless ccd/$common_name has the line "${CERT_SERIAL_PREFIX}$tls_serial_hex_0".
case $common_name in
  ''|.*|*[!A-Za-z0-9._-]*) echo "client-connect: refusing common name '$common_name'" >&2; exit 1 ;;
esac
case $tls_serial_hex_0 in
  ''|*[!0-9a-f:]*) echo "client-connect: $common_name: no usable certificate serial" >&2; exit 1 ;;
esac
[ -f "ccd/$common_name" ] || { echo "client-connect: $common_name: no ccd file" >&2; exit 1; }
while IFS= read -r line; do
  [ "$line" = "${CERT_SERIAL_PREFIX}$tls_serial_hex_0" ] && exit 0
done < "ccd/$common_name"
echo "client-connect: $common_name: certificate $tls_serial_hex_0 is not pinned" >&2
exit 1
`;
}
