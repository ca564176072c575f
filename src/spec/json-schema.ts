/**
 * The JSON Schema of fleet.yaml, generated from the zod schema (the validator is the source of
 * truth). Cross-field rules (rules.ts) and refinements such as "is an IPv4 address" cannot be
 * expressed in JSON Schema: editors get shapes, names, enums, ranges and descriptions, and
 * `ovpn-fleet validate` does the rest. `npm run schema` writes it to schema/fleet.schema.json;
 * schema.test.ts pins that file to this output.
 */
import { z } from 'zod';
import { fleetSchema } from './schema.js';

export const FLEET_SCHEMA_ID = 'urn:ovpn-fleet:schema:fleet.yaml:v1';

export function fleetJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(fleetSchema, { io: 'input' });
  return {
    $schema,
    $id: FLEET_SCHEMA_ID,
    title: 'ovpn-fleet fleet.yaml',
    description:
      'A routed multi-site OpenVPN cluster: pools, sites, servers, routing, groups, networks and policy. Cross-field rules are checked by `ovpn-fleet validate`.',
    ...rest,
  };
}

/** The committed file's exact text. */
export function fleetJsonSchemaText(): string {
  return `${JSON.stringify(fleetJsonSchema(), null, 2)}\n`;
}
