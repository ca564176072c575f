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

export class ControllerClient {
  constructor(
    readonly endpoint: Endpoint,
    private readonly token: string,
    private readonly timeoutMs = 10_000,
  ) {
    // Also for endpoints built without parseEndpoint: the token never goes out in clear.
    assertNotCleartext(endpoint, '--controller');
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

  /** One request, answered with its status and text; `headers` add to the token's. */
  raw(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; text: string }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const e = this.endpoint;
    const options: RequestOptions & { ca?: string | Buffer } = {
      method,
      path,
      headers: {
        ...headers,
        authorization: `Bearer ${this.token}`,
        accept: 'application/json',
        ...(payload !== undefined
          ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
          : {}),
      },
      timeout: this.timeoutMs,
      ...(e.kind === 'unix'
        ? { socketPath: e.path }
        : { host: e.host, port: e.port, ...(e.ca ? { ca: e.ca } : {}) }),
    };
    const send = e.kind === 'tcp' && e.tls ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(options, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          e.kind === 'tcp' && e.tls && isCertificateError(err.code)
            ? new ControllerUntrusted(formatEndpoint(e), untrustedReason(err.code!, !!e.ca))
            : new ControllerUnreachable(formatEndpoint(e), err.code ?? err.message),
        ),
      );
      if (payload !== undefined) req.write(payload);
      req.end();
    });
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
