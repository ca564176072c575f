/** Web sign-ins at connect (SSO): pending, started by a browser, finished once. */
import { insertAudit } from './audit.js';
import type { Sql } from './sql.js';
import { setSessionGroups } from './users.js';
import type { AuditEntry, SsoClaim, SsoSignIn } from './types.js';

interface SsoRow {
  id: string;
  request_id: string;
  user: string;
  server: string;
  remote: string;
  created_at: string;
  expires_at: string;
  state: string | null;
  nonce: string | null;
  code_verifier: string | null;
  browser_sha256: string | null;
  started_at: string | null;
  finished_at: string | null;
  result: string | null;
}

function toSignIn(r: SsoRow): SsoSignIn {
  return {
    id: r.id,
    requestId: r.request_id,
    user: r.user,
    server: r.server,
    remote: r.remote,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    ...(r.started_at !== null && r.state !== null
      ? {
          started: {
            at: r.started_at,
            state: r.state,
            nonce: r.nonce ?? '',
            codeVerifier: r.code_verifier ?? '',
            browserSha256: r.browser_sha256 ?? '',
          },
        }
      : {}),
    ...(r.finished_at !== null ? { finishedAt: r.finished_at } : {}),
    ...(r.result !== null ? { result: JSON.parse(r.result) as Record<string, unknown> } : {}),
  };
}

export async function createSsoSignIn(
  sql: Sql,
  s: Omit<SsoSignIn, 'started' | 'finishedAt' | 'result'>,
): Promise<void> {
  await sql.run(
    `INSERT INTO sso_sign_ins (id, request_id, "user", server, remote, created_at, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
    [s.id, s.requestId, s.user, s.server, s.remote, s.createdAt, s.expiresAt],
  );
}

export async function getSsoSignIn(sql: Sql, id: string): Promise<SsoSignIn | undefined> {
  const r = await sql.get<SsoRow>('SELECT * FROM sso_sign_ins WHERE id = ?', [id]);
  return r && toSignIn(r);
}

/**
 * The sign-in an agent's request id opened (the newest, should an id ever repeat). Asked only
 * when an agent's long-poll reaches a controller that did not begin it (the first one died),
 * so a scan of this small table (sign-ins are pruned after a day) is fine without an index.
 */
export async function ssoSignInOfRequest(
  sql: Sql,
  requestId: string,
): Promise<SsoSignIn | undefined> {
  const r = await sql.get<SsoRow>(
    'SELECT * FROM sso_sign_ins WHERE request_id = ? ORDER BY created_at DESC LIMIT 1',
    [requestId],
  );
  return r && toSignIn(r);
}

export async function startSsoSignIn(
  sql: Sql,
  id: string,
  started: NonNullable<SsoSignIn['started']>,
  now: Date,
): Promise<boolean> {
  const changed = await sql.run(
    `UPDATE sso_sign_ins
     SET state = ?, nonce = ?, code_verifier = ?, browser_sha256 = ?, started_at = ?
     WHERE id = ? AND finished_at IS NULL AND expires_at > ?`,
    [
      started.state,
      started.nonce,
      started.codeVerifier,
      started.browserSha256,
      started.at,
      id,
      now.toISOString(),
    ],
  );
  return changed === 1;
}

/** Runs in the caller's write transaction: the check and the mark are one step. */
export async function claimSsoSignIn(sql: Sql, state: string, now: Date): Promise<SsoClaim> {
  const r = await sql.get<SsoRow>('SELECT * FROM sso_sign_ins WHERE state = ?', [state]);
  if (!r) return { problem: 'unknown' };
  const signIn = toSignIn(r);
  if (r.finished_at !== null) return { problem: 'finished', signIn };
  const at = now.toISOString();
  await sql.run('UPDATE sso_sign_ins SET finished_at = ? WHERE id = ?', [at, r.id]);
  if (r.expires_at <= at) return { problem: 'expired', signIn: { ...signIn, finishedAt: at } };
  return { claimed: { ...signIn, finishedAt: at } };
}

/** Runs in the caller's write transaction. */
export async function finishSsoSignIn(
  sql: Sql,
  id: string,
  result: Record<string, unknown>,
  audit: AuditEntry,
  sessionGroups?: readonly string[],
): Promise<void> {
  if (sessionGroups) {
    const row = await sql.get<{ user: string }>('SELECT "user" FROM sso_sign_ins WHERE id = ?', [
      id,
    ]);
    if (row) await setSessionGroups(sql, row.user, sessionGroups, audit.at);
  }
  // The request's secrets are of no use once it ended; the state stays, so a replay is told so.
  await sql.run(
    `UPDATE sso_sign_ins SET result = ?, nonce = NULL, code_verifier = NULL,
       finished_at = COALESCE(finished_at, ?) WHERE id = ?`,
    [JSON.stringify(result), audit.at, id],
  );
  await insertAudit(sql, audit);
}

export async function ssoResults(
  sql: Sql,
  ids: string[],
): Promise<Map<string, Record<string, unknown>>> {
  const out = new Map<string, Record<string, unknown>>();
  if (!ids.length) return out;
  const rows = await sql.all<{ id: string; result: string }>(
    `SELECT id, result FROM sso_sign_ins
     WHERE ${sql.dialect.inJsonTexts('id')} AND result IS NOT NULL`,
    [JSON.stringify(ids)],
  );
  for (const r of rows) out.set(r.id, JSON.parse(r.result) as Record<string, unknown>);
  return out;
}

export async function pruneSsoSignIns(sql: Sql, before: Date): Promise<number> {
  return await sql.run('DELETE FROM sso_sign_ins WHERE created_at < ?', [before.toISOString()]);
}
