/** Fleet-wide key/value settings: secrets, the CRL and its number. */
import type { Sql } from './sql.js';

export async function getSetting(sql: Sql, key: string): Promise<string | undefined> {
  return (await sql.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', [key]))
    ?.value;
}

export async function setSetting(sql: Sql, key: string, value: string): Promise<void> {
  await sql.run(
    'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    [key, value],
  );
}
