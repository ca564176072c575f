/**
 * fleet.yaml → spec. Validation returns, it does not throw: schema → defaults → cross-field
 * rules, and every problem carries its path.
 */
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import type { SpecIssue } from '../errors.js';
import { humanMessage, markDefaultMessages } from './messages.js';
import { type FleetSpec, fleetSchema } from './schema.js';
import { type RuleContext, rules, warningRules } from './rules.js';

export interface Validation {
  spec?: FleetSpec;
  errors: SpecIssue[];
  warnings: SpecIssue[];
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

function zodIssues(error: z.ZodError, input: unknown): SpecIssue[] {
  return error.issues.map((issue) => ({
    path: formatPath(issue.path),
    message: humanMessage(issue, input, fleetSchema),
  }));
}

export function validateSpec(input: unknown, ctx: RuleContext = {}): Validation {
  const parsed = fleetSchema.safeParse(input, markDefaultMessages);
  if (!parsed.success) return { errors: zodIssues(parsed.error, input), warnings: [] };
  const spec = parsed.data;
  const errors = rules.flatMap((rule) => rule(spec, ctx));
  const warnings: SpecIssue[] = warningRules.flatMap((rule) => rule(spec, ctx));
  if (spec.policy.length === 0)
    warnings.push({ path: 'policy', message: 'no rules: users reach nothing behind the servers' });
  if (spec.openvpn.push.routes.length === 0)
    warnings.push({
      path: 'openvpn.push.routes',
      message: 'no routes pushed: clients will not send company traffic into the tunnel',
    });
  return errors.length ? { errors, warnings } : { spec, errors, warnings };
}

/** Parses YAML text; syntax errors come back as issues with line numbers. */
export function parseSpecText(text: string, ctx: RuleContext = {}): Validation {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length) {
    return {
      errors: doc.errors.map((e) => ({
        path: `line ${lineCounter.linePos(e.pos[0]).line}`,
        message: e.message.split('\n')[0],
      })),
      warnings: [],
    };
  }
  return validateSpec(doc.toJS(), ctx);
}
