/** The audit trail: appended by every change, read newest first, tailed by the audit sinks. */
import { InputError } from '../errors.js';
import type { Sql, SqlParam } from './sql.js';
import type { AuditEntry, AuditFilter, StoredAuditEntry } from './types.js';

interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  subject: string;
  detail: string | null;
}

const AUDIT_COLUMNS = 'id, at, actor, action, subject, detail';

function toAudit(r: AuditRow): StoredAuditEntry {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    ...(r.detail ? { detail: JSON.parse(r.detail) as Record<string, unknown> } : {}),
  };
}

export async function insertAudit(sql: Sql, entry: AuditEntry): Promise<void> {
  await sql.run('INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)', [
    entry.at,
    entry.actor,
    entry.action,
    entry.subject,
    entry.detail ? JSON.stringify(entry.detail) : null,
  ]);
}

export async function auditQuery(sql: Sql, f: AuditFilter): Promise<StoredAuditEntry[]> {
  const where: string[] = [];
  const args: SqlParam[] = [];
  const add = (cond: string, value: string | number) => {
    where.push(cond);
    args.push(value);
  };
  if (f.actor !== undefined) add('actor = ?', f.actor);
  if (f.subject !== undefined) add('subject = ?', f.subject);
  if (f.action !== undefined) add('action = ?', f.action);
  if (f.actionPrefix) {
    // A range instead of LIKE: it uses the index, and a prefix has no wildcard to escape.
    // The upper bound is the prefix with its last character moved up by one.
    const p = f.actionPrefix;
    add('action >= ?', p);
    add('action < ?', p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1));
  }
  // `at` is always written by toISOString(): string order is time order.
  if (f.since) add('at >= ?', f.since.toISOString());
  if (f.until) add('at < ?', f.until.toISOString());
  if (f.before !== undefined) add('id < ?', f.before);
  const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
  return (
    await sql.all<AuditRow>(
      `SELECT ${AUDIT_COLUMNS} FROM audit ${filter} ORDER BY id DESC LIMIT ?`,
      [...args, f.limit],
    )
  ).map(toAudit);
}

/** Most actions one auditForSubject call reads (each is one sub-select). */
export const MAX_SUBJECT_ACTIONS = 16;

/**
 * The statement of auditForSubject for `count` actions; its arguments are (subject, action,
 * limit) for each action, then the limit. Each action is its own sub-select, ORDER BY id DESC
 * LIMIT n on the (subject, action, id) index (migration 13): at most actions × limit rows are
 * read, however many other entries the subject has, where `action IN (…)` would make both
 * engines gather every match and sort it before the limit. Sub-selects in FROM, because SQLite
 * allows no ORDER BY or LIMIT on the arms of a UNION.
 */
export function auditForSubjectSql(count: number): string {
  const arms = Array.from(
    { length: count },
    (_, i) =>
      `SELECT * FROM (SELECT ${AUDIT_COLUMNS} FROM audit WHERE subject = ? AND action = ? ORDER BY id DESC LIMIT ?) AS a${i}`,
  );
  return `SELECT ${AUDIT_COLUMNS} FROM (${arms.join(' UNION ALL ')}) AS s ORDER BY id DESC LIMIT ?`;
}

/** The newest `limit` entries about `subject` whose action is one of `actions`, newest first. */
export async function auditForSubject(
  sql: Sql,
  subject: string,
  actions: readonly string[],
  limit: number,
): Promise<StoredAuditEntry[]> {
  const wanted = [...new Set(actions)];
  if (!wanted.length || limit <= 0) return [];
  if (wanted.length > MAX_SUBJECT_ACTIONS)
    throw new InputError(
      'actions',
      `${wanted.length} is more than ${MAX_SUBJECT_ACTIONS} in one read`,
    );
  const args = wanted.flatMap((action) => [subject, action, limit]);
  return (await sql.all<AuditRow>(auditForSubjectSql(wanted.length), [...args, limit])).map(
    toAudit,
  );
}

export async function auditSince(
  sql: Sql,
  afterId: number,
  limit: number,
): Promise<StoredAuditEntry[]> {
  return (
    await sql.all<AuditRow>(`SELECT ${AUDIT_COLUMNS} FROM audit WHERE id > ? ORDER BY id LIMIT ?`, [
      afterId,
      limit,
    ])
  ).map(toAudit);
}

export async function lastAuditId(sql: Sql): Promise<number> {
  return (await sql.get<{ id: number | null }>('SELECT max(id) AS id FROM audit'))!.id ?? 0;
}

export async function pruneAudit(sql: Sql, before: Date): Promise<number> {
  // `at` is always written by toISOString(), so string order is time order.
  return await sql.run('DELETE FROM audit WHERE at < ?', [before.toISOString()]);
}
