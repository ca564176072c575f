import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Fleet } from '../service/fleet.js';
import { openFleet } from '../service/open.js';

/** The fleet directory: --dir, else $OVPN_FLEET_DIR, else the current directory. */
export function fleetDir(cmd: Command): string {
  const opts = cmd.optsWithGlobals<{ dir?: string }>();
  return resolve(opts.dir ?? process.env.OVPN_FLEET_DIR ?? '.');
}

export async function withFleet<T>(cmd: Command, fn: (fleet: Fleet) => Promise<T> | T): Promise<T> {
  const fleet = await openFleet(fleetDir(cmd));
  try {
    return await fn(fleet);
  } finally {
    await fleet.close();
  }
}
