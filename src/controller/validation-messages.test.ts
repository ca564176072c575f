import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { jsonSchema } from '../api/index.js';
import { Authenticator } from './auth.js';
import { createHttp } from './http.js';
import { fieldOf } from './validation-messages.js';

/** A route whose body and query are checked the way every route's are: a wire-contract schema. */
const Body = z.strictObject({
  name: z.string().min(1).max(8).describe("The thing's name."),
  kind: z.enum(['a', 'b']),
  count: z.number().int().min(1).max(10).optional(),
  tags: z
    .array(z.string().regex(/^[a-z]+$/))
    .min(1)
    .max(2)
    .optional(),
  address: z.ipv4().optional(),
  nested: z.strictObject({ on: z.boolean() }).optional(),
});

let app: FastifyInstance;
beforeAll(async () => {
  app = await createHttp(
    {},
    {
      tokens: new Authenticator('tok'),
      sessions: { find: () => Promise.resolve({ problem: 'none' }) },
    },
    () => {},
  );
  app.post(
    '/v1/thing',
    {
      config: { auth: 'none' },
      schema: {
        body: jsonSchema(Body),
        querystring: jsonSchema(z.strictObject({ limit: z.string().optional() })),
      },
    },
    () => ({ ok: true }),
  );
  await app.ready();
});
afterAll(() => app.close());

const GOOD = { name: 'x', kind: 'a' };
async function refusal(body: unknown, query = ''): Promise<string> {
  const r = await app.inject({ method: 'POST', url: `/v1/thing${query}`, payload: body as object });
  expect(r.statusCode, r.body).toBe(400);
  const { error } = r.json<{ error: string }>();
  expect(error).not.toContain('\n');
  return error;
}

describe("the API's request validation: one line naming the field", () => {
  it('a missing field is required, with what it is for', async () => {
    expect(await refusal({ kind: 'a' })).toBe("body.name: is required: the thing's name");
    expect(await refusal({ name: 'x' })).toBe('body.kind: is required');
  });

  it('a wrong type names the type wanted and the value sent', async () => {
    expect(await refusal({ ...GOOD, name: 42 })).toBe('body.name: must be a string, got 42');
    expect(await refusal({ ...GOOD, count: '3' })).toBe(
      'body.count: must be a whole number, got "3"',
    );
    expect(await refusal({ ...GOOD, nested: { on: 'yes' } })).toBe(
      'body.nested.on: must be true or false, got "yes"',
    );
  });

  it('a value outside the choices lists them', async () => {
    expect(await refusal({ ...GOOD, kind: 'c' })).toBe('body.kind: must be one of a, b, got "c"');
  });

  it('an unknown field, with the fields there are', async () => {
    expect(await refusal({ ...GOOD, colour: 'red' })).toBe(
      'body.colour: is not a known field (fields here: name, kind, count, tags, address, nested)',
    );
    expect(await refusal(GOOD, '?page=2')).toBe(
      'querystring.page: is not a known field (fields here: limit)',
    );
  });

  it('too small and too large, in the unit of the value', async () => {
    expect(await refusal({ ...GOOD, name: 'x'.repeat(9) })).toBe(
      'body.name: must be at most 8 characters long (got 9 characters)',
    );
    expect(await refusal({ ...GOOD, name: '' })).toBe(
      'body.name: must be at least 1 character long (got 0 characters)',
    );
    expect(await refusal({ ...GOOD, count: 11 })).toBe('body.count: must be at most 10, got 11');
    expect(await refusal({ ...GOOD, count: 0 })).toBe('body.count: must be at least 1, got 0');
    expect(await refusal({ ...GOOD, tags: [] })).toBe('body.tags: must not be empty');
    expect(await refusal({ ...GOOD, tags: ['a', 'b', 'c'] })).toBe(
      'body.tags: must have at most 2 items (got 3)',
    );
  });

  it('a bad address or form, with the item of a list by its index', async () => {
    expect(await refusal({ ...GOOD, address: '10.0.0.300' })).toBe(
      'body.address: "10.0.0.300" is not a valid ipv4',
    );
    expect(await refusal({ ...GOOD, tags: ['ok', 'NO'] })).toBe(
      'body.tags[1]: "NO" does not have the form ^[a-z]+$',
    );
  });

  it('paths: list items by index, JSON pointer escapes undone', () => {
    expect(fieldOf('body', '')).toBe('body');
    expect(fieldOf('body', '/sessions/0/ipv4')).toBe('body.sessions[0].ipv4');
    expect(fieldOf('body', '/a~1b/c~0d')).toBe('body.a/b.c~d');
  });
});
