/** `/v1/sessions` and `/v1/servers…`: what the cluster is doing (the audit log: audit.ts). */
import type { FastifyInstance } from 'fastify';
import type { NameParams, ServerView, SessionView } from '../../api/index.js';
import { callerOf } from '../http.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

export function serverRoutes(app: FastifyInstance, state: ControllerState): void {
  app.get(
    '/v1/sessions',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'who is online where (as last reported by each agent)',
        tags: ['sessions'],
        response: { 200: { type: 'array', items: S.sessionSchema }, ...S.errorResponses },
      },
    },
    (): Promise<SessionView[]> => state.sessions(),
  );

  app.get(
    '/v1/servers',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'every server: health, last report, bundle digests, drain flag, sessions',
        tags: ['servers'],
        response: { 200: { type: 'array', items: S.serverSchema }, ...S.errorResponses },
      },
    },
    (): Promise<ServerView[]> => state.servers(),
  );

  for (const [verb, draining] of [
    ['drain', true],
    ['undrain', false],
  ] as const) {
    app.post<{ Params: NameParams }>(
      `/v1/servers/:name/${verb}`,
      {
        config: { auth: 'operator' },
        schema: {
          summary: draining
            ? 'take no new users and move the connected ones to their next remote'
            : 'take users again',
          tags: ['servers'],
          params: S.serverNameParams,
          response: { 200: S.serverSchema, ...S.errorResponses },
        },
      },
      (req): Promise<ServerView> =>
        state.setDraining(req.params.name, draining, callerOf(req).actor),
    );
  }
}
