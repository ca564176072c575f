/**
 * `/v1/session…`: console sign-in with an admin account (see src/api/session.ts). The session
 * lives in an HttpOnly cookie; the answers carry the CSRF token the console sends back with
 * every change. A bearer-token caller has no session here (404).
 */
import type { FastifyInstance } from 'fastify';
import {
  type PasswordChangeBody,
  sessionCookieName,
  type SessionInfo,
  type SignInBody,
} from '../../api/index.js';
import { InputError, NotFound } from '../../errors.js';
import type { ConsoleSession } from '../../service/console-sessions.js';
import { clearedCookie, cookieValue, sessionCookie } from '../auth.js';
import { type Caller, callerOf } from '../http.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

const tags = ['session'];
/** Room for the longest password field the schema allows (and a 400 naming it beyond). */
const BODY_LIMIT = 64 * 1024;

function info(s: ConsoleSession): SessionInfo {
  return {
    name: s.name,
    role: s.role,
    csrfToken: s.csrfToken,
    mustChangePassword: s.mustChangePassword,
  };
}

function sessionOf(req: { who?: Caller }): ConsoleSession {
  const session = callerOf(req).session;
  if (!session)
    throw new NotFound('no console session: this request was authenticated by a bearer token');
  return session;
}

export function signInRoutes(
  app: FastifyInstance,
  state: ControllerState,
  opts: { secure: boolean },
): void {
  const sessionSecurity = [{ session: [] }];

  app.post<{ Body: SignInBody }>(
    '/v1/session',
    {
      config: { auth: 'none' },
      bodyLimit: BODY_LIMIT,
      schema: {
        summary:
          'sign in with an admin account: sets the session cookie; 429 with Retry-After after too many failures',
        tags,
        security: [],
        body: S.signInBody,
        response: { 200: S.sessionInfo, ...S.errorResponses },
      },
    },
    async (req, reply): Promise<SessionInfo> => {
      // JSON only: a page of another site can post a form here (and so sign a victim's browser
      // in to the attacker's account), but it cannot send JSON without CORS, which we never allow.
      const type = req.headers['content-type'] ?? '';
      if (!/^application\/json\s*(;|$)/i.test(type))
        throw new InputError('content-type', 'must be application/json');
      const { id, session } = await state.signIn.attempt(
        req.body.name,
        req.body.password,
        req.ip || undefined,
      );
      // Signing in again in a browser that has a session ends that one: one browser, one
      // session (and a session cookie someone planted does not outlive the sign-in).
      const previous = cookieValue(req.headers.cookie, sessionCookieName(opts.secure));
      if (previous !== undefined) {
        const found = await state.consoleSessions.find(previous);
        if ('session' in found)
          await state.consoleSessions.close(found.session.idSha256, `console:${session.name}`);
      }
      reply
        .header('set-cookie', sessionCookie(sessionCookieName(opts.secure), id, opts.secure))
        .header('cache-control', 'no-store');
      return info(session);
    },
  );

  app.get(
    '/v1/session',
    {
      config: { auth: 'viewer', duringPasswordChange: true },
      schema: {
        summary: 'who is signed in: name, role, CSRF token, whether the password must be changed',
        tags,
        security: sessionSecurity,
        response: { 200: S.sessionInfo, ...S.errorResponses },
      },
    },
    (req, reply): SessionInfo => {
      reply.header('cache-control', 'no-store');
      return info(sessionOf(req));
    },
  );

  app.delete(
    '/v1/session',
    {
      config: { auth: 'viewer', duringPasswordChange: true },
      schema: {
        summary: 'sign out: ends the session and drops the cookie',
        tags,
        security: sessionSecurity,
        response: { 204: { type: 'null', description: 'signed out' }, ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const session = sessionOf(req);
      await state.consoleSessions.close(session.idSha256, callerOf(req).actor);
      return reply
        .code(204)
        .header('set-cookie', clearedCookie(sessionCookieName(opts.secure), opts.secure))
        .send();
    },
  );

  app.post<{ Body: PasswordChangeBody }>(
    '/v1/session/password',
    {
      config: { auth: 'viewer', duringPasswordChange: true },
      bodyLimit: BODY_LIMIT,
      schema: {
        summary:
          "change the signed-in admin's password (needs the current one); the admin's other sessions end, this one stays",
        tags,
        security: sessionSecurity,
        body: S.passwordChangeBody,
        response: { 200: S.sessionInfo, ...S.errorResponses },
      },
    },
    async (req, reply): Promise<SessionInfo> => {
      const session = await state.signIn.changePassword(
        sessionOf(req),
        req.body.current,
        req.body.next,
        req.ip || undefined,
      );
      reply.header('cache-control', 'no-store');
      return info(session);
    },
  );
}
