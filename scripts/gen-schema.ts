/** Writes schema/fleet.schema.json from the zod schema: `npm run schema`. */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fleetJsonSchemaText } from '../src/spec/json-schema.js';

const target = fileURLToPath(new URL('../schema/fleet.schema.json', import.meta.url));
writeFileSync(target, fleetJsonSchemaText());
process.stdout.write(`wrote ${target}\n`);
