/**
 * `/sso/…`: the browser side of SSO at connect (see connect-auth/oidc.ts). Open to anyone: the
 * random id in the start URL and the provider's state are the credentials. Registered only when
 * the fleet has `auth.sso`. Answers are plain HTML pages, never cached, with no script.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  type OidcWebSignIn,
  SSO_CALLBACK_PATH,
  SSO_START_PATH,
  type SsoAnswer,
} from '../connect-auth/oidc.js';

const tags = ['sso'];
const htmlPage = { type: 'string', description: 'an HTML page saying what happened' } as const;

function send(reply: FastifyReply, a: SsoAnswer): FastifyReply {
  reply
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
  if (a.cookie) reply.header('set-cookie', a.cookie);
  if ('redirect' in a) return reply.code(303).header('location', a.redirect).send();
  return reply.code(a.status).type('text/html; charset=utf-8').send(a.page);
}

export function ssoRoutes(app: FastifyInstance, signIn: OidcWebSignIn): void {
  app.get<{ Params: { id: string } }>(
    `${SSO_START_PATH}:id`,
    {
      config: { auth: 'none' },
      schema: {
        summary:
          "SSO at connect: the pending sign-in (the agent's WEB_AUTH URL): whose VPN connection, to which server, from where, and a button to continue",
        tags,
        security: [],
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } } },
        response: { 200: htmlPage, '4xx': htmlPage },
      },
    },
    async (req, reply) => send(reply, await signIn.confirmPage(req.params.id)),
  );

  app.post<{ Params: { id: string }; Body: Record<string, unknown> | undefined }>(
    `${SSO_START_PATH}:id`,
    {
      config: { auth: 'none' },
      schema: {
        summary:
          "SSO at connect: the start page's button; sends the browser to the identity provider (needs the page's token and its SameSite=Strict cookie)",
        tags,
        security: [],
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } } },
        response: { 303: { type: 'null' }, '4xx': htmlPage, 503: htmlPage },
      },
    },
    async (req, reply) => {
      const confirm = req.body?.confirm;
      return send(
        reply,
        await signIn.start(
          req.params.id,
          typeof confirm === 'string' ? confirm : undefined,
          req.headers.cookie,
        ),
      );
    },
  );

  app.get(
    SSO_CALLBACK_PATH,
    {
      config: { auth: 'none' },
      schema: {
        summary:
          "SSO at connect: the identity provider's answer; decides the waiting VPN connection",
        tags,
        security: [],
        response: { 200: htmlPage, '4xx': htmlPage },
      },
    },
    async (req, reply) =>
      send(reply, await signIn.callback(req.url, req.headers.cookie, req.ip || undefined)),
  );
}
