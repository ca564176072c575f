/**
 * What every service of a fleet works on: its directory, its validated spec, its store, the
 * clock and the name the audit log gives to this caller. Services hold no other state, so a
 * reloaded fleet.yaml is a new context over the same store.
 */
import { userInfo } from 'node:os';
import { mustParsePrefix } from '../core/ip.js';
import type { FleetSpec } from '../spec/schema.js';
import type { FleetStore, Pools } from '../store/types.js';
import type { Clock } from '../sys/time.js';

export { type Clock, systemClock } from '../sys/time.js';

/** Who the audit log names for changes made from this process by default. */
export function actorName(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export interface ServiceContext {
  readonly dir: string;
  readonly spec: FleetSpec;
  readonly store: FleetStore;
  readonly clock: Clock;
  readonly actor: string;
}

export function poolsOf(spec: FleetSpec): Pools {
  return {
    ipv4: mustParsePrefix(spec.pools.ipv4),
    ipv6: mustParsePrefix(spec.pools.ipv6),
    quarantineDays: spec.pools.quarantineDays,
  };
}

/** Every server of fleet.yaml, in file order. */
export function serverNamesOf(spec: FleetSpec): string[] {
  return spec.sites.flatMap((site) => site.servers.map((s) => s.name));
}

/**
 * The PKI pulls in @peculiar/x509, which takes ~0.2 s to load: only commands that sign or read
 * certificates pay for it (`user list`, `lab status` and friends stay quick).
 */
export const loadPki = () => import('../core/pki.js');
