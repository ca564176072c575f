/** `ovpn-fleet agent`: runs on each VPN server, next to OpenVPN and FRR. */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEndpoints } from '../../client/client.js';
import { InputError } from '../../errors.js';
import { DEFAULT_RENDER_OPTIONS } from '../../render/types.js';
import { collectControllers, readCaFile } from '../options.js';
import {
  METRICS_LISTEN_HELP,
  METRICS_TOKEN_HELP,
  parseMetricsListen,
  readMetricsToken,
} from '../metrics-options.js';
import { serveMetrics } from '../../sys/metrics-http.js';
import { readOpenvpnStartArgv } from '../../agent/openvpn-start.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description(
      "apply this server's bundle from the controller, report sessions, keep routes right",
    )
    .requiredOption('--server <name>', 'this server, as named in fleet.yaml')
    .requiredOption(
      '--controller <url>',
      'unix:/path/to/controller.sock, https://host:port, or host:port on loopback; repeat for several controllers: the first is preferred, the next taken over when it fails',
      collectControllers,
    )
    .option(
      '--ca <file>',
      "PEM file of the CA the controllers' certificates must chain to (every https one)",
    )
    .requiredOption(
      '--token-file <file>',
      "file holding this server's agent token (ovpn-fleet agent-token)",
    )
    .option('--bundle-dir <dir>', 'where the bundle lives', DEFAULT_RENDER_OPTIONS.baseDir)
    .option('--tun <device>', 'tun device', DEFAULT_RENDER_OPTIONS.tunDevice)
    .option(
      '--route-proto <n>',
      'route protocol number of the hooks',
      String(DEFAULT_RENDER_OPTIONS.routeProtocol),
    )
    .option('--frr-instance <name>', 'FRR instance (vtysh -N) to reload, when FRR runs as one')
    .option(
      '--openvpn-start-argv-file <file>',
      'JSON array: the command that starts OpenVPN, where no supervisor (systemd) restarts it (the lab); a change of management-client-auth needs a full restart',
    )
    .option('--metrics-listen <addr:port>', METRICS_LISTEN_HELP)
    .option(
      '--metrics-token-file <file>',
      `${METRICS_TOKEN_HELP}; also on the health socket's /metrics`,
    )
    .action(
      async (opts: {
        server: string;
        controller: string[];
        ca?: string;
        tokenFile: string;
        bundleDir: string;
        tun: string;
        routeProto: string;
        frrInstance?: string;
        metricsListen?: string;
        metricsTokenFile?: string;
        openvpnStartArgvFile?: string;
      }) => {
        const ca = opts.ca !== undefined ? readCaFile(opts.ca) : undefined;
        // Refused here, before anything starts: plain HTTP beyond loopback, --ca without TLS.
        parseEndpoints(opts.controller, '--controller', ca ? { ca } : {});
        let token: string;
        try {
          token = readFileSync(opts.tokenFile, 'utf8').trim();
        } catch (err) {
          throw new InputError(
            '--token-file',
            `cannot read ${opts.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
          );
        }
        const proto = Number(opts.routeProto);
        if (!Number.isInteger(proto) || proto < 1 || proto > 255)
          throw new InputError('--route-proto', 'must be 1-255');
        const metricsToken = readMetricsToken(opts.metricsTokenFile);
        const openvpnStartArgv =
          opts.openvpnStartArgvFile !== undefined
            ? readOpenvpnStartArgv(opts.openvpnStartArgvFile)
            : undefined;
        const metricsAt =
          opts.metricsListen !== undefined
            ? parseMetricsListen(opts.metricsListen, metricsToken !== undefined)
            : undefined;
        const { Agent } = await import('../../agent/agent.js');
        const options = {
          server: opts.server,
          bundleDir: resolve(opts.bundleDir),
          controller: opts.controller,
          token,
          tunDevice: opts.tun,
          routeProtocol: proto,
          ...(opts.frrInstance ? { frrInstance: opts.frrInstance } : {}),
          // AgentOptions.ca: the agent pins it through parseEndpoint.
          ...(ca ? { ca } : {}),
          ...(metricsToken !== undefined ? { metricsToken } : {}),
          ...(openvpnStartArgv ? { openvpnStartArgv } : {}),
        };
        const agent = new Agent(options);
        await agent.start();
        let metricsListener: Awaited<ReturnType<typeof serveMetrics>> | undefined;
        try {
          if (metricsAt)
            metricsListener = await serveMetrics({
              ...metricsAt,
              render: () => agent.metrics.render(),
              ...(metricsToken !== undefined ? { token: metricsToken } : {}),
              log: (line) => process.stderr.write(`${line}\n`),
            });
        } catch (err) {
          await agent.stop();
          throw err;
        }
        await new Promise<void>((done) => {
          const stop = () =>
            void Promise.all([agent.stop(), metricsListener?.close()]).then(() => done());
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        });
      },
    );
}
