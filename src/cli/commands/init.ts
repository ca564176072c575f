import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { InputError } from '../../errors.js';
import { initFleet } from '../../service/open.js';
import { fleetDir } from '../context.js';
import { say } from '../output.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create fleet.yaml (with --example), the store, the CA and server certificates')
    .option('--example', 'write the commented example fleet (three sites, six servers)')
    .option('--from <file>', 'copy this fleet.yaml instead of the example')
    .action(async (opts: { example?: boolean; from?: string }, cmd: Command) => {
      const dir = fleetDir(cmd);
      if (opts.example && opts.from)
        throw new InputError('--from', 'use either --example or --from, not both');
      const yaml = opts.from ? readFileSync(opts.from, 'utf8') : undefined;
      const fleet = await initFleet(dir, yaml !== undefined ? { yaml } : {});
      const servers = fleet.spec.sites.reduce((n, s) => n + s.servers.length, 0);
      await fleet.close();
      say(
        `initialised fleet "${fleet.spec.fleet}" in ${dir}: ${fleet.spec.sites.length} sites, ${servers} servers, CA and server certificates created`,
      );
    });
}
