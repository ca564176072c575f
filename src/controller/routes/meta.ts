/** `/v1/health` and `/v1/openapi.json`: no token needed. */
import type { FastifyInstance } from 'fastify';
import type { Health } from '../../api/index.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

export function metaRoutes(app: FastifyInstance, state: ControllerState): void {
  app.get(
    '/v1/health',
    {
      config: { auth: 'none' },
      schema: {
        summary: 'liveness; no token needed',
        tags: ['meta'],
        security: [],
        response: { 200: S.healthResponse },
      },
    },
    // Without the admin token it says only whether the controller is up: the spec's problems
    // name files, fields and values that are nobody else's business.
    (req): Health => {
      const problem = state.specProblem;
      return problem && state.auth.isAdmin(req.headers.authorization)
        ? { ok: true, specProblem: problem }
        : { ok: true };
    },
  );

  app.get(
    '/v1/openapi.json',
    {
      config: { auth: 'none' },
      schema: { summary: 'this document', tags: ['meta'], security: [], hide: true },
    },
    () => app.swagger(),
  );
}
