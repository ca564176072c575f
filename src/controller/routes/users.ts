/** `/v1/users…`: the users resource. */
import type { FastifyInstance } from 'fastify';
import type {
  BulkBody,
  BulkResult,
  GroupsBody,
  ImportResult,
  NameParams,
  NewUserBody,
  User,
  UserDetail,
  UserListQuery,
  UserStatus,
} from '../../api/index.js';
import { differingSessionGroups } from '../../core/session-groups.js';
import { isUserSearch, userSearchOf } from '../query.js';
import { type Caller, callerOf } from '../http.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

const tags = ['users'];

/** A CSV import may be this large (10,000 users with groups are ~0.3 MB). */
export const IMPORT_MAX_BYTES = 2 * 1024 * 1024;

/** The media type OpenVPN Connect and other clients open profiles by. */
const PROFILE_TYPE = 'application/x-openvpn-profile';

/**
 * `attachment; filename="…"` for a name: user names are already letters, digits, `.`, `_` and
 * `-`, but whatever else reaches here is replaced rather than trusted inside a quoted header.
 */
export function attachment(filename: string): string {
  const safe = filename.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return `attachment; filename="${safe || 'download'}"`;
}

export function userRoutes(app: FastifyInstance, state: ControllerState): void {
  /**
   * Changes that take something away (revoke, disable, delete, groups) answer only once every
   * server's new bundle is built and the agents are woken: when the call returns, the change
   * is on its way.
   */
  const afterWrite = () => state.refresh();
  /**
   * A new user takes nothing away from anyone: answer once stored and build in the background
   * (requests meanwhile share one build); the servers have the user ~0.2–0.6 s later.
   */
  const afterAdd = () => state.refreshInBackground();
  /** The fleet acting for whoever called: the audit log names them (`api:admin`, `console:NAME`). */
  const fleetFor = (req: { who?: Caller }) => state.fleet.as(callerOf(req).actor);

  app.get<{ Querystring: UserListQuery }>(
    '/v1/users',
    {
      config: { auth: 'viewer' },
      schema: {
        summary:
          'list users; with q, status, group, sort, offset or limit a page of them, searched by the store (X-Total-Count: how many match)',
        tags,
        querystring: S.userListQuery,
        response: {
          200: {
            type: 'array',
            items: S.userSchema,
            headers: {
              'x-total-count': {
                type: 'integer',
                description: 'how many users match, whatever offset and limit',
              },
            },
          },
          ...S.errorResponses,
        },
      },
    },
    async (req, reply): Promise<User[]> => {
      // Without parameters: every user, exactly as before (the CLI's client relies on it).
      if (!isUserSearch(req.query)) {
        const all = await state.fleet.listUsers();
        void reply.header('x-total-count', all.length);
        return all;
      }
      const page = await state.fleet.searchUsers(userSearchOf(req.query));
      void reply.header('x-total-count', page.total);
      return page.users;
    },
  );

  app.post<{ Body: BulkBody }>(
    '/v1/users/bulk',
    {
      schema: {
        summary:
          'enable, disable, revoke or delete up to 1,000 users, all or nothing (an unknown name or a refused change changes nobody); one audit entry per user, one new CRL',
        tags,
        body: S.bulkBody,
        response: { 200: S.bulkResult, ...S.errorResponses },
      },
    },
    async (req): Promise<BulkResult> => {
      const { action, names } = req.body;
      const users = await fleetFor(req).bulkUsers(action, names);
      await afterWrite();
      return { action, users };
    },
  );

  // Registered here, for the import alone: fastify parses only JSON and plain text by itself.
  app.addContentTypeParser(
    'text/csv',
    { parseAs: 'string', bodyLimit: IMPORT_MAX_BYTES },
    (_req, body, done) => done(null, body),
  );

  app.post<{ Body: string }>(
    '/v1/users/import',
    {
      bodyLimit: IMPORT_MAX_BYTES,
      schema: {
        summary:
          'add users from CSV (text/csv, at most 2 MiB): "name,groups" rows, groups separated by ";", as `user import`; all rows or none; certificates come with the first profile',
        tags,
        consumes: ['text/csv'],
        body: { type: 'string' },
        response: { 201: S.importResult, ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const users = await fleetFor(req).importCsv(req.body, 'body');
      afterAdd();
      const result: ImportResult = { users };
      return reply.code(201).send(result);
    },
  );

  app.post<{ Body: NewUserBody }>(
    '/v1/users',
    {
      schema: {
        summary:
          'add a user (addresses from the pools unless pinned; a certificate is issued). Answers once the user is stored; the servers get the user within about a second',
        tags,
        body: S.newUserBody,
        response: { 201: S.userSchema, ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const body = req.body;
      const [user]: User[] = await fleetFor(req).addUsers([
        {
          name: body.name,
          groups: body.groups ?? [],
          ...(body.ipv4 !== undefined ? { ipv4: body.ipv4 } : {}),
          ...(body.ipv6 !== undefined ? { ipv6: body.ipv6 } : {}),
        },
      ]);
      afterAdd();
      return reply.code(201).send(user);
    },
  );

  app.get<{ Params: NameParams }>(
    '/v1/users/:name',
    {
      config: { auth: 'viewer' },
      schema: {
        summary:
          "one user, with the current certificate's expiry and whether a renewed one waits in a new profile",
        tags,
        params: S.userNameParams,
        response: { 200: S.userDetailSchema, ...S.errorResponses },
      },
    },
    async (req): Promise<UserDetail> => {
      const user = await state.fleet.getUser(req.params.name);
      const certificate = await state.fleet.userCertificate(req.params.name);
      // Shown only where they make a difference: the spec's groups are the rule.
      const { sessionGroups: stored, ...rest } = user;
      const differing = differingSessionGroups(state.fleet.spec, user);
      return {
        ...rest,
        ...(certificate ? { certificate } : {}),
        ...(differing && stored ? { sessionGroups: { groups: differing, at: stored.at } } : {}),
      };
    },
  );

  const statusVerbs: [string, UserStatus, string][] = [
    ['disable', 'disabled', "refuse the user's connections until enabled again"],
    ['enable', 'enabled', 'allow a disabled user again'],
    ['revoke', 'revoked', "revoke the user's certificate for good"],
  ];
  for (const [verb, status, summary] of statusVerbs) {
    app.post<{ Params: NameParams }>(
      `/v1/users/:name/${verb}`,
      {
        schema: {
          summary,
          tags,
          params: S.userNameParams,
          response: { 200: S.userSchema, ...S.errorResponses },
        },
      },
      async (req): Promise<User> => {
        const user = await fleetFor(req).setStatus(req.params.name, status);
        await afterWrite();
        return user;
      },
    );
  }

  app.put<{ Params: NameParams; Body: GroupsBody }>(
    '/v1/users/:name/groups',
    {
      schema: {
        summary: "replace a user's groups",
        tags,
        params: S.userNameParams,
        body: S.groupsBody,
        response: { 200: S.userSchema, ...S.errorResponses },
      },
    },
    async (req): Promise<User> => {
      const user = fleetFor(req).setGroups(req.params.name, req.body.groups);
      await afterWrite();
      return user;
    },
  );

  app.delete<{ Params: NameParams }>(
    '/v1/users/:name',
    {
      schema: {
        summary: 'delete a user (certificate revoked, addresses quarantined); returns the user',
        tags,
        params: S.userNameParams,
        response: { 200: S.userSchema, ...S.errorResponses },
      },
    },
    async (req): Promise<User> => {
      const user = await fleetFor(req).deleteUser(req.params.name);
      await afterWrite();
      return user;
    },
  );

  app.get<{ Params: NameParams }>(
    '/v1/users/:name/profile',
    {
      // A profile carries the user's private key: whoever downloads it can be that user. And a
      // first download issues the certificate, a write. Admins only.
      config: { auth: 'admin' },
      schema: {
        summary:
          "the user's client profile (.ovpn) with inline keys, as a download; audited as user.profile",
        tags,
        params: S.userNameParams,
        produces: [PROFILE_TYPE],
        response: { ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const name = req.params.name;
      const fleet = fleetFor(req);
      const before = (await fleet.getUser(name)).certSerial;
      const text = await fleet.profile(name, { audit: true });
      // A first profile issues the certificate, one inside the renewal window renews it: a
      // write like any other (the servers must pin the new serial).
      if ((await fleet.getUser(name)).certSerial !== before) await afterWrite();
      // The body is a secret: never stored by a cache or a proxy, never sniffed into
      // something a browser would render. fastify's own logger is off (http.ts) and no hook
      // of ours logs bodies.
      return reply
        .type(PROFILE_TYPE)
        .header('content-disposition', attachment(`${name}.ovpn`))
        .header('cache-control', 'no-store')
        .header('x-content-type-options', 'nosniff')
        .send(text);
    },
  );
}
