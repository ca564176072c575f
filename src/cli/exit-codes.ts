/**
 * The one place where errors become exit codes and a line for a person: 2 bad input, 3 not
 * found, 4 conflict, 5 an external command failed, 6 OpenVPN's management interface refused,
 * 7 timed out, 69 the store's database is unreachable (sysexits' EX_UNAVAILABLE), 77 needs root
 * (EX_NOPERM), 70 a bug (EX_SOFTWARE), 1 anything else
 * expected (the controller unreachable or untrusted, an API error without a closer match).
 */
import { ManagementError } from '../agent/management.js';
import { ApiError } from '../client/client.js';
import {
  CommandError,
  Conflict,
  FleetError,
  InputError,
  NeedsPrivilege,
  NotFound,
  SpecError,
  StoreUnavailable,
  Timeout,
} from '../errors.js';

export const EXIT_INTERNAL = 70;

export function exitCodeOf(err: unknown): number {
  if (err instanceof InputError || err instanceof SpecError) return 2;
  if (err instanceof NotFound) return 3;
  if (err instanceof Conflict) return 4;
  if (err instanceof CommandError) return 5;
  if (err instanceof ManagementError) return 6;
  if (err instanceof Timeout) return 7;
  if (err instanceof StoreUnavailable) return 69;
  if (err instanceof NeedsPrivilege) return 77;
  // The controller said what kind of failure it was: the same codes as a local command.
  if (err instanceof ApiError)
    return err.status === 400 || err.status === 422
      ? 2
      : err.status === 404
        ? 3
        : err.status === 409
          ? 4
          : err.status === 504
            ? 7
            : 1;
  if (err instanceof FleetError) return 1;
  return EXIT_INTERNAL;
}

/** One line for a person; never a stack trace for an expected error. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  const exitCode = exitCodeOf(err);
  if (err instanceof FleetError) return { line: err.message, exitCode };
  const e = err as Error;
  return { line: `internal error: ${e?.stack ?? String(err)}`, exitCode };
}
