/**
 * JSON Schema from the wire contract's zod schemas, for fastify (which validates requests and
 * serialises responses with ajv / fast-json-stringify) and for the OpenAPI document. One
 * definition: the TypeScript types, the controller's validation, the clients' parsing and the
 * published document all come from the same schema.
 */
import { z } from 'zod';

export type JsonSchema = Record<string, unknown>;

/**
 * Draft 7, what fastify's ajv reads by default. `io: 'input'` describes what a sender may send
 * (optional fields with defaults stay optional). The `$schema` key is dropped: fastify takes a
 * route schema as a fragment, and a top-level `$schema` would make ajv look the draft up.
 */
export function jsonSchema(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' });
  delete out.$schema;
  return out;
}
