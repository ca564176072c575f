/** Connect-time authentication: the shared token secret and users' TOTP enrolment. */
import type { Command } from 'commander';
import { withFleet } from '../context.js';
import { say } from '../output.js';

export function registerAuth(program: Command): void {
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
