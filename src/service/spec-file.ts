/** fleet.yaml on disk: reading it is I/O, so it lives here and not in the pure src/spec. */
import { readFileSync } from 'node:fs';
import { SpecError } from '../errors.js';
import type { RuleContext } from '../spec/rules.js';
import type { FleetSpec } from '../spec/schema.js';
import { parseSpecText } from '../spec/validate.js';

/** Reads and validates; throws SpecError listing every problem. */
export function loadSpec(file: string, ctx: RuleContext = {}): FleetSpec {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new SpecError(
      [
        {
          path: '(file)',
          message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        },
      ],
      file,
    );
  }
  const v = parseSpecText(text, ctx);
  if (!v.spec) throw new SpecError(v.errors, file);
  return v.spec;
}
