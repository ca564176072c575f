/**
 * A throwaway PostgreSQL 15 from Debian's `postgresql` package, for tests (and, later, the
 * lab): `initdb` into a temp directory, `pg_ctl start` with a unix socket in that directory
 * and no TCP listener, stopped by `pg_ctl stop` — by the postmaster's pid from postmaster.pid
 * when pg_ctl cannot — and the directory removed. PostgreSQL refuses to run as root, so as
 * root the binaries run as the unprivileged `postgres` user (`runuser -u postgres --`), which
 * owns the directory; as anyone else they run as that user.
 */
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './exec.js';

export const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';

/** Why no PostgreSQL can be started here, or undefined when it can (for itNeeds). */
export function postgresMissing(): string | undefined {
  if (!existsSync(join(POSTGRES_BIN, 'initdb')))
    return `PostgreSQL 15 is not installed (${POSTGRES_BIN}/initdb; apt-get install postgresql)`;
  if (process.getuid?.() === 0 && postgresIds() === undefined)
    return 'running as root and there is no "postgres" user to run PostgreSQL as';
  return undefined;
}

/** The `postgres` user's ids (PostgreSQL refuses to run as root). */
export function postgresIds(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('postgres:'));
    if (!line) return undefined;
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

export interface PostgresServer {
  /** The temp directory holding data/, the socket and the log. */
  dir: string;
  /** The directory of the unix socket (node-postgres `host`). */
  socketDir: string;
  port: number;
  user: string;
  /** The postmaster's pid, read from postmaster.pid. */
  pid: number;
  /** A node-postgres connection config for `database` (default `postgres`). */
  config(database?: string): { host: string; port: number; user: string; database: string };
  /**
   * Stops the server (fast shutdown: every connection is cut, as in a crash or a failover) and
   * leaves the data; `start()` brings it back on the same socket and port. For tests of what a
   * client does while PostgreSQL is away.
   */
  halt(): Promise<void>;
  /** Starts a halted server again; `pid` is the new postmaster's. */
  start(): Promise<void>;
  /** Stops the server (fast shutdown) and removes the directory. */
  stop(): Promise<void>;
}

/** Starts a fresh cluster; rejects with PostgreSQL's own words when it cannot. */
export async function startPostgres(opts: { port?: number } = {}): Promise<PostgresServer> {
  const missing = postgresMissing();
  if (missing) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), 'ovf-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'postgres.log');
  const port = opts.port ?? 5432;
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? postgresIds()! : undefined;
  if (ids) chownSync(dir, ids.uid, ids.gid);
  const as = (argv: string[]) => (asRoot ? ['runuser', '-u', 'postgres', '--', ...argv] : argv);
  const user = asRoot ? 'postgres' : userInfo().username;
  const pgCtlStart = () =>
    // pg_ctl hands -o to the postmaster through a shell: the socket path has no spaces.
    run(
      as([
        join(POSTGRES_BIN, 'pg_ctl'),
        '-D',
        data,
        '-l',
        log,
        '-w',
        '-t',
        '60',
        '-o',
        `-k ${dir} -p ${port} -c listen_addresses= -c fsync=off -c full_page_writes=off`,
        'start',
      ]),
      { timeoutMs: 90_000 },
    );
  try {
    // trust on the socket alone: the socket lives in a directory of ours and nothing listens
    // on TCP. --no-sync and fsync=off: a test cluster need not survive a power cut.
    await run(
      as([
        join(POSTGRES_BIN, 'initdb'),
        '-D',
        data,
        '-U',
        user,
        '-A',
        'trust',
        '-E',
        'UTF8',
        '--locale=C',
        '--no-sync',
      ]),
      { timeoutMs: 120_000 },
    );
    await pgCtlStart();
  } catch (err) {
    const tail = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3) : [];
    await stopCluster(data, as).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `PostgreSQL did not start: ${err instanceof Error ? err.message : String(err)}${tail.length ? `\n${tail.join('\n')}` : ''}`,
    );
  }
  const server: PostgresServer = {
    dir,
    socketDir: dir,
    port,
    user,
    pid: postmasterPid(data)!,
    config: (database = 'postgres') => ({ host: dir, port, user, database }),
    async halt() {
      await stopCluster(data, as);
    },
    async start() {
      await pgCtlStart();
      server.pid = postmasterPid(data)!;
    },
    async stop() {
      await stopCluster(data, as);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

function postmasterPid(data: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function stopCluster(data: string, as: (argv: string[]) => string[]): Promise<void> {
  const pid = postmasterPid(data);
  if (pid === undefined) return;
  const stopped = await run(
    as([join(POSTGRES_BIN, 'pg_ctl'), '-D', data, '-m', 'fast', '-w', '-t', '30', 'stop']),
    { allowFailure: true, timeoutMs: 60_000 },
  );
  if (stopped.code === 0) return;
  // pg_ctl could not: the postmaster itself, by the pid it wrote (SIGQUIT: immediate shutdown).
  try {
    process.kill(pid, 'SIGQUIT');
  } catch {
    // already gone
  }
}
