/** `/v1/rollout…`: rolling restarts of OpenVPN across the servers (see ../rollout.ts). */
import type { FastifyInstance } from 'fastify';
import type { RolloutStartBody, RolloutStatusView, RolloutView } from '../../api/index.js';
import { callerOf } from '../http.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

const tags = ['rollout'];

export function rolloutRoutes(app: FastifyInstance, state: ControllerState): void {
  app.get(
    '/v1/rollout',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'the latest rollout, step by step, and the servers waiting for a restart',
        tags,
        response: { 200: S.rolloutStatusSchema, ...S.errorResponses },
      },
    },
    (): RolloutStatusView => state.rolloutStatus(),
  );

  app.post<{ Body: RolloutStartBody | undefined }>(
    '/v1/rollout',
    {
      // Every user of every server is moved (or, all-at-once, dropped): admins only.
      config: { auth: 'admin' },
      schema: {
        summary:
          'restart OpenVPN on the servers with a pending change (all: every server), one at a time; audited as rollout.*',
        tags,
        body: S.rolloutStartBody,
        response: { 200: S.rolloutSchema, ...S.errorResponses },
      },
    },
    (req): Promise<RolloutView> => {
      const body = req.body ?? {};
      return state.startRollout(callerOf(req).actor, {
        ...(body.strategy ? { strategy: body.strategy } : {}),
        ...(body.all ? { all: true } : {}),
      });
    },
  );

  for (const [command, summary] of [
    ['pause', 'finish the server in progress and start no next one'],
    ['resume', 'go on with a paused rollout, or try a failed server again (it is still drained)'],
    [
      'abort',
      'end the rollout: the servers it drained take users again, the rest keep their pending change',
    ],
  ] as const) {
    app.post(
      `/v1/rollout/${command}`,
      {
        config: { auth: 'admin' },
        schema: { summary, tags, response: { 200: S.rolloutSchema, ...S.errorResponses } },
      },
      (req): Promise<RolloutView> => state.rolloutCommand(command, callerOf(req).actor),
    );
  }
}
