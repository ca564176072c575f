/**
 * Route tables of a lab's namespaces, watched while a benchmark drives events: the core's table
 * from `ip monitor route` events (MonitorWatch: exact event times, nothing spawned while a
 * sample runs) or the core's and site routers' tables polled (RouteWatch: through which server
 * the core reaches a user). Shared by bench/lab.ts and bench/auth.ts.
 */
import { RouteView } from '../src/agent/route-view.js';
import type { Lab } from '../src/lab/lab.js';
import { run } from '../src/sys/exec.js';
import { sleep } from '../src/sys/time.js';

const now = () => performance.now();
const say = (line: string) => process.stdout.write(`${line}\n`);

export type Table = Map<string, string[]>; // destination → next-hop devices

export async function dumpTable(ns: string, family: '-4' | '-6'): Promise<Table> {
  const r = await run(['ip', '-n', ns, family, '-j', 'route', 'show'], { allowFailure: true });
  const table: Table = new Map();
  if (r.code !== 0 || !r.stdout.trim()) return table;
  const routes = JSON.parse(r.stdout) as {
    dst: string;
    dev?: string;
    nexthops?: { dev: string }[];
  }[];
  for (const rt of routes)
    table.set(rt.dst, rt.nexthops ? rt.nexthops.map((n) => n.dev) : rt.dev ? [rt.dev] : []);
  return table;
}

export interface Snapshot {
  /** When the dump was taken (performance.now(), start of the dump). */
  at: number;
  tables: Map<string, Table>; // `${ns} ${family}` → table
}

/**
 * Polls the tables of the given namespaces in the background; waiters resolve with the time of
 * the first snapshot that satisfies them. One loop serves many concurrent waiters.
 */
export class RouteWatch {
  private waiters: {
    test: (s: Snapshot) => boolean;
    resolve: (at: number) => void;
    reject: (e: Error) => void;
    deadline: number;
    what: string;
  }[] = [];
  private running = false;

  constructor(
    private readonly sources: { ns: string; family: '-4' | '-6' }[],
    private readonly everyMs: number,
  ) {}

  async snapshot(): Promise<Snapshot> {
    const at = now();
    const tables = new Map<string, Table>();
    await Promise.all(
      this.sources.map(async (s) =>
        tables.set(`${s.ns} ${s.family}`, await dumpTable(s.ns, s.family)),
      ),
    );
    return { at, tables };
  }

  until(what: string, test: (s: Snapshot) => boolean, timeoutMs: number): Promise<number> {
    const p = new Promise<number>((resolve, reject) =>
      this.waiters.push({ test, resolve, reject, deadline: now() + timeoutMs, what }),
    );
    if (!this.running) void this.loop();
    return p;
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (this.waiters.length) {
        const started = now();
        const snap = await this.snapshot();
        for (const w of [...this.waiters]) {
          if (w.test(snap)) w.resolve(snap.at);
          else if (snap.at > w.deadline) w.reject(new Error(`timed out waiting for ${w.what}`));
          else continue;
          this.waiters.splice(this.waiters.indexOf(w), 1);
        }
        await sleep(Math.max(0, this.everyMs - (now() - started)));
      }
    } finally {
      this.running = false;
    }
  }
}

/** The servers through which the core reaches `addr` (core → site router → server), from a snapshot. */
export function viaServers(lab: Lab, snap: Snapshot, addr: string): string[] {
  const plan = lab.plan;
  const fam = addr.includes(':') ? '-6' : '-4';
  const out = new Set<string>();
  for (const dev of snap.tables.get(`${plan.core} ${fam}`)?.get(addr) ?? []) {
    const link = plan.links.find((l) => l.a.ns === plan.core && l.a.name === dev);
    if (!link) continue;
    for (const dev2 of snap.tables.get(`${link.b.ns} ${fam}`)?.get(addr) ?? []) {
      const l2 = plan.links.find((l) => l.a.ns === link.b.ns && l.a.name === dev2);
      const server = l2 && plan.servers.find((s) => s.ns === l2.b.ns);
      if (server) out.add(server.name);
    }
  }
  return [...out].sort();
}

export const coreHas = (lab: Lab, snap: Snapshot, addr: string) =>
  snap.tables.get(`${lab.plan.core} ${addr.includes(':') ? '-6' : '-4'}`)?.has(addr) ?? false;

/** Pairs of servers in different sites, so the core's next hop tells them apart too. */
export function movePairs(lab: Lab): [string, string][] {
  const s = lab.plan.servers;
  return s.map((a, i) => {
    const b = s
      .slice(i + 1)
      .concat(s.slice(0, i))
      .find((x) => x.site !== a.site)!;
    return [a.name, b.name];
  });
}

/** Core and every site router, IPv4: enough to tell through which server the core routes. */
export function routerWatch(lab: Lab): RouteWatch {
  return new RouteWatch(
    [lab.plan.core, ...lab.plan.servers.map((s) => s.routerNs)]
      .filter((ns, i, a) => a.indexOf(ns) === i)
      .map((ns) => ({ ns, family: '-4' as const })),
    50,
  );
}

/**
 * The core's IPv4 and IPv6 tables as `ip monitor` reports them: a waiter resolves when the
 * event that satisfies it arrives (no poll interval, and no `ip` spawned every 20 ms beside the
 * designs being measured). Same interface as RouteWatch; close() when done.
 */
export class MonitorWatch {
  private waiters: {
    test: (s: Snapshot) => boolean;
    resolve: (at: number) => void;
    reject: (e: Error) => void;
    timer: NodeJS.Timeout;
  }[] = [];
  private readonly view: RouteView;

  private constructor(private readonly ns: string) {
    this.view = new RouteView({
      log: (l) => say(`  core monitor: ${l}`),
      netns: ns,
      onChange: () => this.check(),
    });
  }

  static async start(ns: string): Promise<MonitorWatch> {
    const w = new MonitorWatch(ns);
    await w.view.start();
    return w;
  }

  close(): void {
    this.view.stop();
    for (const w of this.waiters) clearTimeout(w.timer);
  }

  private snapshot(): Snapshot {
    const t4: Table = new Map();
    const t6: Table = new Map();
    for (const r of this.view.entries())
      (r.family === 4 ? t4 : t6).set(r.dst, r.dev ? [r.dev] : []);
    return {
      at: now(),
      tables: new Map([
        [`${this.ns} -4`, t4],
        [`${this.ns} -6`, t6],
      ]),
    };
  }

  private check(): void {
    if (!this.waiters.length) return;
    const snap = this.snapshot();
    for (const w of [...this.waiters]) {
      if (!w.test(snap)) continue;
      clearTimeout(w.timer);
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(snap.at);
    }
  }

  until(what: string, test: (s: Snapshot) => boolean, timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.push({ test, resolve, reject, timer });
      this.check();
    });
  }
}

/** Runs `fn` with the core's IPv4 and IPv6 tables watched (event-driven), then stops watching. */
export async function withCoreWatch(
  lab: Lab,
  fn: (watch: MonitorWatch) => Promise<void>,
): Promise<void> {
  const watch = await MonitorWatch.start(lab.plan.core);
  try {
    await fn(watch);
  } finally {
    watch.close();
  }
}
