/**
 * Audit entries as lines of text: JSON lines (exports, the audit file, syslog) and CSV
 * (exports for spreadsheets). Pure: no I/O.
 */
import type { StoredAuditEntry } from '../store/types.js';

/** One entry as one line of JSON, without the newline (JSON.stringify escapes \n and \r). */
export function auditJsonLine(e: StoredAuditEntry): string {
  return JSON.stringify({
    id: e.id,
    at: e.at,
    actor: e.actor,
    action: e.action,
    subject: e.subject,
    ...(e.detail ? { detail: e.detail } : {}),
  });
}

export const AUDIT_CSV_HEADER = 'id,at,actor,action,subject,detail';

/**
 * One CSV cell (RFC 4180): quoted when it holds a quote, a comma or a line break, quotes
 * doubled. A cell starting with =, +, -, @ (or a tab or carriage return, which some
 * spreadsheets skip before looking) gets a leading apostrophe: spreadsheets would otherwise
 * run it as a formula ("CSV injection"), and actors, subjects and details can carry text an
 * outsider chose (an admin name, a rejected user name in a detail).
 */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** One entry as one CSV record, without the line break; `detail` is its JSON. */
export function auditCsvRow(e: StoredAuditEntry): string {
  return [
    String(e.id),
    e.at,
    e.actor,
    e.action,
    e.subject,
    e.detail ? JSON.stringify(e.detail) : '',
  ]
    .map(csvCell)
    .join(',');
}
