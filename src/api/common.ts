/** Shapes every route shares. */
import { z } from 'zod';

export const ErrorBody = z
  .object({ error: z.string() })
  .describe('One line saying what went wrong (a bad field is named first: "field: problem").');
export type ErrorBody = z.infer<typeof ErrorBody>;

/** A name in a URL path (`/v1/users/:name`, `/v1/servers/:name`). */
export const NameParams = z.object({ name: z.string().min(1).max(200) });
export type NameParams = z.infer<typeof NameParams>;
