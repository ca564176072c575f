/**
 * The lab: the whole fleet running for real in network namespaces on this machine — OpenVPN
 * 2.6, FRR and nftables from the rendered bundles, site and core routers, load balancers,
 * service hosts and clients. Nothing is added to the host's own namespace; every name starts
 * with the lab's prefix; every process is tracked by pid in the state file.
 */
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Conflict, InputError, NeedsPrivilege, NotFound } from '../errors.js';
import type { Fleet } from '../service/fleet.js';
import type { RenderedFile } from '../render/types.js';
import { openvpnSerialHex } from '../render/openvpn.js';
import { writeBundleFiles, writeFileAtomic } from '../sys/files.js';
import { run } from '../sys/exec.js';
import { waitFor } from '../sys/time.js';
import { ControllerClient } from '../client/client.js';
import { isAlive, readPidFile, spawnDetached, stopProcess, track } from '../sys/proc.js';
import { renderLbRuleset } from './lb.js';
import { type LabIface, type LabPlan, MAX_CLIENTS, clientNode, planLab } from './plan.js';
import { renderRouterConf, routingDaemons } from './routers.js';
import {
  BIRD_RUN_ROOT,
  type LabRouters,
  birdPaths,
  birdRoutersRefusal,
  renderBirdConf,
} from './bird.js';
import { seedBundle, seedProfile } from './seed.js';
import { followPidFile } from './follow-pid.js';
import { openvpnStartArgvPath } from '../agent/openvpn-start.js';
import { migrateStoreToPostgres, openFleet } from '../service/open.js';
import {
  type LabOps,
  type LabStore,
  buildControlPlaneNetwork,
  controllerEndpoints,
  controllerId,
  controllerNamespace,
  controllerSocket,
  initLabPostgres,
  labControllerCount,
  labStoreEnv,
  removeLabPostgres,
  startLabPostgres,
  stopLabPostgres,
} from './control-plane.js';
import {
  IDP_COMPONENT,
  controllerSsoArgs,
  idpStatus,
  startLabIdp,
  startSsoLab,
  stopLabIdp,
} from './sso-lab.js';
import {
  type LabClient,
  type LabProcess,
  type LabState,
  labDir,
  loadState,
  saveState,
} from './state.js';

export const DEFAULT_PREFIX = 'ovf';
/**
 * The controller runs in the core router's namespace and serves the console, the API and
 * /metrics on this port of that namespace's own loopback, besides its unix socket (which every
 * namespace reaches: a socket file is not bound to a network namespace). There, a browser
 * started in the core namespace and a Prometheus scraping the agents over the backbone reach
 * it, and the host's own network is left untouched.
 */
export const LAB_CONTROLLER_PORT = 8080;
/**
 * Each agent also serves /metrics on its server's backbone address, this port, for a
 * Prometheus in the core namespace; with a token (lab/metrics.token), as on real servers.
 */
export const LAB_AGENT_METRICS_PORT = 9469;
const PREFIX_PATTERN = /^[a-z][a-z0-9]{1,7}$/;
const FRR_BIN = '/usr/lib/frr';
const SHARED_FRR_FILES = [
  '/var/run/frr/ospfd-gr.json',
  '/var/run/frr/ospf6d-gr.json',
  '/var/run/frr/ospf6d-at-seq-no.dat',
];

export function checkPrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix))
    throw new InputError(
      '--prefix',
      `"${prefix}" must be 2-8 lower-case letters or digits, starting with a letter`,
    );
}

/** One clear line when something the lab needs is missing. */
export function checkLabPrerequisites(routers: LabRouters = 'frr'): void {
  if (process.getuid?.() !== 0)
    throw new NeedsPrivilege('the lab needs root (network namespaces, tun devices)');
  const needed: [string, string][] = [
    ['/usr/sbin/openvpn', 'openvpn'],
    [`${FRR_BIN}/zebra`, 'frr'],
    // The agents reload FRR with it (src/sys/frr-reload.ts).
    [`${FRR_BIN}/frr-reload.py`, 'frr-pythontools'],
    ['/usr/sbin/nft', 'nftables'],
    ['/usr/sbin/conntrack', 'conntrack'],
    ['/dev/net/tun', 'a /dev/net/tun device'],
    ...(routers === 'bird' ? ([['/usr/sbin/bird', 'bird2']] as [string, string][]) : []),
  ];
  const missing = needed.filter(([p]) => !existsSync(p)).map(([, what]) => what);
  if (missing.length)
    throw new InputError(
      'lab',
      `missing ${missing.join(', ')}: run "npm run setup" (apt-get install openvpn frr nftables conntrack …)`,
    );
}

export class Lab implements LabOps {
  /** A fleet this lab opened itself (on the lab's PostgreSQL), closed by close(). */
  private ownedFleet: Fleet | undefined;

  private constructor(
    private fleet: Fleet,
    readonly state: LabState,
  ) {}

  /**
   * The lab under `prefix` of the fleet in `fleetDir`, with the fleet opened on the store the
   * lab's controllers use (its PostgreSQL, or fleet.db). close() it when done.
   *
   * `store: false` is for what needs only the spec and the lab's state (exec, status, stopping
   * and starting processes): it opens fleet.db, so it works while the lab's PostgreSQL is down.
   */
  static async openDir(
    fleetDir: string,
    prefix = DEFAULT_PREFIX,
    opts: { store?: boolean } = {},
  ): Promise<Lab> {
    checkPrefix(prefix);
    const state = loadState(labDir(fleetDir, prefix));
    if (!state) throw new NotFound(`no lab "${prefix}" in ${fleetDir}: run "ovpn-fleet lab up"`);
    // A lab on its own PostgreSQL falls back to fleet.db (its source) for the spec; any other lab
    // opens the fleet as every command does.
    const env =
      opts.store === false && state.store === 'postgres'
        ? labStoreEnv({ ...state, store: 'sqlite' }, 'tool')
        : labStoreEnv(state, 'tool');
    const fleet = await openFleet(fleetDir, { env });
    const lab = new Lab(fleet, state);
    lab.ownedFleet = fleet;
    return lab;
  }

  /** The fleet's users, from the store the lab's controllers use. */
  listUsers(): ReturnType<Fleet['listUsers']> {
    return this.fleet.listUsers();
  }

  /** Closes the fleet the lab opened on its own store (not one it was given). */
  async close(): Promise<void> {
    await this.ownedFleet?.close();
    this.ownedFleet = undefined;
  }

  static open(fleet: Fleet, prefix = DEFAULT_PREFIX): Lab {
    checkPrefix(prefix);
    const state = loadState(labDir(fleet.dir, prefix));
    if (!state) throw new NotFound(`no lab "${prefix}" in ${fleet.dir}: run "ovpn-fleet lab up"`);
    return new Lab(fleet, state);
  }

  get plan(): LabPlan {
    if (!this.state.plan)
      throw new NotFound('lab state has no plan: run "ovpn-fleet lab down" and "lab up" again');
    return this.state.plan;
  }

  save(): void {
    saveState(this.state);
  }

  // ---------------------------------------------------------------- up

  static async up(
    fleet: Fleet,
    opts: {
      prefix?: string;
      log?: (line: string) => void;
      controlPlane?: boolean;
      /** Run the servers as the seed article did (implies no control plane). */
      seed?: boolean;
      /** The core and site routers run FRR (default) or BIRD 2: interop with a non-FRR datacenter. */
      routers?: LabRouters;
      /** Controllers to run (default 1); 2 needs store postgres. */
      controllers?: number;
      /**
       * sqlite (default): the controller uses fleet.db. postgres: a PostgreSQL in the lab's
       * `-db` host, which fleet.db is copied into at up; the lab's fleet lives there until down.
       */
      store?: LabStore;
      /** A test OpenID provider and the controller's HTTPS side for SSO at connect (sso-lab.ts). */
      sso?: boolean;
    } = {},
  ): Promise<Lab> {
    const prefix = opts.prefix ?? DEFAULT_PREFIX;
    checkPrefix(prefix);
    const routers = opts.routers ?? 'frr';
    checkLabPrerequisites(routers);
    if (routers === 'bird') {
      const refusal = birdRoutersRefusal(fleet.spec, await localFrrVersion());
      if (refusal) throw new InputError('--routers', refusal);
    }
    const dir = labDir(fleet.dir, prefix);
    if (loadState(dir))
      throw new Conflict(
        `lab "${prefix}" is already up (state in ${dir}): run "ovpn-fleet lab down --prefix ${prefix}" first`,
      );
    const leftovers = (await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`));
    if (leftovers.length)
      throw new Conflict(
        `namespaces ${leftovers.slice(0, 3).join(', ')}… of prefix "${prefix}" exist: run "ovpn-fleet lab down --prefix ${prefix}"`,
      );
    const plan = planLab(fleet.spec, prefix);
    routingDaemons(fleet.spec);
    mkdirSync(dir, { recursive: true });
    const state: LabState = {
      prefix,
      fleetDir: fleet.dir,
      dir,
      createdAt: new Date().toISOString(),
      port: fleet.spec.openvpn.port,
      namespaces: [],
      frrInstances: [],
      ...(routers === 'bird' ? { birdInstances: [], routers } : {}),
      processes: [],
      clients: [],
      sharedFrrFiles: SHARED_FRR_FILES.filter((f) => existsSync(f)),
      controlPlane: opts.controlPlane !== false && opts.seed !== true,
      seed: opts.seed === true,
      ...(opts.controllers && opts.controllers > 1 ? { controllers: opts.controllers } : {}),
      ...(opts.store === 'postgres' ? { store: opts.store } : {}),
      plan,
    };
    saveState(state);
    const lab = new Lab(fleet, state);
    const log = opts.log ?? (() => undefined);
    try {
      await lab.buildNetwork(log);
      if (state.store === 'postgres') {
        await buildControlPlaneNetwork(lab);
        await initLabPostgres(lab, (env) => migrateStoreToPostgres(fleet.dir, env), log);
        lab.fleet = lab.ownedFleet = await openFleet(fleet.dir, {
          env: labStoreEnv(state, 'tool'),
        });
      }
      if (opts.sso) await startSsoLab(lab, await lab.fleet.listUsers(), log);
      await lab.startRouting(log);
      await lab.startServers(log);
      if (state.controlPlane) await lab.startControlPlane(log);
      await lab.startEdges(log);
      await lab.waitConverged(log);
    } catch (err) {
      await lab.close().catch(() => undefined);
      log(
        `lab up failed; the partial lab stays for inspection until "ovpn-fleet lab down --prefix ${prefix}"`,
      );
      throw err;
    }
    return lab;
  }

  async addNamespace(ns: string, forwarding: boolean): Promise<void> {
    this.state.namespaces.push(ns);
    this.save();
    await run(['ip', 'netns', 'add', ns]);
    await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    // DAD would hold new IPv6 addresses "tentative" for a second or two: nothing to detect here.
    await run(
      [
        'sysctl',
        '-qw',
        'net.ipv6.conf.all.accept_dad=0',
        'net.ipv6.conf.default.accept_dad=0',
        `net.ipv4.ip_forward=${forwarding ? 1 : 0}`,
        `net.ipv6.conf.all.forwarding=${forwarding ? 1 : 0}`,
      ],
      { netns: ns },
    );
  }

  async addLink(a: LabIface, b: LabIface): Promise<void> {
    await run([
      'ip',
      '-n',
      a.ns,
      'link',
      'add',
      a.name,
      'type',
      'veth',
      'peer',
      'name',
      b.name,
      'netns',
      b.ns,
    ]);
    for (const i of [a, b]) {
      if (i.ns === this.plan.inet)
        await run(['ip', '-n', i.ns, 'link', 'set', i.name, 'master', 'br0']);
      if (i.v4) await run(['ip', '-n', i.ns, 'addr', 'add', i.v4, 'dev', i.name]);
      if (i.v6) await run(['ip', '-n', i.ns, 'addr', 'add', i.v6, 'dev', i.name, 'nodad']);
      await run(['ip', '-n', i.ns, 'link', 'set', i.name, 'up']);
    }
  }

  async addRoutes(ns: string, routes: LabPlan['nodes'][number]['routes']): Promise<void> {
    for (const r of routes) {
      const family = r.via?.includes(':') ? '-6' : '-4';
      await run([
        'ip',
        family,
        '-n',
        ns,
        'route',
        'replace',
        r.to,
        ...(r.via ? ['via', r.via] : []),
        ...(r.dev ? ['dev', r.dev] : []),
      ]);
    }
  }

  private async buildNetwork(log: (l: string) => void): Promise<void> {
    const plan = this.plan;
    for (const node of plan.nodes) await this.addNamespace(node.ns, node.forwarding);
    await run(['ip', '-n', plan.inet, 'link', 'add', 'br0', 'type', 'bridge']);
    await run(['ip', '-n', plan.inet, 'link', 'set', 'br0', 'up']);
    for (const link of plan.links) await this.addLink(link.a, link.b);
    for (const node of plan.nodes) await this.addRoutes(node.ns, node.routes);
    log(`network: ${plan.nodes.length} namespaces, ${plan.links.length} links`);
  }

  // ---------------------------------------------------------------- routing

  private async startFrr(ns: string, config: string): Promise<void> {
    const etc = `/etc/frr/${ns}`;
    const runDir = `/var/run/frr/${ns}`;
    this.state.frrInstances.push(ns);
    this.save();
    const { uid, gid } = frrIds();
    for (const d of [etc, runDir]) {
      mkdirSync(d, { recursive: true, mode: 0o755 });
      chownSync(d, uid, gid);
    }
    writeFileSync(join(etc, 'frr.conf'), config, { mode: 0o640 });
    writeFileSync(join(etc, 'vtysh.conf'), '', { mode: 0o640 });
    chownSync(join(etc, 'frr.conf'), uid, gid);
    chownSync(join(etc, 'vtysh.conf'), uid, gid);
    for (const daemon of routingDaemons(this.fleet.spec)) {
      const pidFile = join(runDir, `${daemon}.pid`);
      rmSync(pidFile, { force: true });
      // -d returns once the daemon is up and has written its pid file.
      await run(
        [
          join(FRR_BIN, daemon),
          '-N',
          ns,
          '-d',
          '-f',
          join(etc, 'frr.conf'),
          '-P',
          '0',
          '-u',
          'frr',
          '-g',
          'frr',
          // Logging from the command line, not a `log file` line: the running config stays the
          // server's frr.conf, which the agent's reload makes it equal to (and would otherwise
          // remove the line, and the log with it).
          '--log',
          `file:${join(runDir, 'frr.log')}`,
          '--log-level',
          'informational',
        ],
        { netns: ns, timeoutMs: 20_000 },
      );
      const pid = await waitFor(
        `${daemon} pid file in ${ns}`,
        () => readPidFile(pidFile),
        5000,
        20,
      );
      this.recordProcess({ id: `${ns}/${daemon}`, kind: 'frr', ns, pid, pidFile });
    }
  }

  recordProcess(p: Omit<LabProcess, 'startTime'>): LabProcess {
    const t = track(p.pid);
    const entry: LabProcess = { ...p, startTime: t?.startTime ?? '' };
    this.state.processes = this.state.processes.filter((q) => q.id !== p.id);
    this.state.processes.push(entry);
    this.save();
    return entry;
  }

  private async startRouting(log: (l: string) => void): Promise<void> {
    const plan = this.plan;
    const bird = this.state.routers === 'bird';
    for (const node of plan.nodes.filter((n) => n.role === 'core' || n.role === 'router')) {
      if (bird) await this.startBird(node.ns);
      else await this.startFrr(node.ns, renderRouterConf(this.fleet.spec, plan, node.ns));
    }
    log(
      `routers: core and ${plan.nodes.filter((n) => n.role === 'router').length} site routers running ${this.fleet.spec.routing.protocol} on ${bird ? 'BIRD' : 'FRR'}`,
    );
  }

  /**
   * One BIRD per router namespace. `bird` parses its config, then daemonises and writes its pid
   * file; it runs as root here (the lab's namespaces are throwaway; Debian's bird.service, which
   * drops to the bird user, is left alone). Stopped by pid, like everything the lab starts.
   */
  private async startBird(ns: string): Promise<void> {
    const p = birdPaths(this.state.dir, ns);
    this.state.birdInstances = [...(this.state.birdInstances ?? []), ns];
    this.save();
    mkdirSync(p.dir, { recursive: true });
    mkdirSync(p.runDir, { recursive: true, mode: 0o755 });
    writeFileAtomic(p.conf, renderBirdConf(this.fleet.spec, this.plan, ns, p.log));
    rmSync(p.pidFile, { force: true });
    await run(['bird', '-c', p.conf, '-s', p.socket, '-P', p.pidFile], {
      netns: ns,
      timeoutMs: 20_000,
    });
    const pid = await waitFor(`bird pid file in ${ns}`, () => readPidFile(p.pidFile), 5000, 20);
    this.recordProcess({ id: `${ns}/bird`, kind: 'bird', ns, pid, pidFile: p.pidFile });
  }

  /** The control socket of a lab router's BIRD (`birdc -s SOCKET show route`). */
  birdSocket(ns: string): string {
    return birdPaths(this.state.dir, ns).socket;
  }

  // ---------------------------------------------------------------- servers

  serverDir(name: string): string {
    return join(this.state.dir, 'servers', name);
  }

  private async startServers(log: (l: string) => void): Promise<void> {
    for (const s of this.plan.servers) {
      const dir = this.serverDir(s.name);
      const bundle = await this.fleet.bundle(s.name, { baseDir: dir });
      writeBundleFiles(dir, this.serverFiles(bundle.files));
      writeFileAtomic(join(dir, 'VERSION'), `${bundle.digest}\n`);
      await run(['nft', '-f', join(dir, 'nftables.nft')], { netns: s.ns });
      await run(['sysctl', '-q', '-p', join(dir, 'sysctl.conf')], { netns: s.ns });
      await this.startFrr(s.ns, readFileSync(join(dir, 'frr.conf'), 'utf8'));
      await this.startOpenvpnServer(s.name);
    }
    log(`servers: ${this.plan.servers.length} running OpenVPN, FRR and nftables`);
  }

  /** A server's files as the lab installs them: ours, or rewritten to the seed's design. */
  private serverFiles(files: RenderedFile[]): RenderedFile[] {
    return this.state.seed ? seedBundle(files) : files;
  }

  async startOpenvpnServer(name: string): Promise<void> {
    const s = this.plan.servers.find((x) => x.name === name);
    if (!s) throw new NotFound(`no server named ${name} in the lab`);
    const dir = this.serverDir(name);
    const pidFile = join(dir, 'run', 'openvpn.pid');
    rmSync(pidFile, { force: true });
    const argv = [
      'openvpn',
      '--config',
      join(dir, 'server.conf'),
      '--daemon',
      `${s.ns}-openvpn`,
      '--writepid',
      pidFile,
      '--log-append',
      join(dir, 'run', 'openvpn.log'),
    ];
    // The agent restarts OpenVPN fully with it (no systemd here): agent --openvpn-start-argv-file.
    writeFileAtomic(openvpnStartArgvPath(dir), `${JSON.stringify(argv)}\n`);
    await run(argv, { netns: s.ns });
    const pid = await waitFor(`OpenVPN on ${name}`, () => readPidFile(pidFile), 10_000, 20);
    this.recordProcess({ id: `${s.ns}/openvpn`, kind: 'openvpn-server', ns: s.ns, pid, pidFile });
  }

  /**
   * Re-renders every server's bundle into the lab and applies what can change under a running
   * OpenVPN: ccd files, CRL (re-read on change) and the nftables ruleset. Until the agent
   * exists, this is how user changes reach the lab's servers.
   */
  async sync(): Promise<{ server: string; changed: boolean }[]> {
    const out: { server: string; changed: boolean }[] = [];
    for (const s of this.plan.servers) {
      const dir = this.serverDir(s.name);
      const bundle = await this.fleet.bundle(s.name, { baseDir: dir });
      const version = join(dir, 'VERSION');
      const before = existsSync(version) ? readFileSync(version, 'utf8').trim() : '';
      if (before === bundle.digest) {
        out.push({ server: s.name, changed: false });
        continue;
      }
      writeBundleFiles(dir, this.serverFiles(bundle.files));
      writeFileAtomic(version, `${bundle.digest}\n`);
      await run(['nft', '-f', join(dir, 'nftables.nft')], { netns: s.ns });
      out.push({ server: s.name, changed: true });
    }
    return out;
  }

  // ---------------------------------------------------------------- control plane

  get controllerSocket(): string {
    return controllerSocket(this.state, 1);
  }

  /** Every controller as a `--controller` value (`unix:…`), first preferred. */
  get controllerEndpoints(): string[] {
    return controllerEndpoints(this.state);
  }

  private cliScript(): string[] {
    return nodeEntry(new URL('../cli/main.js', import.meta.url));
  }

  private async startControlPlane(log: (l: string) => void): Promise<void> {
    const count = labControllerCount(this.state);
    // One after the other: the first creates the admin token file the second reads.
    for (let n = 1; n <= count; n++) await this.startController(n);
    for (const s of this.plan.servers) await this.startAgent(s.name);
    for (let n = 1; n <= count; n++)
      log(
        `control plane: controller ${n} on ${controllerSocket(this.state, n)} and ${n === 1 && this.state.sso ? `https://127.0.0.1:${LAB_CONTROLLER_PORT}, ${this.state.sso.publicUrl}` : `http://127.0.0.1:${LAB_CONTROLLER_PORT}`} in ${controllerNamespace(this.state, n)}`,
      );
    log(`control plane: ${this.plan.servers.length} agents`);
  }

  /** Controller `n` (1-based): the first in the core's namespace, the second in its own. */
  async startController(n = 1): Promise<void> {
    const socket = controllerSocket(this.state, n);
    const ns = controllerNamespace(this.state, n);
    const logName = n === 1 ? 'controller.log' : `controller${n}.log`;
    rmSync(socket, { force: true });
    const env = labStoreEnv(this.state, 'controller', {});
    const p = spawnDetached(
      [
        ...this.cliScript(),
        '--dir',
        this.state.fleetDir,
        'controller',
        '--listen',
        `unix:${socket}`,
        '--listen',
        `127.0.0.1:${LAB_CONTROLLER_PORT}`,
        ...(n === 1 ? controllerSsoArgs(this.state) : []),
        '--base',
        join(this.state.dir, 'servers', '{server}'),
      ],
      {
        netns: ns,
        logFile: join(this.state.dir, logName),
        // The URL file's name only: the connection string stays out of argv and the state.
        ...(env.OVPN_FLEET_DATABASE_URL_FILE
          ? {
              env: {
                OVPN_FLEET_DATABASE_URL: '',
                OVPN_FLEET_DATABASE_URL_FILE: env.OVPN_FLEET_DATABASE_URL_FILE,
              },
            }
          : {}),
      },
    );
    this.recordProcess({ id: controllerId(n), kind: 'controller', ns, pid: p.pid });
    await waitFor(
      `controller ${n} (see ${logName} in the lab directory)`,
      async () => {
        try {
          const r = await new ControllerClient({ kind: 'unix', path: socket }, '', 1000).raw(
            'GET',
            '/v1/health',
          );
          return r.status === 200 ? true : undefined;
        } catch {
          return undefined;
        }
      },
      20_000,
      100,
    );
  }

  /** The bearer token Prometheus presents to the lab's agents (made once per lab). */
  get metricsTokenFile(): string {
    return join(this.state.dir, 'metrics.token');
  }

  async startAgent(server: string): Promise<void> {
    const s = this.plan.servers.find((x) => x.name === server);
    if (!s) throw new NotFound(`no server named ${server} in the lab`);
    const dir = this.serverDir(server);
    const tokenFile = join(dir, 'agent.token');
    writeFileAtomic(tokenFile, `${await this.fleet.agentToken(server)}\n`, 0o600);
    if (!existsSync(this.metricsTokenFile))
      writeFileAtomic(this.metricsTokenFile, `${randomBytes(24).toString('hex')}\n`, 0o600);
    // Every other server lists the second controller first: with two controllers, half the
    // agents long-poll and report to each, so reports really go to different controllers.
    const index = this.plan.servers.indexOf(s);
    const endpoints = this.controllerEndpoints;
    const ordered = index % 2 === 1 ? [...endpoints.slice(1), endpoints[0]] : endpoints;
    const p = spawnDetached(
      [
        ...this.cliScript(),
        'agent',
        '--server',
        server,
        ...ordered.flatMap((e) => ['--controller', e]),
        '--token-file',
        tokenFile,
        '--bundle-dir',
        dir,
        '--frr-instance',
        s.ns,
        '--metrics-listen',
        `${s.backboneAddress}:${LAB_AGENT_METRICS_PORT}`,
        '--metrics-token-file',
        this.metricsTokenFile,
        '--openvpn-start-argv-file',
        openvpnStartArgvPath(dir),
      ],
      { netns: s.ns, logFile: join(dir, 'run', 'agent.log') },
    );
    this.recordProcess({ id: `${s.ns}/agent`, kind: 'agent', ns: s.ns, pid: p.pid });
  }

  /**
   * Stops one component (failure drills): openvpn, frr or agent of a server, a controller, or
   * PostgreSQL (SIGTERM: its fast shutdown; SIGKILL: its immediate one, a crash).
   */
  async stopComponent(
    component: string,
    server: string | undefined,
    signal: NodeJS.Signals,
  ): Promise<void> {
    const ids = this.componentIds(component, server);
    const procs = this.state.processes.filter((p) => ids.includes(p.id));
    if (!procs.length)
      throw new NotFound(`${component}${server ? ` of ${server}` : ''} is not running`);
    await Promise.all(
      procs.map((p) =>
        p.kind === 'postgres'
          ? stopLabPostgres(p, signal === 'SIGKILL')
          : p.kind === 'idp' && signal === 'SIGTERM'
            ? stopLabIdp(p)
            : stopProcess(followPidFile(p), 8000, signal),
      ),
    );
    this.state.processes = this.state.processes.filter((p) => !procs.includes(p));
    this.save();
  }

  async startComponent(component: string, server: string | undefined): Promise<void> {
    const controller = this.controllerNumber(component);
    if (controller !== undefined) return this.startController(controller);
    if (component === 'postgres') return this.startPostgres();
    if (component === IDP_COMPONENT) return startLabIdp(this);
    const s = this.plan.servers.find((x) => x.name === server);
    if (!s)
      throw new InputError(
        'server',
        `${component} needs a server name (one of ${this.plan.servers.map((x) => x.name).join(', ')})`,
      );
    if (component === 'openvpn') return this.startOpenvpnServer(s.name);
    if (component === 'agent') return this.startAgent(s.name);
    if (component === 'frr') {
      const conf = readFileSync(`/etc/frr/${s.ns}/frr.conf`, 'utf8');
      this.state.frrInstances = this.state.frrInstances.filter((n) => n !== s.ns);
      return this.startFrr(s.ns, conf);
    }
    throw new InputError('component', `"${component}" is not one of ${this.componentNames()}`);
  }

  private async startPostgres(): Promise<void> {
    if (!this.state.postgres)
      throw new InputError('component', 'this lab runs no PostgreSQL (lab up --store postgres)');
    return startLabPostgres(this);
  }

  /** `controller` is the first, `controller2` the second (in a lab with two). */
  private controllerNumber(component: string): number | undefined {
    const m = /^controller([0-9]*)$/.exec(component);
    if (!m) return undefined;
    const n = m[1] ? Number(m[1]) : 1;
    const count = labControllerCount(this.state);
    if (n < 1 || n > count)
      throw new InputError(
        'component',
        count ? `this lab runs ${count} controller${count > 1 ? 's' : ''}` : 'no control plane',
      );
    return n;
  }

  private componentNames(): string {
    const names = ['openvpn', 'frr', 'agent', 'controller'];
    if (labControllerCount(this.state) > 1) names.push('controller2');
    if (this.state.postgres) names.push('postgres');
    if (this.state.sso) names.push(IDP_COMPONENT);
    return names.join(', ');
  }

  private componentIds(component: string, server: string | undefined): string[] {
    const controller = this.controllerNumber(component);
    if (controller !== undefined) return [controllerId(controller)];
    if (component === 'postgres') return ['postgres'];
    if (component === IDP_COMPONENT && this.state.sso) return [IDP_COMPONENT];
    const s = this.plan.servers.find((x) => x.name === server);
    if (!s)
      throw new InputError(
        'server',
        `${component} needs a server name (one of ${this.plan.servers.map((x) => x.name).join(', ')})`,
      );
    if (component === 'openvpn') return [`${s.ns}/openvpn`];
    if (component === 'agent') return [`${s.ns}/agent`];
    if (component === 'frr') return routingDaemons(this.fleet.spec).map((d) => `${s.ns}/${d}`);
    throw new InputError('component', `"${component}" is not one of ${this.componentNames()}`);
  }

  // ---------------------------------------------------------------- edges: LBs, service hosts

  private nodeScript(name: string): string[] {
    return nodeEntry(new URL(`./${name}.js`, import.meta.url));
  }

  servicePorts(): number[] {
    const ports = new Set<number>([80]);
    for (const r of this.fleet.spec.policy)
      for (const p of r.ports ?? []) ports.add(typeof p === 'number' ? p : Number(p.split('-')[0]));
    return [...ports].sort((a, b) => a - b);
  }

  private async startEdges(log: (l: string) => void): Promise<void> {
    const plan = this.plan;
    for (const lb of plan.loadBalancers) {
      const all = lb.members.map((m) => m.address);
      await run(['nft', '-f', '-'], {
        netns: lb.ns,
        input: renderLbRuleset(lb, all, this.state.port, all),
      });
    }
    if (plan.loadBalancers.length) {
      const logFile = join(this.state.dir, 'lb-health.log');
      const p = spawnDetached([...this.nodeScript('lb-health'), this.state.dir], {
        logFile,
      });
      this.recordProcess({ id: 'lb-health', kind: 'lb-health', ns: '', pid: p.pid });
    }
    for (const h of plan.hosts) {
      const logFile = join(this.state.dir, `host-${h.network}.log`);
      const p = spawnDetached(
        [...this.nodeScript('service-host'), h.network, ...this.servicePorts().map(String)],
        { netns: h.ns, logFile },
      );
      this.recordProcess({ id: `${h.ns}/service`, kind: 'service', ns: h.ns, pid: p.pid });
    }
    log(
      `edges: ${plan.loadBalancers.length} load balancers, ${plan.hosts.length} service hosts (tcp ${this.servicePorts().join(', ')})`,
    );
  }

  /** Ready when every server has OSPF/RIP routes to every service network, v4 and v6. */
  private async waitConverged(log: (l: string) => void): Promise<void> {
    const started = Date.now();
    const targets = this.plan.hosts.flatMap((h) =>
      [h.ipv4, h.ipv6].filter((a): a is string => !!a),
    );
    for (const s of this.plan.servers) {
      await waitFor(
        `routes to the service networks on ${s.name}`,
        async () => {
          for (const t of targets) {
            const r = await run(['ip', 'route', 'get', t], { netns: s.ns, allowFailure: true });
            if (r.code !== 0 || !r.stdout.includes(s.backboneIface)) return undefined;
          }
          return true;
        },
        60_000,
        200,
      );
    }
    log(`routing converged in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  // ---------------------------------------------------------------- clients

  clientFor(user: string): LabClient | undefined {
    return this.state.clients.find((c) => c.user === user);
  }

  private clientProcess(user: string): LabProcess | undefined {
    const c = this.clientFor(user);
    return c && this.state.processes.find((p) => p.id === `${c.ns}/openvpn`);
  }

  /**
   * A user imported without a certificate gets one with the first profile, and the servers
   * admit a certificate only once their ccd file pins its serial (the client-connect hook). So
   * the lab issues missing certificates first and waits until every server holds the pins: the
   * agents apply the new bundle, or without a control plane `sync` writes it. A real user who
   * downloads a first profile waits the same ~0.2 s for the bundle.
   */
  private async ensurePinned(users: string[]): Promise<void> {
    const enabled: string[] = [];
    for (const u of users) if ((await this.fleet.getUser(u)).status === 'enabled') enabled.push(u);
    if (this.state.seed || !(await this.fleet.issueMissingCerts(enabled))) return;
    if (!this.state.controlPlane) {
      await this.sync();
      return;
    }
    for (const user of enabled) {
      const serial = (await this.fleet.getUser(user)).certSerial;
      if (!serial) continue;
      const pin = `# cert-serial ${openvpnSerialHex(serial)}`;
      for (const s of this.plan.servers) {
        const file = join(this.serverDir(s.name), 'ccd', user);
        await waitFor(
          `${s.name} to pin ${user}'s certificate`,
          () => (existsSync(file) && readFileSync(file, 'utf8').includes(pin)) || undefined,
          30_000,
          50,
        );
      }
    }
  }

  /** Starts many clients (full profiles), `parallel` at a time, and waits for every tunnel. */
  async connectMany(users: string[], parallel = 16): Promise<void> {
    await this.ensurePinned(users);
    const queue = [...users];
    const worker = async () => {
      for (let u = queue.shift(); u !== undefined; u = queue.shift())
        await this.connect(u, { wait: false });
    };
    await Promise.all(Array.from({ length: Math.min(parallel, users.length) }, worker));
    await Promise.all(users.map((u) => this.waitTunnel(u, 120_000)));
  }

  /** Stops the user's client if it runs and gives its namespace and address slot back. */
  async forget(user: string): Promise<void> {
    const client = this.clientFor(user);
    if (!client) return;
    const p = this.clientProcess(user);
    if (p && isAlive(p)) await this.disconnect(user, 'SIGKILL');
    // The kernel tears a deleted namespace down later (after its last process is gone): its
    // veth peer on the public bridge would linger under the name the next client of this slot
    // needs. Deleting that end now removes the pair at once.
    const { link } = clientNode(this.state.prefix, user, client.index);
    await run(['ip', '-n', link.a.ns, 'link', 'del', link.a.name], { allowFailure: true });
    await run(['ip', 'netns', 'del', client.ns], { allowFailure: true });
    this.state.clients = this.state.clients.filter((c) => c !== client);
    this.state.processes = this.state.processes.filter((q) => q.id !== `${client.ns}/openvpn`);
    this.save();
  }

  /**
   * `onStart` is called right before the OpenVPN client process is started (after the client's
   * namespace and profile are ready): the benchmark's "client start".
   */
  /** Starts the user's real OpenVPN client with the profile `ovpn-fleet profile` makes. */
  async connect(
    user: string,
    opts: { server?: string; wait?: boolean; onStart?: () => void } = {},
  ): Promise<LabClient> {
    await this.ensurePinned([user]);
    const profile = await this.fleet.profile(user, { anyStatus: true });
    let client = this.clientFor(user);
    if (!client) {
      const used = new Set(this.state.clients.map((c) => c.index));
      let index = 0;
      while (used.has(index)) index++;
      if (index >= MAX_CLIENTS) throw new Conflict(`the lab holds at most ${MAX_CLIENTS} clients`);
      const { node, link, address } = clientNode(this.state.prefix, user, index);
      const dir = join(this.state.dir, 'clients', user);
      mkdirSync(dir, { recursive: true });
      client = { user, index, ns: node.ns, address, dir };
      this.state.clients.push(client);
      this.save();
      await this.addNamespace(node.ns, false);
      await this.addLink(link.a, link.b);
      await this.addRoutes(node.ns, node.routes);
    }
    const existing = this.clientProcess(user);
    if (existing && isAlive(existing)) await this.disconnect(user);
    let text = this.state.seed ? seedProfile(profile) : profile;
    if (opts.server) {
      // "vpn11" or "vpn11,vpn21": these servers, dialled directly, in this order.
      const remotes = opts.server.split(',').map((name) => {
        const s = this.plan.servers.find((x) => x.name === name.trim());
        if (!s) throw new InputError('--server', `no server named ${name.trim()}`);
        return `remote ${s.address} ${this.state.port}\n`;
      });
      text = text
        .replace(/^remote .*\n/gm, '')
        .replace(/^client\n/m, `client\n${remotes.join('')}`);
    }
    writeFileAtomic(join(client.dir, 'profile.ovpn'), text, 0o600);
    const pidFile = join(client.dir, 'openvpn.pid');
    rmSync(pidFile, { force: true });
    opts.onStart?.();
    await run(
      [
        'openvpn',
        '--config',
        join(client.dir, 'profile.ovpn'),
        '--daemon',
        `${client.ns}-openvpn`,
        '--writepid',
        pidFile,
        '--log',
        join(client.dir, 'openvpn.log'),
        '--dev',
        'tun0',
      ],
      { netns: client.ns },
    );
    const pid = await waitFor(`OpenVPN client of ${user}`, () => readPidFile(pidFile), 10_000, 20);
    this.recordProcess({
      id: `${client.ns}/openvpn`,
      kind: 'openvpn-client',
      ns: client.ns,
      pid,
      pidFile,
    });
    if (opts.wait !== false) await this.waitTunnel(user, 30_000);
    return client;
  }

  /** The user's tunnel addresses once the client has them. */
  async tunnelAddresses(user: string): Promise<{ ipv4?: string; ipv6?: string }> {
    const c = this.clientFor(user);
    if (!c) return {};
    const r = await run(['ip', '-j', 'addr', 'show', 'dev', 'tun0'], {
      netns: c.ns,
      allowFailure: true,
    });
    if (r.code !== 0 || !r.stdout.trim()) return {};
    const [dev] = JSON.parse(r.stdout) as {
      addr_info: { family: string; local: string; scope: string }[];
    }[];
    const v4 = dev?.addr_info.find((a) => a.family === 'inet')?.local;
    const v6 = dev?.addr_info.find((a) => a.family === 'inet6' && a.scope === 'global')?.local;
    return { ...(v4 ? { ipv4: v4 } : {}), ...(v6 ? { ipv6: v6 } : {}) };
  }

  async waitTunnel(user: string, timeoutMs: number): Promise<{ ipv4?: string; ipv6?: string }> {
    const c = this.clientFor(user);
    return waitFor(
      `${user}'s tunnel (see "ovpn-fleet lab logs ${user}")`,
      async () => {
        const p = this.clientProcess(user);
        const log =
          c && existsSync(join(c.dir, 'openvpn.log'))
            ? readFileSync(join(c.dir, 'openvpn.log'), 'utf8')
            : '';
        // A revoked certificate gets no AUTH_FAILED: the server aborts the TLS handshake and the
        // client only sees it time out after hand-window, then would retry forever.
        const tlsFailed = /TLS handshake failed/.test(log);
        // A closed port (OpenVPN stopped, or a drained server's reject rule) answers with ICMP
        // port unreachable, which the client logs as ECONNREFUSED and then dials the same
        // remote again, forever. With one remote in the profile that is a final answer.
        const refused = /ECONNREFUSED/.test(log) && c !== undefined && this.remoteCount(c) === 1;
        if (tlsFailed || refused || !p || !isAlive(p)) {
          if ((tlsFailed || refused) && p) await stopProcess(p, 2000);
          const reason = refused
            ? 'the server refused the connection (its OpenVPN port is closed: stopped or draining)'
            : tlsFailed
              ? this.serverLogsMention(`certificate revoked: CN=${user}`)
                ? 'the server refused its certificate (revoked)'
                : 'the TLS handshake failed'
              : /AUTH_FAILED/.test(log)
                ? 'the server refused it (AUTH_FAILED)'
                : 'the client exited';
          throw new Conflict(
            `${user} could not connect: ${reason} (see "ovpn-fleet lab logs ${user}")`,
          );
        }
        const a = await this.tunnelAddresses(user);
        return a.ipv4 && a.ipv6 ? a : undefined;
      },
      timeoutMs,
      100,
    );
  }

  /** How many remotes the client's profile dials. */
  private remoteCount(c: LabClient): number {
    const f = join(c.dir, 'profile.ovpn');
    return existsSync(f) ? (readFileSync(f, 'utf8').match(/^remote /gm) ?? []).length : 0;
  }

  private serverLogsMention(text: string): boolean {
    return this.plan.servers.some((s) => {
      const f = join(this.serverDir(s.name), 'run', 'openvpn.log');
      return existsSync(f) && readFileSync(f, 'utf8').includes(text);
    });
  }

  /** Graceful: SIGTERM, the client sends its exit notification to the server. */
  async disconnect(user: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.clientProcess(user);
    if (!p) throw new NotFound(`${user} is not connected in the lab`);
    await stopProcess(p, 5000, signal);
    this.state.processes = this.state.processes.filter((q) => q !== p);
    this.save();
  }

  // ---------------------------------------------------------------- status

  /**
   * Which server each connected user is on (from the servers' status files). A user can be
   * listed by two servers for a few seconds: a server that sent a client away (drain, a newer
   * session elsewhere) keeps the old session until OpenVPN's scheduled exit (5 s). The newest
   * session wins ("connected since", one-second resolution); within the same second, the one
   * the core routes to.
   */
  sessions(): Map<string, LabSession[]> {
    const out = new Map<string, LabSession[]>();
    for (const s of this.plan.servers) {
      // A crashed server leaves its last status file behind: only live servers count.
      const p = this.state.processes.find((q) => q.id === `${s.ns}/openvpn`);
      if (!p || !isAlive(followPidFile(p))) continue;
      let text = '';
      try {
        text = readFileSync(join(this.serverDir(s.name), 'run', 'status.log'), 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n')) {
        const f = line.split('\t');
        if (f[0] !== 'CLIENT_LIST') continue;
        const row = { server: s.name, real: f[2], ipv4: f[3], ipv6: f[4], since: Number(f[8]) };
        const seen = out.get(f[1]) ?? [];
        const newest = seen[0]?.since ?? -Infinity;
        if (row.since > newest) out.set(f[1], [row]);
        else if (row.since === newest) seen.push(row);
      }
    }
    return out;
  }

  /** Servers through which the core router reaches a user's address (ECMP gives several). */
  async coreRouteVia(address: string): Promise<string[]> {
    const fam = address.includes(':') ? '-6' : '-4';
    const plen = address.includes(':') ? 128 : 32;
    const hops = async (ns: string) => {
      const r = await run(['ip', fam, '-j', 'route', 'show', `${address}/${plen}`], {
        netns: ns,
        allowFailure: true,
      });
      if (r.code !== 0 || !r.stdout.trim()) return [] as string[];
      const routes = JSON.parse(r.stdout) as {
        dst: string;
        dev?: string;
        nexthops?: { dev: string }[];
      }[];
      return routes.flatMap((rt) =>
        rt.nexthops ? rt.nexthops.map((n) => n.dev) : rt.dev ? [rt.dev] : [],
      );
    };
    const servers: string[] = [];
    for (const dev of await hops(this.plan.core)) {
      const link = this.plan.links.find((l) => l.a.ns === this.plan.core && l.a.name === dev);
      if (!link) continue;
      const routerNs = link.b.ns;
      for (const dev2 of await hops(routerNs)) {
        const l2 = this.plan.links.find((l) => l.a.ns === routerNs && l.a.name === dev2);
        const server = l2 && this.plan.servers.find((s) => s.ns === l2.b.ns);
        if (server) servers.push(server.name);
      }
    }
    return [...new Set(servers)].sort();
  }

  /** The control plane's processes (controllers, PostgreSQL): where each runs, and if it does. */
  controlPlaneStatus(): { component: string; ns: string; running: boolean; where: string }[] {
    const rows: { component: string; ns: string; running: boolean; where: string }[] = [];
    const alive = (id: string) => {
      const p = this.state.processes.find((q) => q.id === id);
      return p !== undefined && isAlive(p);
    };
    for (let n = 1; n <= labControllerCount(this.state); n++)
      rows.push({
        component: controllerId(n),
        ns: controllerNamespace(this.state, n),
        running: alive(controllerId(n)),
        where: `unix:${controllerSocket(this.state, n)}`,
      });
    const pgs = this.state.postgres;
    if (pgs)
      rows.push({
        component: 'postgres',
        ns: pgs.ns,
        running: alive('postgres'),
        where: `${pgs.address}:${pgs.port}`,
      });
    const idp = idpStatus(this.state);
    if (idp) rows.push(idp);
    return rows;
  }

  async status(): Promise<LabUserStatus[]> {
    const sessions = this.sessions();
    const rows: LabUserStatus[] = [];
    for (const c of this.state.clients) {
      const p = this.clientProcess(c.user);
      const running = p !== undefined && isAlive(p);
      const tun = running ? await this.tunnelAddresses(c.user) : {};
      const candidates = sessions.get(c.user) ?? [];
      const ipv4 = tun.ipv4 ?? candidates[0]?.ipv4;
      const ipv6 = tun.ipv6 ?? candidates[0]?.ipv6;
      const via4 = ipv4 ? await this.coreRouteVia(ipv4) : [];
      const via6 = ipv6 ? await this.coreRouteVia(ipv6) : [];
      const session = candidates.find((x) => via4.includes(x.server)) ?? candidates[0];
      rows.push({
        user: c.user,
        client: running ? 'running' : 'stopped',
        server: session?.server,
        ipv4,
        ipv6,
        coreVia4: via4,
        coreVia6: via6,
        coreKnows: via4.length > 0 && via6.length > 0,
      });
    }
    return rows;
  }

  // ---------------------------------------------------------------- exec, logs

  /** Resolves a host name given on the command line to one of the lab's namespaces. */
  resolveHost(host: string): string {
    const p = this.state.prefix;
    const known = new Set(this.state.namespaces);
    const candidates = [
      `${p}-${host}`,
      `${p}-s-${host}`,
      `${p}-h-${host}`,
      `${p}-c-${host}`,
      `${p}-r-${host}`,
      `${p}-lb-${host}`,
    ];
    const ns = candidates.find((c) => known.has(c));
    if (!ns)
      throw new NotFound(
        `no lab host "${host}": use core, inet, a server, site (router), lb-SITE, network (service host) or user name`,
      );
    return ns;
  }

  logFiles(host: string): string[] {
    const ns = this.resolveHost(host);
    const files: string[] = [];
    const server = this.plan.servers.find((s) => s.ns === ns);
    if (server) files.push(join(this.serverDir(server.name), 'run', 'openvpn.log'));
    const client = this.state.clients.find((c) => c.ns === ns);
    if (client) files.push(join(client.dir, 'openvpn.log'));
    const host_ = this.plan.hosts.find((h) => h.ns === ns);
    if (host_) files.push(join(this.state.dir, `host-${host_.network}.log`));
    if (this.state.frrInstances.includes(ns)) files.push(`/var/run/frr/${ns}/frr.log`);
    if (this.state.birdInstances?.includes(ns)) files.push(birdPaths(this.state.dir, ns).log);
    if (ns.startsWith(`${this.state.prefix}-lb-`))
      files.push(join(this.state.dir, 'lb-health.log'));
    if (this.state.sso?.ns === ns) files.push(join(this.state.sso.dir, 'idp.log'));
    return files.filter((f) => existsSync(f));
  }

  // ---------------------------------------------------------------- down

  /** Removes everything the lab made, from its state file; safe after a crash and to repeat. */
  static async down(
    fleetDir: string,
    prefix = DEFAULT_PREFIX,
    log: (l: string) => void = () => undefined,
  ): Promise<{ namespaces: number; processes: number }> {
    checkPrefix(prefix);
    const dir = labDir(fleetDir, prefix);
    const state = loadState(dir);
    let processes = 0;
    if (state) {
      // Clients first (their exit notification reaches live servers), then one kind at a time,
      // each kind in parallel: a graceful OpenVPN server stop takes a few seconds.
      for (const kind of [
        'openvpn-client',
        'lb-health',
        'service',
        'agent',
        'controller',
        'idp',
        'postgres',
        'openvpn-server',
        'frr',
        'bird',
      ] as const) {
        await Promise.all(
          state.processes
            .filter((p) => p.kind === kind)
            .map(followPidFile)
            .map(async (p) => {
              if (isAlive(p)) processes++;
              if (p.kind === 'postgres') await stopLabPostgres(p);
              else await stopProcess(p, 5000);
            }),
        );
      }
      // A postmaster a crashed `lab up` did not record yet, and the cluster's directory.
      processes += await removeLabPostgres(state);
      // FRR daemons started by a crashed `lab up` may not be in the state yet: their pid files are.
      for (const inst of state.frrInstances) {
        for (const daemon of ['zebra', 'ospfd', 'ospf6d', 'ripd', 'ripngd', 'bgpd', 'staticd']) {
          const pid = readPidFile(`/var/run/frr/${inst}/${daemon}.pid`);
          const t = pid ? track(pid) : undefined;
          if (t && isAlive(t) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(inst)) {
            processes++;
            await stopProcess(t, 5000);
          }
        }
        rmSync(`/etc/frr/${inst}`, { recursive: true, force: true });
        rmSync(`/var/run/frr/${inst}`, { recursive: true, force: true });
      }
      // Likewise a BIRD whose `lab up` crashed before recording it: its pid file names it.
      for (const inst of state.birdInstances ?? []) {
        const paths = birdPaths(dir, inst);
        const pid = readPidFile(paths.pidFile);
        const t = pid ? track(pid) : undefined;
        if (t && isAlive(t) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(paths.conf)) {
          processes++;
          await stopProcess(t, 5000);
        }
        rmSync(paths.runDir, { recursive: true, force: true });
      }
      // The shared parent goes once no lab uses it (rmdir refuses a directory that is not empty).
      if (state.birdInstances?.length) {
        try {
          rmdirSync(BIRD_RUN_ROOT);
        } catch {
          // another lab's BIRD still runs, or it is gone already
        }
      }
    }
    // Namespaces by our prefix: those in the state, and any a crash left before recording them.
    const names = new Set([
      ...(state?.namespaces ?? []),
      ...(await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`)),
    ]);
    // Without a state (its directory went with an interrupted run's temporary fleet) the
    // processes are found by their namespaces: every process inside a namespace of the prefix was
    // started there by a lab. Deleting a namespace does not stop them (`ip netns del` only
    // unmounts its name; the processes keep it alive), and an FRR instance's directories, named
    // after its namespace, would meet the next lab of the same prefix.
    if (!state) processes += await stopStrays([...names]);
    let namespaces = 0;
    for (const ns of names) {
      const r = await run(['ip', 'netns', 'del', ns], { allowFailure: true });
      if (r.code === 0) namespaces++;
    }
    // ospfd/ospf6d of any instance write these into the shared run directory when they exit;
    // remove them only if they were not there before this lab started.
    for (const f of SHARED_FRR_FILES)
      if (state && !state.sharedFrrFiles?.includes(f)) rmSync(f, { force: true });
    rmSync(dir, { recursive: true, force: true });
    log(`lab "${prefix}" removed: ${namespaces} namespaces, ${processes} processes stopped`);
    return { namespaces, processes };
  }
}

/** Stops the processes inside these namespaces and removes their FRR instances' directories. */
async function stopStrays(namespaces: readonly string[]): Promise<number> {
  let stopped = 0;
  for (const ns of namespaces) {
    const r = await run(['ip', 'netns', 'pids', ns], { allowFailure: true });
    const strays = r.stdout
      .split('\n')
      .filter((l) => /^[0-9]+$/.test(l.trim()))
      .map((l) => track(Number(l.trim())))
      .filter((t) => t !== undefined);
    await Promise.all(
      strays.map(async (t) => {
        if (isAlive(t)) stopped++;
        await stopProcess(t, 5000);
      }),
    );
    rmSync(`/etc/frr/${ns}`, { recursive: true, force: true });
    rmSync(`/var/run/frr/${ns}`, { recursive: true, force: true });
  }
  return stopped;
}

/** One CLIENT_LIST row of a server's status file. */
export interface LabSession {
  server: string;
  ipv4: string;
  ipv6: string;
  real: string;
  /** "Connected Since (time_t)": seconds. */
  since: number;
}

export interface LabUserStatus {
  user: string;
  client: 'running' | 'stopped';
  server?: string;
  ipv4?: string;
  ipv6?: string;
  coreVia4: string[];
  coreVia6: string[];
  coreKnows: boolean;
}

/**
 * argv that runs one of our Node entry points: the built .js, or — when the lab itself runs from
 * source under tsx (the lab benchmark) — the .ts next to it, through tsx's loader.
 */
function nodeEntry(url: URL): string[] {
  const js = fileURLToPath(url);
  if (existsSync(js)) return [process.execPath, js];
  // Under vitest (an end-to-end test driving a Lab in its own process) import.meta.resolve does
  // not exist: the test has built dist/, so run the built entry point.
  const built = js.replace(/\/src\//, '/dist/');
  if (typeof import.meta.resolve !== 'function' && existsSync(built))
    return [process.execPath, built];
  return [process.execPath, '--import', import.meta.resolve('tsx'), js.replace(/\.js$/, '.ts')];
}

export async function listNamespaces(): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list'], { allowFailure: true });
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
}

/** This machine's FRR release ("8.4.4"), from `zebra --version`: what the lab's servers run. */
async function localFrrVersion(): Promise<string> {
  const r = await run([join(FRR_BIN, 'zebra'), '--version'], { allowFailure: true });
  const m = /version (\d+\.\d+(?:\.\d+)?)/.exec(r.stdout);
  if (!m)
    throw new InputError('lab', `cannot tell the FRR version from "${FRR_BIN}/zebra --version"`);
  return m[1];
}

function frrIds(): { uid: number; gid: number } {
  const passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('frr:'));
  if (!passwd) throw new InputError('lab', 'no "frr" user: install the frr package');
  const f = passwd.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}
