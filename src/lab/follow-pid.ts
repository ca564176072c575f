/**
 * A lab server's OpenVPN may not be the process the lab started: the agent restarts it fully
 * (a new pid in the same pid file) when management-client-auth changes. The lab's record is
 * followed to the process its pid file names, so status, `lab stop` and `lab down` reach it.
 */
import { readFileSync } from 'node:fs';
import { isAlive, readPidFile, track } from '../sys/proc.js';
import type { LabProcess } from './state.js';

/** The record itself while it lives; else the live OpenVPN its pid file names, if that is ours. */
export function followPidFile(p: LabProcess): LabProcess {
  if (p.kind !== 'openvpn-server' || !p.pidFile || isAlive(p)) return p;
  const pid = readPidFile(p.pidFile);
  const t = pid ? track(pid) : undefined;
  if (!t || !isAlive(t)) return p;
  // A recycled pid in a stale file is not ours: our OpenVPN was started with this pid file.
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${t.pid}/cmdline`, 'utf8');
  } catch {
    return p;
  }
  return cmdline.split('\0').includes(p.pidFile) ? { ...p, ...t } : p;
}
