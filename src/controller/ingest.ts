/**
 * Turns an agent's report into the session table, the location history and the audit log.
 * Sessions that cannot be real are left out (reports.ts says which); the audit entries one
 * server's reports write are limited (AuditBudget); a report whose sessions the agent could not
 * read changes no session. Each session gone gets its reason (history.ts) in the same
 * transaction as the report that shows it gone.
 */
import type { AgentReport, Eviction } from '../api/index.js';
import type { AuditEntry, FleetStore, SessionEnd, StoredSession } from '../store/types.js';
import type { Clock } from '../sys/time.js';
import { sessionChanges } from './directives.js';
import { endReason } from './history.js';
import { AuditBudget, type KnownUser, type RefusedSession, admitSessions } from './reports.js';
import { STALE_AFTER_MS } from './views.js';

export interface IngestOptions {
  /** Audit entries one server's reports may write at once (default 2,000), and per second (20). */
  auditBurst?: number;
  auditPerSecond?: number;
  /** A server silent for longer than this was stale: what it no longer lists was `server-lost`. */
  staleAfterMs?: number;
}

/** What the controller has asked of a server, for telling why its sessions ended. */
export interface ServerAsks {
  evict: readonly Eviction[];
  drain: boolean;
}

export class ReportIngest {
  private readonly budgets = new Map<string, AuditBudget>();
  /** When each server's refused sessions were last logged (one line a minute per server). */
  private readonly refusalLoggedAt = new Map<string, number>();
  /** The server each user was last seen connecting to, to tell a move from a connect. */
  private readonly lastServer = new Map<string, string>();
  /** Fills lastServer from the session table once, before the first report. */
  private lastServerLoaded: Promise<void> | undefined;
  /** Servers whose agent last said it could not read its sessions. */
  readonly unknown = new Set<string>();

  constructor(
    private readonly store: FleetStore,
    /** The user a session names, as the store has them (the caller may cache). */
    private readonly userNamed: (name: string) => Promise<KnownUser | undefined>,
    private readonly clock: Clock,
    private readonly log: (line: string) => void,
    private readonly opts: IngestOptions = {},
    /** The server's current directive, if any (state.ts hands in its own). */
    private readonly asked: (server: string) => ServerAsks | undefined = () => undefined,
  ) {}

  private loadLastServers(): Promise<void> {
    this.lastServerLoaded ??= this.store.listSessions().then((sessions) => {
      const newestFirst = [...sessions].sort((a, b) => (a.since < b.since ? 1 : -1));
      for (const s of newestFirst)
        if (!this.lastServer.has(s.user)) this.lastServer.set(s.user, s.server);
    });
    return this.lastServerLoaded;
  }

  /** The users `names` name, looked up once each: the report rules below are synchronous. */
  private async usersNamed(names: Iterable<string>): Promise<Map<string, KnownUser>> {
    const found = new Map<string, KnownUser>();
    for (const name of new Set(names)) {
      const u = await this.userNamed(name);
      if (u) found.set(name, u);
    }
    return found;
  }

  async record(server: string, report: AgentReport): Promise<void> {
    await this.loadLastServers();
    const now = this.clock.now();
    const at = now.toISOString();
    if (report.sessionsUnknown) {
      // A failed read is no news of the sessions: everyone stays as last reported, and the
      // server shows stale until its agent can read them again. Its health is news (OpenVPN
      // down), and is shown.
      if (!this.unknown.has(server))
        this.log(`${server}: its agent cannot read OpenVPN's sessions; keeping the last ones`);
      this.unknown.add(server);
      await this.store.recordHealth(server, {
        at,
        health: { ...report.health },
        ...(report.restart ? { restart: report.restart } : {}),
        ...(report.bundleDigest ? { bundleDigest: report.bundleDigest } : {}),
        ...(report.routes ? { routes: report.routes } : {}),
      });
      return;
    }
    const lost = this.unknown.has(server) || (await this.wasStale(server, now));
    this.unknown.delete(server);
    const reported = await this.usersNamed(report.sessions.map((s) => s.user));
    const { accepted, refused } = admitSessions(report.sessions, (n) => reported.get(n), now);
    if (refused.length) this.logRefused(server, refused, now);
    const budget = this.budget(server, now);
    await this.store.transaction(async (tx) => {
      // Read in the transaction that replaces them: two reports of one server (or of one
      // server to two controllers) never both close the same sessions.
      const before = await tx.listSessions(server);
      const { connected, disconnected } = sessionChanges(before, accepted);
      const gone = await this.usersNamed(disconnected.map((s) => s.user));
      const ended = this.endsOf(server, disconnected, report, lost, at, (n) => gone.get(n));
      const suppressed = budget.drainSuppressed(now);
      const entries: AuditEntry[] = [];
      const audit = (action: string, subject: string, detail: Record<string, unknown>) => {
        if (budget.take(1, now))
          entries.push({ at, actor: `agent:${server}`, action, subject, detail });
      };
      if (suppressed)
        await tx.audit({
          at,
          actor: 'controller',
          action: 'audit.suppressed',
          subject: server,
          detail: { entries: suppressed, why: "over the server's audit rate" },
        });
      await tx.recordReport(server, {
        at,
        health: { ...report.health },
        ...(report.restart ? { restart: report.restart } : {}),
        ...(report.bundleDigest ? { bundleDigest: report.bundleDigest } : {}),
        sessions: accepted.map((s) => ({
          user: s.user,
          realAddress: s.realAddress,
          ...(s.ipv4 ? { ipv4: s.ipv4 } : {}),
          ...(s.ipv6 ? { ipv6: s.ipv6 } : {}),
          since: s.since,
          bytesIn: s.bytesIn,
          bytesOut: s.bytesOut,
          clientId: s.clientId,
        })),
        ...(report.routes ? { routes: report.routes } : {}),
        ended,
      });
      disconnected.forEach((s, i) =>
        audit('session.disconnect', s.user, {
          ...disconnectDetail(server, s),
          reason: ended[i].reason,
        }),
      );
      for (const s of connected) {
        audit('session.connect', s.user, {
          server,
          since: s.since,
          realAddress: s.realAddress,
          ...(s.ipv4 ? { ipv4: s.ipv4 } : {}),
          ...(s.ipv6 ? { ipv6: s.ipv6 } : {}),
        });
        const previous = this.lastServer.get(s.user);
        if (previous !== undefined && previous !== server)
          audit('session.move', s.user, { from: previous, to: server, since: s.since });
        this.lastServer.set(s.user, server);
      }
      for (const e of entries) await tx.audit(e);
    });
  }

  /** Whether the server's previous report is older than the stale limit (or the controller's start). */
  private async wasStale(server: string, now: Date): Promise<boolean> {
    const last = (await this.store.listServerStates()).find((s) => s.name === server)?.reportedAt;
    if (!last) return false;
    return now.getTime() - Date.parse(last) > (this.opts.staleAfterMs ?? STALE_AFTER_MS);
  }

  /** How each session gone ended, in the order given. */
  private endsOf(
    server: string,
    gone: readonly StoredSession[],
    report: AgentReport,
    lost: boolean,
    at: string,
    userNamed: (name: string) => KnownUser | undefined,
  ): SessionEnd[] {
    if (!gone.length) return [];
    const asked = this.asked(server);
    const ctx = {
      evict: asked?.evict ?? [],
      draining: (asked?.drain ?? false) || report.health.draining,
      userStatus: (name: string) => userNamed(name)?.status,
      serverLost: lost,
    };
    return gone.map((s) => {
      const reason = endReason(s, ctx);
      // Lost while nobody watched: it was last seen alive at its last report.
      return {
        user: s.user,
        since: s.since,
        clientId: s.clientId,
        reason,
        at: reason === 'server-lost' ? s.reportedAt : at,
      };
    });
  }

  private budget(server: string, now: Date): AuditBudget {
    let budget = this.budgets.get(server);
    if (!budget) {
      // 2,000 at once covers a whole server's users moving together; 20/s is ~1.7 M a day.
      budget = new AuditBudget(this.opts.auditBurst ?? 2000, this.opts.auditPerSecond ?? 20, now);
      this.budgets.set(server, budget);
    }
    return budget;
  }

  private logRefused(server: string, refused: RefusedSession[], now: Date): void {
    const last = this.refusalLoggedAt.get(server) ?? 0;
    if (now.getTime() - last < 60_000) return;
    this.refusalLoggedAt.set(server, now.getTime());
    const first = refused[0];
    this.log(
      `report of ${server}: ${refused.length} session(s) refused, e.g. ${JSON.stringify(first.user)}: ${first.reason}`,
    );
  }
}

function disconnectDetail(server: string, s: StoredSession): Record<string, unknown> {
  return {
    server,
    since: s.since,
    realAddress: s.realAddress,
    bytesIn: s.bytesIn,
    bytesOut: s.bytesOut,
  };
}
