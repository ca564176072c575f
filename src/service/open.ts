/**
 * The composition root of the service layer: the only place that knows which store
 * implementation backs a fleet directory. Everything else sees FleetStore and ChangeFeed.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Conflict, NotFound, SpecError } from '../errors.js';
import { EXAMPLE_FLEET_YAML } from '../spec/example.js';
import { loadSpec, parseSpecText } from '../spec/validate.js';
import { SqliteStore } from '../store/sqlite.js';
import type { ChangeFeed } from '../store/types.js';
import { writeFileAtomic } from '../sys/files.js';
import { type Clock, Fleet, SPEC_FILE_MODE, STORE_FILE, actorName, systemClock } from './fleet.js';

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
  const specPath = Fleet.specPath(dir);
  if (!existsSync(specPath))
    throw new NotFound(`${specPath} not found: run "ovpn-fleet init --example" or pass --dir`);
  const storePath = join(dir, STORE_FILE);
  if (!opts.create && !existsSync(storePath))
    throw new NotFound(`${storePath} not found: run "ovpn-fleet init" in ${dir}`);
  const spec = loadSpec(specPath);
  const store = new SqliteStore(storePath);
  const fleet = new Fleet(dir, spec, store, opts.clock ?? systemClock, opts.actor ?? actorName());
  return { fleet, changes: store.changeFeed() };
}

/** Creates fleet.yaml (when given), the store, the CA, the tls-crypt key and server certs. */
export async function initFleet(
  dir: string,
  opts: { yaml?: string; clock?: Clock } = {},
): Promise<Fleet> {
  const specPath = Fleet.specPath(dir);
  const yaml = opts.yaml ?? EXAMPLE_FLEET_YAML;
  if (existsSync(join(dir, STORE_FILE)))
    throw new Conflict(
      `${join(dir, STORE_FILE)} already exists: this directory already holds a fleet`,
    );
  if (!existsSync(specPath)) {
    const v = parseSpecText(yaml);
    if (!v.spec) throw new SpecError(v.errors, specPath);
    // fleet.yaml holds routing keys and BGP passwords.
    writeFileAtomic(specPath, yaml, SPEC_FILE_MODE);
  }
  const fleet = openFleet(dir, { ...(opts.clock ? { clock: opts.clock } : {}), create: true });
  await fleet.ensurePki();
  return fleet;
}
