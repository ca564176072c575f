/**
 * `store`: moving and keeping the store. `store migrate --to postgres` copies fleet.db into the
 * empty PostgreSQL database named by OVPN_FLEET_DATABASE_URL (or a file named by
 * OVPN_FLEET_DATABASE_URL_FILE) and verifies it; `store backup FILE` is SQLite's online backup.
 * The connection string never comes from argv: every user on the host sees argv in `ps`.
 */
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { CopyMismatch, InputError } from '../../errors.js';
import { type CopyReport, backupStore, migrateStoreToPostgres } from '../../service/open.js';
import { fleetDir } from '../context.js';
import { printTable, say } from '../output.js';

function printReport(report: CopyReport): void {
  printTable(
    report.tables.map((t) => ({
      table: t.table,
      sqlite: t.source.rows,
      postgres: t.target.rows,
      'sqlite sha256': t.source.sha256.slice(0, 16),
      'postgres sha256': t.target.sha256.slice(0, 16),
      check: t.same ? 'same' : 'DIFFERS',
    })),
    ['table', 'sqlite', 'postgres', 'sqlite sha256', 'postgres sha256', 'check'],
  );
}

export function registerStore(program: Command): void {
  const store = program
    .command('store')
    .description('move the store to PostgreSQL, back up a SQLite store');

  store
    .command('migrate')
    .description(
      'copy fleet.db into the empty PostgreSQL database named by OVPN_FLEET_DATABASE_URL(_FILE), verify counts and digests',
    )
    .requiredOption('--to <engine>', 'the engine to move to: postgres')
    .action(async (opts: { to: string }, cmd: Command) => {
      if (opts.to.includes('://') || opts.to.includes('='))
        throw new InputError(
          '--to',
          'takes only the engine name (postgres): a connection string on the command line is visible to every user in ps; put it in OVPN_FLEET_DATABASE_URL or a file named by OVPN_FLEET_DATABASE_URL_FILE',
        );
      if (opts.to !== 'postgres')
        throw new InputError('--to', `${opts.to} is not an engine to move to: postgres`);
      const dir = fleetDir(cmd);
      try {
        const report = await migrateStoreToPostgres(dir);
        printReport(report);
        say(
          `copied ${resolve(dir, 'fleet.db')} into ${report.target}: every table the same; set OVPN_FLEET_DATABASE_URL for the controllers and the CLI`,
        );
      } catch (err) {
        const report = (err as { report?: CopyReport }).report;
        if (err instanceof CopyMismatch && report) printReport(report);
        throw err;
      }
    });

  store
    .command('backup <file>')
    .description('online backup of the SQLite store (fleet.db) into FILE (0600)')
    .option('--force', 'replace FILE when it exists')
    .action(async (file: string, opts: { force?: boolean }, cmd: Command) => {
      const result = await backupStore(fleetDir(cmd), resolve(file), {
        force: opts.force === true,
      });
      const rows = result.tables.reduce((n, t) => n + t.rows, 0);
      say(`backed up the store into ${result.file}: ${result.tables.length} tables, ${rows} rows`);
    });
}
