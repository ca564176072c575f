/** The controller's own HTTP-facing errors; everything else comes from src/errors.ts. */
import { FleetError } from '../errors.js';

export class Unauthorized extends FleetError {
  override readonly httpStatus = 401;
}

export class Forbidden extends FleetError {
  override readonly httpStatus = 403;
}

export class Unavailable extends FleetError {
  override readonly httpStatus = 503;
}
