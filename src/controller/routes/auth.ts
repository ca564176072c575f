/** `/v1/agent/auth/*`: sign-ins at connect (the contract is src/api/auth.ts). */
import type { FastifyInstance } from 'fastify';
import QRCode from 'qrcode';
import {
  AUTH_WAIT_MS,
  AuthAnswerRequest,
  AuthBeginAnswer,
  AuthBeginRequest,
  AuthOutcome,
  AuthWaitQuery,
  TotpConfirmBody,
  TotpEnrolment,
  TotpStatus,
  jsonSchema,
} from '../../api/index.js';
import type { SignIns } from '../connect-auth/sign-ins.js';
import { type Caller, callerOf } from '../http.js';
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

/**
 * `/v1/users/{name}/totp`: a user's TOTP enrolment (admins; the secret is handed out once, in
 * the URI and its QR code, and never again), its confirmation by a first code, its status and
 * its reset. Each is audited by the service (user.totp.enroll|confirm|reset).
 */
export function totpRoutes(app: FastifyInstance, state: ControllerState): void {
  const tags = ['users'];
  const fleetFor = (req: { who?: Caller }) => state.fleet.as(callerOf(req).actor);
  app.get<{ Params: { name: string } }>(
    '/v1/users/:name/totp',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'whether the user has TOTP, confirmed, and how many recovery codes are left',
        tags,
        params: S.userNameParams,
        response: { 200: jsonSchema(TotpStatus), ...S.errorResponses },
      },
    },
    async (req) => state.fleet.totp.status(req.params.name),
  );
  app.post<{ Params: { name: string } }>(
    '/v1/users/:name/totp',
    {
      config: { auth: 'admin' },
      schema: {
        summary:
          'a new TOTP secret for the user (replacing any): the otpauth URI, its QR code and ten recovery codes, once; audited',
        tags,
        params: S.userNameParams,
        response: { 200: jsonSchema(TotpEnrolment), ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const e = await fleetFor(req).totp.enroll(req.params.name);
      const qrSvg = await QRCode.toString(e.uri, { type: 'svg', errorCorrectionLevel: 'M' });
      return reply.header('cache-control', 'no-store').send({ ...e, qrSvg });
    },
  );
  app.post<{ Params: { name: string }; Body: TotpConfirmBody }>(
    '/v1/users/:name/totp/confirm',
    {
      config: { auth: 'admin' },
      schema: {
        summary: 'confirm the enrolment with the code the app shows now; audited',
        tags,
        params: S.userNameParams,
        body: jsonSchema(TotpConfirmBody),
        response: { 200: jsonSchema(TotpStatus), ...S.errorResponses },
      },
    },
    async (req) => {
      const fleet = fleetFor(req);
      await fleet.totp.confirm(req.params.name, req.body.code);
      return fleet.totp.status(req.params.name);
    },
  );
  app.delete<{ Params: { name: string } }>(
    '/v1/users/:name/totp',
    {
      config: { auth: 'admin' },
      schema: {
        summary: "remove the user's TOTP (a lost phone); audited",
        tags,
        params: S.userNameParams,
        response: { 200: jsonSchema(TotpStatus), ...S.errorResponses },
      },
    },
    async (req) => {
      const fleet = fleetFor(req);
      await fleet.totp.reset(req.params.name);
      return fleet.totp.status(req.params.name);
    },
  );
}
