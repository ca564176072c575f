import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { InputError } from '../../errors.js';
import type { UserCertificate } from '../../service/fleet.js';
import type { User, UserStatus } from '../../store/types.js';
import { withFleet } from '../context.js';
import { printJson, printTable, say } from '../output.js';

const collect = (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)];
const USER_COLUMNS = ['name', 'ipv4', 'ipv6', 'groups', 'status'] as const;

export function publicUser(u: User) {
  return {
    name: u.name,
    ipv4: u.ipv4,
    ipv6: u.ipv6,
    groups: u.groups,
    status: u.status,
    createdAt: u.createdAt,
    certSerial: u.certSerial,
    certNotAfter: u.certNotAfter,
  };
}

/** What `user show` tells about the certificate: expiry, renewal, a new profile waiting. */
export function certificateLines(name: string, cert: UserCertificate | undefined): string[] {
  if (!cert) return [];
  const expiry = `${cert.notAfter} (${cert.daysLeft < 0 ? 'EXPIRED' : `${cert.daysLeft} days left`})`;
  const lines = [`${'certExpires'.padEnd(13)} ${expiry}`];
  if (cert.issuer) lines.push(`${'certIssuer'.padEnd(13)} ${cert.issuer}`);
  if (cert.renewalDue)
    lines.push(`${'renewal'.padEnd(13)} due: the controller renews it within the hour`);
  if (cert.newProfileAvailable) {
    const until = cert.previous.map((p) => p.notAfter).sort()[0];
    lines.push(
      `${'newProfile'.padEnd(13)} available: download it ("ovpn-fleet profile ${name}"); the current profile works until ${until}`,
    );
  }
  return lines;
}

export function registerUsers(program: Command): void {
  const user = program.command('user').description('manage users');

  user
    .command('add <name>')
    .description('add a user with stable IPv4/IPv6 addresses and a client certificate')
    .option('-g, --group <group>', 'group membership (repeatable, or comma-separated)', collect, [])
    .option('--ipv4 <address>', 'pin this IPv4 address (must be free and in the pool)')
    .option('--ipv6 <address>', 'pin this IPv6 address (must be free and in the pool)')
    .option('--json', 'print the user as JSON')
    .action(
      async (
        name: string,
        opts: { group: string[]; ipv4?: string; ipv6?: string; json?: boolean },
        cmd: Command,
      ) => {
        const [u] = await withFleet(cmd, (f) =>
          f.addUsers([
            {
              name,
              groups: opts.group,
              ...(opts.ipv4 ? { ipv4: opts.ipv4 } : {}),
              ...(opts.ipv6 ? { ipv6: opts.ipv6 } : {}),
            },
          ]),
        );
        if (opts.json) printJson(publicUser(u));
        else
          say(
            `added ${u.name}: ${u.ipv4} ${u.ipv6}${u.groups.length ? ` groups ${u.groups.join(',')}` : ''}`,
          );
      },
    );

  user
    .command('import <file>')
    .description(
      'add users from a CSV file "name,groups" (groups separated by ";"); all or nothing',
    )
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new InputError(
          file,
          `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        );
      }
      const users = await withFleet(cmd, (f) => f.importCsv(text, file));
      say(
        `imported ${users.length} users (certificates are issued with each first profile, or now with "ovpn-fleet pki issue")`,
      );
    });

  user
    .command('list')
    .description('list users')
    .option('--json', 'print JSON')
    .option('--group <group>', 'only members of this group')
    .action(async (opts: { json?: boolean; group?: string }, cmd: Command) => {
      let users = await withFleet(cmd, (f) => f.listUsers());
      if (opts.group) users = users.filter((u) => u.groups.includes(opts.group!));
      if (opts.json) printJson(users.map(publicUser));
      else printTable(users.map(publicUser), [...USER_COLUMNS]);
    });

  user
    .command('show <name>')
    .description('show one user')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const { u, cert } = await withFleet(cmd, async (f) => ({
        u: await f.getUser(name),
        cert: await f.userCertificate(name),
      }));
      if (opts.json) printJson({ ...publicUser(u), ...(cert ? { certificate: cert } : {}) });
      else {
        for (const [k, v] of Object.entries(publicUser(u)))
          say(`${k.padEnd(13)} ${Array.isArray(v) ? v.join(',') || '-' : (v ?? '-')}`);
        for (const line of certificateLines(name, cert)) say(line);
      }
    });

  user
    .command('history <name>')
    .description(
      "the user's location history: each session's server, real address, from, until, bytes and why it ended, newest first",
    )
    .option('--limit <n>', 'how many sessions, 1-9999', '100')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { limit: string; json?: boolean }, cmd: Command) => {
      if (!/^[1-9][0-9]{0,3}$/.test(opts.limit))
        throw new InputError('--limit', `"${opts.limit}" is not a number from 1 to 9999`);
      const rows = (await withFleet(cmd, (f) => f.userHistory(name, Number(opts.limit)))).map(
        (h) => ({
          server: h.server,
          realAddress: h.realAddress,
          ipv4: h.ipv4 ?? null,
          ipv6: h.ipv6 ?? null,
          since: h.since,
          until: h.until ?? null,
          bytesIn: h.bytesIn,
          bytesOut: h.bytesOut,
          reason: h.reason ?? null,
        }),
      );
      if (opts.json) printJson(rows);
      else
        printTable(
          rows.map((r) => ({ ...r, until: r.until ?? 'live' })),
          ['server', 'realAddress', 'since', 'until', 'bytesIn', 'bytesOut', 'reason'],
        );
    });

  user
    .command('groups <name>')
    .description("replace a user's groups")
    .option('-g, --group <group>', 'group (repeatable, or comma-separated)', collect, [])
    .action(async (name: string, opts: { group: string[] }, cmd: Command) => {
      const u = await withFleet(cmd, (f) => f.setGroups(name, opts.group));
      say(`${u.name}: groups ${u.groups.join(',') || '-'}`);
    });

  const status: [string, UserStatus, string][] = [
    [
      'disable',
      'disabled',
      "refuse the user's connections until enabled again (no ccd file is rendered)",
    ],
    ['enable', 'enabled', 'allow a disabled user again'],
    ['revoke', 'revoked', "revoke the user's certificate (CRL) for good"],
  ];
  for (const [verb, target, description] of status) {
    user
      .command(`${verb} <name>`)
      .description(description)
      .action(async (name: string, _opts: unknown, cmd: Command) => {
        const u = await withFleet(cmd, (f) => f.setStatus(name, target));
        say(`${u.name}: ${u.status}`);
      });
  }

  user
    .command('delete <name>')
    .description('delete the user; the certificate is revoked and the addresses stay quarantined')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const u = await withFleet(cmd, async (f) => ({
        user: await f.deleteUser(name),
        days: f.spec.pools.quarantineDays,
      }));
      say(
        `deleted ${u.user.name}; ${u.user.ipv4} and ${u.user.ipv6} are quarantined for ${u.days} days`,
      );
    });
}
