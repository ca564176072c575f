/**
 * Where nothing supervises OpenVPN (the lab: no systemd in a network namespace), the agent is
 * told how to start it: a JSON argv in a file (`agent --openvpn-start-argv-file FILE`). It needs
 * that for a full restart, which a change of management-client-auth takes (see agent.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';

const FLAG = '--openvpn-start-argv-file';

/** Where the lab writes a server's start argv: next to its files, out of the bundle's way. */
export function openvpnStartArgvPath(serverDir: string): string {
  return join(serverDir, 'run', 'openvpn-start.json');
}

/** The file's argv: a non-empty JSON array of non-empty strings, else one line saying so. */
export function parseOpenvpnStartArgv(text: string, file: string): string[] {
  let argv: unknown;
  try {
    argv = JSON.parse(text);
  } catch {
    argv = undefined;
  }
  if (
    !Array.isArray(argv) ||
    argv.length === 0 ||
    !argv.every((a) => typeof a === 'string' && a !== '' && !a.includes('\0'))
  )
    throw new InputError(
      FLAG,
      `${file} must hold OpenVPN's command line as a JSON array of non-empty strings, e.g. ["openvpn","--config","server.conf","--daemon"]`,
    );
  return argv as string[];
}

export function readOpenvpnStartArgv(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(
      FLAG,
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  return parseOpenvpnStartArgv(text, file);
}
