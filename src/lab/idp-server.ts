/**
 * The lab's test OpenID provider, a child process started by idp.ts: `oidc-provider` (a dev
 * dependency: only tests and the lab run this) over HTTPS with the test users of its config
 * file, their passwords and groups claims, and its own login form (oidc-provider's
 * interactions: the dev form it ships accepts any password, so it is off). Consent is implied
 * for the configured clients (loadExistingGrant grants what they ask), as a company provider
 * does for its own applications. Usage: node idp-server.js CONFIG.json
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import Provider from 'oidc-provider';
import type { TestIdpConfig, TestIdpUser } from './idp.js';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8')) as TestIdpConfig;
const users = new Map(config.users.map((u) => [u.name, u]));
/** oidc-provider's account id is the `sub` claim: not the login name, as at most providers. */
const subjectOf = (u: TestIdpUser) => u.subject ?? `sub-${u.name}`;
const bySubject = new Map(config.users.map((u) => [subjectOf(u), u]));

const provider = new Provider(config.issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.clientId,
    client_secret: c.clientSecret,
    redirect_uris: c.redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
  })),
  findAccount(_ctx: unknown, id: string) {
    const user = bySubject.get(id);
    if (!user) return Promise.resolve(undefined);
    return Promise.resolve({
      accountId: id,
      claims: () => ({
        sub: id,
        preferred_username: user.name,
        name: user.name,
        email: user.email ?? `${user.name}@example.com`,
        email_verified: true,
        groups: user.groups,
      }),
    });
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  features: { devInteractions: { enabled: false } },
  interactions: {
    url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}`,
  },
  cookies: { keys: [config.cookieKey] },
  // Our clients are first-party: what they ask for is granted, no consent page.
  async loadExistingGrant(ctx: GrantContext) {
    const grantId =
      ctx.oidc.result?.consent?.grantId ?? ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email groups');
    await grant.save();
    return grant;
  },
});

/** The parts of oidc-provider's context loadExistingGrant touches (the package has no types). */
interface GrantContext {
  oidc: {
    result?: { consent?: { grantId?: string } };
    session: { accountId: string; grantIdFor(clientId: string): string | undefined };
    client: { clientId: string };
    provider: {
      Grant: {
        new (init: { clientId: string; accountId: string }): {
          addOIDCScope(scope: string): void;
          save(): Promise<string>;
        };
        find(id: string): Promise<unknown>;
      };
    };
  };
}

const escape = (t: string) => t.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginForm(uid: string, error?: string): string {
  return [
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test IdP: sign in</title></head>',
    '<body><h1>Test identity provider</h1>',
    error ? `<p data-testid="idp-error">${escape(error)}</p>` : '',
    `<form method="post" action="/interaction/${escape(uid)}/login">`,
    '<label>User <input name="login" data-testid="idp-login" autocomplete="username"></label>',
    '<label>Password <input name="password" type="password" data-testid="idp-password"></label>',
    '<button type="submit" data-testid="idp-submit">Sign in</button>',
    '</form></body></html>',
  ].join('\n');
}

async function formOf(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function sendPage(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(body);
}

async function interaction(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const details = (await provider.interactionDetails(req, res)) as {
    uid: string;
    prompt: { name: string };
  };
  if (req.method === 'GET') return sendPage(res, 200, loginForm(details.uid));
  if (req.method === 'POST' && req.url?.endsWith('/login')) {
    const form = await formOf(req);
    const user = users.get(form.get('login') ?? '');
    if (!user || user.password !== form.get('password'))
      return sendPage(res, 200, loginForm(details.uid, 'Invalid user or password.'));
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: subjectOf(user) } },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  sendPage(res, 405, 'method not allowed');
}

const callback = provider.callback();
const server = createServer(
  { cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) },
  (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch((err: unknown) => {
        process.stderr.write(`idp: interaction failed: ${String(err)}\n`);
        if (!res.headersSent) sendPage(res, 400, escape(String(err)));
      });
      return;
    }
    void callback(req, res);
  },
);
server.listen(config.port, config.host, () => {
  process.stdout.write(`idp: ${config.issuer} ready\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
