/** `/v1/agent/*`: the agents' long-poll and reports (the contract is src/api/agent.ts). */
import type { FastifyInstance, onRequestHookHandler } from 'fastify';
import {
  AGENT_PROTOCOL_HEADER,
  type AgentReport,
  type PollQuery,
  agentProtocolOf,
} from '../../api/index.js';
import { InputError } from '../../errors.js';
import { Forbidden, Unavailable } from '../http-errors.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

/**
 * Both agent routes answer the agent protocol versions this controller speaks (today's and the
 * previous release's, whose bodies are the same) and refuse any other before reading a body,
 * in one line naming the header. Runs after the auth hook: only a server's own agent learns
 * which versions are spoken. The answer names the version it was given in.
 */
export const agentProtocol: onRequestHookHandler = (req, reply, done) => {
  const protocol = agentProtocolOf(req.headers[AGENT_PROTOCOL_HEADER]);
  if ('refused' in protocol) return done(new InputError(AGENT_PROTOCOL_HEADER, protocol.refused));
  reply.header(AGENT_PROTOCOL_HEADER, String(protocol.version));
  done();
};

export function agentRoutes(
  app: FastifyInstance,
  state: ControllerState,
  opts: { pollWaitMs: number; requestTimeoutMs: number },
): void {
  app.get<{ Querystring: PollQuery }>(
    '/v1/agent/poll',
    {
      config: { auth: 'agent' },
      onRequest: agentProtocol,
      schema: {
        summary:
          "long-poll for this server's directive: at once when it differs from `known`, else 204 after the wait",
        tags: ['agent'],
        querystring: S.pollQuery,
        headers: S.agentHeaders,
        response: {
          200: S.directiveSchema,
          204: { type: 'null', description: 'nothing changed during the wait' },
          ...S.errorResponses,
        },
      },
    },
    async (req, reply) => {
      const server = req.agentServer!;
      const query = req.query;
      if (query.server !== undefined && query.server !== server)
        throw new Forbidden(`this token belongs to server ${server}, not ${query.server}`);
      const current = state.directives.get(server);
      if (!current) throw new Unavailable(`no bundle for ${server} yet: see the controller's log`);
      let answer = current;
      if (query.known === current.directive.token) {
        // This socket may now be quiet for the whole wait.
        req.raw.socket?.setTimeout?.(opts.pollWaitMs + opts.requestTimeoutMs);
        const next = await state.polls.wait(server, opts.pollWaitMs, (gone) => {
          reply.raw.on('close', gone);
          return () => reply.raw.off('close', gone);
        });
        if (!next) return reply.code(204).send();
        answer = next;
      }
      // The JSON made once per directive: a string with a JSON content type is sent as is.
      return reply.type('application/json; charset=utf-8').send(answer.json);
    },
  );

  app.post<{ Body: AgentReport }>(
    '/v1/agent/report',
    {
      config: { auth: 'agent' },
      onRequest: agentProtocol,
      // A server with 20,000 sessions reports ~5 MB; the default 1 MiB would refuse ~5,000.
      bodyLimit: 8 * 1024 * 1024,
      schema: {
        summary: "this server's live sessions and health; replaces its previous report",
        tags: ['agent'],
        headers: S.agentHeaders,
        body: S.reportBody,
        response: { 204: { type: 'null', description: 'recorded' }, ...S.errorResponses },
      },
    },
    async (req, reply) => {
      await state.report(req.agentServer!, req.body);
      return reply.code(204).send();
    },
  );
}
