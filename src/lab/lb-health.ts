/**
 * Health loop of the lab's load balancers: a member whose OpenVPN process is gone is taken out
 * of the DNAT map at once, and the balancer's conntrack entries towards it are dropped so the
 * next packet of each flow is hashed onto a live server. (The agent's health endpoint will
 * replace the process check.) Usage: node lb-health.js LAB_DIR
 */
import { run } from '../sys/exec.js';
import { isAlive } from '../sys/proc.js';
import { renderLbRuleset } from './lb.js';
import { loadState } from './state.js';

const dir = process.argv[2];
const current = new Map<string, string>();
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});

async function tick(): Promise<void> {
  const state = loadState(dir);
  if (!state?.plan) return;
  for (const lb of state.plan.loadBalancers) {
    const healthy = lb.members.filter((m) => {
      const server = state.plan!.servers.find((s) => s.name === m.server)!;
      const p = state.processes.find((q) => q.id === `${server.ns}/openvpn`);
      return p !== undefined && isAlive(p);
    });
    const key = healthy.map((m) => m.address).join(',');
    if (current.get(lb.ns) === key) continue;
    const all = lb.members.map((m) => m.address);
    await run(['nft', '-f', '-'], {
      netns: lb.ns,
      input: renderLbRuleset(
        lb,
        healthy.map((m) => m.address),
        state.port,
        all,
      ),
    });
    for (const m of lb.members.filter((x) => !healthy.includes(x))) {
      await run(['conntrack', '-D', '--reply-src', m.address], {
        netns: lb.ns,
        allowFailure: true,
      });
    }
    process.stdout.write(`${new Date().toISOString()} ${lb.site}: healthy ${key || 'none'}\n`);
    current.set(lb.ns, key);
  }
}

async function loop(): Promise<void> {
  while (!stopping) {
    try {
      await tick();
    } catch (err) {
      process.stderr.write(`${new Date().toISOString()} ${String(err)}\n`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
void loop();
