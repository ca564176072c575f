/**
 * Typed errors, mapped once at each edge: the CLI turns them into one line and an exit code,
 * the API into an HTTP status. Anything else is a bug and is shown as internal.
 */
export class FleetError extends Error {
  readonly exitCode: number = 1;
  readonly httpStatus: number = 500;
}

/** One problem in fleet.yaml, with the path of the offending value (`sites[1].servers[0].address`). */
export interface SpecIssue {
  path: string;
  message: string;
}

export class SpecError extends FleetError {
  override readonly exitCode = 2;
  override readonly httpStatus = 422;
  constructor(
    readonly issues: SpecIssue[],
    readonly file = 'fleet.yaml',
  ) {
    super(issues.map((i) => `${file}: ${i.path}: ${i.message}`).join('\n'));
  }
}

/** A bad argument or field in a request: names the field and the value. */
export class InputError extends FleetError {
  override readonly exitCode = 2;
  override readonly httpStatus = 400;
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export class NotFound extends FleetError {
  override readonly exitCode = 3;
  override readonly httpStatus = 404;
}

export class Conflict extends FleetError {
  override readonly exitCode = 4;
  override readonly httpStatus = 409;
}

/** A command run through src/sys/exec.ts failed; carries argv, exit code and stderr. */
export class CommandError extends FleetError {
  override readonly exitCode = 5;
  constructor(
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    const last = stderr.trim().split('\n').filter(Boolean).pop() ?? '';
    super(`${argv.join(' ')} exited ${code ?? 'by signal'}${last ? `: ${last}` : ''}`);
  }
}

/** One line for a person; never a stack trace for an expected error. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof FleetError) {
    const lines = err.message.split('\n');
    return { line: lines.join('\n'), exitCode: err.exitCode };
  }
  const e = err as Error;
  return { line: `internal error: ${e?.stack ?? String(err)}`, exitCode: 70 };
}
