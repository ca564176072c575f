/**
 * What the agent checks in a directive before acting on any of it: its shape, by the wire
 * contract's schema (src/api), and every bundle path. Pure.
 */
import type { z } from 'zod';
import { Directive } from '../api/index.js';
import { bundleFilesProblem } from '../sys/files.js';

/**
 * Why `value` is not a directive the agent can act on, naming the field or the bundle path, or
 * undefined when it is one: the wire contract's schema first, then every path. A message is
 * one line: paths are JSON-quoted.
 */
export function directiveProblem(value: unknown): string | undefined {
  const checked = checkDirective(value);
  return 'problem' in checked ? checked.problem : undefined;
}

/** One pass of the schema and the path checks (a bundle has thousands of files). */
export function checkDirective(value: unknown): { directive: Directive } | { problem: string } {
  const parsed = Directive.safeParse(value);
  if (!parsed.success) return { problem: describeIssue(value, parsed.error.issues[0]) };
  const problem = bundleFilesProblem(parsed.data.bundle.files);
  return problem ? { problem } : { directive: parsed.data };
}

/** "bundle file \"server.conf\": mode: …" rather than "bundle.files.0.mode: …" where it can. */
function describeIssue(value: unknown, issue: z.core.$ZodIssue): string {
  const path = issue.path;
  if (path.length === 0) return 'not an object';
  if (path[0] === 'bundle' && path[1] === 'files' && typeof path[2] === 'number') {
    const file = (value as { bundle: { files: { path?: unknown }[] } }).bundle.files[path[2]];
    if (typeof file?.path === 'string' && path.length > 3)
      return `bundle file ${JSON.stringify(file.path)}: ${path.slice(3).join('.')}: ${issue.message}`;
  }
  const field = path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`))
    .join('');
  return `${field}: ${issue.message}`;
}

/** The directive in a poll answer, or why the agent refuses it. */
export function parseDirective(text: string): { directive: Directive } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  return checkDirective(value);
}
