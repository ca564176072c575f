/** Users' TOTP enrolment: the sealed secret, the last step used, hashed recovery codes. */
import type { Sql } from './sql.js';
import type { StoredTotp } from './types.js';

interface TotpRow {
  user_name: string;
  secret: string;
  created_at: string;
  confirmed_at: string | null;
  last_step: number | string;
}

export async function getTotp(sql: Sql, user: string): Promise<StoredTotp | undefined> {
  const r = await sql.get<TotpRow>('SELECT * FROM user_totp WHERE user_name = ?', [user]);
  if (!r) return undefined;
  const remaining = await sql.get<{ n: number | string }>(
    'SELECT COUNT(*) AS n FROM user_totp_recovery WHERE user_name = ? AND used_at IS NULL',
    [user],
  );
  return {
    user: r.user_name,
    sealedSecret: r.secret,
    createdAt: r.created_at,
    ...(r.confirmed_at ? { confirmedAt: r.confirmed_at } : {}),
    lastStep: Number(r.last_step),
    recoveryCodesLeft: Number(remaining?.n ?? 0),
  };
}

/** Replaces the user's enrolment (a new secret, new recovery codes, not confirmed yet). */
export async function putTotp(
  sql: Sql,
  user: string,
  sealedSecret: string,
  recoverySha256: readonly string[],
  at: string,
): Promise<void> {
  await sql.run('DELETE FROM user_totp WHERE user_name = ?', [user]);
  await sql.run('INSERT INTO user_totp (user_name, secret, created_at) VALUES (?, ?, ?)', [
    user,
    sealedSecret,
    at,
  ]);
  for (const h of new Set(recoverySha256))
    await sql.run('INSERT INTO user_totp_recovery (user_name, code_sha256) VALUES (?, ?)', [
      user,
      h,
    ]);
}

export async function confirmTotp(sql: Sql, user: string, at: string): Promise<boolean> {
  return (
    (await sql.run(
      'UPDATE user_totp SET confirmed_at = ? WHERE user_name = ? AND confirmed_at IS NULL',
      [at, user],
    )) === 1
  );
}

/** Records `step` as used if it is later than the last one: false when it was used already. */
export async function useTotpStep(sql: Sql, user: string, step: number): Promise<boolean> {
  return (
    (await sql.run('UPDATE user_totp SET last_step = ? WHERE user_name = ? AND last_step < ?', [
      step,
      user,
      step,
    ])) === 1
  );
}

/** Marks an unused recovery code used: false when there is no such unused code. */
export async function useRecoveryCode(
  sql: Sql,
  user: string,
  sha256: string,
  at: string,
): Promise<boolean> {
  return (
    (await sql.run(
      'UPDATE user_totp_recovery SET used_at = ? WHERE user_name = ? AND code_sha256 = ? AND used_at IS NULL',
      [at, user, sha256],
    )) === 1
  );
}

export async function deleteTotp(sql: Sql, user: string): Promise<boolean> {
  await sql.run('DELETE FROM user_totp_recovery WHERE user_name = ?', [user]);
  return (await sql.run('DELETE FROM user_totp WHERE user_name = ?', [user])) === 1;
}
