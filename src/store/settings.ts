/** Fleet-wide key/value settings: secrets, the CRL and its number. */
import type { Sql } from './sql.js';

export function getSetting(sql: Sql, key: string): string | undefined {
  return sql.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', [key])?.value;
}

export function setSetting(sql: Sql, key: string, value: string): void {
  sql.run(
    'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
    [key, value],
  );
}
