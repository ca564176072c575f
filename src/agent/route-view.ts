/**
 * The agent's view of the kernel's main routing table, kept by `ip monitor route link` instead
 * of a `ip route show` spawn per question. The agent asks often (health every second for the
 * load balancers, reconcile every 2 s, the ruleset's confirm window every 0.5 s); on a 2-core
 * lab each spawn cost ~2.4 ms of the agent's CPU plus ~1.5 ms for `ip`, six agents over, and
 * that background load showed in every client's connect time.
 *
 * What the kernel does not announce, a full dump repairs: IPv4 routes that go away with their
 * interface are flushed without an RTM_DELROUTE, so any link event (and a timer) triggers a
 * re-read, as does a failed delete.
 */
import { coalesced } from '../sys/coalesce.js';
import { type LineStream, run, streamLines } from '../sys/exec.js';

export interface RouteEntry {
  family: 4 | 6;
  dst: string;
  dev?: string;
  proto?: string;
}

/** Route types iproute2 prints before the destination (unicast is not printed). */
const TYPES = new Set([
  'unicast',
  'local',
  'broadcast',
  'multicast',
  'anycast',
  'unreachable',
  'blackhole',
  'prohibit',
  'throw',
  'nat',
]);

export type MonitorEvent =
  | { kind: 'route'; deleted: boolean; key: string; route: RouteEntry }
  | { kind: 'link' }
  | undefined;

const keyOf = (family: 4 | 6, type: string, dst: string, metric: string | undefined) =>
  `${family} ${type} ${dst} ${metric ?? ''}`;

/**
 * One line of `ip monitor route link` (iproute2 text; its monitor ignores -j). Routes in
 * tables other than main, continuation lines of multipath routes and anything unknown are
 * ignored; link lines ("5: vpn0: <…>") only say "re-read".
 */
export function parseMonitorLine(line: string): MonitorEvent {
  if (!line || /^\s/.test(line)) return undefined;
  let rest = line.trim();
  let deleted = false;
  if (rest.startsWith('Deleted ')) {
    deleted = true;
    rest = rest.slice('Deleted '.length);
  }
  if (/^\d+: \S+?:/.test(rest)) return { kind: 'link' };
  const words = rest.split(/\s+/);
  let type = 'unicast';
  if (TYPES.has(words[0])) type = words.shift()!;
  const dst = words.shift();
  if (!dst) return undefined;
  const attr = (name: string) => {
    const i = words.indexOf(name);
    return i >= 0 ? words[i + 1] : undefined;
  };
  const table = attr('table');
  if (table !== undefined && table !== 'main' && table !== '254') return undefined;
  // IPv6 routes always print their preference; a bare "default" has no other tell.
  const family: 4 | 6 = dst.includes(':') || attr('pref') !== undefined ? 6 : 4;
  const route: RouteEntry = { family, dst };
  const dev = attr('dev');
  const proto = attr('proto');
  if (dev) route.dev = dev;
  if (proto) route.proto = proto;
  return { kind: 'route', deleted, key: keyOf(family, type, dst, attr('metric')), route };
}

/** The routes of `ip -j -4|-6 route show` (main table). */
export function parseRouteDump(family: 4 | 6, json: string): Map<string, RouteEntry> {
  const out = new Map<string, RouteEntry>();
  if (!json.trim()) return out;
  const rows = JSON.parse(json) as {
    type?: string;
    dst: string;
    dev?: string;
    protocol?: string;
    metric?: number;
  }[];
  for (const r of rows) {
    const route: RouteEntry = { family, dst: r.dst };
    if (r.dev) route.dev = r.dev;
    if (r.protocol !== undefined) route.proto = String(r.protocol);
    out.set(
      keyOf(family, r.type ?? 'unicast', r.dst, r.metric ? String(r.metric) : undefined),
      route,
    );
  }
  return out;
}

/** The main table as a map, fed by dumps and monitor events (pure; RouteView does the I/O). */
export class RouteTable {
  private routes = new Map<string, RouteEntry>();

  replaceAll(routes: Map<string, RouteEntry>): void {
    this.routes = routes;
  }

  apply(e: Extract<MonitorEvent, { kind: 'route' }>): void {
    if (e.deleted) this.routes.delete(e.key);
    else this.routes.set(e.key, e.route);
  }

  /** Destinations of routes on `dev` with protocol `proto` (the users' host routes). */
  on(dev: string, proto: string): string[] {
    return [...this.routes.values()]
      .filter((r) => r.dev === dev && r.proto === proto)
      .map((r) => r.dst);
  }

  entries(): RouteEntry[] {
    return [...this.routes.values()];
  }

  /** Whether any route was learnt through one of these protocols. */
  hasProto(protos: ReadonlySet<string>): boolean {
    for (const r of this.routes.values()) if (r.proto && protos.has(r.proto)) return true;
    return false;
  }
}

export class RouteView {
  private readonly table = new RouteTable();
  private monitor?: LineStream;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly listeners = new Set<() => void>();
  /** Events seen while a dump runs, replayed on top of it (the dump may predate them). */
  private pending?: Extract<MonitorEvent, { kind: 'route' }>[];

  constructor(
    private readonly o: {
      log: (line: string) => void;
      resyncMs?: number;
      /** Watch this namespace's table instead of our own (the benchmark's core router). */
      netns?: string;
      /** Called after every change the view takes in (an event, a re-read). */
      onChange?: () => void;
    } = { log: () => {} },
  ) {}

  /** Starts the monitor, then reads the tables once; resolves when the view is complete. */
  async start(): Promise<void> {
    this.startMonitor();
    this.timer = setInterval(() => void this.resync(), this.o.resyncMs ?? 10_000);
    this.timer.unref();
    await this.resync();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.monitor?.stop();
  }

  on(dev: string, proto: string): string[] {
    return this.table.on(dev, proto);
  }

  /** Calls `listener` after every change the view takes in, as `onChange`. */
  watch(listener: () => void): void {
    this.listeners.add(listener);
  }

  private changed(): void {
    this.o.onChange?.();
    for (const listener of this.listeners) listener();
  }

  hasProto(protos: ReadonlySet<string>): boolean {
    return this.table.hasProto(protos);
  }

  entries(): RouteEntry[] {
    return this.table.entries();
  }

  /** Re-reads both tables; calls made while one runs share a single next read. */
  readonly resync = coalesced(() => this.dumpOnce());

  private async dumpOnce(): Promise<void> {
    this.pending = [];
    try {
      const [v4, v6] = await Promise.all(
        ([4, 6] as const).map(async (f) => {
          const r = await run(['ip', `-${f}`, '-j', 'route', 'show'], {
            allowFailure: true,
            netns: this.o.netns,
          });
          if (r.code !== 0) throw new Error(`ip -${f} route show: ${r.stderr.trim()}`);
          return parseRouteDump(f, r.stdout);
        }),
      );
      this.table.replaceAll(new Map([...v4, ...v6]));
      for (const e of this.pending) this.table.apply(e);
      this.changed();
    } catch (err) {
      this.o.log(`route table not read: ${(err as Error).message}`);
    } finally {
      this.pending = undefined;
    }
  }

  private startMonitor(): void {
    if (this.stopped) return;
    this.monitor = streamLines(
      ['ip', 'monitor', 'route', 'link'],
      (line) => {
        const e = parseMonitorLine(line);
        if (!e) return;
        if (e.kind === 'link') return void this.resync();
        this.pending?.push(e);
        this.table.apply(e);
        this.changed();
      },
      (code, stderr) => {
        this.o.log(
          `ip monitor ended (${code ?? 'error'}${stderr.trim() ? `: ${stderr.trim().split('\n')[0]}` : ''}); restarting it`,
        );
        setTimeout(() => {
          this.startMonitor();
          void this.resync();
        }, 1000).unref();
      },
      { netns: this.o.netns },
    );
  }
}
