/**
 * Health loop of the lab's load balancers: a member whose OpenVPN process is gone is taken out
 * of the DNAT map at once, and the balancer's conntrack entries towards it are dropped so the
 * next packet of each flow is hashed onto a live server. (The agent's health endpoint will
 * replace the process check.) Usage: node lb-health.js LAB_DIR
 */
import { run } from '../sys/exec.js';
import { isAlive } from '../sys/proc.js';
import { renderLbRuleset } from './lb.js';
import { type LabState, loadState } from './state.js';
import { ControllerClient } from '../client/client.js';
import { join } from 'node:path';

const dir = process.argv[2];
const current = new Map<string, string>();
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});

/** The agents' last answers: asked at most once a second, while OpenVPN is checked every tick. */
const agentAnswers = new Map<string, { at: number; healthy: boolean }>();
const AGENT_EVERY_MS = 1000;

/**
 * A member takes new clients when its agent says so (OpenVPN, routing and ruleset up, not
 * draining). Without an answer from the agent (none runs, or it is down) the check falls back
 * to "is OpenVPN running": an agent restart must not move anybody. A dead OpenVPN is seen at
 * the next 250 ms tick; the agent's view (drain, routing, ruleset) is asked once a second, as a
 * real balancer's health check would, so that six agents are not woken 16 times a second.
 */
async function memberState(
  state: LabState,
  server: string,
): Promise<{ takesNew: boolean; dead: boolean }> {
  const s = state.plan!.servers.find((x) => x.name === server)!;
  const p = state.processes.find((q) => q.id === `${s.ns}/openvpn`);
  const dead = p === undefined || !isAlive(p);
  if (dead) {
    agentAnswers.delete(server);
    return { takesNew: false, dead };
  }
  if (state.controlPlane) {
    const last = agentAnswers.get(server);
    if (last && Date.now() - last.at < AGENT_EVERY_MS) return { takesNew: last.healthy, dead };
    try {
      const sock = join(state.dir, 'servers', server, 'run', 'agent.sock');
      const r = await new ControllerClient({ kind: 'unix', path: sock }, '', 500).raw(
        'GET',
        '/health',
      );
      agentAnswers.set(server, { at: Date.now(), healthy: r.status === 200 });
      return { takesNew: r.status === 200, dead };
    } catch {
      agentAnswers.delete(server);
      // fall through to the process check
    }
  }
  return { takesNew: true, dead };
}

async function tick(): Promise<void> {
  const state = loadState(dir);
  if (!state?.plan) return;
  for (const lb of state.plan.loadBalancers) {
    const states = await Promise.all(lb.members.map((m) => memberState(state, m.server)));
    const healthy = lb.members.filter((_, i) => states[i].takesNew);
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
    // Flows to a dead server are forgotten so their next packet is hashed onto a live one; a
    // draining server keeps its flows until its agent has moved the clients.
    for (const [i, m] of lb.members.entries()) {
      if (!states[i].dead) continue;
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
