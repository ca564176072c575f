/**
 * What the agent checks in a directive before acting on any of it: the shape it relies on and
 * every bundle path. Pure, and small on purpose: a shared runtime schema of the wire contract
 * is to replace the shape part.
 */
import { bundleFilesProblem } from '../sys/files.js';
import type { Directive } from '../api/index.js';

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The digest goes into VERSION and log lines: printable, no spaces, bounded. */
const DIGEST = /^[\x21-\x7e]{1,200}$/;

/**
 * Why `value` is not a directive the agent can act on, naming the field or the bundle path, or
 * undefined when it is one. A message is one line: paths are JSON-quoted.
 */
export function directiveProblem(value: unknown): string | undefined {
  if (!isRecord(value)) return 'not an object';
  if (typeof value.token !== 'string') return 'token is not a string';
  if (typeof value.drain !== 'boolean') return 'drain is not a boolean';
  if (!Array.isArray(value.evict)) return 'evict is not an array';
  for (const [i, e] of value.evict.entries()) {
    if (!isRecord(e) || typeof e.user !== 'string' || typeof e.since !== 'string')
      return `evict[${i}] is not {user, since} strings`;
  }
  const bundle = value.bundle;
  if (!isRecord(bundle)) return 'bundle is not an object';
  if (typeof bundle.digest !== 'string' || !DIGEST.test(bundle.digest))
    return 'bundle.digest is not a printable string';
  if (!Array.isArray(bundle.files)) return 'bundle.files is not an array';
  for (const [i, f] of bundle.files.entries()) {
    if (!isRecord(f)) return `bundle.files[${i}] is not an object`;
    if (typeof f.path !== 'string') return `bundle.files[${i}].path is not a string`;
    const at = `bundle file ${JSON.stringify(f.path)}`;
    if (typeof f.content !== 'string') return `${at}: content is not a string`;
    if (!Number.isInteger(f.mode) || (f.mode as number) < 0 || (f.mode as number) > 0o777)
      return `${at}: mode is not an integer in 0..0o777`;
  }
  return bundleFilesProblem(bundle.files as { path: string }[]);
}

/** The directive in a poll answer, or why the agent refuses it. */
export function parseDirective(text: string): { directive: Directive } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { problem: 'not JSON' };
  }
  const problem = directiveProblem(value);
  return problem ? { problem } : { directive: value as Directive };
}
