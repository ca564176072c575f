/** The controller's own HTTP-facing errors; everything else comes from src/errors.ts. */
import { FleetError } from '../errors.js';

export class Unauthorized extends FleetError {}

export class Forbidden extends FleetError {}

/** Not ready to answer yet (no bundle built for the server). */
export class Unavailable extends FleetError {}

/** Too many failed sign-ins: try again after `retryAfterSeconds` (the Retry-After header). */
export class TooManyRequests extends FleetError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}
