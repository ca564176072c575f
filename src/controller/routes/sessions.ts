/**
 * Where users are and were: `/v1/users/:name/history` (the location history), `/v1/routes`
 * (host routes against sessions) and `POST /v1/sessions/kill` (an operator ends a session).
 */
import type { FastifyInstance } from 'fastify';
import type {
  HistoryEntry,
  HistoryQuery,
  KillBody,
  KillResult,
  NameParams,
  RoutesView,
} from '../../api/index.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';
import { historyView } from '../views.js';

export function sessionRoutes(app: FastifyInstance, state: ControllerState): void {
  app.get<{ Params: NameParams; Querystring: HistoryQuery }>(
    '/v1/users/:name/history',
    {
      config: { auth: 'viewer' },
      schema: {
        summary:
          "the user's location history: each session (server, real address, from, until, bytes, why it ended), newest first",
        tags: ['users'],
        params: S.userNameParams,
        querystring: S.historyQuery,
        response: { 200: { type: 'array', items: S.historySchema }, ...S.errorResponses },
      },
    },
    async (req): Promise<HistoryEntry[]> =>
      (await state.fleet.userHistory(req.params.name, Number(req.query.limit ?? 100))).map(
        historyView,
      ),
  );

  app.get(
    '/v1/routes',
    {
      config: { auth: 'viewer' },
      schema: {
        summary:
          "each connected user's and routed address's host routes (the agents' reports) against the sessions: missing, duplicate and stale routes, counted",
        tags: ['sessions'],
        response: { 200: S.routesViewSchema, ...S.errorResponses },
      },
    },
    (): Promise<RoutesView> => state.routes(),
  );

  app.post<{ Body: KillBody }>(
    '/v1/sessions/kill',
    {
      config: { auth: 'operator' },
      schema: {
        summary:
          "end the user's live session(s) on the server: its agent is told with its next directive; asking again changes nothing",
        tags: ['sessions'],
        body: S.killBody,
        response: { 200: S.killResult, ...S.errorResponses },
      },
    },
    (req): Promise<KillResult> => state.killSession(req.body.server, req.body.user, req.who!.actor),
  );
}
