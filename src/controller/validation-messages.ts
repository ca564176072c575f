/**
 * A request that fails its route's schema, as one line naming the field the way a person would:
 * `body.name: is required: the user's name`, `body.sessions[0].ipv4: "x" is not a valid ipv4`,
 * `querystring.status: must be one of enabled, disabled, revoked, got "on"` — instead of ajv's
 * "must NOT have fewer than 1 characters". The first problem only: ajv stops at the first (its
 * `allErrors` stays off, so a hostile body cannot make it collect thousands).
 *
 * ajv runs `verbose`, so each error carries the value (`data`) and its schema (`parentSchema`),
 * which holds the field's description from the wire contract's `.describe()`.
 */
import type { FastifySchemaValidationError } from 'fastify';

interface JsonSchemaNode {
  type?: string | string[];
  description?: string;
  format?: string;
  properties?: Record<string, JsonSchemaNode>;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  null: 'null',
};

/** A value as the message shows it: JSON, short. */
function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (value !== null && typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** "the user's name" from "The user's name." (an acronym keeps its capitals). */
function purpose(description: string | undefined): string {
  if (!description) return '';
  const text = description.trim().replace(/\.$/, '');
  return `: ${/^[A-Z][a-z]/.test(text) ? text[0].toLowerCase() + text.slice(1) : text}`;
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/** `body.sessions[0].ipv4` from `body` and `/sessions/0/ipv4`. */
export function fieldOf(dataVar: string, instancePath: string): string {
  let out = dataVar;
  for (const raw of instancePath.split('/').slice(1)) {
    const part = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    out += /^\d+$/.test(part) ? `[${part}]` : `.${part}`;
  }
  return out;
}

/** The one line for the first of `errors`: "field: problem". */
export function validationLine(errors: FastifySchemaValidationError[], dataVar: string): string {
  const e = errors[0];
  const params = e.params;
  const verbose = e as FastifySchemaValidationError & {
    data?: unknown;
    parentSchema?: JsonSchemaNode;
  };
  const parent = verbose.parentSchema;
  const data = verbose.data;
  let field = fieldOf(dataVar, e.instancePath);
  let message: string;
  switch (e.keyword) {
    case 'required': {
      const name = String(params.missingProperty);
      field += `.${name}`;
      message = `is required${purpose(parent?.properties?.[name]?.description)}`;
      break;
    }
    case 'additionalProperties': {
      field += `.${String(params.additionalProperty)}`;
      const known = Object.keys(parent?.properties ?? {});
      message = `is not a known field${known.length ? ` (fields here: ${known.join(', ')})` : ''}`;
      break;
    }
    case 'type': {
      const types = String(params.type).split(',');
      message = `must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(' or ')}, got ${shown(data)}`;
      break;
    }
    case 'enum':
      message = `must be one of ${(params.allowedValues as unknown[]).map(String).join(', ')}, got ${shown(data)}`;
      break;
    case 'const':
      message = `must be ${shown(params.allowedValue)}, got ${shown(data)}`;
      break;
    case 'minLength':
    case 'maxLength': {
      const n = Number(params.limit);
      const length = typeof data === 'string' ? ` (got ${plural(data.length, 'character')})` : '';
      message = `must be ${e.keyword === 'minLength' ? 'at least' : 'at most'} ${plural(n, 'character')} long${length}`;
      break;
    }
    case 'minItems':
    case 'maxItems': {
      const n = Number(params.limit);
      const count = Array.isArray(data) ? ` (got ${data.length})` : '';
      message =
        e.keyword === 'minItems' && n === 1
          ? 'must not be empty'
          : `must have ${e.keyword === 'minItems' ? 'at least' : 'at most'} ${plural(n, 'item')}${count}`;
      break;
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const words: Record<string, string> = {
        minimum: 'at least',
        maximum: 'at most',
        exclusiveMinimum: 'more than',
        exclusiveMaximum: 'less than',
      };
      message = `must be ${words[e.keyword]} ${String(params.limit)}, got ${shown(data)}`;
      break;
    }
    case 'pattern':
      // zod writes an address as a format and its regex: the format says it in a word.
      if (typeof parent?.format === 'string') {
        message = `${shown(data)} is not a valid ${parent.format}`;
        break;
      }
      message = `${shown(data)} does not have the form ${String(params.pattern)}${purpose(parent?.description)}`;
      break;
    case 'format':
      message = `${shown(data)} is not a valid ${String(params.format)}`;
      break;
    default:
      message = e.message ?? 'is invalid';
  }
  return `${field}: ${message}`;
}
