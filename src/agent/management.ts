/**
 * Client of OpenVPN 2.6's management interface over its unix socket. The agent is the socket's
 * only client: OpenVPN serves one management connection at a time (a second one is accepted by
 * the kernel but gets no prompt until the first leaves), so this class holds one connection,
 * sends one command at a time and reconnects with backoff when the socket goes away (OpenVPN
 * restarted by an apply, or crashed).
 *
 * Wire facts, checked against OpenVPN 2.6.14:
 * - on connect with a password file the server writes `ENTER PASSWORD:` with no line end; a
 *   right password gets `SUCCESS: password is correct`, a wrong one only the prompt again;
 * - lines end in CRLF; every line starting with `>` is a real-time notification, which may
 *   arrive between the lines of a command's answer, never inside a line;
 * - `status 3`: tab-separated TITLE, TIME, HEADER, CLIENT_LIST, ROUTING_TABLE, GLOBAL_STATS
 *   lines, then `END`;
 * - `client-kill CID [MSG]` answers `SUCCESS: client-kill command succeeded` or
 *   `ERROR: client-kill command failed` (`ERROR: cannot parse CID` for a bad id); the server
 *   keeps the killed instance ~5 s (`delayed-exit`) before it leaves `status`;
 * - `>CLIENT:ESTABLISHED,CID` followed by `>CLIENT:ENV,name=value` lines and `>CLIENT:ENV,END`
 *   arrives without `management-client-auth`; `>CLIENT:DISCONNECT` does not (a client's exit
 *   notification only gives `>NOTIFY:info,remote-exit,EXIT`, which names no client), so
 *   sessions that end are found by polling `status`;
 * - a line about one client in OpenVPN's log starts with its `common-name/real-address` (the
 *   same real address `status 3` shows). A client that leaves with explicit-exit-notify (2.6
 *   clients use the control-channel EXIT message, "cc-exit") gives `CC-EEN exit message
 *   received by peer` and `Delayed exit in 5 seconds`, then `>NOTIFY:info,remote-exit,EXIT`:
 *   the server keeps that session, its routes and its client-disconnect hook for 5 s more
 *   (scheduled_exit_interval, not configurable). `log N` returns the last N log lines
 *   (`unix-time,FLAGS,TEXT`, then `END`), so on the notification the client that is leaving
 *   is read from the log history. (Clients without cc-exit send OCC_EXIT, which ends the
 *   session at once, without the delay.)
 * - `log on` (real-time log) is NOT used: measured in the lab it adds ~60 ms to every client's
 *   connect on a 2-core machine (OpenVPN hands each of the ~40 log lines of a handshake to the
 *   management socket from its single event loop), and the agent must stay off that path.
 */
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { FleetError } from '../errors.js';
import type { SessionReport } from '../api/index.js';

/** The longest command line OpenVPN's management interface reads whole, newline included. */
export const MAX_COMMAND_BYTES = 1024;

export class ManagementError extends FleetError {
  constructor(
    message: string,
    /** The command that failed, when there was one. */
    readonly command?: string,
  ) {
    super(command ? `management ${command}: ${message}` : `management: ${message}`);
  }
}

export interface ManagementOptions {
  socketPath: string;
  /** OpenVPN's management password file; its first line is the password (re-read per connect). */
  passwordFile: string;
  log?: (line: string) => void;
  /** How long to wait for the prompt and the password check (default 5 s). */
  connectTimeoutMs?: number;
  /** How long one command may take before the connection is judged out of step (default 10 s). */
  commandTimeoutMs?: number;
  /** First reconnect delay (default 200 ms); doubles up to reconnectMaxMs (default 5 s). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

/** Log lines that mean the client said goodbye; the session lingers ~5 s more in OpenVPN. */
const EXITING = /^(CC-EEN exit message received by peer|Delayed exit in \d+ seconds)$/;

/**
 * Splits a line of `log N`'s answer (`unix-time,FLAGS,TEXT`) into its text and, for a line
 * about one client, the client's common name and real address (`alice/198.51.100.100:44510 text`).
 */
export function parseLogLine(
  line: string,
): { text: string; commonName?: string; realAddress?: string } | undefined {
  const m = /^\d+,[A-Z]*,(.*)$/.exec(line);
  if (!m) return undefined;
  const full = m[1];
  const space = full.indexOf(' ');
  const head = space > 0 ? full.slice(0, space) : '';
  const slash = head.lastIndexOf('/');
  if (slash > 0 && /^(\[AF_INET6?\])?[0-9A-Fa-f.:]+:\d+$/.test(head.slice(slash + 1)))
    return {
      text: full.slice(space + 1),
      commonName: head.slice(0, slash),
      realAddress: head.slice(slash + 1),
    };
  return { text: full };
}

export interface ManagementEvents {
  /** A client finished its handshake and got its addresses (`>CLIENT:ESTABLISHED`). */
  'client-established': [clientId: number, commonName: string, env: Record<string, string>];
  /**
   * `>CLIENT:CONNECT|REAUTH,CID,KID` (only with management-client-auth): OpenVPN holds this
   * key of the client until client-auth[-nt], client-deny or client-pending-auth answers it.
   */
  'client-auth-request': [request: ClientAuthRequest];
  /** `>CLIENT:CR_RESPONSE,CID,KID,BASE64`: the client's answer to a CR_TEXT challenge. */
  'cr-response': [clientId: number, keyId: number, responseBase64: string];
  /** `>CLIENT:DISCONNECT`: OpenVPN sends it only with `management-client-auth`. */
  'client-disconnect': [clientId: number, commonName: string, env: Record<string, string>];
  /** Connected and authenticated, the first time and after every reconnect. */
  ready: [];
  /** The connection dropped; `reconnecting` is false after close(). */
  close: [reconnecting: boolean];
  /** `>NOTIFY:info,remote-exit,EXIT`: some client said goodbye (`exitingClients` tells who). */
  'remote-exit': [];
  /** Any other real-time line (`>INFO:…`, `>NOTIFY:…`, `>LOG:…`), without the `>`. */
  notification: [line: string];
}

interface PendingCommand {
  command: string;
  /** `END`-terminated answer (status, version…) rather than one SUCCESS/ERROR line. */
  multiline: boolean;
  lines: string[];
  resolve: (lines: string[]) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

interface ClientBlock {
  kind: string;
  clientId: number;
  keyId: number;
  /** CR_RESPONSE's base64 answer (the fourth field). */
  extra: string;
  env: Record<string, string>;
}

/** A key OpenVPN holds until the management client decides (management-client-auth). */
export interface ClientAuthRequest {
  clientId: number;
  keyId: number;
  /** REAUTH: a renegotiation of a live session; CONNECT: a new one. */
  reauth: boolean;
  env: Record<string, string>;
}

/**
 * One argument of a management command, quoted as OpenVPN's parse_line reads it: inside double
 * quotes a backslash escapes `"` and `\`. Line breaks and other control characters cannot be
 * sent (a line break would end the command): they become spaces.
 */
export function managementArg(text: string): string {
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return `"${clean.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

interface Handshake {
  resolve: () => void;
  reject: (err: Error) => void;
  passwordSent: boolean;
  password: string;
}

/** `status 3` CLIENT_LIST columns (after the record type), used when no HEADER line came. */
const V3_CLIENT_COLUMNS = [
  'Common Name',
  'Real Address',
  'Virtual Address',
  'Virtual IPv6 Address',
  'Bytes Received',
  'Bytes Sent',
  'Connected Since',
  'Connected Since (time_t)',
  'Username',
  'Client ID',
  'Peer ID',
  'Data Channel Cipher',
];

/** Parses the lines of a `status 3` answer (without END) into sessions. */
/** OpenVPN's state as `state` reports it: since when (unix seconds) and which. */
export interface OpenvpnState {
  at: number;
  name: string;
}

/** One line of `state`'s answer: `1700000000,CONNECTED,SUCCESS,10.0.0.1,,,,`. */
export function parseState(line: string): OpenvpnState | undefined {
  const m = /^(\d+),([A-Z_]+)(,|$)/.exec(line);
  return m ? { at: Number(m[1]), name: m[2] } : undefined;
}

export function parseStatus3(lines: readonly string[]): SessionReport[] {
  let columns = V3_CLIENT_COLUMNS;
  const sessions: SessionReport[] = [];
  for (const line of lines) {
    const fields = line.split('\t');
    if (fields[0] === 'HEADER' && fields[1] === 'CLIENT_LIST') {
      columns = fields.slice(2);
      continue;
    }
    if (fields[0] !== 'CLIENT_LIST') continue;
    const row = new Map(columns.map((name, i) => [name, fields[i + 1] ?? '']));
    const get = (name: string) => row.get(name) ?? '';
    const clientId = Number(get('Client ID'));
    const sinceUnix = Number(get('Connected Since (time_t)'));
    if (!Number.isInteger(clientId) || get('Client ID') === '') continue;
    const ipv4 = get('Virtual Address');
    const ipv6 = get('Virtual IPv6 Address');
    sessions.push({
      user: get('Common Name'),
      realAddress: get('Real Address'),
      ...(ipv4 ? { ipv4 } : {}),
      ...(ipv6 ? { ipv6 } : {}),
      since: new Date((Number.isFinite(sinceUnix) ? sinceUnix : 0) * 1000).toISOString(),
      bytesIn: Number(get('Bytes Received')) || 0,
      bytesOut: Number(get('Bytes Sent')) || 0,
      clientId,
    });
  }
  return sessions;
}

const PROMPT = 'ENTER PASSWORD:';

/** A client id, key id or timeout as a command argument: a non-negative integer, or refused. */
function id(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new ManagementError(`not a number: ${n}`);
  return String(n);
}

export class ManagementClient extends EventEmitter<ManagementEvents> {
  private socket?: Socket;
  private ready = false;
  private closed = true;
  private buffer = '';
  private handshake?: Handshake;
  private readonly queue: PendingCommand[] = [];
  private block?: ClientBlock;
  private reconnectTimer?: NodeJS.Timeout;
  private connecting?: Promise<void>;
  private reconnectDelay: number;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: ManagementOptions) {
    super();
    this.log = opts.log ?? (() => undefined);
    this.reconnectDelay = opts.reconnectMinMs ?? 200;
  }

  /** True once authenticated, until the connection drops. */
  get connected(): boolean {
    return this.ready;
  }

  /**
   * Connects and authenticates; resolves once commands can be sent. A failed first attempt
   * rejects (ManagementError); once connected, a lost connection is retried with backoff until
   * close().
   */
  async connect(): Promise<void> {
    if (this.ready) return;
    this.closed = false;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.connecting ??= this.attempt().finally(() => (this.connecting = undefined));
    await this.connecting;
  }

  /** Drops the connection for good: no reconnect; pending commands are rejected. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.teardown('client closed');
  }

  /** The live sessions (`status 3`). */
  async status(): Promise<SessionReport[]> {
    return parseStatus3(await this.send('status 3', true));
  }

  /**
   * OpenVPN's current state (`state`: `unix-time,NAME,…` then `END`). A server that finished
   * its (re)start says CONNECTED (`Initialization Sequence Completed`); during a SIGHUP restart
   * it says RECONNECTING, then the steps of its start. The management interface itself lives
   * through a SIGHUP (OpenVPN opens it once per process), so this is how the agent sees a
   * restart complete.
   */
  async state(): Promise<OpenvpnState> {
    const lines = await this.send('state', true);
    const parsed = parseState(lines.at(-1) ?? '');
    if (!parsed) throw new ManagementError(`cannot read "${lines.join(' ')}"`, 'state');
    return parsed;
  }

  /**
   * Clients that announced their exit within the last `withinSeconds` (from `log N`): each
   * `common-name/real-address` once, newest first.
   */
  async exitingClients(
    withinSeconds = 6,
    lines = 100,
  ): Promise<{ commonName: string; realAddress: string }[]> {
    const since = Math.floor(Date.now() / 1000) - withinSeconds;
    const out = new Map<string, { commonName: string; realAddress: string }>();
    for (const raw of (await this.send(`log ${lines}`, true)).reverse()) {
      if (Number(raw.slice(0, raw.indexOf(','))) < since) continue;
      const l = parseLogLine(raw);
      if (l?.commonName && l.realAddress && EXITING.test(l.text))
        out.set(`${l.commonName}/${l.realAddress}`, {
          commonName: l.commonName,
          realAddress: l.realAddress,
        });
    }
    return [...out.values()];
  }

  /**
   * Ends one session (`client-kill`). With restartToNext the client is told `RESTART,[N]`: it
   * moves on to its next remote instead of retrying this server (plain `RESTART`, OpenVPN's
   * default, brings it straight back here).
   */
  async kill(clientId: number, opts: { restartToNext?: boolean } = {}): Promise<void> {
    if (!Number.isSafeInteger(clientId) || clientId < 0)
      throw new ManagementError(`not a client id: ${clientId}`, 'client-kill');
    await this.send(`client-kill ${clientId}${opts.restartToNext ? ' RESTART,[N]' : ''}`, false);
  }

  /** The part of this client that answers held keys (Management.clientAuth in host.ts). */
  get clientAuth() {
    return {
      authorize: (cid: number, kid: number) => this.authorize(cid, kid),
      deny: (cid: number, kid: number, reason: string, clientReason: string) =>
        this.deny(cid, kid, reason, clientReason),
      pendingAuth: (cid: number, kid: number, extra: string, timeout: number) =>
        this.pendingAuth(cid, kid, extra, timeout),
      onRequest: (listener: (r: ClientAuthRequest) => void) =>
        void this.on('client-auth-request', listener),
      onResponse: (listener: (cid: number, kid: number, b64: string) => void) =>
        void this.on('cr-response', listener),
      onForget: (listener: (cid: number | undefined) => void) => {
        this.on('client-disconnect', (cid) => listener(cid));
        this.on('close', () => listener(undefined));
        this.on('ready', () => listener(undefined));
      },
    };
  }

  /** `client-auth-nt CID KID`: let this key of the client in. */
  async authorize(clientId: number, keyId: number): Promise<void> {
    await this.send(`client-auth-nt ${id(clientId)} ${id(keyId)}`, false);
  }

  /**
   * `client-deny CID KID "reason" "client reason"`: the reason goes to OpenVPN's log, the client
   * reason to the client in its AUTH_FAILED (OpenVPN 2.6 prints it; OpenVPN Connect shows it).
   */
  async deny(clientId: number, keyId: number, reason: string, clientReason: string): Promise<void> {
    await this.send(
      `client-deny ${id(clientId)} ${id(keyId)} ${managementArg(reason)} ${managementArg(clientReason)}`,
      false,
    );
  }

  /**
   * `client-pending-auth CID KID EXTRA TIMEOUT`: tells the client to sign in (EXTRA is
   * `WEB_AUTH::url` or `CR_TEXT:flags:prompt`) and holds the key for TIMEOUT seconds (capped by
   * OpenVPN, see render/openvpn.ts).
   */
  async pendingAuth(
    clientId: number,
    keyId: number,
    extra: string,
    timeoutSeconds: number,
  ): Promise<void> {
    await this.send(
      `client-pending-auth ${id(clientId)} ${id(keyId)} ${managementArg(extra)} ${id(timeoutSeconds)}`,
      false,
    );
  }

  /**
   * Sends one command; resolves with the answer's lines (the SUCCESS line, or the lines before
   * END), rejects with ManagementError on an ERROR answer, a timeout or a lost connection.
   */
  send(command: string, multiline: boolean): Promise<string[]> {
    if (/[\r\n]/.test(command))
      return Promise.reject(new ManagementError('command contains a line break', command));
    // OpenVPN reads commands into a 1024-byte line buffer (manage.c, command_line_new(1024)); a
    // longer line is cut and its tail runs as a command of its own. Refused here instead.
    if (Buffer.byteLength(command) >= MAX_COMMAND_BYTES)
      return Promise.reject(
        new ManagementError(
          `command longer than ${MAX_COMMAND_BYTES - 1} bytes`,
          command.slice(0, 60),
        ),
      );
    if (!this.ready || !this.socket)
      return Promise.reject(new ManagementError('not connected', command));
    return new Promise<string[]>((resolve, reject) => {
      this.queue.push({ command, multiline, lines: [], resolve, reject });
      if (this.queue.length === 1) this.writeHead();
    });
  }

  // ------------------------------------------------------------------ connection

  private async attempt(): Promise<void> {
    let password: string;
    try {
      password = (await readFile(this.opts.passwordFile, 'utf8')).split(/\r?\n/)[0] ?? '';
    } catch (err) {
      throw new ManagementError(`cannot read ${this.opts.passwordFile}: ${(err as Error).message}`);
    }
    if (this.closed) throw new ManagementError('client closed');
    await new Promise<void>((resolve, reject) => {
      const socket = createConnection(this.opts.socketPath);
      socket.setEncoding('utf8');
      this.socket = socket;
      this.buffer = '';
      this.block = undefined;
      const timer = setTimeout(
        () => fail(new ManagementError('no answer from OpenVPN (does another client hold it?)')),
        this.opts.connectTimeoutMs ?? 5000,
      );
      const fail = (err: Error) => {
        clearTimeout(timer);
        if (!this.handshake) return;
        this.handshake = undefined;
        socket.destroy();
        reject(err);
      };
      this.handshake = {
        password,
        passwordSent: false,
        resolve: () => {
          clearTimeout(timer);
          this.handshake = undefined;
          this.ready = true;
          this.reconnectDelay = this.opts.reconnectMinMs ?? 200;
          this.log(`connected to ${this.opts.socketPath}`);
          resolve();
          this.emit('ready');
        },
        reject: fail,
      };
      socket.on('data', (chunk: string) => this.onData(socket, chunk));
      socket.on('error', (err) => {
        if (this.handshake && this.socket === socket)
          fail(new ManagementError(`cannot connect to ${this.opts.socketPath}: ${err.message}`));
        else this.log(err.message);
      });
      socket.on('close', () => {
        if (this.socket !== socket) return;
        if (this.handshake) fail(new ManagementError('connection closed during login'));
        this.onClose(socket);
      });
    });
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    const wasReady = this.ready;
    this.socket = undefined;
    this.ready = false;
    this.block = undefined;
    this.rejectAll(this.closed ? 'client closed' : 'connection lost');
    if (wasReady) {
      if (!this.closed) this.log(`connection to ${this.opts.socketPath} lost`);
      this.emit('close', !this.closed);
    }
    if (!this.closed && wasReady) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(delay * 2, this.opts.reconnectMaxMs ?? 5000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connecting ??= this.attempt().finally(() => (this.connecting = undefined));
      this.connecting.catch((err: Error) => {
        if (this.closed) return;
        this.log(
          `${err.message.replace(/^management: /, '')}; retrying in ${this.reconnectDelay} ms`,
        );
        this.scheduleReconnect();
      });
    }, delay);
  }

  private teardown(reason: string): void {
    const socket = this.socket;
    if (this.handshake) this.handshake.reject(new ManagementError(reason));
    this.rejectAll(reason);
    if (socket) {
      socket.destroy();
      this.onClose(socket);
    }
  }

  // ------------------------------------------------------------------ parsing

  private onData(socket: Socket, chunk: string): void {
    if (this.socket !== socket) return;
    this.buffer += chunk;
    for (;;) {
      const nl = this.buffer.indexOf('\n');
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      this.onLine(line);
      if (this.socket !== socket) return;
    }
    // The password prompt has no line end.
    if (this.buffer === PROMPT) {
      this.buffer = '';
      this.onPrompt();
    }
  }

  private onPrompt(): void {
    const h = this.handshake;
    if (!h) return;
    if (h.passwordSent) {
      h.reject(new ManagementError(`wrong password (${this.opts.passwordFile})`));
      return;
    }
    h.passwordSent = true;
    this.socket?.write(`${h.password}\n`);
  }

  private onLine(line: string): void {
    if (line.startsWith(PROMPT)) {
      // A prompt that shares its line with what follows (never seen, but cheap to accept).
      this.onPrompt();
      line = line.slice(PROMPT.length);
      if (!line) return;
    }
    if (line.startsWith('>')) {
      this.onNotification(line.slice(1));
      return;
    }
    const h = this.handshake;
    if (h) {
      if (line.startsWith('SUCCESS: password is correct')) h.resolve();
      else if (line.startsWith('ERROR')) h.reject(new ManagementError(line));
      return;
    }
    const head = this.queue[0];
    if (!head) {
      this.log(`unexpected line: ${line}`);
      return;
    }
    if (!head.multiline) {
      if (line.startsWith('SUCCESS:')) this.finish(head, [line]);
      else if (line.startsWith('ERROR:')) this.fail(head, line);
      else this.log(`unexpected line for ${head.command}: ${line}`);
      return;
    }
    if (head.lines.length === 0 && line.startsWith('ERROR:')) this.fail(head, line);
    else if (line === 'END') this.finish(head, head.lines);
    else head.lines.push(line);
  }

  private onNotification(line: string): void {
    if (line === 'NOTIFY:info,remote-exit,EXIT') this.emit('remote-exit');
    if (!line.startsWith('CLIENT:')) {
      // Without a password the greeting is the first thing the server says.
      if (this.handshake && line.startsWith('INFO:') && !this.handshake.passwordSent)
        this.handshake.resolve();
      this.emit('notification', line);
      return;
    }
    const body = line.slice('CLIENT:'.length);
    if (body.startsWith('ENV,')) {
      const kv = body.slice('ENV,'.length);
      const b = this.block;
      if (!b) return;
      if (kv === 'END') {
        this.block = undefined;
        const cn = b.env.common_name ?? '';
        if (b.kind === 'ESTABLISHED') this.emit('client-established', b.clientId, cn, b.env);
        else if (b.kind === 'DISCONNECT') this.emit('client-disconnect', b.clientId, cn, b.env);
        else if (b.kind === 'CONNECT' || b.kind === 'REAUTH')
          this.emit('client-auth-request', {
            clientId: b.clientId,
            keyId: b.keyId,
            reauth: b.kind === 'REAUTH',
            env: b.env,
          });
        else if (b.kind === 'CR_RESPONSE') this.emit('cr-response', b.clientId, b.keyId, b.extra);
        return;
      }
      const eq = kv.indexOf('=');
      if (eq > 0) b.env[kv.slice(0, eq)] = kv.slice(eq + 1);
      return;
    }
    // CONNECT, REAUTH, ESTABLISHED, DISCONNECT, CR_RESPONSE open an ENV block; ADDRESS does not.
    const [kind, cid, kid, extra] = body.split(',');
    if (kind === 'ADDRESS') {
      this.emit('notification', line);
      return;
    }
    this.block = {
      kind,
      clientId: Number(cid),
      keyId: Number(kid ?? 0),
      extra: extra ?? '',
      env: {},
    };
  }

  // ------------------------------------------------------------------ commands

  private writeHead(): void {
    const head = this.queue[0];
    if (!head || !this.socket) return;
    head.timer = setTimeout(() => {
      // The answer may still come and would be read as the next command's: start afresh.
      this.log(`${head.command} timed out; reconnecting`);
      this.fail(head, 'timed out');
      this.socket?.destroy();
    }, this.opts.commandTimeoutMs ?? 10_000);
    this.socket.write(`${head.command}\n`);
  }

  private finish(cmd: PendingCommand, lines: string[]): void {
    this.dequeue(cmd);
    cmd.resolve(lines);
  }

  private fail(cmd: PendingCommand, message: string): void {
    this.dequeue(cmd);
    cmd.reject(new ManagementError(message, cmd.command));
  }

  private dequeue(cmd: PendingCommand): void {
    clearTimeout(cmd.timer);
    const i = this.queue.indexOf(cmd);
    if (i >= 0) this.queue.splice(i, 1);
    if (i === 0) this.writeHead();
  }

  private rejectAll(reason: string): void {
    for (const cmd of this.queue.splice(0)) {
      clearTimeout(cmd.timer);
      cmd.reject(new ManagementError(reason, cmd.command));
    }
  }
}
