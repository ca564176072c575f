/** The lab's state on disk, written after every step so `lab down` can undo a crashed `lab up`. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../sys/files.js';
import type { LabPlan } from './plan.js';
import type { LabPostgres, LabStore } from './control-plane.js';
import type { LabSso } from './sso-lab.js';

export type ProcessKind =
  | 'openvpn-server'
  | 'openvpn-client'
  | 'frr'
  | 'bird'
  | 'service'
  | 'lb-health'
  | 'controller'
  | 'agent'
  | 'postgres'
  | 'idp';

export interface LabProcess {
  id: string;
  kind: ProcessKind;
  ns: string;
  pid: number;
  startTime: string;
  pidFile?: string;
}

export interface LabClient {
  user: string;
  index: number;
  ns: string;
  address: string;
  dir: string;
}

export interface LabState {
  prefix: string;
  fleetDir: string;
  dir: string;
  createdAt: string;
  port: number;
  namespaces: string[];
  frrInstances: string[];
  /** Routers running BIRD (`lab up --routers bird`): their pid files, for a crashed `lab up`. */
  birdInstances?: string[];
  /** What the core and site routers run; the servers always run FRR. Absent: frr. */
  routers?: 'frr' | 'bird';
  processes: LabProcess[];
  clients: LabClient[];
  /** Controller and one agent per server run (off: servers run alone, as in the seed). */
  controlPlane?: boolean;
  /** How many controllers run (absent: 1); the second in its own namespace (control-plane.ts). */
  controllers?: number;
  /** The store the controllers use (absent: sqlite, the fleet directory's fleet.db). */
  store?: LabStore;
  /** The lab's PostgreSQL, with `store: 'postgres'`. */
  postgres?: LabPostgres;
  /** The test identity provider and the controller's HTTPS side (`lab up --sso`, sso-lab.ts). */
  sso?: LabSso;
  /**
   * The servers run as the seed article ran them (benchmark baseline): its hooks, FRR
   * redistributing kernel and connected routes unfiltered, no control plane, and client
   * profiles without explicit-exit-notify. See seed.ts.
   */
  seed?: boolean;
  /** Files in FRR's shared run directory that existed before the lab (not ours to remove). */
  sharedFrrFiles?: string[];
  plan?: LabPlan;
}

export function labDir(fleetDir: string, prefix: string): string {
  return join(fleetDir, '.lab', prefix);
}

export function statePath(dir: string): string {
  return join(dir, 'state.json');
}

export function loadState(dir: string): LabState | undefined {
  const p = statePath(dir);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as LabState;
}

export function saveState(state: LabState): void {
  writeFileAtomic(statePath(state.dir), `${JSON.stringify(state, null, 2)}\n`);
}
