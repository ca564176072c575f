/**
 * The controller and its clients: `controller` runs the API; `status`, `drain` and `undrain`
 * talk to it; `agent-token` prints the token a server's agent authenticates with.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { InputError, Timeout } from '../../errors.js';
import { sleep } from '../../sys/time.js';
import { openFleet } from '../../service/open.js';
import type { SessionView } from '../../api/index.js';
import { adminTokenPath, ensureAdminToken } from '../../controller/auth.js';
import {
  ControllerClient,
  ControllerUnreachable,
  formatEndpoint,
  parseEndpoints,
} from '../../client/client.js';
import { STALE_AFTER_MS, isStale, sessionView } from '../../controller/views.js';
import { defaultSocketPath, listenOnAll, parseListen } from '../../controller/listen.js';
import { fleetDir, withFleet } from '../context.js';
import {
  baseDirOf,
  collectControllers,
  parseBaseDir,
  readCaFile,
  readFileOrFail,
} from '../options.js';
import {
  METRICS_LISTEN_HELP,
  METRICS_TOKEN_HELP,
  parseMetricsListen,
  readMetricsToken,
} from '../metrics-options.js';
import { serveMetrics } from '../../sys/metrics-http.js';
import { printJson, printTable, say, warn } from '../output.js';

export interface ControllerOptions {
  /** --controller, repeated: several controllers, the first that answers is used. */
  controller?: string[];
  ca?: string;
}

export const CONTROLLER_HELP =
  "unix:PATH, https://HOST:PORT, or HOST:PORT on loopback (default: this fleet's socket); repeat for several: the first that answers is used";
export const CA_HELP = "PEM file of the CA the controller's certificate must chain to (https only)";

/**
 * A client of the controllers named by --controller (default: this fleet's socket). With
 * several, a controller that is gone is said on stderr once, and the next one is asked.
 */
export function clientFor(dir: string, opts: ControllerOptions): ControllerClient {
  const endpoints = parseEndpoints(
    opts.controller ?? [`unix:${defaultSocketPath(dir)}`],
    '--controller',
    {
      ...(opts.ca !== undefined ? { ca: readCaFile(opts.ca) } : {}),
    },
  );
  const endpoint = endpoints[0];
  const tokenFile = adminTokenPath(dir);
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (err) {
    throw new ControllerUnreachable(
      formatEndpoint(endpoint),
      `cannot read the admin token ${tokenFile}: ${(err as NodeJS.ErrnoException).code}`,
    );
  }
  const client = new ControllerClient(endpoints, token);
  client.set.onSwitch((s) => warn(`controller ${s.fromName}: ${s.reason}; trying ${s.toName}`));
  return client;
}

const SESSION_COLUMNS = ['user', 'server', 'ipv4', 'ipv6', 'realAddress', 'since'] as const;

export function registerControllerCommands(program: Command): void {
  program
    .command('controller')
    .description('run the controller: admin API, agent long-poll and reports (until SIGTERM)')
    .option(
      '--listen <where>',
      'unix:PATH or HOST:PORT; repeat to listen on several (default: unix:<dir>/run/controller.sock; TCP beyond loopback needs TLS)',
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option(
      '--base <template>',
      'bundle directory on the servers; {server} is replaced by the server name',
      '/etc/ovpn-fleet',
    )
    .option('--tls-cert <file>', 'PEM certificate chain for HTTPS')
    .option('--tls-key <file>', 'PEM private key for HTTPS')
    .option(
      '--max-connections <n>',
      'refuse connections beyond this many (keep it below the open-files limit)',
      '1024',
    )
    .option('--metrics-listen <addr:port>', METRICS_LISTEN_HELP)
    .option(
      '--metrics-token-file <file>',
      `${METRICS_TOKEN_HELP}; GET /metrics on the API takes it besides the admin token`,
    )
    .option(
      '--metrics-per-user',
      'add series with a user label (one per connected user: mind the cardinality)',
    )
    .option(
      '--audit-log <file>',
      'also append every audit entry to FILE as one JSON line (created 0600; reopened on SIGHUP)',
    )
    .option('--audit-syslog', 'also send every audit entry to syslog (authpriv.info, via logger)')
    .option(
      '--console-idle-timeout <minutes>',
      'end a console session after this many minutes without a request',
      '30',
    )
    .action(
      async (
        opts: {
          listen: string[];
          base: string;
          tlsCert?: string;
          tlsKey?: string;
          maxConnections: string;
          metricsListen?: string;
          metricsTokenFile?: string;
          metricsPerUser?: boolean;
          auditLog?: string;
          auditSyslog?: boolean;
          consoleIdleTimeout: string;
        },
        cmd: Command,
      ) => {
        const dir = fleetDir(cmd);
        const base = parseBaseDir(opts.base);
        const maxConnections = Number(opts.maxConnections);
        if (!Number.isInteger(maxConnections) || maxConnections < 16 || maxConnections > 1_000_000)
          throw new InputError(
            '--max-connections',
            `must be 16-1000000, got ${opts.maxConnections}`,
          );
        const idleMinutes = Number(opts.consoleIdleTimeout);
        if (!Number.isInteger(idleMinutes) || idleMinutes < 1 || idleMinutes > 720)
          throw new InputError(
            '--console-idle-timeout',
            `must be 1-720 minutes, got ${opts.consoleIdleTimeout}`,
          );
        if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey))
          throw new InputError('--tls-cert', '--tls-cert and --tls-key go together');
        const https =
          opts.tlsCert && opts.tlsKey
            ? {
                cert: readFileOrFail(opts.tlsCert, '--tls-cert'),
                key: readFileOrFail(opts.tlsKey, '--tls-key'),
              }
            : undefined;
        const listens = opts.listen.length ? opts.listen : [`unix:${defaultSocketPath(dir)}`];
        const endpoints = listens.map((text) => parseListen(text, !!https));
        const metricsToken = readMetricsToken(opts.metricsTokenFile);
        const metricsAt =
          opts.metricsListen !== undefined
            ? parseMetricsListen(opts.metricsListen, metricsToken !== undefined)
            : undefined;
        const admin = ensureAdminToken(dir);
        // fastify loads only here, so the other commands start as fast as before.
        const { buildController } = await import('../../controller/app.js');
        const ctl = await buildController({
          fleetDir: dir,
          baseDir: (server) => baseDirOf(base, server),
          adminToken: admin.token,
          maxConnections,
          consoleIdleTimeoutMs: idleMinutes * 60_000,
          ...(https ? { https } : {}),
          metrics: {
            ...(metricsToken !== undefined ? { token: metricsToken } : {}),
            perUser: opts.metricsPerUser ?? false,
          },
          ...(opts.auditLog !== undefined || opts.auditSyslog
            ? {
                auditSink: {
                  ...(opts.auditLog !== undefined ? { file: resolvePath(opts.auditLog) } : {}),
                  syslog: opts.auditSyslog === true,
                },
              }
            : {}),
        });
        let where: string[];
        let metricsListener: Awaited<ReturnType<typeof serveMetrics>> | undefined;
        try {
          where = await listenOnAll(ctl.app, endpoints, {
            maxConnections,
            ...(https ? { https } : {}),
          });
          if (metricsAt)
            metricsListener = await serveMetrics({
              ...metricsAt,
              render: () => ctl.metrics.render(),
              ...(metricsToken !== undefined ? { token: metricsToken } : {}),
              log: (line) => warn(line),
            });
        } catch (err) {
          await ctl.close();
          throw err;
        }
        say(
          `controller listening on ${where.join(' and ')}; admin token ${admin.created ? 'created in' : 'in'} ${admin.path}`,
        );
        if (metricsAt && metricsListener)
          say(
            `metrics on http://${formatEndpoint({ kind: 'tcp', tls: false, host: metricsAt.host, port: metricsListener.port })}/metrics`,
          );
        // logrotate's postrotate sends SIGHUP: the audit log file is opened again.
        const reopen = () => ctl.reopenAuditLog();
        process.on('SIGHUP', reopen);
        const signal = await new Promise<NodeJS.Signals>((resolve) => {
          process.once('SIGTERM', () => resolve('SIGTERM'));
          process.once('SIGINT', () => resolve('SIGINT'));
        });
        await metricsListener?.close();
        process.off('SIGHUP', reopen);
        await ctl.close();
        say(`controller stopped (${signal})`);
      },
    );

  program
    .command('agent-token <server>')
    .description("print the bearer token of a server's agent")
    .action(async (server: string, _opts: unknown, cmd: Command) => {
      const token = await withFleet(cmd, (f) => f.agentToken(server));
      say(token);
    });

  program
    .command('status')
    .description('who is online where (from the controller, else from the store)')
    .option('--json', 'print {source, sessions} as JSON')
    .option('--controller <where>', CONTROLLER_HELP, collectControllers)
    .option('--ca <file>', CA_HELP)
    .action(async (opts: { json?: boolean } & ControllerOptions, cmd: Command) => {
      const dir = fleetDir(cmd);
      let source: 'controller' | 'store' = 'controller';
      let sessions: SessionView[];
      try {
        sessions = await clientFor(dir, opts).sessions();
      } catch (err) {
        if (!(err instanceof ControllerUnreachable)) throw err;
        source = 'store';
        sessions = await readSessionsFromStore(dir);
        warn(`${err.message}; showing the last reports kept in the store`);
      }
      if (opts.json) {
        printJson({ source, sessions });
        return;
      }
      printTable(
        sessions.map((s) => ({ ...s, server: s.stale ? `${s.server} (stale)` : s.server })),
        [...SESSION_COLUMNS],
      );
    });

  program
    .command('drain <server>')
    .description(
      'move its users to their next remote and take no new ones; waits until it is empty',
    )
    .option('--controller <where>', CONTROLLER_HELP, collectControllers)
    .option('--ca <file>', CA_HELP)
    .option('--timeout <seconds>', 'give up waiting after this long', '30')
    .option('--no-wait', 'return as soon as the controller has the order')
    .action(
      async (
        server: string,
        opts: { timeout: string; wait: boolean } & ControllerOptions,
        cmd: Command,
      ) => {
        const timeout = Number(opts.timeout);
        if (!Number.isFinite(timeout) || timeout <= 0)
          throw new InputError('--timeout', 'must be a positive number of seconds');
        const client = clientFor(fleetDir(cmd), opts);
        const started = Date.now();
        const view = await client.drain(server);
        if (!opts.wait) {
          say(`${view.name}: draining (${view.sessions} sessions)`);
          return;
        }
        // Empty once the agent has reported, after the order, that no session is left.
        for (;;) {
          const now = (await client.servers()).find((s) => s.name === server);
          const reportedSince =
            now?.reportedAt !== undefined &&
            now.reportedAt !== null &&
            Date.parse(now.reportedAt) >= started;
          if (now && reportedSince && now.sessions === 0) {
            say(
              `${server}: drained, no sessions left after ${((Date.now() - started) / 1000).toFixed(1)} s`,
            );
            return;
          }
          if (Date.now() - started > timeout * 1000) {
            throw new Timeout(
              `${server} still has ${now?.sessions ?? '?'} sessions after ${timeout} s of draining`,
            );
          }
          await sleep(250);
        }
      },
    );

  program
    .command('undrain <server>')
    .description('take users again (through the controller)')
    .option('--controller <where>', CONTROLLER_HELP, collectControllers)
    .option('--ca <file>', CA_HELP)
    .action(async (server: string, opts: ControllerOptions, cmd: Command) => {
      const view = await clientFor(fleetDir(cmd), opts).undrain(server);
      say(`${view.name}: taking users (${view.sessions} sessions)`);
    });
}

async function readSessionsFromStore(dir: string): Promise<SessionView[]> {
  const fleet = await openFleet(dir);
  try {
    const now = new Date();
    const states = await fleet.store.listServerStates();
    const reported = new Map(states.map((s) => [s.name, s.reportedAt]));
    return (await fleet.store.listSessions()).map((s) =>
      sessionView(s, isStale(reported.get(s.server), now, STALE_AFTER_MS)),
    );
  } finally {
    await fleet.close();
  }
}
