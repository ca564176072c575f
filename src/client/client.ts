/**
 * A small typed client of the controller's API (node:http, unix socket or TCP/TLS), used by the
 * CLI, the agent and the lab. Answers are parsed with the wire contract (src/api); API errors
 * come back as ApiError carrying the server's one-line message.
 */
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import {
  type NewUserBody,
  type RolloutStartBody,
  RolloutStatusView,
  RolloutView,
  ServerView,
  SessionView,
  User,
} from '../api/index.js';
import { FleetError, InputError } from '../errors.js';
import {
  EndpointSet,
  type FailoverClock,
  type FailoverOptions,
  PROBE_TIMEOUT_MS,
  type TransportFailure,
} from './failover.js';

export type Endpoint =
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number; tls: boolean; ca?: string | Buffer };

/**
 * Hosts whose traffic never leaves the machine. Only literal addresses and `localhost` count:
 * a malformed "127.999.0.1" would go to the resolver, which may answer with anything.
 */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return isIPv4(v4) && v4.startsWith('127.');
}

/** `unix:PATH`, `[http://]HOST:PORT` or `https://HOST:PORT`, with nothing checked yet. */
export function parseAddress(text: string, field: string): Endpoint {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path) throw new InputError(field, 'unix: needs a socket path');
    return { kind: 'unix', path };
  }
  let rest = text;
  let tls = false;
  if (rest.startsWith('https://')) {
    tls = true;
    rest = rest.slice('https://'.length);
  } else if (rest.startsWith('http://')) rest = rest.slice('http://'.length);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]/]+)):(\d{1,5})\/?$/.exec(rest);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw new InputError(field, `"${text}" is not unix:PATH or HOST:PORT`);
  return { kind: 'tcp', host: m[1] ?? m[2], port, tls };
}

/** Where a bearer token may be sent: a unix socket, loopback, or TLS. */
function assertNotCleartext(e: Endpoint, field: string, text = formatEndpoint(e)): void {
  if (e.kind === 'tcp' && !e.tls && !isLoopback(e.host))
    throw new InputError(
      field,
      `${text} would send the token unencrypted: use https://${formatHostPort(e)} (plain HTTP only to loopback or unix:PATH)`,
    );
}

/**
 * A controller to connect to: `unix:/path/ctl.sock`, `https://HOST:PORT`, or plain
 * `http://HOST:PORT` / `HOST:PORT` to loopback only. A schemeless HOST:PORT elsewhere is refused
 * rather than upgraded to TLS: the same text would otherwise mean HTTP to one host and HTTPS to
 * another. `ca` pins the CA the controller's certificate must chain to (https only).
 */
export function parseEndpoint(
  text: string,
  field = '--controller',
  options: { ca?: string | Buffer } = {},
): Endpoint {
  const e = parseAddress(text, field);
  assertNotCleartext(e, field, text);
  if (options.ca === undefined) return e;
  if (e.kind !== 'tcp' || !e.tls)
    throw new InputError('--ca', `only applies to an https:// controller, not ${text}`);
  return { ...e, ca: options.ca };
}

/**
 * Several controllers (`--controller` repeated), first preferred; `ca` pins the CA for every
 * https one. Each is checked as parseEndpoint checks one; the same controller twice is refused.
 */
export function parseEndpoints(
  texts: readonly string[],
  field = '--controller',
  options: { ca?: string | Buffer } = {},
): Endpoint[] {
  if (!texts.length) throw new InputError(field, 'name at least one controller');
  const seen = new Set<string>();
  const endpoints = texts.map((text) => parseEndpoint(text, field));
  // With several, the CA applies to those that are https (a local unix: one needs none).
  const https = endpoints.filter((e) => e.kind === 'tcp' && e.tls);
  if (options.ca !== undefined && !https.length)
    throw new InputError('--ca', `only applies to an https:// controller, not ${texts.join(', ')}`);
  return endpoints.map((e, i) => {
    const text = texts[i];
    const name = formatEndpoint(e);
    if (seen.has(name)) throw new InputError(field, `${text} is given twice`);
    seen.add(name);
    return options.ca !== undefined && e.kind === 'tcp' && e.tls ? { ...e, ca: options.ca } : e;
  });
}

function formatHostPort(e: Extract<Endpoint, { kind: 'tcp' }>): string {
  const host = e.host.includes(':') ? `[${e.host}]` : e.host;
  return `${host}:${e.port}`;
}

export function formatEndpoint(e: Endpoint): string {
  if (e.kind === 'unix') return `unix:${e.path}`;
  return `${e.tls ? 'https://' : ''}${formatHostPort(e)}`;
}

/** An answer of the controller other than 2xx. */
export class ApiError extends FleetError {
  constructor(
    /** The HTTP status the controller answered. */
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The controller could not be reached at all (no socket, refused, timed out). */
export class ControllerUnreachable extends FleetError {
  constructor(
    readonly endpoint: string,
    readonly reason: string,
    /** The connection was up: the request may have reached the controller. */
    readonly maybeDone = false,
  ) {
    super(`controller at ${endpoint} is not reachable: ${reason}`);
  }
}

/**
 * The controller answered TLS with a certificate we do not trust. Not "unreachable": falling
 * back to something else would hide a wrong --ca, or someone in the middle.
 */
export class ControllerUntrusted extends FleetError {
  constructor(
    readonly endpoint: string,
    readonly reason: string,
  ) {
    super(`controller at ${endpoint} is not trusted: ${reason}`);
  }
}

/** OpenSSL's verify results and node's host name check, as they arrive in `err.code`. */
function isCertificateError(code: string | undefined): boolean {
  return (
    code !== undefined &&
    (/CERT|SELF_SIGNED|UNABLE_TO_(GET_ISSUER|VERIFY)/.test(code) || code.startsWith('ERR_TLS_'))
  );
}

function untrustedReason(code: string, pinned: boolean): string {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `its certificate is not for this host name (${code})`;
  return `its certificate does not verify against ${pinned ? 'the --ca file' : "the system's CAs (give --ca)"} (${code})`;
}

/**
 * How long a new connection may take. A lost SYN is sent again after 1 s (Linux), so 1.5 s still
 * connects through one loss; a controller host that is gone is left after that.
 */
export const CONNECT_TIMEOUT_MS = 1500;

interface SendOnceOptions {
  token?: string;
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** One request to one controller, answered with its status and text. */
function sendOnce(
  e: Endpoint,
  method: string,
  path: string,
  o: SendOnceOptions,
): Promise<{ status: number; text: string }> {
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const options: RequestOptions & { ca?: string | Buffer } = {
    method,
    path,
    headers: {
      ...o.headers,
      ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}),
      accept: 'application/json',
      ...(payload !== undefined
        ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
        : {}),
    },
    timeout: o.timeoutMs,
    ...(o.signal ? { signal: o.signal } : {}),
    ...(e.kind === 'unix'
      ? { socketPath: e.path }
      : { host: e.host, port: e.port, ...(e.ca ? { ca: e.ca } : {}) }),
  };
  const send = e.kind === 'tcp' && e.tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    // Whether the request may have reached the controller: once connected, it may have.
    let connected = false;
    let connectTimer: NodeJS.Timeout | undefined;
    const req = send(options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('socket', (socket) => {
      if (!socket.connecting) {
        connected = true;
        return;
      }
      connectTimer = setTimeout(
        () => req.destroy(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
      connectTimer.unref();
      socket.once('connect', () => {
        connected = true;
        clearTimeout(connectTimer);
      });
    });
    req.on('close', () => clearTimeout(connectTimer));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        e.kind === 'tcp' && e.tls && isCertificateError(err.code)
          ? new ControllerUntrusted(formatEndpoint(e), untrustedReason(err.code!, !!e.ca))
          : new ControllerUnreachable(formatEndpoint(e), err.code ?? err.message, connected),
      ),
    );
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** What the set makes of a failed request (see failover.ts). */
function failureOf(err: unknown): TransportFailure | undefined {
  if (err instanceof ControllerUnreachable) return { reason: err.reason, maybeDone: err.maybeDone };
  // Not trusted is not reached either: the request was not sent. The switch is logged with why.
  if (err instanceof ControllerUntrusted) return { reason: err.reason, maybeDone: false };
  return undefined;
}

export interface ControllerSetOptions extends Omit<
  FailoverOptions,
  'failureOf' | 'probe' | 'clock'
> {
  clock?: FailoverClock;
}

const realFailoverClock: FailoverClock = {
  now: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/**
 * The controllers to talk to, first preferred, for ControllerClients that share which one is in
 * use (the agent's long-poll and its reports). Health checks go to GET /v1/health, which needs
 * no token: none is sent with them.
 */
export function controllerSet(
  endpoints: readonly Endpoint[],
  options: ControllerSetOptions = {},
): EndpointSet & { readonly endpoints: readonly Endpoint[] } {
  const set = new EndpointSet(endpoints.map(formatEndpoint), {
    clock: realFailoverClock,
    ...options,
    failureOf,
    async probe(index, signal) {
      const timeoutMs = options.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
      const { status } = await sendOnce(endpoints[index], 'GET', '/v1/health', {
        timeoutMs,
        signal,
      });
      if (status !== 200) throw new Error(`health answered ${status}`);
    },
  });
  return Object.assign(set, { endpoints });
}

export interface RawOptions {
  /**
   * Safe to carry out twice, so it may go to the next controller even when the first may have
   * done it (default: GET and HEAD only). The agent's reports are.
   */
  idempotent?: boolean;
  /** The agent's long-poll: it follows the set back to the first controller. */
  longPoll?: boolean;
}

export class ControllerClient {
  /** The controllers, first preferred. */
  readonly endpoints: readonly Endpoint[];
  /** Which controller is in use; shared by the clients built on the same set. */
  readonly set: EndpointSet;

  constructor(
    /** One controller, or several: the first that answers is used (see failover.ts). */
    endpoint: Endpoint | readonly Endpoint[] | ReturnType<typeof controllerSet>,
    private readonly token: string,
    private readonly timeoutMs = 10_000,
  ) {
    if (endpoint instanceof EndpointSet) {
      this.set = endpoint;
      this.endpoints = endpoint.endpoints;
    } else {
      this.endpoints = Array.isArray(endpoint) ? endpoint : [endpoint as Endpoint];
      this.set = controllerSet(this.endpoints);
    }
    // Also for endpoints built without parseEndpoint: the token never goes out in clear.
    for (const e of this.endpoints) assertNotCleartext(e, '--controller');
  }

  /** The controller in use (the first, until one failed). */
  get endpoint(): Endpoint {
    return this.endpoints[this.set.current];
  }

  /** Calls the API and parses the answer with the wire contract's schema for it. */
  async call<T>(method: string, path: string, schema: z.ZodType<T>, body?: unknown): Promise<T> {
    const { status, text } = await this.raw(method, path, body);
    if (status >= 400) {
      let message = text.trim();
      try {
        message = (JSON.parse(text) as { error?: string }).error ?? message;
      } catch {
        // not JSON: keep the text
      }
      throw new ApiError(status, message || `HTTP ${status}`);
    }
    let value: unknown;
    try {
      value = status === 204 || !text ? undefined : JSON.parse(text);
    } catch {
      throw new ApiError(502, `${method} ${path}: the controller's answer is not JSON`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ApiError(
        502,
        `${method} ${path}: unexpected answer at ${issue.path.join('.') || '(top)'}: ${issue.message}`,
      );
    }
    return parsed.data;
  }

  /**
   * One request, answered with its status and text; `headers` add to the token's. With several
   * controllers it goes to the one in use, and on to the next while they are gone.
   */
  raw(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    opts: RawOptions = {},
  ): Promise<{ status: number; text: string }> {
    return this.set.send(
      (index, signal) =>
        sendOnce(this.endpoints[index], method, path, {
          token: this.token,
          headers,
          body,
          timeoutMs: this.timeoutMs,
          signal,
        }),
      {
        idempotent: opts.idempotent ?? (method === 'GET' || method === 'HEAD'),
        ...(opts.longPoll ? { longPoll: true } : {}),
      },
    );
  }

  sessions(): Promise<SessionView[]> {
    return this.call('GET', '/v1/sessions', z.array(SessionView));
  }

  servers(): Promise<ServerView[]> {
    return this.call('GET', '/v1/servers', z.array(ServerView));
  }

  drain(server: string): Promise<ServerView> {
    return this.call('POST', `/v1/servers/${encodeURIComponent(server)}/drain`, ServerView);
  }

  undrain(server: string): Promise<ServerView> {
    return this.call('POST', `/v1/servers/${encodeURIComponent(server)}/undrain`, ServerView);
  }

  rollout(): Promise<RolloutStatusView> {
    return this.call('GET', '/v1/rollout', RolloutStatusView);
  }

  startRollout(body: RolloutStartBody): Promise<RolloutView> {
    return this.call('POST', '/v1/rollout', RolloutView, body);
  }

  rolloutCommand(command: 'pause' | 'resume' | 'abort'): Promise<RolloutView> {
    return this.call('POST', `/v1/rollout/${command}`, RolloutView, {});
  }

  users(): Promise<User[]> {
    return this.call('GET', '/v1/users', z.array(User));
  }

  addUser(user: NewUserBody): Promise<User> {
    return this.call('POST', '/v1/users', User, user);
  }

  revoke(name: string): Promise<User> {
    return this.call('POST', `/v1/users/${encodeURIComponent(name)}/revoke`, User);
  }
}
