/**
 * The systemd units of a deployment, rendered from one typed description: pure, no fs. `server
 * setup` writes them; deploy/systemd/ holds the same text for the defaults (pinned by
 * units.test.ts), for people who install units with their own tools.
 *
 * Every unit is hardened the same way (see HARDENING) and then opens exactly what its process
 * needs: the paths it writes (ReadWritePaths=), the capabilities (CapabilityBoundingSet=), the
 * devices and the socket families. All three run as root: OpenVPN because its hooks run `ip
 * route` (src/render/openvpn.ts says why), the agent because it writes OpenVPN's bundle, signals
 * OpenVPN and is the client of its root-only management socket, the controller because the CLI
 * run as root on that host opens the same store (a controller running as another user could
 * then no longer write SQLite's -wal/-shm files root created). Root here is uid 0 without
 * capabilities beyond the bounding set: without CAP_DAC_OVERRIDE it obeys file modes like any
 * user, and ProtectSystem=strict makes everything but the listed paths read-only.
 */
import { DEFAULT_RENDER_OPTIONS } from '../render/types.js';

/** Where things live on a deployed host. */
export interface DeployPaths {
  /** The ovpn-fleet executable (npm i -g puts it here on Debian's node). */
  bin: string;
  /** The bundle folder on a VPN server (controller --base, agent --bundle-dir). */
  bundleDir: string;
  /** The agent's own settings: agent.env, token, controller-ca.pem. Read-only to the agent. */
  agentConfigDir: string;
  /** The controller's settings file (its options, in one variable). */
  controllerEnv: string;
}

export const DEFAULT_DEPLOY_PATHS: DeployPaths = {
  bin: '/usr/local/bin/ovpn-fleet',
  bundleDir: DEFAULT_RENDER_OPTIONS.baseDir,
  agentConfigDir: '/etc/ovpn-fleet-agent',
  controllerEnv: '/etc/default/ovpn-fleet-controller',
};

export const UNIT = {
  agent: 'ovpn-fleet-agent.service',
  openvpn: 'ovpn-fleet-openvpn.service',
  openvpnPath: 'ovpn-fleet-openvpn.path',
  controller: 'ovpn-fleet-controller.service',
  frr: 'frr.service',
} as const;

/** The variable the agent's unit passes as its options (word-split by systemd). */
export const AGENT_OPTIONS_VAR = 'OVPN_FLEET_AGENT_OPTIONS';
/** Options the operator adds in local.env (setup leaves that file alone). */
export const AGENT_EXTRA_OPTIONS_VAR = 'OVPN_FLEET_AGENT_EXTRA_OPTIONS';
export const CONTROLLER_OPTIONS_VAR = 'OVPN_FLEET_CONTROLLER_OPTIONS';

export const agentEnvPath = (p: DeployPaths) => `${p.agentConfigDir}/agent.env`;
export const agentLocalEnvPath = (p: DeployPaths) => `${p.agentConfigDir}/local.env`;
export const agentTokenPath = (p: DeployPaths) => `${p.agentConfigDir}/token`;
export const agentCaPath = (p: DeployPaths) => `${p.agentConfigDir}/controller-ca.pem`;
/**
 * The controller's fleet directory (fleet.yaml, the store, the PKI): systemd's StateDirectory,
 * created by systemd with the unit's own mode; `ovpn-fleet --dir` it on that host.
 */
export const CONTROLLER_DIR = '/var/lib/ovpn-fleet';
export const bundleRunDir = (p: DeployPaths) => `${p.bundleDir}/run`;

/** A line of a unit: a key and its value, or a comment (`#` is added). */
type Line = readonly [key: string, value: string] | { readonly comment: string };
type Section = readonly [name: 'Unit' | 'Service' | 'Path' | 'Install', lines: readonly Line[]];

export interface RenderedUnit {
  name: string;
  content: string;
}

const HEADER = [
  '# Written by ovpn-fleet (server setup / controller setup). Do not edit: the next setup',
  '# overwrites it; put local changes in a drop-in (systemctl edit UNIT).',
];

function renderUnit(sections: readonly Section[]): string {
  const out = [...HEADER];
  for (const [name, lines] of sections) {
    out.push('', `[${name}]`);
    for (const l of lines) out.push('comment' in l ? `# ${l.comment}` : `${l[0]}=${l[1]}`);
  }
  return `${out.join('\n')}\n`;
}

const c = (comment: string): Line => ({ comment });

/**
 * What every unit gets: no new privileges, a read-only system, no homes, its own /tmp, no kernel
 * knobs, modules, logs, clock or cgroups, no namespaces, only native system calls of a normal
 * service. A forbidden system call returns EPERM instead of killing the process: node's libuv
 * probes io_uring at start and falls back when refused, but dies of SIGSYS.
 */
const HARDENING: readonly Line[] = [
  ['NoNewPrivileges', 'yes'],
  ['ProtectSystem', 'strict'],
  ['ProtectHome', 'yes'],
  ['PrivateTmp', 'yes'],
  ['PrivateMounts', 'yes'],
  ['ProtectKernelTunables', 'yes'],
  ['ProtectKernelModules', 'yes'],
  ['ProtectKernelLogs', 'yes'],
  ['ProtectControlGroups', 'yes'],
  ['ProtectClock', 'yes'],
  ['ProtectHostname', 'yes'],
  ['RestrictNamespaces', 'yes'],
  ['RestrictRealtime', 'yes'],
  ['RestrictSUIDSGID', 'yes'],
  ['LockPersonality', 'yes'],
  ['SystemCallArchitectures', 'native'],
  ['SystemCallFilter', '@system-service'],
  ['SystemCallErrorNumber', 'EPERM'],
  ['UMask', '0077'],
];

/** OpenVPN, started once the agent has written its config (see openvpnPathUnit). */
export function openvpnUnit(p: DeployPaths): string {
  const conf = `${p.bundleDir}/server.conf`;
  return renderUnit([
    [
      'Unit',
      [
        ['Description', 'OpenVPN server of ovpn-fleet'],
        ['Documentation', 'man:openvpn(8)'],
        ['After', 'network-online.target'],
        ['Wants', 'network-online.target'],
        c('Nothing to run before the agent has written the first bundle: skipped, not failed;'),
        c(`${UNIT.openvpnPath} starts it when the file appears.`),
        ['ConditionPathExists', conf],
      ],
    ],
    [
      'Service',
      [
        c('OpenVPN 2.6 tells systemd when it is initialised: units ordered after this one (the'),
        c('agent) start once the management socket is there.'),
        ['Type', 'notify'],
        c('The agent finds OpenVPN through this pid file (SIGHUP after a new server.conf).'),
        [
          'ExecStart',
          `/usr/sbin/openvpn --suppress-timestamps --writepid ${bundleRunDir(p)}/openvpn.pid --config ${conf}`,
        ],
        ['ExecReload', '/bin/kill -HUP $MAINPID'],
        c('SIGTERM to OpenVPN alone: with explicit-exit-notify it tells every client to move to'),
        c('its next remote, running client-disconnect hooks as it goes; what is left is killed.'),
        ['KillMode', 'mixed'],
        c('always, not on-failure: the agent restarts OpenVPN fully (SIGTERM, a new process) when'),
        c('management-client-auth changes, which a SIGHUP keeps as at the first start, and a'),
        c('SIGTERM exit counts as clean. `systemctl stop` still stops it for good.'),
        ['Restart', 'always'],
        ['RestartSec', '2s'],
        ...HARDENING,
        c('The only place OpenVPN writes: the management socket, the pid file and status.log.'),
        c("client-connect's dynamic config file goes to tmp-dir (/tmp, private above)."),
        ['ReadWritePaths', bundleRunDir(p)],
        c('A private /dev with the usual pseudo devices, plus the tun device.'),
        ['DevicePolicy', 'closed'],
        ['DeviceAllow', '/dev/net/tun rw'],
        c('CAP_NET_ADMIN: the tun device, its addresses, and `ip route` in the hooks it runs.'),
        c('CAP_NET_BIND_SERVICE: the spec may put OpenVPN on 443, and a new port arrives with'),
        c('the bundle, not through a new unit. Root keeps no other capability.'),
        ['CapabilityBoundingSet', 'CAP_NET_ADMIN CAP_NET_BIND_SERVICE'],
        c('Clients (UDP/TCP), the management socket, and netlink for addresses and routes.'),
        ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6 AF_NETLINK'],
        ['MemoryDenyWriteExecute', 'yes'],
      ],
    ],
  ]);
}

/**
 * Starts OpenVPN when server.conf exists: at boot from the last good bundle (the data plane
 * does not wait for the agent or the controller), and on a fresh server as soon as the agent
 * has written its first bundle. PathExists= is level-triggered (systemd ≥ 246, PR #15697):
 * when OpenVPN stops while the file is there, it is started again at once — to keep it
 * stopped, stop this unit too.
 */
export function openvpnPathUnit(p: DeployPaths): string {
  return renderUnit([
    [
      'Unit',
      [
        ['Description', "Start ovpn-fleet's OpenVPN once its config is there"],
        ['Documentation', 'man:systemd.path(5)'],
      ],
    ],
    [
      'Path',
      [
        ['PathExists', `${p.bundleDir}/server.conf`],
        ['Unit', UNIT.openvpn],
      ],
    ],
    ['Install', [['WantedBy', 'multi-user.target']]],
  ]);
}

export function agentUnit(p: DeployPaths): string {
  return renderUnit([
    [
      'Unit',
      [
        ['Description', "ovpn-fleet agent: applies this server's bundle, reports sessions"],
        c("It reloads FRR and reads OpenVPN's management socket and pid file: started after"),
        c('both, without stopping with them (it keeps serving the last good bundle alone).'),
        ['Wants', `network-online.target ${UNIT.frr} ${UNIT.openvpn}`],
        ['After', `network-online.target ${UNIT.frr} ${UNIT.openvpn}`],
      ],
    ],
    [
      'Service',
      [
        ['Type', 'simple'],
        ['EnvironmentFile', agentEnvPath(p)],
        c(
          `Yours, never written by setup: ${AGENT_EXTRA_OPTIONS_VAR}=--metrics-listen ... (optional).`,
        ),
        ['EnvironmentFile', `-${agentLocalEnvPath(p)}`],
        c('$VAR (not ${VAR}): systemd splits the options at whitespace into arguments; unset,'),
        c('it stands for none.'),
        ['ExecStart', `${p.bin} agent $${AGENT_OPTIONS_VAR} $${AGENT_EXTRA_OPTIONS_VAR}`],
        ['Restart', 'on-failure'],
        ['RestartSec', '2s'],
        ...HARDENING,
        c("The bundle (OpenVPN's config, ccd/, VERSION) and run/agent.sock. Its own settings"),
        c(`in ${p.agentConfigDir} stay read-only to it.`),
        ['ReadWritePaths', p.bundleDir],
        ['PrivateDevices', 'yes'],
        c('CAP_NET_ADMIN: host routes (`ip route`) and the ruleset (`nft -f`). OpenVPN is'),
        c('signalled as the same uid, which needs no capability.'),
        ['CapabilityBoundingSet', 'CAP_NET_ADMIN'],
        c('Without CAP_DAC_OVERRIDE root obeys file modes: vtysh reads /etc/frr (frr:frr 0750)'),
        c("and talks to the daemons' vty sockets (group frrvty)."),
        ['SupplementaryGroups', 'frr frrvty'],
        c("frr-reload.py's closing `vtysh write` is carried out by FRR's watchfrr (vtysh sends it"),
        c(
          '`write integrated`; watchfrr forks `vtysh -w` outside this sandbox), so /etc/frr/frr.conf',
        ),
        c('follows every reload with /etc/frr read-only here.'),
        c('The controller (HTTPS or a unix socket), the management and vty sockets, netlink.'),
        ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6 AF_NETLINK'],
      ],
    ],
    ['Install', [['WantedBy', 'multi-user.target']]],
  ]);
}

export function controllerUnit(p: DeployPaths): string {
  return renderUnit([
    [
      'Unit',
      [
        ['Description', "ovpn-fleet controller: API, console and the agents' long-poll"],
        ['After', 'network-online.target'],
        ['Wants', 'network-online.target'],
      ],
    ],
    [
      'Service',
      [
        ['Type', 'simple'],
        c(`--listen, --tls-cert, --tls-key ... in ${CONTROLLER_OPTIONS_VAR}.`),
        ['EnvironmentFile', p.controllerEnv],
        ['ExecStart', `${p.bin} --dir ${CONTROLLER_DIR} controller $${CONTROLLER_OPTIONS_VAR}`],
        c('SIGHUP reopens --audit-log (logrotate).'),
        ['ExecReload', '/bin/kill -HUP $MAINPID'],
        ['Restart', 'on-failure'],
        ['RestartSec', '2s'],
        ...HARDENING,
        c(`Writable, nothing else is: ${CONTROLLER_DIR} (store, PKI, run/controller.sock) and`),
        c('/var/log/ovpn-fleet for --audit-log, both created by systemd (StateDirectory= and'),
        c('LogsDirectory= are ReadWritePaths= that systemd also creates with these modes).'),
        ['StateDirectory', 'ovpn-fleet'],
        ['StateDirectoryMode', '0700'],
        ['LogsDirectory', 'ovpn-fleet'],
        ['LogsDirectoryMode', '0700'],
        ['PrivateDevices', 'yes'],
        c('No capability at all: it listens above 1024 and runs nothing privileged.'),
        ['CapabilityBoundingSet', ''],
        ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6'],
        c('No MemoryDenyWriteExecute=: V8 compiles JavaScript to machine code at run time.'),
      ],
    ],
    ['Install', [['WantedBy', 'multi-user.target']]],
  ]);
}

/** The units a VPN server runs (FRR's comes with Debian's package). */
export function serverUnits(p: DeployPaths): RenderedUnit[] {
  return [
    { name: UNIT.openvpn, content: openvpnUnit(p) },
    { name: UNIT.openvpnPath, content: openvpnPathUnit(p) },
    { name: UNIT.agent, content: agentUnit(p) },
  ];
}

/** Every unit the project ships, with the default paths (deploy/systemd/). */
export function shippedUnits(p: DeployPaths = DEFAULT_DEPLOY_PATHS): RenderedUnit[] {
  return [...serverUnits(p), { name: UNIT.controller, content: controllerUnit(p) }];
}
