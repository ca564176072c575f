import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { track } from '../sys/proc.js';
import { followPidFile } from './follow-pid.js';
import type { LabProcess } from './state.js';

const started: number[] = [];
let dir: string;

/** A live process whose argv holds `arg` (as OpenVPN's holds --writepid FILE). */
function processWith(arg: string): number {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)', arg], {
    stdio: 'ignore',
  });
  if (child.pid === undefined) throw new Error('no pid');
  started.push(child.pid);
  return child.pid;
}

/** A record of an OpenVPN that is gone (the agent restarted it fully). */
function goneRecord(pidFile: string): LabProcess {
  return {
    id: 'l-s1/openvpn',
    kind: 'openvpn-server',
    ns: 'l-s1',
    pid: 1,
    startTime: 'x',
    pidFile,
  };
}

afterEach(() => {
  for (const pid of started.splice(0)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { force: true, recursive: true });
});

describe("the lab follows a server's OpenVPN to the pid its pid file names", () => {
  it('takes the new process started with that pid file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'follow-pid-'));
    const pidFile = join(dir, 'openvpn.pid');
    const pid = processWith(pidFile);
    writeFileSync(pidFile, `${pid}\n`);
    await new Promise((r) => setTimeout(r, 200)); // its cmdline is node's own until exec
    expect(followPidFile(goneRecord(pidFile))).toMatchObject({ pid, ...track(pid) });
  });

  it('leaves the record alone when the pid names a process that is not ours', () => {
    dir = mkdtempSync(join(tmpdir(), 'follow-pid-'));
    const pidFile = join(dir, 'openvpn.pid');
    const other = processWith('something-else');
    writeFileSync(pidFile, `${other}\n`);
    expect(followPidFile(goneRecord(pidFile)).pid).toBe(1);
  });
});
