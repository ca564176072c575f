#!/usr/bin/env node
/** ovpn-fleet command line. Commands are thin; errors become one line and an exit code. */
import { Command, CommanderError } from 'commander';
import { FleetError, SpecError } from '../errors.js';
import { EXIT_INTERNAL, describeError } from './exit-codes.js';
import { registerAdmins } from './commands/admin.js';
import { registerAgent } from './commands/agent.js';
import { registerAuth } from './commands/auth.js';
import { registerControllerCommands } from './commands/controller.js';
import { registerFleetCommands } from './commands/fleet.js';
import { registerInit } from './commands/init.js';
import { registerLab } from './commands/lab.js';
import { registerRollout } from './commands/rollout.js';
import { registerControllerSetup, registerServer } from './commands/server.js';
import { registerStore } from './commands/store.js';
import { registerUsers } from './commands/users.js';
import { escapeControl } from './output.js';
import { packageVersion } from './version.js';

export function buildProgram(): Command {
  const program = new Command('ovpn-fleet')
    .description('Routed multi-site OpenVPN cluster: users, addresses, PKI, configs, lab')
    .version(packageVersion(), '-V, --version', 'print the version of ovpn-fleet')
    .option('--dir <dir>', 'fleet directory (default: $OVPN_FLEET_DIR or the current directory)')
    .showHelpAfterError(false)
    .exitOverride();
  registerInit(program);
  registerUsers(program);
  registerAdmins(program);
  registerFleetCommands(program);
  registerLab(program);
  registerControllerCommands(program);
  registerRollout(program);
  registerAgent(program);
  registerServer(program);
  registerControllerSetup(program);
  registerStore(program);
  registerAuth(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its one line (or the help text).
      return err.exitCode === 0 ? 0 : 2;
    }
    const { line, exitCode } = describeError(err);
    process.stderr.write(`ovpn-fleet: ${printableError(err, line)}\n`);
    return exitCode;
  }
}

/**
 * Messages carry names and values from argv, the store or the controller. Line breaks are
 * kept only where they are the message's own: between a spec's issues, in a stack trace.
 */
function printableError(err: unknown, line: string): string {
  if (err instanceof SpecError)
    return err.issues.map((i) => escapeControl(`${err.file}: ${i.path}: ${i.message}`)).join('\n');
  if (err instanceof FleetError) return escapeControl(line);
  return line.split('\n').map(escapeControl).join('\n');
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`ovpn-fleet: internal error: ${escapeControl(String(err))}\n`);
    process.exitCode = EXIT_INTERNAL;
  },
);
