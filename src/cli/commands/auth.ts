/** Connect-time authentication: the shared token secret and users' TOTP enrolment. */
import type { Command } from 'commander';
import { withFleet } from '../context.js';
import { printJson, say } from '../output.js';

export function registerAuth(program: Command): void {
  // `user totp …` sits with the other user commands (registered before this).
  const user = program.commands.find((c) => c.name() === 'user');
  if (!user) throw new Error('registerAuth: register the user commands first');
  const totp = user
    .command('totp')
    .description('TOTP second factor at connect (auth.totp in fleet.yaml)');
  totp
    .command('enroll <name>')
    .description(
      'new TOTP secret for the user (replacing any earlier one): prints the otpauth:// URI for the authenticator app and ten recovery codes, once; the first code confirms it',
    )
    .option('--json', 'print {uri, recoveryCodes} as JSON')
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const e = await withFleet(cmd, (f) => f.totp.enroll(name));
      if (opts.json) printJson(e);
      else {
        say(e.uri);
        say(`recovery codes for ${name} (each works once; shown only now):`);
        for (const c of e.recoveryCodes) say(`  ${c}`);
      }
    });
  totp
    .command('confirm <name> <code>')
    .description('confirm an enrolment with the code the app shows now')
    .action(async (name: string, code: string, _opts: unknown, cmd: Command) => {
      await withFleet(cmd, (f) => f.totp.confirm(name, code));
      say(`${name}'s TOTP is confirmed`);
    });
  totp
    .command('reset <name>')
    .description("remove the user's TOTP (a lost phone); enrol again afterwards")
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await withFleet(cmd, (f) => f.totp.reset(name));
      say(`${name}'s TOTP removed: enrol again with "user totp enroll ${name}"`);
    });

  const auth = program
    .command('auth')
    .description('connect-time authentication (auth in fleet.yaml): SSO, TOTP, roaming tokens');
  auth
    .command('rotate-token-secret')
    .description(
      'new auth-gen-token secret for every server: it reaches them in their bundles and takes effect as each restarts (a rollout); tokens made with the old one stop working there, so SSO and TOTP users sign in again at their next connect; certificate-only users notice nothing',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      await withFleet(cmd, (f) => f.secrets.rotateAuthTokenKey());
      say(
        'new auth-token secret stored: servers restart with it as their rollout reaches them; users with SSO or TOTP sign in again at their next connect',
      );
    });
}
