/**
 * `server setup` / `server remove`: put a VPN server's services in place on a Debian host (as
 * root), or take them away again; `controller setup` / `controller remove` the same for the
 * controller host. The work is planned by src/deploy/plan.ts and carried out by
 * src/deploy/apply.ts; this file reads and checks the flags.
 */
import type { Command } from 'commander';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseEndpoints } from '../../client/client.js';
import { InputError, NeedsPrivilege, NotFound } from '../../errors.js';
import { applyPlan, lookUnder, missingPackages } from '../../deploy/apply.js';
import { ROUTING_PROTOCOLS, type RoutingProtocol } from '../../deploy/frr-daemons.js';
import {
  CONTROLLER_TLS_CERT,
  CONTROLLER_TLS_KEY,
  type Plan,
  SERVER_PACKAGES,
  planControllerRemove,
  planControllerSetup,
  planServerRemove,
  planServerSetup,
} from '../../deploy/plan.js';
import { CONTROLLER_DIR, DEFAULT_DEPLOY_PATHS, type DeployPaths } from '../../deploy/units.js';
import { parseListen } from '../../controller/listen.js';
import { loadSpec } from '../../service/spec-file.js';
import {
  baseDirOf,
  collectControllers,
  parseBaseDir,
  readCaFile,
  readFileOrFail,
} from '../options.js';
import { say } from '../output.js';

/** fleet.yaml's server names (src/spec/schema.ts): they end up in the agent's options. */
const SERVER_NAME = /^[a-z][a-z0-9-]{0,30}$/;
/** Agent tokens are 64 hex characters today; anything printable without spaces is accepted. */
const TOKEN = /^[!-~]{16,4096}$/;

interface CommonOptions {
  root: string;
  dryRun?: boolean;
  bundleDir: string;
}

interface SetupOptions extends CommonOptions {
  server: string;
  /** --controller, repeated: the agent's controllers, first preferred. */
  controller: string[];
  ca?: string;
  tokenFile: string;
  routing?: string;
  spec?: string;
  bin: string;
}

function parseRoot(text: string): string {
  const root = resolve(text);
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new InputError('--root', `${text} is not a directory`);
  return root;
}

/** The token from a file, or from standard input with `-`: never from argv, where ps shows it. */
function readToken(file: string): string {
  const text = file === '-' ? readStdin() : readFileOrFail(file, '--token-file').toString('utf8');
  const token = text.trim();
  if (!TOKEN.test(token))
    throw new InputError(
      '--token-file',
      `${file === '-' ? 'standard input' : file} holds no agent token (one line, no spaces; ovpn-fleet agent-token SERVER prints it)`,
    );
  return token;
}

function readStdin(): string {
  try {
    return readFileSync(0, 'utf8');
  } catch (err) {
    throw new InputError(
      '--token-file',
      `cannot read standard input: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

function routingOf(opts: SetupOptions): RoutingProtocol {
  const flag = opts.routing;
  if (flag !== undefined && !(ROUTING_PROTOCOLS as readonly string[]).includes(flag))
    throw new InputError(
      '--routing',
      `${JSON.stringify(flag)} is not one of ${ROUTING_PROTOCOLS.join(', ')}`,
    );
  if (opts.spec === undefined) {
    if (flag === undefined)
      throw new InputError(
        '--routing',
        `required (${ROUTING_PROTOCOLS.join(', ')}: the protocol FRR runs), or give --spec fleet.yaml`,
      );
    return flag as RoutingProtocol;
  }
  const spec = loadSpec(opts.spec);
  if (!spec.sites.some((s) => s.servers.some((v) => v.name === opts.server)))
    throw new InputError('--server', `${opts.server} is not a server of ${opts.spec}`);
  if (flag !== undefined && flag !== spec.routing.protocol)
    throw new InputError(
      '--routing',
      `${flag} contradicts ${opts.spec}, whose routing protocol is ${spec.routing.protocol}`,
    );
  return spec.routing.protocol;
}

function pathsFor(opts: CommonOptions & { bin?: string }, server: string): DeployPaths {
  const bin = opts.bin ?? DEFAULT_DEPLOY_PATHS.bin;
  if (!bin.startsWith('/')) throw new InputError('--bin', `${bin} is not an absolute path`);
  let base: string;
  try {
    base = parseBaseDir(opts.bundleDir);
  } catch (err) {
    // parseBaseDir speaks of the controller's --base; here the same path is --bundle-dir.
    if (err instanceof InputError)
      throw new InputError('--bundle-dir', err.message.slice(`${err.field}: `.length));
    throw err;
  }
  return { ...DEFAULT_DEPLOY_PATHS, bin, bundleDir: baseDirOf(base, server) };
}

function mustBeRoot(root: string, dryRun: boolean | undefined): void {
  if (root === '/' && !dryRun && process.getuid?.() !== 0)
    throw new NeedsPrivilege(
      'setup and remove change /etc and run systemctl: run as root (or try --dry-run)',
    );
}

async function carryOut(plan: Plan, root: string, dryRun: boolean | undefined, what: string) {
  await applyPlan(plan, { root, dryRun: dryRun === true, print: say });
  const files = plan.steps.filter((s) => s.kind !== 'run');
  const changes = files.filter((s) => s.state !== 'unchanged' && s.state !== 'absent').length;
  say(
    dryRun
      ? `dry run: ${what} would change ${changes} of ${files.length} paths; nothing was written or run`
      : changes === 0
        ? `${what}: unchanged, nothing to write`
        : `${what}: ${changes} of ${files.length} paths changed`,
  );
}

const ROOT_HELP =
  'write under this directory instead of / and run no command (for tests and images)';

export function registerServer(program: Command): void {
  const server = program
    .command('server')
    .description(
      'set this VPN server up (units, FRR daemons, sysctl, agent settings) or remove it',
    );

  server
    .command('setup')
    .description(
      'as root on a Debian server: check packages, write the units and settings, enable and start (again: only what changed)',
    )
    .requiredOption('--server <name>', 'this server, as named in fleet.yaml')
    .requiredOption(
      '--controller <url>',
      "the agent's controller: https://HOST:PORT (or unix:PATH, HOST:PORT on loopback); repeat for several, the first preferred",
      collectControllers,
    )
    .option(
      '--ca <file>',
      "PEM file of the CA the controllers' certificates chain to (copied; every https one)",
    )
    .requiredOption(
      '--token-file <file>',
      "file holding this server's agent token (ovpn-fleet agent-token NAME), or - for stdin",
    )
    .option('--routing <protocol>', `FRR daemons to enable: ${ROUTING_PROTOCOLS.join(', ')}`)
    .option('--spec <file>', 'fleet.yaml: the routing protocol from it, and --server checked')
    .option(
      '--bundle-dir <dir>',
      "the bundle folder (the controller's --base)",
      DEFAULT_DEPLOY_PATHS.bundleDir,
    )
    .option('--bin <path>', 'the ovpn-fleet executable the units run', DEFAULT_DEPLOY_PATHS.bin)
    .option('--root <dir>', ROOT_HELP, '/')
    .option('--dry-run', 'print every file and command, write and run nothing')
    .action(async (opts: SetupOptions) => {
      if (!SERVER_NAME.test(opts.server))
        throw new InputError(
          '--server',
          `${JSON.stringify(opts.server)} is not a server name (lower-case letters, digits and "-", starting with a letter)`,
        );
      const root = opts.root === '/' ? '/' : parseRoot(opts.root);
      const paths = pathsFor(opts, opts.server);
      const caPem = opts.ca !== undefined ? readCaFile(opts.ca) : undefined;
      // Refused here as the agent would refuse it at every start: plain HTTP beyond loopback,
      // --ca without TLS.
      parseEndpoints(opts.controller, '--controller', caPem ? { ca: caPem } : {});
      const protocol = routingOf(opts);
      const token = readToken(opts.tokenFile);
      mustBeRoot(root, opts.dryRun);
      const missing = await missingPackages(SERVER_PACKAGES, root);
      if (missing.length)
        throw new NotFound(
          `missing packages: ${missing.join(', ')} (apt-get install ${missing.join(' ')})`,
        );
      try {
        accessSync(join(root, paths.bin), fsConstants.X_OK);
      } catch {
        throw new InputError(
          '--bin',
          `${paths.bin} is not an executable${root !== '/' ? ` under ${root}` : ''} (npm i -g ovpn-fleet, or give its path)`,
        );
      }
      const plan = planServerSetup(
        {
          paths,
          server: opts.server,
          controller: opts.controller,
          ...(caPem ? { caPem: caPem.toString('utf8') } : {}),
          token,
          protocol,
        },
        lookUnder(root),
      );
      await carryOut(plan, root, opts.dryRun, `setup of ${opts.server}`);
    });

  server
    .command('remove')
    .description(
      "stop and disable this server's services, remove their units and settings, restore FRR's daemons file",
    )
    .option(
      '--bundle-dir <dir>',
      'the bundle folder (left in place)',
      DEFAULT_DEPLOY_PATHS.bundleDir,
    )
    .option('--root <dir>', ROOT_HELP, '/')
    .option('--dry-run', 'print every step, change nothing')
    .action(async (opts: CommonOptions) => {
      const root = opts.root === '/' ? '/' : parseRoot(opts.root);
      const paths = pathsFor(opts, '{server}');
      mustBeRoot(root, opts.dryRun);
      await carryOut(planServerRemove(paths, lookUnder(root)), root, opts.dryRun, 'remove');
    });
}

/**
 * `controller setup` and `controller remove`, under the `controller` command of
 * controller.ts (registered before this). setup takes the controller's own options: commander
 * parses a parent's options anywhere on the line, so `controller setup --listen X` fills the
 * `controller` command's --listen, which is what the service will run with. Those given on the
 * line go into its settings file; the TLS files are copied next to it.
 */
export function registerControllerSetup(program: Command): void {
  const controller = program.commands.find((c) => c.name() === 'controller');
  if (!controller) throw new Error('registerControllerSetup needs the controller command first');

  controller
    .command('setup')
    .description(
      "as root on the controller host: the controller's unit, with the options given to this command (controller setup --listen … --tls-cert …), enabled and started",
    )
    .option('--bin <path>', 'the ovpn-fleet executable the unit runs', DEFAULT_DEPLOY_PATHS.bin)
    .option('--root <dir>', ROOT_HELP, '/')
    .option('--dry-run', 'print every file and command, write and run nothing')
    .action(async (opts: { bin: string; root: string; dryRun?: boolean }, cmd: Command) => {
      const parent = cmd.parent!;
      const dir = cmd.optsWithGlobals<{ dir?: string }>().dir;
      if (dir !== undefined && resolve(dir) !== CONTROLLER_DIR)
        throw new InputError(
          '--dir',
          `the controller service runs on ${CONTROLLER_DIR}, not ${dir}`,
        );
      const root = opts.root === '/' ? '/' : parseRoot(opts.root);
      const paths = pathsFor(
        { bundleDir: DEFAULT_DEPLOY_PATHS.bundleDir, root, bin: opts.bin },
        '',
      );
      const given = parent.options.filter(
        (o) => parent.getOptionValueSource(o.attributeName()) === 'cli',
      );
      const values = parent.opts<Record<string, string | string[] | boolean>>();
      const certFile = values.tlsCert as string | undefined;
      const keyFile = values.tlsKey as string | undefined;
      if (Boolean(certFile) !== Boolean(keyFile))
        throw new InputError('--tls-cert', '--tls-cert and --tls-key go together');
      const tls =
        certFile && keyFile
          ? {
              certPem: readFileOrFail(certFile, '--tls-cert').toString('utf8'),
              keyPem: readFileOrFail(keyFile, '--tls-key').toString('utf8'),
            }
          : undefined;
      const options: string[][] = [];
      for (const o of given) {
        const flag = o.long!;
        const value = values[o.attributeName()];
        if (flag === '--tls-cert') options.push([flag, CONTROLLER_TLS_CERT]);
        else if (flag === '--tls-key') options.push([flag, CONTROLLER_TLS_KEY]);
        else if (flag === '--listen')
          for (const l of value as string[]) {
            // Refused now, as the controller would refuse it at every start.
            parseListen(l, tls !== undefined);
            options.push([flag, l]);
          }
        else if (flag === '--base') options.push([flag, parseBaseDir(value as string)]);
        else if (typeof value === 'boolean') options.push([flag]);
        else options.push([flag, String(value)]);
      }
      mustBeRoot(root, opts.dryRun);
      try {
        accessSync(join(root, paths.bin), fsConstants.X_OK);
      } catch {
        throw new InputError(
          '--bin',
          `${paths.bin} is not an executable${root !== '/' ? ` under ${root}` : ''}`,
        );
      }
      const plan = planControllerSetup(
        { paths, options, ...(tls ? { tls } : {}) },
        lookUnder(root),
      );
      await carryOut(plan, root, opts.dryRun, 'controller setup');
    });

  controller
    .command('remove')
    .description(
      "stop and disable the controller's service, remove its unit and settings (the fleet stays)",
    )
    .option('--root <dir>', ROOT_HELP, '/')
    .option('--dry-run', 'print every step, change nothing')
    .action(async (opts: { root: string; dryRun?: boolean }) => {
      const root = opts.root === '/' ? '/' : parseRoot(opts.root);
      mustBeRoot(root, opts.dryRun);
      await carryOut(
        planControllerRemove(DEFAULT_DEPLOY_PATHS, lookUnder(root)),
        root,
        opts.dryRun,
        'controller remove',
      );
    });
}
