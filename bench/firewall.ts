/**
 * Figure 9 of the lab benchmark: our set-based nftables ruleset against a per-user linear one
 * of the same policy — rule count and `nft -f` time at 800, 10,000 and 100,000 users, and
 * forwarding throughput (iperf3 through a namespace that carries the ruleset).
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compilePolicy, type PolicyMember } from '../src/core/policy.js';
import { renderNftables } from '../src/render/nftables.js';
import { serverContexts } from '../src/render/bundle.js';
import { DEFAULT_RENDER_OPTIONS } from '../src/render/types.js';
import { run } from '../src/sys/exec.js';
import { stopProcess, track } from '../src/sys/proc.js';
import { sleep } from '../src/sys/time.js';
import { exampleSpec } from '../src/testing.js';
import { type FirewallRow, type ThroughputRow, seconds } from './lab-report.js';
import { seededRandom } from './measure.js';

const FIREWALL_USERS = [800, 10_000, 100_000];
const now = () => performance.now();

export function syntheticUsers(count: number): PolicyMember[] {
  const random = seededRandom(20261126);
  const groups = ['staff', 'engineering', 'dba'];
  return Array.from({ length: count }, (_, i) => {
    const n = i + 2;
    return {
      // 10.200.0.0/14 holds 100,000 users; the rendering does not check the pool.
      ipv4: `10.${200 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`,
      ipv6: `fd7a:6ca6:e640:8000::${(n >> 16).toString(16)}:${(n & 0xffff).toString(16)}`,
      groups: groups.filter(() => random() < 0.4),
      enabled: true,
    };
  });
}

/** The same policy with one rule per user per allowed network: what set-less rulesets do. */
export function linearRuleset(users: PolicyMember[]): { text: string; rules: number } {
  const spec = exampleSpec();
  const lines = [
    'table inet ovpnf_linear',
    'delete table inet ovpnf_linear',
    'table inet ovpnf_linear {',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    '\t\tct state established,related accept',
  ];
  let rules = 1;
  for (const u of users)
    for (const rule of spec.policy) {
      if (!u.groups.includes(rule.from)) continue;
      const net = spec.networks.find((n) => n.name === rule.to)!;
      for (const [fam, ip, addr, nets] of [
        [4, 'ip', u.ipv4, net.ipv4],
        [6, 'ip6', u.ipv6, net.ipv6],
      ] as const) {
        if (!nets.length) continue;
        const protos = (rule.proto ?? []).map((p) => (p === 'icmp' && fam === 6 ? 'ipv6-icmp' : p));
        const l4 = protos.length ? ` meta l4proto { ${protos.join(', ')} }` : '';
        const ports = rule.ports ? ` th dport { ${rule.ports.join(', ')} }` : '';
        lines.push(
          `\t\tiifname "vpn0" ${ip} saddr ${addr} ${ip} daddr { ${nets.join(', ')} }${l4}${ports} accept`,
        );
        rules++;
      }
    }
  lines.push('\t\tiifname "vpn0" reject with icmpx type admin-prohibited', '\t}', '}', '');
  return { text: lines.join('\n'), rules: rules + 1 };
}

/** Rules (not set elements) in a rendered ruleset: statement lines inside chain blocks. */
function countRules(text: string): number {
  let inChain = false;
  let n = 0;
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (/^chain \S+ \{$/.test(l)) inChain = true;
    else if (l === '}') inChain = false;
    else if (inChain && l && !l.startsWith('#') && !l.startsWith('type ')) n++;
  }
  return n;
}

async function nftApplyMs(
  ns: string,
  file: string,
  timeoutMs: number,
  say: (line: string) => void,
): Promise<number | undefined> {
  const t0 = now();
  const r = await run(['ip', 'netns', 'exec', ns, 'nft', '-f', file], {
    allowFailure: true,
    timeoutMs,
  });
  if (r.code !== 0) {
    say(`  nft -f ${file}: exit ${r.code}: ${r.stderr.trim().split('\n')[0]}`);
    return undefined;
  }
  return now() - t0;
}

export async function firewall(
  tmp: string,
  full: boolean,
  say: (line: string) => void,
): Promise<FirewallRow[]> {
  const LINEAR_APPLY_MAX_USERS = full ? 100_000 : 10_000;
  const spec = exampleSpec();
  const ctx = serverContexts(spec, DEFAULT_RENDER_OPTIONS)[0];
  const ns = `obn-nft-${process.pid}`;
  const rows: FirewallRow[] = [];
  await run(['ip', 'netns', 'add', ns]);
  try {
    for (const count of FIREWALL_USERS) {
      const users = syntheticUsers(count);
      const policy = compilePolicy(spec, users);
      const sets = renderNftables(ctx, policy);
      const setFile = join(tmp, `sets-${count}.nft`);
      writeFileSync(setFile, sets);
      const linear = linearRuleset(users);
      const linearFile = join(tmp, `linear-${count}.nft`);
      writeFileSync(linearFile, linear.text);
      const setApplyMs = await nftApplyMs(ns, setFile, 300_000, say);
      const row: FirewallRow = {
        users: count,
        setRules: countRules(sets),
        setElements: policy.groupSets.reduce((a, s) => a + s.elements.length, 0),
        ...(setApplyMs !== undefined ? { setApplyMs } : {}),
        linearRules: linear.rules,
      };
      if (count <= LINEAR_APPLY_MAX_USERS) {
        const ms = await nftApplyMs(ns, linearFile, 300_000, say);
        if (ms === undefined) row.linearNote = 'failed or > 300 s';
        else row.linearApplyMs = ms;
      } else row.linearNote = 'not applied in --quick';
      rows.push(row);
      say(
        `  firewall ${count} users: ours ${row.setRules} rules (${row.setElements} set elements), apply ${seconds(setApplyMs ?? NaN)}; linear ${row.linearRules} rules, apply ${row.linearApplyMs === undefined ? row.linearNote : seconds(row.linearApplyMs)}`,
      );
      rmSync(setFile);
      rmSync(linearFile);
    }
  } finally {
    await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
  return rows;
}

// ---------------------------------------------------------------- throughput

/**
 * user ns ──(vpn0)── forwarder ns ──(eth1)── service ns. The forwarder carries the ruleset
 * (ours or the linear one) and routes like a VPN server: traffic from the user enters on a
 * device called vpn0, so the rules match as on a server. The user is the last one of the
 * synthetic list (the linear ruleset's worst case) and in a group the policy lets reach the
 * intranet on tcp/443, where iperf3 listens.
 */
export async function throughput(
  tmp: string,
  userCounts: number[],
  durationS: number,
  say: (line: string) => void,
): Promise<ThroughputRow[]> {
  const spec = exampleSpec();
  const ctx = serverContexts(spec, DEFAULT_RENDER_OPTIONS)[0];
  const dev = DEFAULT_RENDER_OPTIONS.tunDevice;
  const tag = `obt${process.pid % 10000}`;
  const [nsU, nsF, nsS] = [`${tag}-u`, `${tag}-f`, `${tag}-s`];
  const ip = (args: string[]) => run(['ip', ...args]);
  const rows: ThroughputRow[] = [];
  const service = '10.20.0.10';
  await Promise.all([nsU, nsF, nsS].map((ns) => ip(['netns', 'add', ns])));
  try {
    await ip([
      'link',
      'add',
      'u0',
      'netns',
      nsU,
      'type',
      'veth',
      'peer',
      'name',
      dev,
      'netns',
      nsF,
    ]);
    await ip([
      'link',
      'add',
      'eth1',
      'netns',
      nsF,
      'type',
      'veth',
      'peer',
      'name',
      's0',
      'netns',
      nsS,
    ]);
    for (const [ns, links] of [
      [nsU, ['lo', 'u0']],
      [nsF, ['lo', dev, 'eth1']],
      [nsS, ['lo', 's0']],
    ] as const)
      for (const l of links) await ip(['-n', ns, 'link', 'set', l, 'up']);
    await run(['ip', 'netns', 'exec', nsF, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    // The user's side has only an on-link default route (as behind a tun): the forwarder
    // answers ARP for what it routes.
    await run([
      'ip',
      'netns',
      'exec',
      nsF,
      'sysctl',
      '-q',
      '-w',
      `net.ipv4.conf.${dev}.proxy_arp=1`,
    ]);
    await ip(['-n', nsF, 'addr', 'add', '10.20.0.1/24', 'dev', 'eth1']);
    await ip(['-n', nsS, 'addr', 'add', `${service}/24`, 'dev', 's0']);
    await ip(['-n', nsS, 'route', 'add', 'default', 'via', '10.20.0.1']);
    const server = spawn('ip', ['netns', 'exec', nsS, 'iperf3', '-s', '-p', '443'], {
      stdio: 'ignore',
    });
    const tracked = server.pid ? track(server.pid) : undefined;
    try {
      await sleep(300);
      for (const count of userCounts) {
        const users = syntheticUsers(count);
        const me = users[users.length - 1];
        me.groups = ['staff'];
        await ip(['-n', nsU, 'addr', 'flush', 'dev', 'u0']);
        await ip(['-n', nsU, 'addr', 'add', `${me.ipv4}/32`, 'dev', 'u0']);
        await ip(['-n', nsU, 'route', 'replace', 'default', 'dev', 'u0']);
        await ip(['-n', nsF, 'route', 'replace', `${me.ipv4}/32`, 'dev', dev]);
        const policy = compilePolicy(spec, users);
        const rulesets: [ThroughputRow['ruleset'], string][] = [
          ['none', ''],
          ['ours (sets)', renderNftables(ctx, policy)],
          ['linear', linearRuleset(users).text],
        ];
        for (const [name, text] of rulesets) {
          await run(['ip', 'netns', 'exec', nsF, 'nft', 'flush', 'ruleset']);
          if (text) {
            const file = join(tmp, `tput-${count}.nft`);
            writeFileSync(file, text);
            await run(['ip', 'netns', 'exec', nsF, 'nft', '-f', file], { timeoutMs: 300_000 });
            rmSync(file);
          }
          if (name === 'none' && count !== userCounts[0]) continue;
          const r = await run(
            [
              'ip',
              'netns',
              'exec',
              nsU,
              'iperf3',
              '-c',
              service,
              '-p',
              '443',
              '-t',
              String(durationS),
              '-J',
            ],
            { allowFailure: true, timeoutMs: (durationS + 20) * 1000 },
          );
          let gbps = NaN;
          try {
            const j = JSON.parse(r.stdout) as {
              end?: { sum_received?: { bits_per_second?: number } };
              error?: string;
            };
            gbps = (j.end?.sum_received?.bits_per_second ?? NaN) / 1e9;
            if (j.error) say(`  iperf3 (${name}, ${count} users): ${j.error}`);
          } catch {
            say(
              `  iperf3 (${name}, ${count} users): exit ${r.code} ${r.stderr.trim().split('\n')[0]}`,
            );
          }
          rows.push({ users: name === 'none' ? 0 : count, ruleset: name, gbps });
          say(
            `  throughput ${name === 'none' ? 'no ruleset' : `${name}, ${count} users`}: ${gbps.toFixed(2)} Gbit/s`,
          );
        }
      }
    } finally {
      if (tracked) await stopProcess(tracked, 3000);
    }
  } finally {
    for (const ns of [nsU, nsF, nsS]) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
  return rows;
}
