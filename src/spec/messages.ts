/**
 * Schema problems in words a person would use: zod's own messages ("Invalid input: expected
 * string, received undefined") become "is required: unique server name; also the certificate
 * CN", "must be one of udp, tcp (not "sctp")", "unknown field "colour" (fields here: name,
 * loadBalancer, servers)". A message the schema itself gives (`.min(1, 'a site needs …')`, a
 * refinement's reason) is kept: it already says what is wrong in the domain's terms.
 *
 * Pure: the issues, the input they are about, and the schema to look descriptions up in.
 */
import type { z } from 'zod';

/**
 * What a parse is given as its error map so that every message zod would make up itself is
 * recognisable afterwards (schema-level messages win over a per-parse map).
 */
export const ZOD_DEFAULT_MESSAGE = '\u0000zod-default';
export const markDefaultMessages = { error: () => ZOD_DEFAULT_MESSAGE };

/** The internals this module reads of a zod 4 schema. */
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  values?: unknown[];
}
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Wrappers that change how a value is taken, not what it is. */
const WRAPPERS = new Set(['default', 'optional', 'nullable', 'prefault', 'readonly', 'catch']);

/** The schema without its wrappers, and the first description met on the way in. */
function unwrap(schema: z.ZodType): { schema: z.ZodType; description?: string } {
  let s = schema;
  let description = s.description;
  for (;;) {
    const def = defOf(s);
    const inner = WRAPPERS.has(def.type) ? def.innerType : def.type === 'pipe' ? def.in : undefined;
    if (!inner) return { schema: s, ...(description ? { description } : {}) };
    s = inner;
    description ??= s.description;
  }
}

/** The option of a discriminated union that `value` picks, if any. */
function optionFor(def: Def, value: unknown): z.ZodType | undefined {
  if (!def.discriminator || typeof value !== 'object' || value === null) return undefined;
  const tag = (value as Record<string, unknown>)[def.discriminator];
  return def.options?.find((o) => {
    const field = defOf(o).shape?.[def.discriminator!];
    return field !== undefined && (defOf(unwrap(field).schema).values ?? []).includes(tag);
  });
}

/** The schema (unwrapped) and description of the value at `path` of `root`'s input. */
export function schemaAt(
  root: z.ZodType,
  input: unknown,
  path: readonly PropertyKey[],
): { schema: z.ZodType; description?: string } | undefined {
  let here = unwrap(root);
  let value = input;
  for (const key of path) {
    let def = defOf(here.schema);
    if (def.type === 'union') {
      const option = optionFor(def, value);
      if (!option) return undefined;
      def = defOf(option);
    }
    let next: z.ZodType | undefined;
    if (def.type === 'object' && typeof key === 'string') next = def.shape?.[key];
    else if (def.type === 'array' && typeof key === 'number') next = def.element;
    if (!next) return undefined;
    here = unwrap(next);
    value =
      typeof value === 'object' && value !== null
        ? (value as Record<PropertyKey, unknown>)[key]
        : undefined;
  }
  return here;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let value = input;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || !(key in value))
      return { found: false, value: undefined };
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return { found: true, value };
}

/** "unique server name; also the certificate CN" from "Unique server name; also the certificate CN." */
function purpose(description: string): string {
  const text = description.trim().replace(/\.$/, '');
  // Lower-case a sentence's first word, not an acronym ("OSPF …", "IPv4 …").
  return /^[A-Z][a-z]/.test(text) ? text[0].toLowerCase() + text.slice(1) : text;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping (field: value)',
  array: 'a list',
};

/** A value as it appears in the message: short, quoted when it is text. */
export function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // Text quoted, numbers and booleans as written.
  const text =
    typeof value === 'bigint' ? value.toString() : (JSON.stringify(value) ?? typeof value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

function sizeLimit(issue: z.core.$ZodIssueTooSmall | z.core.$ZodIssueTooBig): string {
  const small = issue.code === 'too_small';
  const n = Number(small ? issue.minimum : issue.maximum);
  const word = small
    ? issue.inclusive
      ? 'at least'
      : 'more than'
    : issue.inclusive
      ? 'at most'
      : 'less than';
  switch (issue.origin) {
    case 'string':
      return `must be ${word} ${plural(n, 'character')} long`;
    case 'array':
    case 'set':
      return small && n === 1 && issue.inclusive
        ? 'must not be empty'
        : `must have ${word} ${plural(n, 'item')}`;
    default:
      return `must be ${word} ${n}`;
  }
}

/** One issue's message, given the input it is about and the schema it was checked with. */
export function humanMessage(issue: z.core.$ZodIssue, input: unknown, root: z.ZodType): string {
  const at = valueAt(input, issue.path);
  if (issue.message !== ZOD_DEFAULT_MESSAGE) {
    // The schema's own words; "not an IPv4 address" says which value it means.
    return /^not an? /.test(issue.message) && typeof at.value === 'string'
      ? `${shown(at.value)} is ${issue.message}`
      : issue.message;
  }
  const here = schemaAt(root, input, issue.path);
  const forWhat = here?.description ? `: ${purpose(here.description)}` : '';
  switch (issue.code) {
    case 'invalid_type': {
      if (!at.found || at.value === undefined) return `is required${forWhat}`;
      const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
      const numeric =
        (issue.expected === 'number' || issue.expected === 'int') &&
        typeof at.value === 'string' &&
        /^-?\d+(\.\d+)?$/.test(at.value.trim());
      // Only the description's first clause: the point is the type, the purpose is a reminder.
      const what = here?.description ? ` (${purpose(here.description).split(/[:;.] /)[0]})` : '';
      return `must be ${expected}${what}, not ${shown(at.value)}${numeric ? ': a number is written without quotes' : ''}`;
    }
    case 'invalid_value': {
      const values = issue.values.map((v) => String(v));
      const allowed =
        values.length === 1 ? `must be ${values[0]}` : `must be one of ${values.join(', ')}`;
      return `${allowed} (not ${shown(at.value)})`;
    }
    case 'invalid_union': {
      // A discriminated union names its tag's values on the issue (path: the tag itself).
      const { note, options: tags } = issue as { note?: string; options?: unknown[] };
      if (note === 'No matching discriminator' && tags?.length) {
        const values = tags.map(String).join(', ');
        return at.found && at.value !== undefined
          ? `must be one of ${values} (not ${shown(at.value)})`
          : `is required: one of ${values}`;
      }
      return `is none of the forms allowed here${forWhat}`;
    }
    case 'unrecognized_keys': {
      const names = issue.keys.map((k) => `"${k}"`).join(', ');
      const def = here ? defOf(here.schema) : undefined;
      const known = def?.type === 'object' ? Object.keys(def.shape ?? {}) : [];
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${names}${known.length ? ` (fields here: ${known.join(', ')})` : ''}`;
    }
    case 'too_small':
    case 'too_big': {
      const value = at.value;
      const found =
        typeof value === 'number'
          ? ` (not ${value})`
          : typeof value === 'string'
            ? ` (${plural(value.length, 'character')})`
            : Array.isArray(value) && value.length
              ? ` (${plural(value.length, 'item')})`
              : '';
      const limit = sizeLimit(issue);
      return limit === 'must not be empty' ? `${limit}${forWhat}` : `${limit}${found}`;
    }
    case 'invalid_format':
      return issue.format === 'regex'
        ? `${shown(at.value)} does not have the form ${issue.pattern ?? 'required'}${forWhat ? ` (${purpose(here!.description!)})` : ''}`
        : `${shown(at.value)} is not a valid ${issue.format}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)} (not ${shown(at.value)})`;
    default:
      return `is not valid here${forWhat}`;
  }
}
