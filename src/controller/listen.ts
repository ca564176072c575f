/** Where the controller listens: a unix socket (the default) or TCP, TLS unless loopback. */
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Conflict, InputError } from '../errors.js';
import { type Endpoint, formatEndpoint, isLoopback, parseAddress } from '../client/client.js';
import { type HttpOptions, nodeServerOptions } from './http.js';

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
    await prepareSocketPath(endpoint.path);
    await app.listen({ path: endpoint.path });
    // Owner and group (e.g. the admins' group) may connect; the token is still required.
    chmodSync(endpoint.path, 0o660);
    return formatEndpoint(endpoint);
  }
  await app.listen({ host: endpoint.host, port: endpoint.port });
  return formatEndpoint({ ...endpoint, port: portOf(app.server, endpoint.port) });
}

/**
 * Listens on each endpoint: one is fastify's own server, each further one a Node server with
 * the same deadlines and connection limit that hands its requests to the same routes
 * (`app.routing`), closed with the app. So the CLI keeps its unix socket while browsers and
 * Prometheus reach the same controller over TCP. Returns the addresses in --listen form, in the
 * order given.
 *
 * With TLS, fastify's own server speaks it (its `https` option): it takes the first TLS
 * endpoint, and unix sockets go to the plain servers. The CLI, the agents and the lab speak
 * plain HTTP to a socket file (which only its owner and group may open): a TLS socket file
 * would leave them all unable to connect.
 */
export async function listenOnAll(
  app: FastifyInstance,
  endpoints: Endpoint[],
  opts: HttpOptions,
): Promise<string[]> {
  if (!endpoints.length) throw new InputError('--listen', 'give at least one address');
  const tlsFirst = opts.https ? endpoints.findIndex((e) => e.kind === 'tcp' && e.tls) : -1;
  const firstIndex = Math.max(tlsFirst, 0);
  const out: string[] = new Array<string>(endpoints.length);
  out[firstIndex] = await listenOn(app, endpoints[firstIndex]);
  const extra: Server[] = [];
  // Hooks cannot be added to a started app: the extra servers follow its own server's close
  // (server.close stops accepting at once; open connections are cut).
  app.server.once('close', () => {
    for (const server of extra) {
      server.close();
      server.closeAllConnections();
    }
  });
  for (const [index, endpoint] of endpoints.entries()) {
    if (index === firstIndex) continue;
    const handler = (
      req: Parameters<typeof app.routing>[0],
      res: Parameters<typeof app.routing>[1],
    ) => app.routing(req, res);
    const options = nodeServerOptions(opts);
    const server: Server =
      endpoint.kind === 'tcp' && endpoint.tls && opts.https
        ? createHttpsServer({ ...options, ...opts.https }, handler)
        : createHttpServer(options, handler);
    server.maxConnections = opts.maxConnections ?? 1024;
    // The idle-socket deadline fastify sets on its own server (the long-poll lengthens its own).
    server.setTimeout(opts.requestTimeoutMs ?? 10_000);
    extra.push(server);
    if (endpoint.kind === 'unix') await prepareSocketPath(endpoint.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (endpoint.kind === 'unix') server.listen(endpoint.path, resolve);
      else server.listen(endpoint.port, endpoint.host, resolve);
    });
    if (endpoint.kind === 'unix') {
      chmodSync(endpoint.path, 0o660);
      out[index] = formatEndpoint(endpoint);
    } else out[index] = formatEndpoint({ ...endpoint, port: portOf(server, endpoint.port) });
  }
  return out;
}

async function prepareSocketPath(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
  await clearStaleSocket(path);
}

function portOf(server: Server, fallback: number): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : fallback;
}
