/**
 * The agent's management client against a real OpenVPN 2.6 server of the lab: the sessions it
 * reports, the notification of a new session, and client-kill moving a user to the next site.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ManagementClient, ManagementError } from '../../src/agent/management.js';
import type { SessionReport } from '../../src/api/index.js';
import {
  buildOnce,
  cliOk,
  netnsNames,
  newFleetDir,
  requireLab,
  statusOf,
  waitUntil,
} from './helpers.js';

const PREFIX = 'ovfm';
const runs = requireLab();
let dir = '';
let client: ManagementClient | undefined;
/** The server alice landed on; the client holds this server's management socket. */
let server = '';
const users: Record<string, { ipv4: string; ipv6: string }> = {};
const established: { clientId: number; commonName: string }[] = [];

function siteOf(name: string): string {
  const spec = parse(readFileSync(join(dir, 'fleet.yaml'), 'utf8')) as {
    sites: { name: string; servers: { name: string }[] }[];
  };
  const site = spec.sites.find((s) => s.servers.some((x) => x.name === name));
  if (!site) throw new Error(`${name} is in no site`);
  return site.name;
}

const sessionOf = (sessions: SessionReport[], user: string) =>
  sessions.find((s) => s.user === user);

describe.runIf(runs)('management client against a real OpenVPN server', () => {
  beforeAll(async () => {
    await buildOnce();
    dir = await newFleetDir();
    for (const name of ['alice', 'bob'])
      users[name] = JSON.parse(await cliOk(dir, ['user', 'add', name, '--json'])) as {
        ipv4: string;
        ipv6: string;
      };
    // Without the lab's agents: they would hold the management socket this test connects to.
    console.log((await cliOk(dir, ['lab', 'up', '--prefix', PREFIX, '--no-control-plane'])).trim());
    // The full profile: first remote is dc1's load balancer, the next one dc2's.
    console.log((await cliOk(dir, ['lab', 'connect', '--prefix', PREFIX, 'alice'])).trim());
    await waitUntil(
      "alice's server in lab status",
      async () => (await statusOf(dir, PREFIX, 'alice')).server !== undefined,
      15_000,
    );
    server = (await statusOf(dir, PREFIX, 'alice')).server ?? '';
    const serverDir = join(dir, '.lab', PREFIX, 'servers', server);
    client = new ManagementClient({
      socketPath: join(serverDir, 'run', 'management.sock'),
      passwordFile: join(serverDir, 'management.pw'),
      log: (line) => console.log(line),
    });
    client.on('client-established', (clientId, commonName) =>
      established.push({ clientId, commonName }),
    );
    await client.connect();
  }, 600_000);

  afterAll(async () => {
    client?.close();
    if (!dir) return;
    console.log((await cliOk(dir, ['lab', 'down', '--prefix', PREFIX])).trim());
    expect(netnsNames().filter((n) => n.startsWith(`${PREFIX}-`))).toEqual([]);
  }, 600_000);

  it("reports the connected user's session with her own addresses", async () => {
    expect(client?.connected).toBe(true);
    const alice = sessionOf(await client!.status(), 'alice');
    expect(alice).toBeDefined();
    expect(alice!.ipv4).toBe(users.alice.ipv4);
    expect(alice!.ipv6).toBe(users.alice.ipv6);
    expect(alice!.realAddress).toMatch(/^\d+\.\d+\.\d+\.\d+:\d+$/);
    expect(Number.isInteger(alice!.clientId)).toBe(true);
    expect(alice!.bytesIn).toBeGreaterThan(0);
    const age = Date.now() - Date.parse(alice!.since);
    expect(age).toBeGreaterThanOrEqual(-2000);
    expect(age).toBeLessThan(10 * 60_000);
  });

  it('announces a new session on the same server (>CLIENT:ESTABLISHED)', async () => {
    await cliOk(dir, ['lab', 'connect', '--prefix', PREFIX, 'bob', '--server', server]);
    await waitUntil(
      'client-established for bob',
      () => Promise.resolve(established.length > 0),
      10_000,
    );
    expect(established.map((e) => e.commonName)).toEqual(['bob']);
    const bob = sessionOf(await client!.status(), 'bob');
    expect(bob?.clientId).toBe(established[0].clientId);
    expect(bob?.ipv4).toBe(users.bob.ipv4);
    expect(bob?.ipv6).toBe(users.bob.ipv6);
  });

  it('refuses to kill a session that does not exist', async () => {
    const err = await client!.kill(999_999).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ManagementError);
    expect((err as Error).message).toMatch(/client-kill command failed/);
  });

  it('kill with restartToNext moves the user off this server, to her next remote', async () => {
    const before = sessionOf(await client!.status(), 'alice');
    expect(before).toBeDefined();
    await client!.kill(before!.clientId, { restartToNext: true });
    // OpenVPN keeps a killed instance ~5 s (delayed exit) before it leaves the status.
    const gone = await waitUntil(
      `alice's session to leave ${server}`,
      async () => sessionOf(await client!.status(), 'alice') === undefined,
      20_000,
      250,
    );
    console.log(`alice left ${server} ${gone} ms after client-kill`);
    // Her next remote is the other site's load balancer: a plain RESTART would bring her back
    // through the same balancer, to this site.
    let now = '';
    await waitUntil(
      'alice back on another server',
      async () => {
        now = (await statusOf(dir, PREFIX, 'alice')).server ?? '';
        return now !== '' && now !== server;
      },
      30_000,
      250,
    );
    expect(siteOf(now)).not.toBe(siteOf(server));
    // Bob's session on this server was not touched.
    expect(sessionOf(await client!.status(), 'bob')).toBeDefined();
  });
});
