/**
 * What `server setup` and `server remove` do to a host, as a list of steps computed from what
 * is there now: pure (the caller hands in `look`, a view of the files), so the same plan is
 * printed by --dry-run, carried out by apply.ts, and checked by unit tests without a host.
 */
import { createHash } from 'node:crypto';
import { Conflict, InputError } from '../errors.js';
import { renderSysctl } from '../render/sysctl.js';
import {
  DAEMONS_FOR,
  FRR_DAEMONS_BACKUP,
  FRR_DAEMONS_FILE,
  type RoutingProtocol,
  daemonsFileFor,
} from './frr-daemons.js';
import {
  AGENT_OPTIONS_VAR,
  type DeployPaths,
  UNIT,
  agentCaPath,
  agentEnvPath,
  agentTokenPath,
  bundleRunDir,
  CONTROLLER_DIR,
  CONTROLLER_OPTIONS_VAR,
  controllerUnit,
  serverUnits,
} from './units.js';

export const UNIT_DIR = '/etc/systemd/system';
export const SYSCTL_DROP_IN = '/etc/sysctl.d/60-ovpn-fleet.conf';
/** The packages a VPN server needs (frr-pythontools: frr-reload.py, for FRR reloads). */
export const SERVER_PACKAGES = ['openvpn', 'frr', 'frr-pythontools', 'nftables'] as const;

/** The bundle folder's modes, as the agent keeps them (src/sys/files.ts). */
const BUNDLE_DIR_MODE = 0o750;
const RUN_DIR_MODE = 0o700;
const AGENT_CONFIG_DIR_MODE = 0o750;

/** What is at a path now. */
export type Existing =
  | { kind: 'file'; content: string; mode: number }
  | { kind: 'dir'; mode: number }
  | { kind: 'other'; what: string };

export type Look = (path: string) => Existing | undefined;

export interface PlannedFile {
  path: string;
  content: string;
  mode: number;
  /** Shown as a digest, never as text (--dry-run, logs). */
  secret?: boolean;
  /** Keep the owner of the file at this path (FRR's files belong to frr:frr). */
  ownerFrom?: string;
}

export type Step =
  | { kind: 'dir'; path: string; mode: number; state: 'create' | 'chmod' | 'unchanged' }
  | { kind: 'file'; file: PlannedFile; state: 'create' | 'update' | 'unchanged' }
  | { kind: 'delete'; path: string; state: 'delete' | 'absent' }
  /** Removes the folder if it is empty (someone may have put their own files there). */
  | { kind: 'rmdir'; path: string; state: 'rmdir' | 'absent' }
  | { kind: 'run'; argv: string[]; why: string };

export interface Plan {
  steps: Step[];
  /** What a person should know: nothing here is done by the plan. */
  notes: string[];
}

export interface ServerSetupInput {
  paths: DeployPaths;
  server: string;
  /** The agent's --controller; several: each its own --controller, the first preferred. */
  controller: string | readonly string[];
  /** The CA the controller's certificate chains to (copied next to the token). */
  caPem?: string;
  token: string;
  protocol: RoutingProtocol;
}

export const digestOf = (content: string) =>
  `sha256:${createHash('sha256').update(content).digest('hex').slice(0, 16)}`;

/**
 * Characters the agent's options may not hold: they are one word-split environment value,
 * where whitespace would split an argument, quotes and backslashes are parsed, `$` and `%`
 * expanded.
 */
const UNSAFE_IN_OPTIONS = /[\s"'\\$%`\u0000-\u001f\u007f]/u;

function safeOption(field: string, value: string): string {
  const bad = UNSAFE_IN_OPTIONS.exec(value);
  if (bad)
    throw new InputError(
      field,
      `${JSON.stringify(value)} holds ${JSON.stringify(bad[0])}, which the agent's options file cannot carry`,
    );
  return value;
}

export function agentEnvFile(input: ServerSetupInput): string {
  const p = input.paths;
  const options = [
    ['--server', safeOption('--server', input.server)],
    ...(typeof input.controller === 'string' ? [input.controller] : input.controller).map((c) => [
      '--controller',
      safeOption('--controller', c),
    ]),
    ['--token-file', agentTokenPath(p)],
    ...(input.caPem !== undefined ? [['--ca', agentCaPath(p)]] : []),
    ['--bundle-dir', safeOption('--bundle-dir', p.bundleDir)],
  ];
  return [
    '# Written by ovpn-fleet server setup: run it again to change these (a hand edit is',
    "# overwritten). The agent's options, split at whitespace by its unit.",
    `${AGENT_OPTIONS_VAR}=${options.map((o) => o.join(' ')).join(' ')}`,
    '',
  ].join('\n');
}

/** The sysctl settings of the bundle's sysctl.conf, applied at every boot. */
export function sysctlDropIn(): string {
  const settings = renderSysctl()
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
  return [
    '# Written by ovpn-fleet server setup: a VPN server routes between its tun device and',
    '# the backbone for both families.',
    ...settings,
    '',
  ].join('\n');
}

function refuseOther(
  path: string,
  now: Existing | undefined,
): asserts now is Exclude<Existing, { kind: 'other' }> | undefined {
  if (now?.kind === 'other')
    throw new Conflict(
      `${path} is ${now.what}, not a regular file: refused (a masked unit is a link to /dev/null; unmask it first)`,
    );
}

function dirStep(look: Look, path: string, mode: number): Step {
  const now = look(path);
  if (now && now.kind !== 'dir') throw new Conflict(`${path} exists and is not a directory`);
  return {
    kind: 'dir',
    path,
    mode,
    state: !now ? 'create' : now.mode !== mode ? 'chmod' : 'unchanged',
  };
}

function fileStep(look: Look, file: PlannedFile): Step & { kind: 'file' } {
  const now = look(file.path);
  refuseOther(file.path, now);
  if (now?.kind === 'dir') throw new Conflict(`${file.path} is a directory: refused`);
  const state = !now
    ? 'create'
    : now.content !== file.content || now.mode !== file.mode
      ? 'update'
      : 'unchanged';
  return { kind: 'file', file, state };
}

function deleteStep(look: Look, path: string): Step & { kind: 'delete' } {
  const now = look(path);
  refuseOther(path, now);
  if (now?.kind === 'dir') throw new Conflict(`${path} is a directory: refused`);
  return { kind: 'delete', path, state: now ? 'delete' : 'absent' };
}

const changed = (s: Step) =>
  (s.kind === 'file' && s.state !== 'unchanged') || (s.kind === 'delete' && s.state === 'delete');

/**
 * Debian's daemons file is the base of ours: the backup when an earlier setup made one, else
 * the file as it is now. A backup is made only when we are about to change the file.
 */
function frrDaemonsSteps(look: Look, protocol: RoutingProtocol): Step[] {
  const current = look(FRR_DAEMONS_FILE);
  const backup = look(FRR_DAEMONS_BACKUP);
  refuseOther(FRR_DAEMONS_FILE, current);
  refuseOther(FRR_DAEMONS_BACKUP, backup);
  if (current?.kind !== 'file')
    throw new Conflict(`${FRR_DAEMONS_FILE} is missing: is frr installed? (apt-get install frr)`);
  const base = backup?.kind === 'file' ? backup : current;
  const steps: Step[] = [];
  const wanted = fileStep(look, {
    path: FRR_DAEMONS_FILE,
    content: daemonsFileFor(base.content, protocol),
    mode: base.mode,
    ownerFrom: FRR_DAEMONS_FILE,
  });
  if (!backup && wanted.state !== 'unchanged')
    steps.push({
      kind: 'file',
      file: {
        path: FRR_DAEMONS_BACKUP,
        content: current.content,
        mode: current.mode,
        ownerFrom: FRR_DAEMONS_FILE,
      },
      state: 'create',
    });
  steps.push(wanted);
  return steps;
}

export function planServerSetup(input: ServerSetupInput, look: Look): Plan {
  const p = input.paths;
  const unitFiles = serverUnits(p).map((u) =>
    fileStep(look, { path: `${UNIT_DIR}/${u.name}`, content: u.content, mode: 0o644 }),
  );
  const sysctl = fileStep(look, { path: SYSCTL_DROP_IN, content: sysctlDropIn(), mode: 0o644 });
  const agentFiles: Step[] = [
    fileStep(look, { path: agentEnvPath(p), content: agentEnvFile(input), mode: 0o644 }),
    fileStep(look, {
      path: agentTokenPath(p),
      content: `${input.token}\n`,
      mode: 0o600,
      secret: true,
    }),
    input.caPem !== undefined
      ? fileStep(look, { path: agentCaPath(p), content: input.caPem, mode: 0o644 })
      : deleteStep(look, agentCaPath(p)),
  ];
  const daemons = frrDaemonsSteps(look, input.protocol);

  const unitsChanged = unitFiles.some(changed);
  const agentChanged =
    agentFiles.some(changed) ||
    unitFiles.some((s) => changed(s) && s.file.path.endsWith(UNIT.agent));
  const daemonsChanged = daemons.some(changed);
  const openvpnUnit = unitFiles.find((s) => s.file.path.endsWith(UNIT.openvpn));
  const steps: Step[] = [
    dirStep(look, p.bundleDir, BUNDLE_DIR_MODE),
    dirStep(look, bundleRunDir(p), RUN_DIR_MODE),
    dirStep(look, p.agentConfigDir, AGENT_CONFIG_DIR_MODE),
    ...unitFiles,
    sysctl,
    ...agentFiles,
    ...daemons,
  ];
  if (unitsChanged)
    steps.push({ kind: 'run', argv: ['systemctl', 'daemon-reload'], why: 'units changed' });
  if (changed(sysctl))
    steps.push({
      kind: 'run',
      argv: ['sysctl', '-p', SYSCTL_DROP_IN],
      why: 'forwarding now, not only after the next boot',
    });
  steps.push(
    {
      kind: 'run',
      argv: ['systemctl', 'enable', UNIT.frr, UNIT.openvpnPath, UNIT.agent],
      why: 'start at boot',
    },
    daemonsChanged
      ? {
          kind: 'run',
          argv: ['systemctl', 'restart', UNIT.frr],
          why: `start ${DAEMONS_FOR[input.protocol].join(' and ')}`,
        }
      : { kind: 'run', argv: ['systemctl', 'start', UNIT.frr], why: 'ensure running' },
    {
      kind: 'run',
      argv: ['systemctl', 'start', UNIT.openvpnPath],
      why: 'OpenVPN starts once the agent has written server.conf',
    },
    agentChanged
      ? { kind: 'run', argv: ['systemctl', 'restart', UNIT.agent], why: 'its settings changed' }
      : { kind: 'run', argv: ['systemctl', 'start', UNIT.agent], why: 'ensure running' },
  );
  const notes: string[] = [];
  if (openvpnUnit?.state === 'update')
    notes.push(
      `${UNIT.openvpn} changed: it takes effect when OpenVPN next restarts (systemctl restart ${UNIT.openvpn} sends users to their next remote)`,
    );
  return { steps, notes };
}

export function planServerRemove(paths: DeployPaths, look: Look): Plan {
  const units = serverUnits(paths).map((u) => deleteStep(look, `${UNIT_DIR}/${u.name}`));
  const files = [
    deleteStep(look, SYSCTL_DROP_IN),
    deleteStep(look, agentEnvPath(paths)),
    deleteStep(look, agentTokenPath(paths)),
    deleteStep(look, agentCaPath(paths)),
  ];
  const backup = look(FRR_DAEMONS_BACKUP);
  refuseOther(FRR_DAEMONS_BACKUP, backup);
  const restore: Step[] =
    backup?.kind === 'file'
      ? [
          fileStep(look, {
            path: FRR_DAEMONS_FILE,
            content: backup.content,
            mode: backup.mode,
            ownerFrom: FRR_DAEMONS_BACKUP,
          }),
          deleteStep(look, FRR_DAEMONS_BACKUP),
        ]
      : [];
  const configDir = look(paths.agentConfigDir);
  const steps: Step[] = [];
  if (units.some(changed))
    steps.push({
      kind: 'run',
      // --now stops them too; OpenVPN's service is not enabled itself, its .path unit is.
      argv: ['systemctl', 'disable', '--now', UNIT.agent, UNIT.openvpnPath, UNIT.openvpn],
      why: 'stop and no longer start at boot',
    });
  steps.push(...units, ...files, ...restore, {
    kind: 'rmdir',
    path: paths.agentConfigDir,
    state: configDir?.kind === 'dir' ? 'rmdir' : 'absent',
  });
  if (units.some(changed))
    steps.push({ kind: 'run', argv: ['systemctl', 'daemon-reload'], why: 'units removed' });
  if (restore.some(changed))
    steps.push({
      kind: 'run',
      argv: ['systemctl', 'try-restart', UNIT.frr],
      why: 'FRR runs the daemons of its restored daemons file',
    });
  const notes = [
    `${paths.bundleDir} (the bundle: server key, configs) is left in place; delete it when this server leaves the fleet`,
  ];
  if (files[0].state === 'delete')
    notes.push('forwarding stays on until the next boot (sysctl settings are not undone live)');
  return { steps, notes };
}

/** The controller's TLS files, copied where its unit (read-only /etc) finds them. */
export const CONTROLLER_CONFIG_DIR = '/etc/ovpn-fleet-controller';
export const CONTROLLER_TLS_CERT = `${CONTROLLER_CONFIG_DIR}/tls.crt`;
export const CONTROLLER_TLS_KEY = `${CONTROLLER_CONFIG_DIR}/tls.key`;

export interface ControllerSetupInput {
  paths: DeployPaths;
  /**
   * The controller's options as argv pairs or flags (`['--listen', 'unix:/x']`, `['--audit-syslog']`),
   * TLS files already pointing at CONTROLLER_TLS_CERT / _KEY.
   */
  options: string[][];
  tls?: { certPem: string; keyPem: string };
}

export function controllerEnvFile(input: ControllerSetupInput): string {
  const words = input.options.map(([flag, value]) =>
    value === undefined ? flag : `${flag} ${safeOption(flag, value)}`,
  );
  return [
    '# Written by ovpn-fleet controller setup: run it again to change these (a hand edit is',
    "# overwritten). The controller's options, split at whitespace by its unit.",
    `${CONTROLLER_OPTIONS_VAR}=${words.join(' ')}`,
    '',
  ].join('\n');
}

/**
 * The controller host: its unit, its options and TLS files. The fleet directory must exist
 * (`ovpn-fleet --dir /var/lib/ovpn-fleet init`), or the service would fail at every start.
 */
export function planControllerSetup(input: ControllerSetupInput, look: Look): Plan {
  const p = input.paths;
  if (look(`${CONTROLLER_DIR}/fleet.yaml`)?.kind !== 'file')
    throw new Conflict(
      `no fleet in ${CONTROLLER_DIR}: run ovpn-fleet --dir ${CONTROLLER_DIR} init first (or move your fleet directory there)`,
    );
  const unit = fileStep(look, {
    path: `${UNIT_DIR}/${UNIT.controller}`,
    content: controllerUnit(p),
    mode: 0o644,
  });
  const settings: Step[] = [
    fileStep(look, { path: p.controllerEnv, content: controllerEnvFile(input), mode: 0o644 }),
    ...(input.tls
      ? [
          fileStep(look, { path: CONTROLLER_TLS_CERT, content: input.tls.certPem, mode: 0o644 }),
          fileStep(look, {
            path: CONTROLLER_TLS_KEY,
            content: input.tls.keyPem,
            mode: 0o600,
            secret: true,
          }),
        ]
      : [deleteStep(look, CONTROLLER_TLS_CERT), deleteStep(look, CONTROLLER_TLS_KEY)]),
  ];
  const steps: Step[] = [dirStep(look, CONTROLLER_CONFIG_DIR, 0o750), unit, ...settings];
  if (changed(unit))
    steps.push({ kind: 'run', argv: ['systemctl', 'daemon-reload'], why: 'unit changed' });
  steps.push(
    { kind: 'run', argv: ['systemctl', 'enable', UNIT.controller], why: 'start at boot' },
    changed(unit) || settings.some(changed)
      ? {
          kind: 'run',
          argv: ['systemctl', 'restart', UNIT.controller],
          why: 'its settings changed',
        }
      : { kind: 'run', argv: ['systemctl', 'start', UNIT.controller], why: 'ensure running' },
  );
  return { steps, notes: [] };
}

export function planControllerRemove(paths: DeployPaths, look: Look): Plan {
  const unit = deleteStep(look, `${UNIT_DIR}/${UNIT.controller}`);
  const steps: Step[] = [];
  if (changed(unit))
    steps.push({
      kind: 'run',
      argv: ['systemctl', 'disable', '--now', UNIT.controller],
      why: 'stop and no longer start at boot',
    });
  steps.push(
    unit,
    deleteStep(look, paths.controllerEnv),
    deleteStep(look, CONTROLLER_TLS_CERT),
    deleteStep(look, CONTROLLER_TLS_KEY),
    {
      kind: 'rmdir',
      path: CONTROLLER_CONFIG_DIR,
      state: look(CONTROLLER_CONFIG_DIR)?.kind === 'dir' ? 'rmdir' : 'absent',
    },
  );
  if (changed(unit))
    steps.push({ kind: 'run', argv: ['systemctl', 'daemon-reload'], why: 'unit removed' });
  return {
    steps,
    notes: [`${CONTROLLER_DIR} (fleet.yaml, the store, the CA) is left in place`],
  };
}
