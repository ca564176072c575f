/**
 * `rollout`: restart OpenVPN on the servers one at a time, through the controller (see
 * src/controller/rollout.ts). `rollout start` (the default), `status`, `stop`, `resume`, `abort`.
 */
import type { Command } from 'commander';
import type { RolloutView } from '../../api/index.js';
import { InputError, Timeout } from '../../errors.js';
import { sleep } from '../../sys/time.js';
import { fleetDir } from '../context.js';
import { collectControllers } from '../options.js';
import { printJson, printTable, say } from '../output.js';
import { CA_HELP, CONTROLLER_HELP, type ControllerOptions, clientFor } from './controller.js';

interface StartOptions extends ControllerOptions {
  all?: boolean;
  allAtOnce?: boolean;
  wait?: boolean;
  timeout: string;
  json?: boolean;
}

function printRollout(r: RolloutView): void {
  say(
    `rollout ${r.id} (${r.strategy}) ${r.status}, started by ${r.startedBy} at ${r.startedAt}${r.detail ? `: ${r.detail}` : ''}`,
  );
  printTable(
    r.steps.map((s) => ({
      server: s.server,
      state: s.state,
      since: s.since ?? '',
      generation: s.generation ?? '',
      detail: s.detail ?? '',
    })),
    ['server', 'state', 'since', 'generation', 'detail'],
  );
}

/** Until the rollout is no longer running; says each server's step as it changes. */
async function follow(
  client: ReturnType<typeof clientFor>,
  id: number,
  timeoutS: number,
): Promise<RolloutView> {
  const started = Date.now();
  const seen = new Map<string, string>();
  for (;;) {
    const { rollout } = await client.rollout();
    if (!rollout || rollout.id !== id) throw new InputError('rollout', `rollout ${id} is gone`);
    for (const s of rollout.steps) {
      const key = `${s.state}${s.detail ?? ''}`;
      if (seen.get(s.server) === key) continue;
      seen.set(s.server, key);
      if (s.state !== 'waiting') say(`${s.server}: ${s.state}${s.detail ? ` (${s.detail})` : ''}`);
    }
    if (rollout.status !== 'running') return rollout;
    if (Date.now() - started > timeoutS * 1000)
      throw new Timeout(`rollout ${id} still running after ${timeoutS} s (it goes on)`);
    await sleep(250);
  }
}

export function registerRollout(program: Command): void {
  const rollout = program
    .command('rollout')
    .description(
      'restart OpenVPN on the servers one at a time (drain, restart, health, undrain): start, status, stop, resume, abort',
    );

  rollout
    .command('start', { isDefault: true })
    .description(
      'start a rollout of the pending change (server.conf, server certificate, CA, tls-crypt key)',
    )
    .option('--all', 'restart every server, not only those with a pending change')
    .option('--all-at-once', 'every server at once, no drain: every user drops (for comparison)')
    .option('--no-wait', 'return once the controller has started it')
    .option('--timeout <seconds>', 'stop waiting (the rollout goes on) after this long', '1800')
    .option('--json', 'print the rollout as JSON when it ends')
    .option('--controller <where>', CONTROLLER_HELP, collectControllers)
    .option('--ca <file>', CA_HELP)
    .action(async (opts: StartOptions, cmd: Command) => {
      const timeout = Number(opts.timeout);
      if (!Number.isFinite(timeout) || timeout <= 0)
        throw new InputError('--timeout', 'must be a positive number of seconds');
      const client = clientFor(fleetDir(cmd), opts);
      let r = await client.startRollout({
        ...(opts.allAtOnce ? { strategy: 'all-at-once' as const } : {}),
        ...(opts.all ? { all: true } : {}),
      });
      if (opts.wait !== false) r = await follow(client, r.id, timeout);
      if (opts.json) printJson(r);
      else printRollout(r);
      if (r.status === 'failed')
        throw new InputError(
          'rollout',
          `rollout ${r.id} failed: ${r.detail ?? 'see rollout status'}`,
        );
    });

  rollout
    .command('status')
    .description('the latest rollout, step by step, and the servers waiting for a restart')
    .option('--json', 'print {rollout, pending} as JSON')
    .option('--controller <where>', CONTROLLER_HELP, collectControllers)
    .option('--ca <file>', CA_HELP)
    .action(async (opts: ControllerOptions & { json?: boolean }, cmd: Command) => {
      const status = await clientFor(fleetDir(cmd), opts).rollout();
      if (opts.json) return printJson(status);
      if (status.rollout) printRollout(status.rollout);
      else say('no rollout yet');
      say(`waiting for a restart: ${status.pending.join(', ') || 'none'}`);
    });

  for (const [name, command, description] of [
    ['stop', 'pause', 'finish the server in progress, start no next one (resume goes on)'],
    ['resume', 'resume', 'go on with a stopped rollout, or try its failed server again'],
    ['abort', 'abort', 'end the rollout: servers it drained take users again'],
  ] as const) {
    rollout
      .command(name)
      .description(description)
      .option('--controller <where>', CONTROLLER_HELP, collectControllers)
      .option('--ca <file>', CA_HELP)
      .action(async (opts: ControllerOptions, cmd: Command) => {
        printRollout(await clientFor(fleetDir(cmd), opts).rolloutCommand(command));
      });
  }
}
