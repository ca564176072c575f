/**
 * Printing helpers shared by the commands: aligned tables for people, JSON for scripts.
 * User names, server names and messages may come from a store or a controller someone else
 * wrote to; a terminal must get none of their control characters raw.
 */

/**
 * C0, DEL, C1, and the characters that reorder or break lines without being control
 * characters (bidi overrides and isolates, line and paragraph separators): they can make a
 * printed line read as something else.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const hex = (c: string, width: number) => c.charCodeAt(0).toString(16).padStart(width, '0');

/** Shows each control character as `\x1b` (or `\u202e` beyond Latin-1); the rest unchanged. */
export function escapeControl(text: string): string {
  return text.replace(UNPRINTABLE, (c) =>
    c.charCodeAt(0) <= 0xff ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`,
  );
}

/** One line for a person on standard output. */
export function say(line: string): void {
  process.stdout.write(`${escapeControl(line)}\n`);
}

/** One line for a person on standard error. */
export function warn(line: string): void {
  process.stderr.write(`${escapeControl(line)}\n`);
}

export function printTable<T extends object>(rows: T[], columns: (keyof T & string)[]): void {
  const cells = rows.map((r) => columns.map((c) => escapeControl(formatCell(r[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(columns.map((c) => c.toUpperCase()))}\n`);
  for (const row of cells) process.stdout.write(`${line(row)}\n`);
}

function formatCell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (Array.isArray(v)) return v.length ? v.join(',') : '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return `${v as string | number | boolean}`;
}

/**
 * JSON.stringify escapes C0 but leaves DEL, C1 and the separators raw, and people do read
 * `--json` in a terminal. Escaping them as \uXXXX is still valid JSON and parses to the very
 * same value, so scripts see no difference.
 */
const RAW_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function printJson(value: unknown): void {
  const text = JSON.stringify(value, null, 2).replace(RAW_IN_JSON, (c) => `\\u${hex(c, 4)}`);
  process.stdout.write(`${text}\n`);
}
