/**
 * Domain errors: what went wrong, in the terms of the domain, with no knowledge of who shows
 * it. The CLI turns them into one line and an exit code (src/cli/exit-codes.ts), the API into
 * an HTTP status (src/controller/http.ts); anything else is a bug and is shown as internal.
 */
export class FleetError extends Error {
  override get name(): string {
    return this.constructor.name;
  }
}

/** One problem in fleet.yaml, with the path of the offending value (`sites[1].servers[0].address`). */
export interface SpecIssue {
  path: string;
  message: string;
}

/** fleet.yaml (or a spec text) is invalid: every problem, each with its path. */
export class SpecError extends FleetError {
  constructor(
    readonly issues: SpecIssue[],
    readonly file = 'fleet.yaml',
  ) {
    super(issues.map((i) => `${file}: ${i.path}: ${i.message}`).join('\n'));
  }
}

/** A bad argument or field in a request: names the field and the value. */
export class InputError extends FleetError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export class NotFound extends FleetError {}

/** The request contradicts the current state (it exists already, it is revoked, it is full). */
export class Conflict extends FleetError {}

/**
 * The store was written by a newer release (its schema is past the last migration this code
 * has): opening it could misread or damage what that release wrote, so nothing touches it.
 */
export class StoreTooNew extends FleetError {
  constructor(
    readonly file: string,
    readonly storeVersion: number,
    readonly knownVersion: number,
  ) {
    super(
      `${file}: store schema ${storeVersion} is newer than this ovpn-fleet knows (${knownVersion}): it was written by a newer release; run that release or a newer one`,
    );
  }
}

/**
 * A store transaction kept colliding with other writers (PostgreSQL's serialisation failure
 * or deadlock, retried a few times first). Nothing of it was kept; trying again may succeed.
 */
export class TransactionConflict extends Conflict {}

/**
 * The store's database cannot be reached or refuses us (PostgreSQL down, wrong host, database or
 * credentials). The message names the host and database, never the password.
 */
export class StoreUnavailable extends FleetError {}

/** A copy of the store does not match its source (counts or digests differ): nothing was kept. */
export class CopyMismatch extends FleetError {}

/** Something awaited did not happen in time. */
export class Timeout extends FleetError {}

/** The operation needs a privilege this process lacks (root, CAP_NET_ADMIN). */
export class NeedsPrivilege extends FleetError {}

/** A command run through src/sys/exec.ts failed; carries argv, exit code and stderr. */
export class CommandError extends FleetError {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    const last = stderr.trim().split('\n').filter(Boolean).pop() ?? '';
    super(`${argv.join(' ')} exited ${code ?? 'by signal'}${last ? `: ${last}` : ''}`);
  }
}
