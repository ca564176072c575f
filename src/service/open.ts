/**
 * The composition root of the service layer: the only place that knows which store
 * implementation backs a fleet directory. Everything else sees FleetStore and ChangeFeed.
 */
import { existsSync } from 'node:fs';
import { Conflict, NotFound, SpecError } from '../errors.js';
import { EXAMPLE_FLEET_YAML } from '../spec/example.js';
import { parseSpecText } from '../spec/validate.js';
import { loadSpec } from './spec-file.js';
import { SqliteStore } from '../store/sqlite.js';
import type { ChangeFeed } from '../store/types.js';
import { writeFileAtomic } from '../sys/files.js';
import { type Clock, actorName, systemClock } from './context.js';
import { Fleet } from './fleet.js';
import { SPEC_FILE_MODE, specPath, storePath } from './layout.js';

export interface OpenFleetOptions {
  clock?: Clock;
  /** Who the audit log names; default: `cli:<login>`. */
  actor?: string;
  /** Create the store when missing (init); otherwise a missing store is NotFound. */
  create?: boolean;
}

/** A fleet and the feed that tells when other processes changed its store. */
export interface WatchedFleet {
  fleet: Fleet;
  changes: ChangeFeed;
}

export function openFleet(dir: string, opts: OpenFleetOptions = {}): Fleet {
  return openWatchedFleet(dir, opts).fleet;
}

export function openWatchedFleet(dir: string, opts: OpenFleetOptions = {}): WatchedFleet {
  const specFile = specPath(dir);
  if (!existsSync(specFile))
    throw new NotFound(`${specFile} not found: run "ovpn-fleet init --example" or pass --dir`);
  const storeFile = storePath(dir);
  if (!opts.create && !existsSync(storeFile))
    throw new NotFound(`${storeFile} not found: run "ovpn-fleet init" in ${dir}`);
  const spec = loadSpec(specFile);
  const store = new SqliteStore(storeFile);
  const fleet = new Fleet({
    dir,
    spec,
    store,
    clock: opts.clock ?? systemClock,
    actor: opts.actor ?? actorName(),
  });
  return { fleet, changes: store.changeFeed() };
}

/** Creates fleet.yaml (when given), the store, the CA, the tls-crypt key and server certs. */
export async function initFleet(
  dir: string,
  opts: { yaml?: string; clock?: Clock } = {},
): Promise<Fleet> {
  const specFile = specPath(dir);
  const yaml = opts.yaml ?? EXAMPLE_FLEET_YAML;
  if (existsSync(storePath(dir)))
    throw new Conflict(`${storePath(dir)} already exists: this directory already holds a fleet`);
  if (!existsSync(specFile)) {
    const v = parseSpecText(yaml);
    if (!v.spec) throw new SpecError(v.errors, specFile);
    // fleet.yaml holds routing keys and BGP passwords.
    writeFileAtomic(specFile, yaml, SPEC_FILE_MODE);
  }
  const fleet = openFleet(dir, { ...(opts.clock ? { clock: opts.clock } : {}), create: true });
  await fleet.ensurePki();
  return fleet;
}
