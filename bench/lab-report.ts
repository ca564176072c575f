/**
 * The lab benchmark's report: figures → Markdown table, raw JSON and a hand-written SVG dot
 * plot. Pure string building, no I/O.
 */
import { percentile } from './measure.js';

export type Design = 'ovpn-fleet' | 'seed';
export const DESIGNS: Design[] = ['ovpn-fleet', 'seed'];

export interface Figure {
  id: string;
  title: string;
  /** Milliseconds per design; a design left out was not measured for this figure. */
  samples: Partial<Record<Design, number[]>>;
  /** What the number means, and caveats. */
  note?: string;
  /** ovpn-fleet's target on p95, in ms. */
  targetP95Ms?: number;
}

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  max: number;
}

export function summarize(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted.length ? sorted[sorted.length - 1] : NaN,
  };
}

/** One line: n, p50, p95 and max of the samples. */
export function fmt(s: number[] | undefined): string {
  if (!s?.length) return 'no samples';
  const x = summarize(s);
  return `n=${x.n} p50 ${seconds(x.p50)} p95 ${seconds(x.p95)} max ${seconds(x.max)}`;
}

export function seconds(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export interface Machine {
  nproc: number;
  memoryGiB: number;
  kernel: string;
  cpu: string;
  node: string;
  openvpn: string;
  frr: string;
}

export interface ThroughputRow {
  /** Users in the policy; 0 for the run without any ruleset. */
  users: number;
  ruleset: 'none' | 'ours (sets)' | 'linear';
  gbps: number;
}

export interface FirewallRow {
  users: number;
  setRules: number;
  setElements: number;
  setApplyMs?: number;
  linearRules: number;
  linearApplyMs?: number;
  /** Why an apply was not timed (too slow for this mode, timed out…). */
  linearNote?: string;
}

export interface Target {
  what: string;
  met: boolean;
  detail: string;
}

export function targetLine(t: Target): string {
  return `${t.what}: ${t.met ? 'met' : 'not met'} (${t.detail})`;
}

export function renderMarkdown(r: {
  mode: string;
  startedAt: string;
  durationS: number;
  machine: Machine;
  figures: Figure[];
  firewall: FirewallRow[];
  throughput: ThroughputRow[];
  /** Single numbers that are not latency distributions (CPU, rates), one Markdown line each. */
  facts: string[];
  targets: Target[];
  notes: string[];
}): string {
  const m = r.machine;
  const lines = [
    '# ovpn-fleet vs the seed: lab benchmark',
    '',
    `Run ${r.startedAt}, mode \`${r.mode}\`, ${r.durationS.toFixed(0)} s in all. Both labs are built from the`,
    'same fleet (same spec, PKI, users, ccd and nftables), one after the other, and driven through',
    'the same events. "seed" = the seed article\'s hooks, FRR redistributing kernel and connected',
    'routes without filters, no controller or agents, client profiles without our failover',
    'settings (`explicit-exit-notify`, `connect-retry`, `server-poll-timeout`).',
    '',
    `Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memoryGiB.toFixed(1)} GiB memory, Linux ${m.kernel}, Node ${m.node}.  `,
    `OpenVPN: ${m.openvpn}.  `,
    `FRR: ${m.frr}.`,
    '',
    '| figure | design | n | p50 | p95 | max |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const f of r.figures) {
    for (const d of DESIGNS) {
      const s = f.samples[d];
      if (!s) continue;
      const x = summarize(s);
      lines.push(
        `| ${f.title} | ${d} | ${x.n} | ${seconds(x.p50)} | ${seconds(x.p95)} | ${seconds(x.max)} |`,
      );
    }
  }
  lines.push('');
  const noted = r.figures.filter((f) => f.note);
  if (noted.length) {
    lines.push(...noted.map((f) => `- **${f.title}**: ${f.note}`), '');
  }
  lines.push(
    '## 9. Firewall: rule count and `nft -f` apply time (rendering only, throwaway netns)',
    '',
    '| users | ovpn-fleet rules (set elements) | apply | per-user linear rules | apply |',
    '|---:|---:|---:|---:|---:|',
    ...r.firewall.map(
      (f) =>
        `| ${f.users.toLocaleString('en')} | ${f.setRules} (${f.setElements.toLocaleString('en')}) | ${f.setApplyMs === undefined ? '–' : seconds(f.setApplyMs)} | ${f.linearRules.toLocaleString('en')} | ${f.linearApplyMs === undefined ? (f.linearNote ?? '–') : seconds(f.linearApplyMs)} |`,
    ),
    '',
    'Linear = one nftables rule per user per allowed network, protocol set and family (the same',
    'policy, no sets), applied with the same `nft -f`.',
    '',
    '### Forwarding throughput (iperf3, one TCP stream, user ns → forwarder with the ruleset → service ns)',
    '',
    '| ruleset | users in the policy | Gbit/s |',
    '|---|---:|---:|',
    ...r.throughput.map(
      (t) =>
        `| ${t.ruleset} | ${t.users ? t.users.toLocaleString('en') : '–'} | ${Number.isFinite(t.gbps) ? t.gbps.toFixed(2) : 'failed'} |`,
    ),
    '',
    "The sending user is the last of the list (the linear ruleset's worst case). Both rulesets",
    'accept established traffic first, so a flow pays the per-user walk only on its first packet:',
    "the throughput is set by the veth path and this VM's 2 CPUs, not by the rule count.",
    '',
    '## Other results',
    '',
    ...r.facts.map((f) => `- ${f}`),
    '',
    '## ovpn-fleet targets',
    '',
    ...r.targets.map((t) => `- ${targetLine(t)}`),
    '',
  );
  if (r.notes.length) lines.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

const COLORS: Record<Design, string> = { 'ovpn-fleet': '#1f77b4', seed: '#d62728' };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * One panel per figure, one row per design: every sample as a dot, a bar from p50 to p95, a
 * tick at the max. Each panel has its own linear axis from 0 to the largest sample.
 */
export function renderSvg(figures: Figure[]): string {
  const width = 860;
  const left = 110;
  const right = 30;
  const plotW = width - left - right;
  const rowH = 26;
  const panels: string[] = [];
  let y = 40;
  for (const f of figures) {
    const designs = DESIGNS.filter((d) => f.samples[d]?.length);
    if (!designs.length) continue;
    const all = designs.flatMap((d) => f.samples[d]!);
    const top = niceMax(Math.max(...all, 1));
    const x = (ms: number) => Math.round((left + (ms / top) * plotW) * 10) / 10;
    panels.push(`<text x="10" y="${y}" font-weight="bold">${esc(f.title)}</text>`);
    y += 14;
    const axisY = y + designs.length * rowH + 4;
    for (let i = 0; i <= 5; i++) {
      const v = (top * i) / 5;
      panels.push(
        `<line x1="${x(v)}" y1="${y}" x2="${x(v)}" y2="${axisY}" stroke="#ddd"/>`,
        `<text x="${x(v)}" y="${axisY + 14}" text-anchor="middle" font-size="11">${esc(seconds(v))}</text>`,
      );
    }
    for (const d of designs) {
      const s = summarize(f.samples[d]!);
      const cy = y + rowH / 2;
      panels.push(
        `<text x="${left - 8}" y="${cy + 4}" text-anchor="end" font-size="12">${d} (n=${s.n})</text>`,
        `<rect x="${x(s.p50)}" y="${cy - 6}" width="${Math.max(1, x(s.p95) - x(s.p50))}" height="12" fill="${COLORS[d]}" fill-opacity="0.25" stroke="${COLORS[d]}"/>`,
        `<line x1="${x(s.p50)}" y1="${cy - 8}" x2="${x(s.p50)}" y2="${cy + 8}" stroke="${COLORS[d]}" stroke-width="2"/>`,
        `<line x1="${x(s.max)}" y1="${cy - 5}" x2="${x(s.max)}" y2="${cy + 5}" stroke="${COLORS[d]}"/>`,
        ...f.samples[d]!.map(
          (v) => `<circle cx="${x(v)}" cy="${cy}" r="2.5" fill="${COLORS[d]}" fill-opacity="0.7"/>`,
        ),
      );
      y += rowH;
    }
    y = axisY + 36;
  }
  const height = y;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">ovpn-fleet vs seed: latency per event (dots: samples; box: p50–p95; tick: max)</text>`,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}

function niceMax(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
