/**
 * A service host of the lab: answers on the given TCP ports (IPv4 and IPv6) with one line
 * naming itself and the client's address, so tests see both reachability and source address.
 * Usage: node service-host.js NAME PORT...
 */
import { createServer } from 'node:net';

const [name, ...ports] = process.argv.slice(2);
for (const port of ports.map(Number)) {
  createServer((sock) => {
    sock.end(`ovpn-fleet lab ${name} port ${port} hello ${sock.remoteAddress ?? '?'}\n`);
  })
    .on('error', (err) => {
      process.stderr.write(`${name}: port ${port}: ${err.message}\n`);
    })
    .listen({ port, host: '::', ipv6Only: false });
}
process.stdout.write(`${name}: listening on tcp ${ports.join(', ')}\n`);
process.on('SIGTERM', () => process.exit(0));
