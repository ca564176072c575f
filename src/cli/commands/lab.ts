/** `ovpn-fleet lab …`: the whole cluster in network namespaces on this machine. */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../../errors.js';
import { DEFAULT_PREFIX, Lab } from '../../lab/lab.js';
import { LAB_ROUTERS, type LabRouters } from '../../lab/bird.js';
import { type LabStore, checkControlPlaneOptions } from '../../lab/control-plane.js';
import { checkSsoOption, ssoSpecHint } from '../../lab/sso-lab.js';
import { labDir } from '../../lab/state.js';
import { run } from '../../sys/exec.js';
import { fleetDir, withFleet } from '../context.js';
import { printJson, printTable, say } from '../output.js';

interface LabOpts {
  prefix: string;
}

/**
 * Runs `fn` on the lab with its fleet opened on the store the lab's controllers use: a lab on
 * PostgreSQL keeps the fleet in its own database, not in fleet.db.
 */
async function withLab<T>(
  cmd: Command,
  prefix: string,
  fn: (lab: Lab) => Promise<T> | T,
  opts: { store?: boolean } = {},
): Promise<T> {
  const lab = await Lab.openDir(fleetDir(cmd), prefix, opts);
  try {
    return await fn(lab);
  } finally {
    await lab.close();
  }
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('run the fleet for real in network namespaces on this machine (root)');
  const prefixOption = (c: Command) =>
    c.option('--prefix <prefix>', 'name prefix of this lab (2-8 letters/digits)', DEFAULT_PREFIX);

  prefixOption(
    lab
      .command('up')
      .description('build the network, start routers, servers, load balancers and service hosts')
      .option(
        '--no-control-plane',
        'servers run alone, without controller and agents (as in the seed)',
      )
      .option(
        '--seed',
        'run the servers as the seed article did: its hooks, unfiltered FRR redistribution, no control plane (benchmark baseline)',
      )
      .option('--clients <n>', 'then connect the first N enabled users (up to 150)', (v) =>
        Number(v),
      )
      .option(
        '--routers <impl>',
        'core and site routers run frr or bird (BIRD 2: a datacenter that is not FRR)',
        'frr',
      )
      .option(
        '--controllers <n>',
        'controllers to run: 1, or 2 (the second in its own host; needs --store postgres)',
        (v) => Number(v),
        1,
      )
      .option(
        '--store <engine>',
        "sqlite (fleet.db) or postgres: a PostgreSQL in the lab's db host, fleet.db copied in",
        'sqlite',
      )
      .option(
        '--sso',
        "also run a test OpenID provider (host idp, https://192.0.2.250, the fleet's users with random passwords in .lab/PREFIX/sso/users.json) and the controller's browser side on https://192.0.2.251; point auth.sso at them (lab up prints how)",
      ),
  ).action(
    async (
      opts: LabOpts & {
        clients?: number;
        controlPlane: boolean;
        seed?: boolean;
        routers: string;
        controllers: number;
        store: string;
        sso?: boolean;
      },
      cmd: Command,
    ) => {
      if (!(LAB_ROUTERS as readonly string[]).includes(opts.routers))
        throw new InputError(
          '--routers',
          `"${opts.routers}" is not one of ${LAB_ROUTERS.join(', ')}`,
        );
      if (
        opts.clients !== undefined &&
        (!Number.isInteger(opts.clients) || opts.clients < 0 || opts.clients > 150)
      ) {
        throw new InputError('--clients', 'must be a whole number from 0 to 150');
      }
      checkControlPlaneOptions({
        controllers: opts.controllers,
        store: opts.store,
        controlPlane: opts.controlPlane && opts.seed !== true,
      });
      if (opts.sso) checkSsoOption({ controlPlane: opts.controlPlane && opts.seed !== true });
      await withFleet(cmd, async (fleet) => {
        if (opts.sso) {
          for (const line of ssoSpecHint(fleet.spec, labDir(fleet.dir, opts.prefix))) say(line);
        }
        const started = Date.now();
        const l = await Lab.up(fleet, {
          prefix: opts.prefix,
          log: say,
          controlPlane: opts.controlPlane,
          seed: opts.seed === true,
          routers: opts.routers as LabRouters,
          controllers: opts.controllers,
          store: opts.store as LabStore,
          sso: opts.sso === true,
        });
        try {
          say(`lab "${opts.prefix}" up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
          if (opts.clients) {
            const users = (await l.listUsers())
              .filter((u) => u.status === 'enabled')
              .slice(0, opts.clients)
              .map((u) => u.name);
            if (users.length < opts.clients)
              throw new InputError('--clients', `only ${users.length} enabled users in the store`);
            const t0 = Date.now();
            await l.connectMany(users);
            say(`${users.length} clients connected in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
          }
        } finally {
          await l.close();
        }
      });
    },
  );

  lab
    .command('bench')
    .description(
      "ovpn-fleet against the seed's design, both built in the lab from one fleet and driven through the same events → bench/results/ (root, source checkout)",
    )
    .option('--full', 'more samples (under 30 min) instead of the quick run (under 5 min)')
    .action(async (opts: { full?: boolean }) => {
      const root = fileURLToPath(new URL('../../../', import.meta.url));
      const script = join(root, 'bench', 'lab.ts');
      if (!existsSync(script))
        throw new InputError('lab bench', `needs the source checkout: ${script} not found`);
      let tsx: string;
      try {
        tsx = import.meta.resolve('tsx');
      } catch {
        throw new InputError('lab bench', 'needs the dev dependencies (npm ci): tsx not found');
      }
      const child = spawn(
        process.execPath,
        ['--import', tsx, script, opts.full ? '--full' : '--quick'],
        { stdio: 'inherit', cwd: root },
      );
      const code = await new Promise<number>((resolve) =>
        child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))),
      );
      if (code !== 0) process.exitCode = code;
    });

  prefixOption(
    lab
      .command('down')
      .description('stop every process and remove every namespace and file of the lab'),
  ).action(async (opts: LabOpts, cmd: Command) => {
    await Lab.down(fleetDir(cmd), opts.prefix, say);
  });

  prefixOption(
    lab
      .command('connect <user>')
      .description("start the user's OpenVPN client with their profile")
      .option(
        '--server <names>',
        'dial these servers directly, in this order (vpn11 or vpn11,vpn21)',
      ),
  ).action(async (user: string, opts: LabOpts & { server?: string }, cmd: Command) => {
    await withLab(cmd, opts.prefix, async (l) => {
      const t0 = Date.now();
      await l.connect(user, opts.server ? { server: opts.server } : {});
      const a = await l.tunnelAddresses(user);
      say(`${user} connected in ${Date.now() - t0} ms: ${a.ipv4 ?? '?'} ${a.ipv6 ?? '?'}`);
    });
  });

  prefixOption(
    lab
      .command('stop <component> [server]')
      .description(
        "failure drills: stop a server's openvpn, frr or agent, a controller (controller, controller2), postgres or the identity provider (idp)",
      )
      .option('--signal <signal>', 'SIGTERM (graceful) or SIGKILL (crash)', 'SIGTERM'),
  ).action(
    async (
      component: string,
      server: string | undefined,
      opts: LabOpts & { signal: string },
      cmd: Command,
    ) => {
      if (opts.signal !== 'SIGTERM' && opts.signal !== 'SIGKILL') {
        throw new InputError('--signal', 'must be SIGTERM or SIGKILL');
      }
      await withLab(
        cmd,
        opts.prefix,
        (l) => l.stopComponent(component, server, opts.signal as NodeJS.Signals),
        { store: false },
      );
      say(`${component}${server ? ` on ${server}` : ''} stopped (${opts.signal})`);
    },
  );
  prefixOption(
    lab
      .command('start <component> [server]')
      .description('start a stopped openvpn, frr, agent, controller, controller2, postgres or idp'),
  ).action(async (component: string, server: string | undefined, opts: LabOpts, cmd: Command) => {
    // Only an agent needs the store (its token): postgres must start while the store is down.
    await withLab(cmd, opts.prefix, (l) => l.startComponent(component, server), {
      store: component === 'agent',
    });
    say(`${component}${server ? ` on ${server}` : ''} started`);
  });

  prefixOption(
    lab
      .command('sync')
      .description("re-render the servers' files (ccd, CRL, nftables) after user changes"),
  ).action(async (opts: LabOpts, cmd: Command) => {
    const rows = await withLab(cmd, opts.prefix, (l) => l.sync());
    const changed = rows.filter((r) => r.changed).map((r) => r.server);
    say(changed.length ? `updated ${changed.join(', ')}` : 'all servers up to date');
  });

  prefixOption(
    lab
      .command('disconnect <user>')
      .description("stop the user's client (with exit notification)")
      .option(
        '--kill',
        'kill -9 the client instead: its session dies silently, as when a laptop sleeps',
      ),
  ).action(async (user: string, opts: LabOpts & { kill?: boolean }, cmd: Command) => {
    await withLab(cmd, opts.prefix, (l) => l.disconnect(user, opts.kill ? 'SIGKILL' : 'SIGTERM'), {
      store: false,
    });
    say(`${user} ${opts.kill ? 'killed' : 'disconnected'}`);
  });

  prefixOption(
    lab
      .command('status')
      .description("each user: server, addresses, and the core router's routes to them")
      .option('--json', 'print JSON'),
  ).action(async (opts: LabOpts & { json?: boolean }, cmd: Command) => {
    const { rows, controlPlane } = await withLab(
      cmd,
      opts.prefix,
      async (l) => ({
        rows: await l.status(),
        controlPlane: l.controlPlaneStatus(),
      }),
      { store: false },
    );
    if (opts.json) printJson(rows);
    else {
      if (controlPlane.length)
        printTable(
          controlPlane.map((c) => ({ ...c, running: c.running ? 'yes' : 'NO' })),
          ['component', 'running', 'ns', 'where'],
        );
      printTable(
        rows.map((r) => ({
          ...r,
          core: r.coreKnows
            ? `yes via ${[...new Set([...r.coreVia4, ...r.coreVia6])].join('+')}`
            : 'no',
        })),
        ['user', 'client', 'server', 'ipv4', 'ipv6', 'core'],
      );
    }
  });

  prefixOption(
    lab
      .command('exec <host> <command...>')
      .description('run a command in a lab host (e.g. lab exec core -- ip route)'),
  ).action(async (host: string, command: string[], opts: LabOpts, cmd: Command) => {
    const ns = await withLab(cmd, opts.prefix, (l) => l.resolveHost(host), {
      store: false,
    });
    const r = await run(command, { netns: ns, allowFailure: true });
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    process.exitCode = r.code ?? 1;
  });

  prefixOption(
    lab.command('logs <host>').description('print the logs of a lab host (OpenVPN, FRR, service)'),
  ).action(async (host: string, opts: LabOpts, cmd: Command) => {
    const files = await withLab(cmd, opts.prefix, (l) => l.logFiles(host), {
      store: false,
    });
    for (const f of files) process.stdout.write(`==> ${f} <==\n${readFileSync(f, 'utf8')}\n`);
  });
}
