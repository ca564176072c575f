/**
 * The user import format, parsed without touching the store: text in, add-user requests or
 * the first problem out, named `file:line` so that an operator can open the file there.
 */

export interface UserRequest {
  name: string;
  groups?: string[];
  ipv4?: string;
  ipv6?: string;
}

/** The fleet's rules a row must pass; each returns a one-line problem or undefined. */
export interface CsvRules {
  nameProblem(name: string): string | undefined;
  groupProblem(group: string): string | undefined;
}

export type CsvParse =
  | { users: UserRequest[]; error?: undefined }
  | { error: { at: string; message: string }; users?: undefined };

/**
 * CSV with an optional header `name,groups`; groups separated by ";"; blank lines and lines
 * starting with "#" are skipped. The first bad row ends the parse: an import is all or nothing.
 */
export function parseUserCsv(text: string, file: string, rules: CsvRules): CsvParse {
  const lines = text.split(/\r?\n/);
  const users: UserRequest[] = [];
  let headerSeen = false;
  for (const [i, raw] of lines.entries()) {
    const at = `${file}:${i + 1}`;
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const cells = line.split(',').map((c) => c.trim());
    if (!headerSeen && cells[0].toLowerCase() === 'name') {
      headerSeen = true;
      continue;
    }
    headerSeen = true;
    if (cells.length > 2)
      return { error: { at, message: `expected "name,groups", got ${cells.length} fields` } };
    const groups = (cells[1] ?? '')
      .split(';')
      .map((g) => g.trim())
      .filter(Boolean);
    const problem =
      rules.nameProblem(cells[0]) ??
      groups.map((g) => rules.groupProblem(g)).find((p) => p !== undefined);
    if (problem) return { error: { at, message: problem } };
    users.push({ name: cells[0], groups });
  }
  if (users.length === 0) return { error: { at: file, message: 'no users in file' } };
  return { users };
}
