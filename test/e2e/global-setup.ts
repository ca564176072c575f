/**
 * Before the end-to-end files run under CI: a run that was interrupted (a killed job, a stopped
 * session) leaves its labs behind, and the next `lab up` of the same prefix refuses to start on
 * them. Every e2e lab prefix is "ovf" and one letter; labs of those prefixes are removed here,
 * with one line each, so one interrupted run does not fail the next. No other prefix is touched.
 *
 * Only under CI=true, where the machine runs one test line at a time: on a developer's machine
 * the same namespaces may belong to an e2e file running in another terminal, so there the lab
 * up's own message ("run lab down --prefix …") leaves the choice to the person.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, listNamespaces } from '../../src/lab/lab.js';

const E2E_PREFIX = /^(ovf[a-z])-/;

export default async function setup(): Promise<void> {
  if (process.env.CI !== 'true' || process.getuid?.() !== 0) return;
  const prefixes = new Set<string>();
  for (const ns of await listNamespaces()) {
    const m = E2E_PREFIX.exec(ns);
    if (m) prefixes.add(m[1]);
  }
  if (prefixes.size === 0) return;
  // The interrupted run's fleet directories may be gone: Lab.down finds the processes by namespace.
  const empty = mkdtempSync(join(tmpdir(), 'ovpn-fleet-e2e-stale-'));
  try {
    for (const prefix of prefixes)
      await Lab.down(empty, prefix, (l) => console.log(`stale lab of an interrupted run: ${l}`));
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
}
