/**
 * `admin add|list|remove|passwd|role`: the accounts that sign in to the console (and call the
 * API with a session). They write the store directly, like the user commands; a running
 * controller sees a removed or changed account at its next request, since every request reads
 * its session from the store.
 */
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import type { PasswordSet } from '../../service/admins.js';
import { withFleet } from '../context.js';
import { printJson, printTable, say } from '../output.js';

const ADMIN_COLUMNS = [
  'name',
  'role',
  'mustChangePassword',
  'createdAt',
  'passwordChangedAt',
] as const;
const ROLES_HELP =
  'viewer (reads everything), operator (also sessions and drain), admin (everything)';
/** Far more than any password (1,024 characters at most): stops a stray pipe of a large file. */
const STDIN_LIMIT = 64 * 1024;

/** The password on standard input: everything up to EOF, less one trailing line break. */
async function passwordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > STDIN_LIMIT)
      throw new InputError('--password-stdin', `more than ${STDIN_LIMIT} bytes on standard input`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (!text) throw new InputError('--password-stdin', 'no password on standard input');
  return text;
}

function reportPassword(verb: string, set: PasswordSet, json: boolean | undefined): void {
  const { admin, oneTimePassword } = set;
  if (json) {
    printJson({ ...admin, ...(oneTimePassword ? { oneTimePassword } : {}) });
    return;
  }
  say(`${verb} admin ${admin.name} (${admin.role})`);
  if (oneTimePassword)
    say(
      `one-time password (shown only now; to be changed at the first sign-in): ${oneTimePassword}`,
    );
}

export function registerAdmins(program: Command): void {
  const admin = program
    .command('admin')
    .description('manage the admin accounts of the console and the API');

  admin
    .command('add <name>')
    .description('add an admin account; without --password-stdin a one-time password is printed')
    .requiredOption('--role <role>', ROLES_HELP)
    .option('--password-stdin', 'read the password from standard input (at least 12 characters)')
    .option('--json', 'print the account (and any one-time password) as JSON')
    .action(
      async (
        name: string,
        opts: { role: string; passwordStdin?: boolean; json?: boolean },
        cmd: Command,
      ) => {
        const password = opts.passwordStdin ? await passwordFromStdin() : undefined;
        const set = await withFleet(cmd, (f) => f.admins.add(name, opts.role, password));
        reportPassword('added', set, opts.json);
      },
    );

  admin
    .command('list')
    .description('list admin accounts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const admins = await withFleet(cmd, (f) => f.admins.list());
      if (opts.json) printJson(admins);
      else printTable(admins, [...ADMIN_COLUMNS]);
    });

  admin
    .command('remove <name>')
    .description('remove an admin account; its console sessions end at once')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const a = await withFleet(cmd, (f) => f.admins.remove(name));
      say(`removed admin ${a.name} (${a.role})`);
    });

  admin
    .command('passwd <name>')
    .description(
      "set an admin's password (ends its sessions); without --password-stdin a one-time password is printed",
    )
    .option('--password-stdin', 'read the password from standard input (at least 12 characters)')
    .option('--json', 'print the account (and any one-time password) as JSON')
    .action(
      async (name: string, opts: { passwordStdin?: boolean; json?: boolean }, cmd: Command) => {
        const password = opts.passwordStdin ? await passwordFromStdin() : undefined;
        const set = await withFleet(cmd, (f) => f.admins.setPassword(name, password));
        reportPassword('new password for', set, opts.json);
      },
    );

  admin
    .command('role <name> <role>')
    .description(`change an admin's role (ends its sessions): ${ROLES_HELP}`)
    .action(async (name: string, role: string, _opts: unknown, cmd: Command) => {
      const a = await withFleet(cmd, (f) => f.admins.setRole(name, role));
      say(`${a.name}: ${a.role}`);
    });
}
