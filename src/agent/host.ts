/**
 * Everything the agent does to the machine it runs on, behind one interface: processes (nft,
 * vtysh, ip), OpenVPN's signal, the bundle folder, the clock, the management socket, the
 * kernel's route table, the controller and the health socket. The agent holds decisions only,
 * so its behaviour can be tested without root (see testing.ts for the fake).
 */
import { lstatSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { ControllerClient, controllerSet, parseEndpoints } from '../client/client.js';
import type { ControllerSwitch } from '../client/failover.js';
import type { RenderedFile } from '../render/types.js';
import { run, type RunOptions, type RunResult } from '../sys/exec.js';
import { writeBundleFiles, writeFileAtomic } from '../sys/files.js';
import { readPidFile, spawnDetached } from '../sys/proc.js';
import { sleep } from '../sys/time.js';
import { type AuthController, type AuthManagement, CLIENT_REASONS } from './connect-auth.js';
import { type ClientAuthRequest, ManagementClient, type OpenvpnState } from './management.js';
import {
  type AgentReport,
  AuthBeginAnswer,
  AuthOutcome,
  POLL_WAIT_MS,
  type SessionReport,
  agentProtocolHeaders,
} from '../api/index.js';
import { RouteView } from './route-view.js';

export interface AgentClock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Calls `fn` once after `ms`; the returned function cancels it (a stopped agent leaves no timer). */
  after(ms: number, fn: () => void): () => void;
}

/** The bundle folder; paths are relative to it (`VERSION`, `ccd/alice`). */
export interface BundleFolder {
  /**
   * Writes the bundle in place; the paths whose content changed (removed ccd files too). Throws
   * BundleRefused, having written nothing, when it cannot be written safely as the folder is
   * now (a folder on the way that is a link).
   */
  writeBundle(files: RenderedFile[]): string[];
  /** Written whole (temp + rename); `mode` defaults to 0644. */
  writeFile(path: string, content: string, mode?: number): void;
  /** The file's text, or undefined when it cannot be read. */
  readFile(path: string): string | undefined;
  /** A regular file, not a link or a folder: what admits a user in ccd/. */
  isRegularFile(path: string): boolean;
  /** The absolute path, for argv (`nft -f PATH`). */
  absolute(path: string): string;
}

/** The part of the management client the agent uses. */
export interface Management {
  readonly connected: boolean;
  connect(): Promise<void>;
  close(): void;
  status(): Promise<SessionReport[]>;
  kill(clientId: number, opts?: { restartToNext?: boolean }): Promise<void>;
  exitingClients(): Promise<{ commonName: string; realAddress: string }[]>;
  /** OpenVPN's state (CONNECTED once a start or restart completed) and since when. */
  state(): Promise<OpenvpnState>;
  /**
   * With management-client-auth: the commands that answer a held key, and the notifications
   * that ask for them (`>CLIENT:CONNECT|REAUTH` and `>CLIENT:CR_RESPONSE`).
   */
  readonly clientAuth?: AuthManagement & {
    onRequest(listener: (r: ClientAuthRequest) => void): void;
    onResponse(listener: (clientId: number, keyId: number, responseBase64: string) => void): void;
    /**
     * Held keys that can no longer be answered: a client's (`>CLIENT:DISCONNECT`), or every
     * one (undefined) when the management connection closes or comes back (OpenVPN may have
     * restarted, and a new OpenVPN hands out the same client ids again from 0).
     */
    onForget(listener: (clientId: number | undefined) => void): void;
  };
  /** `client-established` passes the client id, common name and env; `remote-exit` nothing. */
  on(
    event: 'client-established' | 'remote-exit',
    listener: (clientId: number, commonName: string, env: Record<string, string>) => void,
  ): unknown;
}

/** The kernel's route table as the agent sees it. */
export interface Routes {
  start(): Promise<void>;
  stop(): void;
  /** Destinations of routes on `dev` with protocol `proto`. */
  on(dev: string, proto: string): string[];
  hasProto(protos: ReadonlySet<string>): boolean;
  /** Re-reads the table (after the kernel dropped routes without saying so). */
  resync(): Promise<void>;
  /** Calls `listener` after every change the table takes in. */
  watch?(listener: () => void): void;
}

export interface ControllerAnswer {
  status: number;
  text: string;
}

export interface ControllerLink {
  /** Long-poll for a directive other than `known`: 200 with it, or 204 after the wait. */
  poll(known: string): Promise<ControllerAnswer>;
  report(body: AgentReport): Promise<ControllerAnswer>;
  /** With several controllers: calls `listener` once at each move from one to another. */
  onSwitch?(listener: (s: ControllerSwitch) => void): void;
  /** Stops watching the controllers (the agent stopped). */
  close?(): void;
  /** Sign-ins at connect (src/api/auth.ts); only a fleet with `auth` uses them. */
  auth?: AuthController;
}

export interface HealthAnswer {
  status: number;
  body: string;
  /** Default: application/json. */
  contentType?: string;
}

/** What the health socket's answer depends on: the path, and a bearer token for /metrics. */
export interface HealthRequest {
  path: string;
  authorization?: string;
}

export interface AgentHost {
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Signals OpenVPN (its pid file in the bundle); false when it is not running. */
  signalOpenvpn(signal: NodeJS.Signals): boolean;
  /** Whether OpenVPN's pid file names a live process (signal 0). */
  openvpnAlive(): boolean;
  /** The pid OpenVPN's pid file names while that process lives; a new pid is a new OpenVPN. */
  openvpnPid(): number | undefined;
  /**
   * Starts OpenVPN (its pid lands in the same pid file), where no supervisor does: the lab
   * (`agent --openvpn-start-argv-file`). Absent in production: systemd's Restart=always does.
   */
  startOpenvpn?(): void;
  bundle: BundleFolder;
  clock: AgentClock;
  management: Management;
  routes: Routes;
  controller: ControllerLink;
  /** Answers GET requests on run/agent.sock with `answer(request)`; resolves to a closer. */
  serveHealth(
    answer: (req: HealthRequest) => HealthAnswer | Promise<HealthAnswer>,
  ): Promise<() => Promise<void>>;
}

export interface RealHostOptions {
  bundleDir: string;
  /** One controller, or several: the first preferred, the others taken over when it fails. */
  controller: string | readonly string[];
  ca?: string | Buffer;
  token: string;
  log: (line: string) => void;
  /** The command that starts OpenVPN (startOpenvpn), where no supervisor does (the lab). */
  openvpnStartArgv?: readonly string[];
}

export const realClock: AgentClock = {
  now: () => Date.now(),
  sleep,
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/**
 * The long-poll and the report over HTTP, each request saying which agent protocol it speaks
 * (src/api/agent.ts): the poll on a client whose timeout outlasts the controller's wait. Both
 * clients share one set of controllers (controllerSet), so they fail over together. A report is
 * the server's whole state, which the controller replaces (ReportIngest.record): one that failed
 * is sent again to the next controller, and one that arrives twice changes nothing.
 */
export function controllerLink(
  poller: ControllerClient,
  reporter: ControllerClient,
): ControllerLink {
  const headers = agentProtocolHeaders();
  return {
    poll: (known) =>
      poller.raw('GET', `/v1/agent/poll?known=${encodeURIComponent(known)}`, undefined, headers, {
        idempotent: true,
        longPoll: true,
      }),
    report: (body) => reporter.raw('POST', '/v1/agent/report', body, headers, { idempotent: true }),
    onSwitch: (listener) => poller.set.onSwitch(listener),
    close: () => poller.set.close(),
    auth: {
      async begin(body) {
        const r = await reporter.raw('POST', '/v1/agent/auth/begin', body, headers);
        return AuthBeginAnswer.parse(JSON.parse(answered(r)));
      },
      async wait(id) {
        const r = await poller.raw(
          'GET',
          `/v1/agent/auth/wait?id=${encodeURIComponent(id)}`,
          undefined,
          headers,
          { idempotent: true, longPoll: true },
        );
        if (r.status === 204) return undefined;
        // Final: no controller of the set knows the sign-in (every one reads the same store, and
        // the one reached takes over a sign-in another began), or it is another server's. The
        // client is refused now rather than held, asking again, until pendingSeconds run out.
        if (r.status === 404 || r.status === 403) return { ok: false, reason: CLIENT_REASONS.lost };
        return AuthOutcome.parse(JSON.parse(answered(r)));
      },
      // Not idempotent: a code is accepted once, so a retry elsewhere would be refused.
      async answer(body) {
        const r = await reporter.raw('POST', '/v1/agent/auth/answer', body, headers);
        return AuthOutcome.parse(JSON.parse(answered(r)));
      },
    },
  };
}

/** The body of a 200, or an error naming the status and the controller's words. */
function answered(r: ControllerAnswer): string {
  if (r.status !== 200) throw new Error(`controller answered ${r.status}: ${r.text.slice(0, 200)}`);
  return r.text;
}

/** What runs on a VPN server. */
export function realHost(o: RealHostOptions): AgentHost {
  const dir = o.bundleDir;
  const endpoints = parseEndpoints(
    typeof o.controller === 'string' ? [o.controller] : o.controller,
    '--controller',
    o.ca ? { ca: o.ca } : {},
  );
  // One set for both: the poll and the reports go to the same controller, and move together.
  const set = controllerSet(endpoints, { clock: realClock, watch: true });
  // The long-poll's timeout outlasts the controller's wait.
  const poller = new ControllerClient(set, o.token, POLL_WAIT_MS + 5000);
  const reporter = new ControllerClient(set, o.token, 5000);
  const management = new ManagementClient({
    socketPath: join(dir, 'run', 'management.sock'),
    passwordFile: join(dir, 'management.pw'),
    log: (l) => o.log(`management: ${l}`),
  });
  const openvpnPid = (): number | undefined => {
    const pid = readPidFile(join(dir, 'run', 'openvpn.pid'));
    if (!pid) return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch (err) {
      // EPERM: alive but not ours to signal (not the case for a root agent; still alive).
      return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
    }
  };
  return {
    run,
    signalOpenvpn(signal) {
      const pid = readPidFile(join(dir, 'run', 'openvpn.pid'));
      if (!pid) return false;
      try {
        process.kill(pid, signal);
      } catch (err) {
        // A pid file left behind by an OpenVPN that died: not running.
        if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
        throw err;
      }
      return true;
    },
    openvpnAlive() {
      return openvpnPid() !== undefined;
    },
    openvpnPid,
    ...(o.openvpnStartArgv
      ? {
          startOpenvpn() {
            // Detached, in the agent's own namespace (the lab's agent runs in its server's): the
            // lab's argv daemonizes (--daemon) and writes the pid file the agent watches.
            spawnDetached([...(o.openvpnStartArgv ?? [])], {
              logFile: join(dir, 'run', 'openvpn-start.log'),
            });
          },
        }
      : {}),
    bundle: {
      writeBundle: (files) => writeBundleFiles(dir, files),
      writeFile: (path, content, mode) => writeFileAtomic(join(dir, path), content, mode),
      readFile(path) {
        try {
          return readFileSync(join(dir, path), 'utf8');
        } catch {
          return undefined;
        }
      },
      isRegularFile(path) {
        try {
          return lstatSync(join(dir, path)).isFile();
        } catch {
          return false;
        }
      },
      absolute: (path) => join(dir, path),
    },
    clock: realClock,
    management,
    routes: new RouteView({ log: o.log }),
    controller: controllerLink(poller, reporter),
    async serveHealth(answer) {
      const sock = join(dir, 'run', 'agent.sock');
      rmSync(sock, { force: true });
      const server = createServer((req, res) => {
        const request: HealthRequest = {
          path: (req.url ?? '/').split('?')[0],
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        };
        Promise.resolve(answer(request)).then(
          ({ status, body, contentType }) => {
            res.writeHead(status, { 'content-type': contentType ?? 'application/json' });
            res.end(body);
          },
          (err: unknown) => {
            o.log(`health socket: ${err instanceof Error ? err.message : String(err)}`);
            res.writeHead(500).end();
          },
        );
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(sock, () => resolve());
      });
      return () => new Promise<void>((r) => server.close(() => r()));
    },
  };
}
