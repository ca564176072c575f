/**
 * The one seam between the store's aggregates (users.ts, certs.ts, sessions.ts, audit.ts,
 * admins.ts, settings.ts) and an engine: SQL text with `?` placeholders and positional
 * parameters. Each aggregate is written once against this; an engine supplies a connection
 * (or a transaction's) behind it.
 */
export type SqlParam = string | number | null;

export interface Sql {
  /** The first row, or undefined. */
  get<T>(sql: string, params?: SqlParam[]): T | undefined;
  all<T>(sql: string, params?: SqlParam[]): T[];
  /** Runs a statement that returns no rows; returns how many rows it changed. */
  run(sql: string, params?: SqlParam[]): number;
}
