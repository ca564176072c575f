/** The machine and the versions a lab benchmark ran on (for its report). */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import type { Machine } from './lab-report.js';

export function firstLine(argv: string[]): string {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n')[0].trim() || 'unknown';
}

/** `vtysh --version` where vtysh knows it; this Debian build does not, zebra does. */
export function frrVersion(): string {
  const v = firstLine(['vtysh', '--version']);
  return /unrecognized|invalid|unknown/i.test(v)
    ? firstLine(['/usr/lib/frr/zebra', '--version'])
    : v;
}

export function machine(): Machine {
  return {
    nproc: os.cpus().length,
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    openvpn: firstLine(['openvpn', '--version']),
    frr: frrVersion(),
  };
}
