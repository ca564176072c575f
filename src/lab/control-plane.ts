/**
 * The lab's control plane on PostgreSQL (`lab up --store postgres --controllers 2`): a real
 * PostgreSQL 15 in its own namespace (`<prefix>-db`), linked to the core like the other hosts,
 * listening on its lab address only, with password (SCRAM) authentication, run as the
 * unprivileged `postgres` user and stopped by its postmaster's pid; and the second controller's
 * namespace (`<prefix>-ctl2`), also linked to the core, so the two controllers reach the
 * database over the lab's network from two different hosts and a PostgreSQL restart cuts real
 * TCP connections.
 *
 * The lab's own tooling (the `lab` commands, which run in the host's namespace, where the lab
 * adds no address) reaches the same database through its unix socket, which lives in the
 * cluster's directory: a socket file is no network listener, and it asks for the password too.
 *
 * Connection strings are only ever in 0600 files named by OVPN_FLEET_DATABASE_URL_FILE, never
 * in argv (`ps` shows argv to every user).
 */
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { appendFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { InputError } from '../errors.js';
import { run } from '../sys/exec.js';
import { writeFileAtomic } from '../sys/files.js';
import { POSTGRES_BIN, postgresIds, postgresMissing } from '../sys/postgres.js';
import { isAlive, stopProcess, track } from '../sys/proc.js';
import { waitFor } from '../sys/time.js';
import type { LabIface, LabNode } from './plan.js';
import type { LabProcess, LabState } from './state.js';

export const LAB_STORES = ['sqlite', 'postgres'] as const;
export type LabStore = (typeof LAB_STORES)[number];
/** Controllers a lab runs: one (default), or two on PostgreSQL. */
export const MAX_LAB_CONTROLLERS = 2;
export const LAB_DB_PORT = 5432;
const DB_ROLE = 'fleet';
const DB_NAME = 'fleet';

/** Where the lab's PostgreSQL lives (in LabState.postgres). */
export interface LabPostgres {
  ns: string;
  /** Its address on the link to the core: the only one it listens on. */
  address: string;
  port: number;
  /** The cluster's directory (owned by postgres): data/, the socket, the log, the password file. */
  dir: string;
  /** 0600 file with the URL the controllers use (TCP to `address`). */
  controllerUrlFile: string;
  /** 0600 file with the URL the lab's own tooling uses (the unix socket in `dir`). */
  toolUrlFile: string;
}

/** What the control-plane module needs of the lab (the Lab class provides it). */
export interface LabOps {
  readonly state: LabState;
  addNamespace(ns: string, forwarding: boolean): Promise<void>;
  addLink(a: LabIface, b: LabIface): Promise<void>;
  addRoutes(ns: string, routes: LabNode['routes']): Promise<void>;
  recordProcess(p: Omit<LabProcess, 'startTime'>): LabProcess;
  save(): void;
}

/** One clear line for a combination `lab up` cannot run. */
export function checkControlPlaneOptions(o: {
  controllers: number;
  store: string;
  controlPlane: boolean;
}): void {
  if (!(LAB_STORES as readonly string[]).includes(o.store))
    throw new InputError('--store', `"${o.store}" is not one of ${LAB_STORES.join(', ')}`);
  if (!Number.isInteger(o.controllers) || o.controllers < 1 || o.controllers > MAX_LAB_CONTROLLERS)
    throw new InputError('--controllers', `must be 1 or ${MAX_LAB_CONTROLLERS}`);
  if (o.controllers > 1 && o.store !== 'postgres')
    throw new InputError(
      '--controllers',
      `${o.controllers} controllers share one store only on PostgreSQL: add --store postgres`,
    );
  if (!o.controlPlane && (o.controllers > 1 || o.store !== 'sqlite'))
    throw new InputError(
      '--store',
      'a lab without control plane (--no-control-plane, --seed) runs no controller and no store',
    );
  if (o.store === 'postgres') {
    const missing = postgresMissing();
    if (missing) throw new InputError('--store', `${missing}: run "npm run setup"`);
  }
}

/**
 * The namespaces and links of the control plane's hosts. Pure. 10.253.0.0/29 is inside no range
 * the lab or the example fleet uses (backbone 10.255/16, router links 10.254/16).
 */
export function controlPlanePlan(prefix: string, core: string) {
  const db = `${prefix}-db`;
  const ctl2 = `${prefix}-ctl2`;
  return {
    db,
    dbAddress: '10.253.0.2',
    ctl2,
    nodes: [
      { ns: db, routes: [{ to: 'default', via: '10.253.0.1' }] },
      { ns: ctl2, routes: [{ to: 'default', via: '10.253.0.5' }] },
    ],
    links: [
      {
        a: { ns: core, name: 'db0', v4: '10.253.0.1/30' },
        b: { ns: db, name: 'eth0', v4: '10.253.0.2/30' },
      },
      {
        a: { ns: core, name: 'ctl2', v4: '10.253.0.5/30' },
        b: { ns: ctl2, name: 'eth0', v4: '10.253.0.6/30' },
      },
    ] satisfies { a: LabIface; b: LabIface }[],
  };
}

/** The namespace controller `n` (1-based) runs in: the core's, then the second host's. */
export function controllerNamespace(state: LabState, n: number): string {
  if (n === 1) return state.plan!.core;
  return controlPlanePlan(state.prefix, state.plan!.core).ctl2;
}

/** Controller `n`'s unix socket (the agents' and the lab's way in, from any namespace). */
export function controllerSocket(state: LabState, n: number): string {
  return join(state.dir, n === 1 ? 'controller.sock' : `controller${n}.sock`);
}

/** Its id in the lab's process list, and its component name for `lab stop/start`. */
export function controllerId(n: number): string {
  return n === 1 ? 'controller' : `controller${n}`;
}

export function labControllerCount(state: LabState): number {
  return state.controlPlane ? (state.controllers ?? 1) : 0;
}

/** Every controller's socket as `--controller` values, first preferred. */
export function controllerEndpoints(state: LabState): string[] {
  return Array.from(
    { length: labControllerCount(state) },
    (_, i) => `unix:${controllerSocket(state, i + 1)}`,
  );
}

/**
 * The environment a process of the lab's opens the fleet with: on PostgreSQL, the URL file for
 * `who` (a controller inside the lab's network, or the lab's tooling in the host's namespace).
 * OVPN_FLEET_DATABASE_URL from our own environment is dropped: the lab's database wins.
 */
export function labStoreEnv(
  state: LabState,
  who: 'controller' | 'tool',
  base: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  const rest = { ...base };
  delete rest.OVPN_FLEET_DATABASE_URL;
  delete rest.OVPN_FLEET_DATABASE_URL_FILE;
  if (!state.store) return base;
  if (state.store !== 'postgres' || !state.postgres) return rest;
  return {
    ...rest,
    OVPN_FLEET_DATABASE_URL_FILE:
      who === 'controller' ? state.postgres.controllerUrlFile : state.postgres.toolUrlFile,
  };
}

/** Builds the db and second-controller hosts, linked to the core. */
export async function buildControlPlaneNetwork(ops: LabOps): Promise<void> {
  const p = controlPlanePlan(ops.state.prefix, ops.state.plan!.core);
  const wanted = new Set([p.db, ...(labControllerCount(ops.state) > 1 ? [p.ctl2] : [])]);
  for (const node of p.nodes.filter((n) => wanted.has(n.ns))) {
    await ops.addNamespace(node.ns, false);
    const link = p.links.find((l) => l.b.ns === node.ns)!;
    await ops.addLink(link.a, link.b);
    await ops.addRoutes(node.ns, node.routes);
  }
}

const asPostgres = (argv: string[]) => ['runuser', '-u', 'postgres', '--', ...argv];

/**
 * A fresh cluster in its own namespace, a `fleet` role and database with a random password, and
 * the fleet directory's SQLite store copied in and verified (the same copy as `store migrate`).
 * From then on the fleet lives in this database until `lab down`, which removes it.
 */
export async function initLabPostgres(
  ops: LabOps,
  copyStore: (env: NodeJS.ProcessEnv) => Promise<unknown>,
  log: (l: string) => void,
): Promise<void> {
  const state = ops.state;
  const plan = controlPlanePlan(state.prefix, state.plan!.core);
  const ids = postgresIds();
  if (!ids) throw new InputError('--store', 'no "postgres" user to run PostgreSQL as');
  // Outside the fleet directory: a test's fleet directory is mode 0700 root, which the postgres
  // user could not enter.
  const dir = mkdtempSync(join(tmpdir(), `ovf-lab-${state.prefix}-pg-`));
  const pgState: LabPostgres = {
    ns: plan.db,
    address: plan.dbAddress,
    port: LAB_DB_PORT,
    dir,
    controllerUrlFile: join(state.dir, 'db', 'controller.url'),
    toolUrlFile: join(state.dir, 'db', 'tool.url'),
  };
  state.postgres = pgState;
  ops.save();
  chownSync(dir, ids.uid, ids.gid);
  const superPassword = randomBytes(18).toString('hex');
  const fleetPassword = randomBytes(18).toString('hex');
  const pwFile = join(dir, 'superuser.pw');
  writeFileSync(pwFile, `${superPassword}\n`, { mode: 0o600 });
  chownSync(pwFile, ids.uid, ids.gid);
  await run(
    asPostgres([
      join(POSTGRES_BIN, 'initdb'),
      '-D',
      join(dir, 'data'),
      '-U',
      'postgres',
      '--pwfile',
      pwFile,
      '--auth=scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]),
    { timeoutMs: 120_000 },
  );
  rmSync(pwFile, { force: true });
  // Its lab address only, and the socket in its own directory; password for everyone.
  appendFileSync(
    join(dir, 'data', 'postgresql.conf'),
    [
      '',
      '# ovpn-fleet lab',
      `listen_addresses = '${plan.dbAddress}'`,
      `port = ${LAB_DB_PORT}`,
      `unix_socket_directories = '${dir}'`,
      // A lab database need not survive a power cut; the agents' and controllers' timing matter.
      'fsync = off',
      'full_page_writes = off',
      'synchronous_commit = off',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'data', 'pg_hba.conf'),
    ['local all all scram-sha-256', 'host all all 10.253.0.0/29 scram-sha-256', ''].join('\n'),
  );
  await startLabPostgres(ops);
  const admin = new pg.Client({
    host: dir,
    port: LAB_DB_PORT,
    user: 'postgres',
    password: superPassword,
    database: 'postgres',
  });
  await admin.connect();
  try {
    // A password of hex digits needs no quoting beyond the literal's.
    await admin.query(`CREATE ROLE ${DB_ROLE} LOGIN PASSWORD '${fleetPassword}'`);
    await admin.query(`CREATE DATABASE ${DB_NAME} OWNER ${DB_ROLE}`);
  } finally {
    await admin.end();
  }
  mkdirSync(join(state.dir, 'db'), { recursive: true, mode: 0o700 });
  writeFileAtomic(
    pgState.controllerUrlFile,
    `postgresql://${DB_ROLE}:${fleetPassword}@${plan.dbAddress}:${LAB_DB_PORT}/${DB_NAME}\n`,
    0o600,
  );
  writeFileAtomic(
    pgState.toolUrlFile,
    `postgresql://${DB_ROLE}:${fleetPassword}@localhost/${DB_NAME}?host=${encodeURIComponent(dir)}&port=${LAB_DB_PORT}\n`,
    0o600,
  );
  await copyStore(labStoreEnv(state, 'tool'));
  log(
    `store: PostgreSQL 15 in ${plan.db} on ${plan.dbAddress}:${LAB_DB_PORT} (fleet.db copied in and verified)`,
  );
}

/** Starts the (initialised, stopped) cluster in its namespace and records the postmaster. */
export async function startLabPostgres(ops: LabOps): Promise<void> {
  const pgs = ops.state.postgres!;
  const data = join(pgs.dir, 'data');
  await run(
    asPostgres([
      join(POSTGRES_BIN, 'pg_ctl'),
      '-D',
      data,
      '-l',
      join(pgs.dir, 'postgres.log'),
      '-w',
      '-t',
      '60',
      'start',
    ]),
    { netns: pgs.ns, timeoutMs: 90_000 },
  );
  const pid = await waitFor('the postmaster pid', () => postmasterPid(pgs.dir), 10_000, 20);
  ops.recordProcess({ id: 'postgres', kind: 'postgres', ns: pgs.ns, pid });
}

/**
 * The postmaster by pid: SIGINT is PostgreSQL's fast shutdown (every connection cut, as in a
 * failover); a "crash" is SIGQUIT, its immediate shutdown. Never SIGKILL first: a postmaster
 * killed outright leaves its backends holding the shared memory, and the next start refuses
 * ("pre-existing shared memory block is still in use") until they are gone.
 */
export async function stopLabPostgres(p: LabProcess, crash = false): Promise<void> {
  await stopProcess(p, 15_000, crash ? 'SIGQUIT' : 'SIGINT');
}

/** At `lab down`: a postmaster a crashed `lab up` did not record, then the cluster's directory. */
export async function removeLabPostgres(state: LabState): Promise<number> {
  const pgs = state.postgres;
  if (!pgs) return 0;
  let stopped = 0;
  const pid = postmasterPid(pgs.dir);
  const t = pid ? track(pid) : undefined;
  if (t && isAlive(t) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres')) {
    stopped++;
    await stopProcess(t, 15_000, 'SIGINT');
  }
  if (existsSync(pgs.dir)) rmSync(pgs.dir, { recursive: true, force: true });
  return stopped;
}

/** The first line of postmaster.pid (the file has several: readPidFile would not parse it). */
function postmasterPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}
