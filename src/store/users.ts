/**
 * Users and their addresses: creation with allocation from the pools (and the quarantine of
 * deleted users' addresses), status, groups, search.
 */
import { Conflict, InputError, NotFound } from '../errors.js';
import { OffsetAllocator, checkPinnable, offsetOf } from '../core/ipam.js';
import { insertAudit } from './audit.js';
import { insertClientCert } from './certs.js';
import type { Sql } from './sql.js';
import type {
  CertAttachment,
  NewCert,
  NewUser,
  Pools,
  User,
  UserPage,
  UserSearch,
  UserSort,
  UserStatus,
} from './types.js';

interface UserRow {
  id: number;
  name: string;
  ipv4: string;
  ipv6: string;
  status: UserStatus;
  cert_serial: string | null;
  created_at: string;
  groups: string | null;
  not_after: string | null;
  session_groups: string | null;
  session_groups_at: string | null;
}

const USER_SELECT = `
  SELECT u.id, u.name, u.ipv4, u.ipv6, u.status, u.cert_serial, u.created_at, c.not_after,
         u.session_groups, u.session_groups_at,
         (SELECT string_agg(g.group_name, ',' ORDER BY g.group_name) FROM user_groups g WHERE g.user_id = u.id) AS groups
  FROM users u LEFT JOIN certs c ON c.serial = u.cert_serial`;

function toUser(r: UserRow): User {
  return {
    name: r.name,
    ipv4: r.ipv4,
    ipv6: r.ipv6,
    groups: r.groups ? r.groups.split(',') : [],
    status: r.status,
    createdAt: r.created_at,
    ...(r.cert_serial ? { certSerial: r.cert_serial } : {}),
    ...(r.not_after ? { certNotAfter: r.not_after } : {}),
    ...(r.session_groups !== null && r.session_groups_at !== null
      ? {
          sessionGroups: {
            groups: JSON.parse(r.session_groups) as string[],
            at: r.session_groups_at,
          },
        }
      : {}),
  };
}

/**
 * Keeps what a successful sign-in said about `name`'s groups; runs in the caller's write
 * transaction (the sign-in's, beside its audit entry). A user deleted meanwhile: nothing.
 */
export async function setSessionGroups(
  sql: Sql,
  name: string,
  groups: readonly string[],
  at: string,
): Promise<void> {
  await sql.run('UPDATE users SET session_groups = ?, session_groups_at = ? WHERE name = ?', [
    JSON.stringify([...new Set(groups)].sort()),
    at,
    name,
  ]);
}

/** ORDER BY of a user search; the name breaks ties so that pages never overlap or skip. */
function userOrder(sort: UserSort, descending: boolean): string {
  const dir = descending ? 'DESC' : 'ASC';
  const first = { name: [], created: ['u.created_at'], status: ['u.status'] }[sort];
  return [...first, 'u.name'].map((c) => `${c} ${dir}`).join(', ');
}

/** A LIKE pattern matching `text` literally anywhere: its own `%`, `_` and `\` are escaped. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Adds users in the caller's write transaction; addresses come from the pools unless pinned. */
export async function createUsers(
  sql: Sql,
  users: NewUser[],
  pools: Pools,
  now: Date,
  actor: string,
): Promise<User[]> {
  const at = now.toISOString();
  await purgeQuarantine(sql, pools, now);
  const taken4 = new Set<bigint>();
  const taken6 = new Set<bigint>();
  const held = await sql.all<{ a: string }>(
    'SELECT ipv4 AS a FROM users UNION ALL SELECT ipv6 FROM users UNION ALL SELECT address FROM released_addresses',
  );
  for (const { a } of held) {
    const o4 = offsetOf(pools.ipv4, a);
    if (o4 !== undefined) taken4.add(o4);
    const o6 = offsetOf(pools.ipv6, a);
    if (o6 !== undefined) taken6.add(o6);
  }
  const allocator = new OffsetAllocator(pools.ipv4, pools.ipv6, taken4, taken6);
  const created: User[] = [];
  for (const u of users) {
    if (await sql.get('SELECT id FROM users WHERE name = ?', [u.name]))
      throw new Conflict(`user ${u.name} already exists`);
    const pinned: { ipv4?: string; ipv6?: string } = {};
    for (const family of ['ipv4', 'ipv6'] as const) {
      const want = u[family];
      if (want === undefined) continue;
      const check = checkPinnable(pools[family], want);
      if (!check.ok) throw new InputError(family, check.reason);
      const taken = family === 'ipv4' ? taken4 : taken6;
      if (taken.has(offsetOf(pools[family], check.address)!)) {
        throw new Conflict(`${family} ${check.address} is already assigned or quarantined`);
      }
      pinned[family] = check.address;
    }
    const addr = allocator.next(pinned);
    if (!addr)
      throw new Conflict(
        `the user pools are full (${pools.ipv4.length}/${pools.ipv6.length}): cannot add ${u.name}`,
      );
    if (u.cert) {
      await insertClientCert(sql, u.name, u.cert, at, false);
    }
    const { id } = (await sql.get<{ id: number }>(
      `INSERT INTO users (name, ipv4, ipv6, status, cert_serial, created_at, updated_at) VALUES (?, ?, ?, 'enabled', ?, ?, ?) RETURNING id`,
      [u.name, addr.ipv4, addr.ipv6, u.cert?.serial ?? null, at, at],
    ))!;
    const groups = [...new Set(u.groups)];
    for (const g of groups)
      await sql.run('INSERT INTO user_groups (user_id, group_name) VALUES (?, ?)', [id, g]);
    await insertAudit(sql, {
      at,
      actor,
      action: 'user.add',
      subject: u.name,
      detail: { ...addr, groups: u.groups },
    });
    created.push({
      name: u.name,
      ...addr,
      groups: groups.sort(),
      status: 'enabled',
      createdAt: at,
      ...(u.cert ? { certSerial: u.cert.serial, certNotAfter: u.cert.notAfter.toISOString() } : {}),
    });
  }
  return created;
}

/** See FleetStore.attachCertIfNone; runs in the caller's write transaction. */
export async function attachCertIfNone(
  sql: Sql,
  name: string,
  cert: NewCert,
  now: Date,
  actor: string,
): Promise<CertAttachment> {
  const u = await getUser(sql, name);
  const at = now.toISOString();
  const attach = u !== undefined && u.certSerial === undefined && u.status !== 'revoked';
  await insertClientCert(sql, name, cert, at, !attach);
  if (!attach) {
    await insertAudit(sql, {
      at,
      actor,
      action: 'cert.discard',
      subject: name,
      detail: {
        serial: cert.serial,
        reason: u ? 'user already has a certificate' : 'no such user',
      },
    });
    return u ? { attached: false, user: u } : { attached: false };
  }
  await sql.run('UPDATE users SET cert_serial = ?, updated_at = ? WHERE name = ?', [
    cert.serial,
    at,
    name,
  ]);
  await insertAudit(sql, {
    at,
    actor,
    action: 'user.cert',
    subject: name,
    detail: { serial: cert.serial },
  });
  return {
    attached: true,
    user: { ...u, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() },
  };
}

/** Runs in the caller's write transaction (see FleetStore.replaceClientCert). */
export async function replaceClientCert(
  sql: Sql,
  name: string,
  previous: string,
  cert: NewCert,
  now: Date,
  actor: string,
): Promise<CertAttachment> {
  const u = await getUser(sql, name);
  const at = now.toISOString();
  const attach = u !== undefined && u.certSerial === previous && u.status !== 'revoked';
  await insertClientCert(sql, name, cert, at, !attach);
  if (!attach) {
    await insertAudit(sql, {
      at,
      actor,
      action: 'cert.discard',
      subject: name,
      detail: {
        serial: cert.serial,
        reason: !u
          ? 'no such user'
          : u.status === 'revoked'
            ? 'user is revoked'
            : 'the certificate was renewed meanwhile',
      },
    });
    return u ? { attached: false, user: u } : { attached: false };
  }
  await sql.run('UPDATE users SET cert_serial = ?, updated_at = ? WHERE name = ?', [
    cert.serial,
    at,
    name,
  ]);
  await insertAudit(sql, {
    at,
    actor,
    action: 'user.cert.renew',
    subject: name,
    detail: {
      serial: cert.serial,
      previous,
      notAfter: cert.notAfter.toISOString(),
      ...(cert.issuer ? { issuer: cert.issuer } : {}),
    },
  });
  return {
    attached: true,
    user: { ...u, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() },
  };
}

export async function usersWithoutCert(sql: Sql): Promise<string[]> {
  const rows = await sql.all<{ name: string }>(
    `SELECT name FROM users WHERE cert_serial IS NULL AND status = 'enabled' ORDER BY name`,
  );
  return rows.map((r) => r.name);
}

async function purgeQuarantine(sql: Sql, pools: Pools, now: Date): Promise<void> {
  const cutoff = new Date(now.getTime() - pools.quarantineDays * 86_400_000).toISOString();
  await sql.run('DELETE FROM released_addresses WHERE released_at <= ?', [cutoff]);
}

export async function getUser(sql: Sql, name: string): Promise<User | undefined> {
  const row = await sql.get<UserRow>(`${USER_SELECT} WHERE u.name = ?`, [name]);
  return row && toUser(row);
}

async function mustGetUser(sql: Sql, name: string): Promise<User> {
  const u = await getUser(sql, name);
  if (!u) throw new NotFound(`no user named ${name}`);
  return u;
}

export async function listUsers(sql: Sql): Promise<User[]> {
  return (await sql.all<UserRow>(`${USER_SELECT} ORDER BY u.name`)).map(toUser);
}

/** Runs in one read transaction (the caller's): the count and the page see the same users. */
export async function searchUsers(sql: Sql, search: UserSearch): Promise<UserPage> {
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (search.status !== undefined) {
    where.push('u.status = ?');
    args.push(search.status);
  }
  if (search.group !== undefined) {
    where.push('u.id IN (SELECT user_id FROM user_groups WHERE group_name = ?)');
    args.push(search.group);
  }
  if (search.q) {
    // A substring can use no B-tree index: this scans the users (~10 ms at 10,000). The
    // status and group conditions above are indexed and narrow the scan first. The groups
    // are matched by one uncorrelated subquery (evaluated once) rather than a lookup per
    // user, which measured about twice as slow.
    const like = containsPattern(search.q);
    const LIKE = `${sql.dialect.likeIgnoringCase} ? ESCAPE '\\'`;
    where.push(
      `(u.name ${LIKE} OR u.ipv4 ${LIKE} OR u.ipv6 ${LIKE}
        OR u.id IN (SELECT user_id FROM user_groups WHERE group_name ${LIKE}))`,
    );
    args.push(like, like, like, like);
  }
  const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
  const order = userOrder(search.sort ?? 'name', search.descending ?? false);
  const limit = search.limit ?? sql.dialect.noLimit;
  const offset = search.offset ?? 0;
  const count = async () =>
    (await sql.get<{ n: number }>(`SELECT count(*) AS n FROM users u ${filter}`, args))!.n;
  let total: number;
  let ids: number[];
  if (!filter) {
    // Unfiltered: the page walks an index and stops; counting is cheap on its own.
    total = await count();
    ids = (
      await sql.all<{ id: number }>(`SELECT u.id FROM users u ORDER BY ${order} LIMIT ? OFFSET ?`, [
        limit,
        offset,
      ])
    ).map((r) => r.id);
  } else {
    // Filtered: one scan yields the page and, through the window, the number of matches.
    const rows = await sql.all<{ id: number; total: number }>(
      `SELECT u.id, count(*) OVER () AS total FROM users u ${filter} ORDER BY ${order} LIMIT ? OFFSET ?`,
      [...args, limit, offset],
    );
    ids = rows.map((r) => r.id);
    total = rows[0]?.total ?? (offset > 0 ? await count() : 0);
  }
  // Then the full rows (groups, certificate) of the page alone, in the page's order.
  const byId = new Map(
    (
      await sql.all<UserRow>(`${USER_SELECT} WHERE ${sql.dialect.inJsonIntegers('u.id')}`, [
        JSON.stringify(ids),
      ])
    ).map((r) => [r.id, toUser(r)]),
  );
  return { total, users: ids.map((id) => byId.get(id)!) };
}

export async function setStatus(
  sql: Sql,
  name: string,
  status: UserStatus,
  now: Date,
  actor: string,
): Promise<User> {
  const u = await mustGetUser(sql, name);
  if (u.status === 'revoked' && status !== 'revoked') {
    throw new Conflict(
      `user ${name} is revoked: delete and add the user again to issue a new certificate`,
    );
  }
  const at = now.toISOString();
  await sql.run('UPDATE users SET status = ?, updated_at = ? WHERE name = ?', [status, at, name]);
  await insertAudit(sql, {
    at,
    actor,
    action: `user.${status === 'enabled' ? 'enable' : status === 'disabled' ? 'disable' : 'revoke'}`,
    subject: name,
  });
  return { ...u, status };
}

export async function setGroups(
  sql: Sql,
  name: string,
  groups: string[],
  now: Date,
  actor: string,
): Promise<User> {
  const u = await mustGetUser(sql, name);
  const { id } = (await sql.get<{ id: number }>('SELECT id FROM users WHERE name = ?', [name]))!;
  await sql.run('DELETE FROM user_groups WHERE user_id = ?', [id]);
  const unique = [...new Set(groups)].sort();
  for (const g of unique)
    await sql.run('INSERT INTO user_groups (user_id, group_name) VALUES (?, ?)', [id, g]);
  await insertAudit(sql, {
    at: now.toISOString(),
    actor,
    action: 'user.groups',
    subject: name,
    detail: { groups: unique },
  });
  return { ...u, groups: unique };
}

export async function deleteUser(sql: Sql, name: string, now: Date, actor: string): Promise<User> {
  const u = await mustGetUser(sql, name);
  const at = now.toISOString();
  for (const address of [u.ipv4, u.ipv6])
    await sql.run(
      `INSERT INTO released_addresses (address, user_name, released_at) VALUES (?, ?, ?)
       ON CONFLICT (address) DO UPDATE SET user_name = excluded.user_name, released_at = excluded.released_at`,
      [address, name, at],
    );
  await sql.run('DELETE FROM users WHERE name = ?', [name]);
  await insertAudit(sql, {
    at,
    actor,
    action: 'user.delete',
    subject: name,
    detail: { ipv4: u.ipv4, ipv6: u.ipv6 },
  });
  return u;
}

export async function addressesHeld(sql: Sql, pools: Pools, now: Date): Promise<number> {
  const cutoff = new Date(now.getTime() - pools.quarantineDays * 86_400_000).toISOString();
  const users = (await sql.get<{ n: number }>('SELECT count(*) AS n FROM users'))!.n;
  // A user holds one address per family; quarantine rows are per address, so halve them.
  const released = (await sql.get<{ n: number }>(
    'SELECT count(*) AS n FROM released_addresses WHERE released_at > ?',
    [cutoff],
  ))!.n;
  return users + Math.ceil(released / 2);
}
