import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXAMPLE_FLEET_YAML } from './example.js';
import { FLEET_SCHEMA_ID, fleetJsonSchema, fleetJsonSchemaText } from './json-schema.js';

const COMMITTED = new URL('../../schema/fleet.schema.json', import.meta.url);

type JsonSchema = Record<string, any>;

/**
 * A small JSON Schema checker for the keywords the generated schema uses; enough to tell
 * whether a document fits, without a new dependency. Returns problems as "path: what".
 */
function check(schema: JsonSchema, value: unknown, path = '(root)'): string[] {
  const out: string[] = [];
  if (schema.oneOf) {
    const fits = (schema.oneOf as JsonSchema[]).filter((s) => check(s, value, path).length === 0);
    if (fits.length !== 1) out.push(`${path}: fits ${fits.length} of oneOf, not exactly 1`);
  }
  if (schema.anyOf && !(schema.anyOf as JsonSchema[]).some((s) => !check(s, value, path).length))
    out.push(`${path}: fits none of anyOf`);
  if ('const' in schema && value !== schema.const) out.push(`${path}: not ${schema.const}`);
  if (schema.enum && !(schema.enum as unknown[]).includes(value))
    out.push(`${path}: not one of ${JSON.stringify(schema.enum)}`);
  const type = schema.type as string | undefined;
  const actual = Array.isArray(value)
    ? 'array'
    : value === null
      ? 'null'
      : Number.isInteger(value)
        ? 'integer'
        : typeof value;
  if (type && !(type === actual || (type === 'number' && actual === 'integer'))) {
    out.push(`${path}: is ${actual}, not ${type}`);
    return out;
  }
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern as string).test(value))
      out.push(`${path}: does not match ${schema.pattern}`);
    if (schema.minLength !== undefined && value.length < schema.minLength)
      out.push(`${path}: shorter than ${schema.minLength}`);
    if (schema.maxLength !== undefined && value.length > schema.maxLength)
      out.push(`${path}: longer than ${schema.maxLength}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) out.push(`${path}: < minimum`);
    if (schema.maximum !== undefined && value > schema.maximum) out.push(`${path}: > maximum`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems)
      out.push(`${path}: fewer than ${schema.minItems} items`);
    if (schema.items)
      value.forEach((v, i) => out.push(...check(schema.items as JsonSchema, v, `${path}[${i}]`)));
  }
  if (actual === 'object' && type === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const key of (schema.required ?? []) as string[])
      if (!(key in obj)) out.push(`${path}: missing required "${key}"`);
    for (const [key, v] of Object.entries(obj)) {
      if (props[key]) out.push(...check(props[key], v, `${path}.${key}`));
      else if (schema.additionalProperties === false) out.push(`${path}: unknown field "${key}"`);
    }
  }
  return out;
}

describe('schema/fleet.schema.json', () => {
  it('is exactly what the zod schema generates (run `npm run schema` after changing it)', () => {
    expect(readFileSync(COMMITTED, 'utf8')).toBe(fleetJsonSchemaText());
  });

  it('carries an $id, a title and the draft it follows', () => {
    const schema = fleetJsonSchema();
    expect(schema).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: FLEET_SCHEMA_ID,
      title: 'ovpn-fleet fleet.yaml',
      type: 'object',
      required: ['fleet', 'pools', 'sites', 'routing'],
      additionalProperties: false,
    });
  });

  it('accepts the example fleet.yaml', () => {
    expect(check(fleetJsonSchema(), parse(EXAMPLE_FLEET_YAML))).toEqual([]);
  });

  it('accepts the example with bgp and rip routing', () => {
    const input = parse(EXAMPLE_FLEET_YAML);
    input.routing = {
      protocol: 'bgp',
      bgp: { asn: 65100, neighbors: [{ address: '10.255.1.1', asn: 65001 }] },
    };
    expect(check(fleetJsonSchema(), input)).toEqual([]);
    input.routing = { protocol: 'rip' };
    expect(check(fleetJsonSchema(), input)).toEqual([]);
  });

  it('rejects what the validator rejects by shape: missing, unknown and mistyped fields', () => {
    const input = parse(EXAMPLE_FLEET_YAML);
    delete input.pools;
    input.sites[0].colour = 'red';
    input.sites[1].servers[0].name = 'VPN 21';
    input.openvpn.proto = 'sctp';
    input.routing = { protocol: 'isis' };
    expect(check(fleetJsonSchema(), input)).toEqual([
      '(root): missing required "pools"',
      '(root).openvpn.proto: not one of ["udp","tcp"]',
      '(root).sites[0]: unknown field "colour"',
      '(root).sites[1].servers[0].name: does not match ^[a-z][a-z0-9-]{0,30}$',
      '(root).routing: fits 0 of oneOf, not exactly 1',
    ]);
  });
});
