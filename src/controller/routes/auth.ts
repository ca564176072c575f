/** `/v1/agent/auth/*`: sign-ins at connect (the contract is src/api/auth.ts). */
import type { FastifyInstance } from 'fastify';
import {
  AUTH_WAIT_MS,
  AuthAnswerRequest,
  AuthBeginAnswer,
  AuthBeginRequest,
  AuthOutcome,
  AuthWaitQuery,
  jsonSchema,
} from '../../api/index.js';
import type { SignIns } from '../connect-auth/sign-ins.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';
import { agentProtocol } from './agent.js';

export function authRoutes(
  app: FastifyInstance,
  state: ControllerState,
  signIns: SignIns,
  opts: { waitMs?: number; requestTimeoutMs: number },
): void {
  const waitMs = opts.waitMs ?? AUTH_WAIT_MS;
  app.post<{ Body: AuthBeginRequest }>(
    '/v1/agent/auth/begin',
    {
      config: { auth: 'agent' },
      onRequest: agentProtocol,
      schema: {
        summary:
          'a user must sign in in a browser: opens a sign-in and answers the URL the client is sent to (WEB_AUTH)',
        tags: ['agent'],
        headers: S.agentHeaders,
        body: jsonSchema(AuthBeginRequest),
        response: { 200: jsonSchema(AuthBeginAnswer), ...S.errorResponses },
      },
    },
    async (req) =>
      signIns.begin(req.agentServer!, req.body.user, req.body.realAddress ?? 'unknown'),
  );

  app.get<{ Querystring: AuthWaitQuery }>(
    '/v1/agent/auth/wait',
    {
      config: { auth: 'agent' },
      onRequest: agentProtocol,
      schema: {
        summary: "long-poll for a sign-in's outcome: at once when known, else 204 after the wait",
        tags: ['agent'],
        headers: S.agentHeaders,
        querystring: jsonSchema(AuthWaitQuery),
        response: {
          200: jsonSchema(AuthOutcome),
          204: { type: 'null', description: 'no outcome yet' },
          ...S.errorResponses,
        },
      },
    },
    async (req, reply) => {
      req.raw.socket?.setTimeout?.(waitMs + opts.requestTimeoutMs);
      const outcome = await signIns.wait(req.agentServer!, req.query.id, waitMs, (gone) => {
        reply.raw.on('close', gone);
        return () => reply.raw.off('close', gone);
      });
      if (!outcome) return reply.code(204).send();
      return outcome;
    },
  );

  app.post<{ Body: AuthAnswerRequest }>(
    '/v1/agent/auth/answer',
    {
      config: { auth: 'agent' },
      onRequest: agentProtocol,
      schema: {
        summary:
          "checks a client's answer to the TOTP challenge (CR_TEXT): a current code once, or an unused recovery code; audited",
        tags: ['agent'],
        headers: S.agentHeaders,
        body: jsonSchema(AuthAnswerRequest),
        response: { 200: jsonSchema(AuthOutcome), ...S.errorResponses },
      },
    },
    async (req) =>
      state.fleet.totp.check(req.body.user, req.body.response, {
        server: req.agentServer!,
        ...(req.body.realAddress ? { realAddress: req.body.realAddress } : {}),
      }),
  );
}
