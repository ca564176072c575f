/** Commands over the whole fleet: validate, render, profile, groups, PKI status. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../../errors.js';
import { publishBundles, writeFileAtomic } from '../../sys/files.js';
import { readFileSync } from 'node:fs';
import { Fleet } from '../../service/fleet.js';
import { fleetDir, withFleet } from '../context.js';
import { baseDirOf, parseBaseDir } from '../options.js';
import { printJson, printTable, say, warn } from '../output.js';
import { parseSpecText } from '../../spec/validate.js';

export function registerFleetCommands(program: Command): void {
  program
    .command('validate')
    .description('check fleet.yaml (and that the pools hold every user); prints every problem')
    .option('--json', 'print {errors, warnings} as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const dir = fleetDir(cmd);
      const path = Fleet.specPath(dir);
      let v;
      if (existsSync(join(dir, 'fleet.db'))) {
        v = await withFleet(cmd, (f) => f.validate());
      } else {
        let text: string;
        try {
          text = readFileSync(path, 'utf8');
        } catch (err) {
          throw new InputError(
            path,
            `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
          );
        }
        v = parseSpecText(text);
      }
      if (opts.json) printJson({ errors: v.errors, warnings: v.warnings });
      else {
        for (const e of v.errors) warn(`${path}: ${e.path}: ${e.message}`);
        for (const w of v.warnings) warn(`${path}: warning: ${w.path}: ${w.message}`);
        if (!v.errors.length) say(`${path}: ok`);
      }
      if (v.errors.length) process.exitCode = 2;
    });

  program
    .command('render')
    .description(
      "write every server's files (OpenVPN, ccd, CRL, hooks, FRR, nftables, sysctl) to one folder each",
    )
    .requiredOption('--out <dir>', 'output directory')
    .option(
      '--base <dir>',
      'where the bundle will live on the servers; {server} is replaced by the server name',
      '/etc/ovpn-fleet',
    )
    .option('--server <name>', 'only this server')
    .action(async (opts: { out: string; base: string; server?: string }, cmd: Command) => {
      const out = resolve(opts.out);
      const base = parseBaseDir(opts.base);
      const bundles = await withFleet(cmd, (f) =>
        f.bundlesFor((server) => baseDirOf(base, server)),
      );
      const chosen = opts.server ? bundles.filter((b) => b.server === opts.server) : bundles;
      if (opts.server && chosen.length === 0)
        throw new InputError('--server', `no server named ${opts.server}`);
      await publishBundles(out, chosen);
      for (const b of chosen) {
        say(`${b.server}: ${b.files.length} files, digest ${b.digest.slice(0, 12)}`);
      }
    });

  program
    .command('profile <user>')
    .description(
      "write the user's client profile (.ovpn) with inline CA, certificate, key and tls-crypt key",
    )
    .option('-o, --out <file>', 'write here (mode 0600) instead of standard output')
    .action(async (user: string, opts: { out?: string }, cmd: Command) => {
      const text = await withFleet(cmd, (f) => f.profile(user, { audit: true }));
      if (opts.out) writeFileAtomic(resolve(opts.out), text, 0o600);
      else process.stdout.write(text);
    });

  const group = program
    .command('group')
    .description('groups (declared in fleet.yaml, used by the policy)');
  group
    .command('add <name>')
    .description('add a group to fleet.yaml (comments are kept)')
    .option('--description <text>', 'what the group is for')
    .action(async (name: string, opts: { description?: string }, cmd: Command) => {
      await withFleet(cmd, (f) => f.addGroup(name, opts.description));
      say(`added group ${name}`);
    });
  group
    .command('list')
    .description('list groups with their member counts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const groups = await withFleet(cmd, (f) => f.listGroups());
      if (opts.json) printJson(groups);
      else printTable(groups, ['name', 'members', 'description']);
    });

  const pki = program.command('pki').description('certificates and CRL');
  pki
    .command('issue [users...]')
    .description('issue client certificates now (default: every enabled user without one)')
    .action(async (users: string[], _opts: unknown, cmd: Command) => {
      const n = await withFleet(cmd, (f) => f.issueMissingCerts(users.length ? users : undefined));
      say(`issued ${n} certificates`);
    });
  pki
    .command('status')
    .description('expiry of the CA, server and user certificates and of the CRL')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const rows = await withFleet(cmd, (f) => f.pkiStatus());
      if (opts.json) printJson(rows);
      else printTable(rows, ['kind', 'subject', 'notAfter', 'daysLeft', 'state']);
    });
}
