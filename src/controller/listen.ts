/** Where the controller listens: a unix socket (the default) or TCP, TLS unless loopback. */
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Conflict, InputError } from '../errors.js';
import { type Endpoint, formatEndpoint, isLoopback, parseAddress } from '../client/client.js';

export function defaultSocketPath(fleetDir: string): string {
  return join(fleetDir, 'run', 'controller.sock');
}

/** Parses --listen and refuses plain HTTP on anything but loopback. */
export function parseListen(text: string, tls: boolean): Endpoint {
  const e = parseAddress(text, '--listen');
  if (e.kind === 'tcp') {
    if (!tls && !isLoopback(e.host))
      throw new InputError(
        '--listen',
        `${text} is not a loopback address: give --tls-cert and --tls-key (tokens must not cross a network in clear)`,
      );
    return { ...e, tls };
  }
  return e;
}

/** A socket file nobody answers on is left over from a crash; a live one is another controller. */
async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket())
    throw new Conflict(`${path} exists and is not a socket: refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw new Conflict(`another controller is listening on ${path}`);
  rmSync(path);
}

/** Starts listening; returns the address in --listen form. */
export async function listenOn(app: FastifyInstance, endpoint: Endpoint): Promise<string> {
  if (endpoint.kind === 'unix') {
    mkdirSync(dirname(endpoint.path), { recursive: true, mode: 0o750 });
    await clearStaleSocket(endpoint.path);
    await app.listen({ path: endpoint.path });
    // Owner and group (e.g. the admins' group) may connect; the token is still required.
    chmodSync(endpoint.path, 0o660);
    return formatEndpoint(endpoint);
  }
  await app.listen({ host: endpoint.host, port: endpoint.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : endpoint.port;
  return formatEndpoint({ ...endpoint, port });
}
