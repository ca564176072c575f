/** Commands over the whole fleet: validate, render, profile, groups, PKI status. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../../errors.js';
import { publishBundles, writeFileAtomic } from '../../sys/files.js';
import { readFileSync } from 'node:fs';
import { Fleet } from '../../service/fleet.js';
import { storeEngine } from '../../service/open.js';
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
      // With a store (fleet.db, or PostgreSQL named by the environment) the pools are checked too.
      if (storeEngine() === 'postgres' || existsSync(join(dir, 'fleet.db'))) {
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
    .command('renew [users...]')
    .description(
      "renew the named users' certificates if inside pki.renewBeforeDays; without names, run the controller's hourly lifecycle step once (renewals, server rotation, CA rollover/switch/retirement, CRLs)",
    )
    .option('--force', 'renew the named users whatever their window')
    .action(async (users: string[], opts: { force?: boolean }, cmd: Command) => {
      if (opts.force && !users.length)
        throw new InputError('--force', 'name the users to renew whatever their window');
      if (users.length) {
        const renewed = await withFleet(cmd, (f) => f.renewUserCerts(users, opts.force));
        say(
          renewed.length
            ? `renewed ${renewed.join(', ')}: their next profile carries the new certificate; the old one stays valid until it expires`
            : 'nothing to renew (no named user is inside the renewal window; --force renews anyway)',
        );
        return;
      }
      const r = await withFleet(cmd, (f) => f.maintainPki());
      for (const event of r.ca) say(`CA ${event}`);
      if (r.rotated.length)
        say(
          `new server certificates: ${r.rotated.join(', ')} (server.crt, server.key: loaded by a rolling restart)`,
        );
      say(`renewed ${r.renewed.length} user certificates`);
    });
  const ca = pki.command('ca').description('CA rollover: add the next CA, switch to it');
  ca.command('rollover')
    .description(
      'add the next CA: every server and every new profile trust it from now on; it signs after the switch',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const added = await withFleet(cmd, (f) => f.pki.rolloverCa());
      say(
        `added ${added.subject} (next): trusted from the next bundle; it signs after "pki ca switch" or pki.caSwitchAfterDays`,
      );
    });
  ca.command('switch')
    .description(
      'let the next CA sign new certificates now (after the servers restarted with the new ca.crt); the old CA retires once nothing it signed is valid',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const { from, to } = await withFleet(cmd, (f) => f.pki.switchCa());
      say(`${to.subject} signs from now on; ${from.subject} is retiring`);
    });
  pki
    .command('status')
    .description(
      'every CA (active, next, retiring, retired), server and user certificate with days left and renewal state, and each CRL',
    )
    .option('--all', 'also certificates that are revoked or expired and no longer in use')
    .option('--json', 'print JSON (every row)')
    .action(async (opts: { json?: boolean; all?: boolean }, cmd: Command) => {
      const rows = await withFleet(cmd, (f) => f.pkiStatus());
      if (opts.json) printJson(rows);
      else
        printTable(
          rows
            .filter(
              (r) => opts.all || r.current || (r.state !== 'revoked' && r.state !== 'EXPIRED'),
            )
            .map((r) => ({ ...r, note: r.note ?? '' })),
          ['kind', 'subject', 'issuer', 'notAfter', 'daysLeft', 'state', 'note'],
        );
    });
}
