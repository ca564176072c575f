/** Admin accounts of the console and the API, and their signed-in sessions. */
import { Conflict, NotFound } from '../errors.js';
import { insertAudit } from './audit.js';
import type { Sql } from './sql.js';
import type { Admin, AdminRole, AdminSession, NewAdmin } from './types.js';

interface AdminRow {
  name: string;
  role: AdminRole;
  password_hash: string;
  must_change_password: number;
  created_at: string;
  password_changed_at: string;
}

interface AdminSessionRow {
  id_sha256: string;
  admin: string;
  csrf_token: string;
  created_at: string;
  last_seen_at: string;
  address: string | null;
}

function toAdmin(r: AdminRow): Admin {
  return {
    name: r.name,
    role: r.role,
    passwordHash: r.password_hash,
    mustChangePassword: r.must_change_password !== 0,
    createdAt: r.created_at,
    passwordChangedAt: r.password_changed_at,
  };
}

function toAdminSession(r: AdminSessionRow): AdminSession {
  return {
    idSha256: r.id_sha256,
    admin: r.admin,
    csrfToken: r.csrf_token,
    createdAt: r.created_at,
    lastSeenAt: r.last_seen_at,
    ...(r.address !== null ? { address: r.address } : {}),
  };
}

/** Runs in the caller's write transaction. */
export async function createAdmin(
  sql: Sql,
  admin: NewAdmin,
  now: Date,
  actor: string,
): Promise<Admin> {
  if (await getAdmin(sql, admin.name)) throw new Conflict(`admin ${admin.name} already exists`);
  const at = now.toISOString();
  await sql.run(
    `INSERT INTO admins (name, role, password_hash, must_change_password, created_at, updated_at, password_changed_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [admin.name, admin.role, admin.passwordHash, admin.mustChangePassword ? 1 : 0, at, at, at],
  );
  await insertAudit(sql, {
    at,
    actor,
    action: 'admin.add',
    subject: admin.name,
    detail: { role: admin.role, mustChangePassword: admin.mustChangePassword },
  });
  return (await getAdmin(sql, admin.name))!;
}

export async function getAdmin(sql: Sql, name: string): Promise<Admin | undefined> {
  const r = await sql.get<AdminRow>('SELECT * FROM admins WHERE name = ?', [name]);
  return r && toAdmin(r);
}

async function mustGetAdmin(sql: Sql, name: string): Promise<Admin> {
  const a = await getAdmin(sql, name);
  if (!a) throw new NotFound(`no admin named ${name}`);
  return a;
}

export async function listAdmins(sql: Sql): Promise<Admin[]> {
  return (await sql.all<AdminRow>('SELECT * FROM admins ORDER BY name')).map(toAdmin);
}

/** Ends every session of `name` but `keep`; returns how many ended. */
async function endSessionsOf(sql: Sql, name: string, keep?: string): Promise<number> {
  return await sql.run(
    'DELETE FROM admin_sessions WHERE admin = ? AND id_sha256 IS DISTINCT FROM ?',
    [name, keep ?? null],
  );
}

/** Runs in the caller's write transaction. */
export async function deleteAdmin(
  sql: Sql,
  name: string,
  now: Date,
  actor: string,
): Promise<Admin> {
  const admin = await mustGetAdmin(sql, name);
  const sessionsEnded = await endSessionsOf(sql, name);
  await sql.run('DELETE FROM admins WHERE name = ?', [name]);
  await insertAudit(sql, {
    at: now.toISOString(),
    actor,
    action: 'admin.remove',
    subject: name,
    detail: { role: admin.role, sessionsEnded },
  });
  return admin;
}

/** Runs in the caller's write transaction. */
export async function setAdminRole(
  sql: Sql,
  name: string,
  role: AdminRole,
  now: Date,
  actor: string,
): Promise<Admin> {
  const before = await mustGetAdmin(sql, name);
  const at = now.toISOString();
  await sql.run('UPDATE admins SET role = ?, updated_at = ? WHERE name = ?', [role, at, name]);
  const sessionsEnded = await endSessionsOf(sql, name);
  await insertAudit(sql, {
    at,
    actor,
    action: 'admin.role',
    subject: name,
    detail: { from: before.role, to: role, sessionsEnded },
  });
  return { ...before, role };
}

/** Runs in the caller's write transaction. */
export async function setAdminPassword(
  sql: Sql,
  name: string,
  change: { passwordHash: string; mustChangePassword: boolean; keepSession?: string },
  now: Date,
  actor: string,
): Promise<Admin> {
  const before = await mustGetAdmin(sql, name);
  const at = now.toISOString();
  await sql.run(
    'UPDATE admins SET password_hash = ?, must_change_password = ?, updated_at = ?, password_changed_at = ? WHERE name = ?',
    [change.passwordHash, change.mustChangePassword ? 1 : 0, at, at, name],
  );
  const sessionsEnded = await endSessionsOf(sql, name, change.keepSession);
  await insertAudit(sql, {
    at,
    actor,
    action: 'admin.password',
    subject: name,
    detail: { mustChangePassword: change.mustChangePassword, sessionsEnded },
  });
  return {
    ...before,
    passwordHash: change.passwordHash,
    mustChangePassword: change.mustChangePassword,
    passwordChangedAt: at,
  };
}

/** Runs in the caller's write transaction. */
export async function createAdminSession(
  sql: Sql,
  session: AdminSession,
  actor: string,
): Promise<void> {
  // Checked in the same transaction: an admin removed a moment ago gets no new session.
  await mustGetAdmin(sql, session.admin);
  await sql.run(
    `INSERT INTO admin_sessions (id_sha256, admin, csrf_token, created_at, last_seen_at, address)
     VALUES (?, ?, ?, ?, ?, ?)`,
    [
      session.idSha256,
      session.admin,
      session.csrfToken,
      session.createdAt,
      session.lastSeenAt,
      session.address ?? null,
    ],
  );
  await insertAudit(sql, {
    at: session.createdAt,
    actor,
    action: 'admin.login',
    subject: session.admin,
    ...(session.address !== undefined ? { detail: { address: session.address } } : {}),
  });
}

/** Runs in one read transaction (the caller's): the session and its admin as of one instant. */
export async function getAdminSession(
  sql: Sql,
  idSha256: string,
): Promise<{ session: AdminSession; admin: Admin } | undefined> {
  const r = await sql.get<AdminSessionRow>('SELECT * FROM admin_sessions WHERE id_sha256 = ?', [
    idSha256,
  ]);
  if (!r) return undefined;
  const admin = await getAdmin(sql, r.admin);
  return admin && { session: toAdminSession(r), admin };
}

export async function touchAdminSession(sql: Sql, idSha256: string, at: Date): Promise<void> {
  await sql.run('UPDATE admin_sessions SET last_seen_at = ? WHERE id_sha256 = ?', [
    at.toISOString(),
    idSha256,
  ]);
}

/** Runs in the caller's write transaction. */
export async function endAdminSession(
  sql: Sql,
  idSha256: string,
  reason: string,
  now: Date,
  actor: string,
): Promise<boolean> {
  const r = await sql.get<AdminSessionRow>('SELECT * FROM admin_sessions WHERE id_sha256 = ?', [
    idSha256,
  ]);
  if (!r) return false;
  await sql.run('DELETE FROM admin_sessions WHERE id_sha256 = ?', [idSha256]);
  await insertAudit(sql, {
    at: now.toISOString(),
    actor,
    action: 'admin.logout',
    subject: r.admin,
    detail: { reason },
  });
  return true;
}

export async function pruneAdminSessions(
  sql: Sql,
  idleBefore: Date,
  createdBefore: Date,
): Promise<number> {
  // Timestamps are all written by toISOString(), so string order is time order.
  return await sql.run('DELETE FROM admin_sessions WHERE last_seen_at < ? OR created_at < ?', [
    idleBefore.toISOString(),
    createdBefore.toISOString(),
  ]);
}
