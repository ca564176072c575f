/** `/v1/users…`: the users resource. */
import type { FastifyInstance } from 'fastify';
import type { GroupsBody, NameParams, NewUserBody, User, UserStatus } from '../../api/index.js';
import { type Caller, callerOf } from '../http.js';
import * as S from '../schemas.js';
import type { ControllerState } from '../state.js';

const tags = ['users'];

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

  app.get(
    '/v1/users',
    {
      config: { auth: 'viewer' },
      schema: {
        summary: 'list users',
        tags,
        response: { 200: { type: 'array', items: S.userSchema }, ...S.errorResponses },
      },
    },
    (): User[] => state.fleet.listUsers(),
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
        summary: 'one user',
        tags,
        params: S.userNameParams,
        response: { 200: S.userSchema, ...S.errorResponses },
      },
    },
    (req): User => state.fleet.getUser(req.params.name),
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
      config: { auth: 'viewer' },
      schema: {
        summary: "the user's client profile (.ovpn, text) with inline keys",
        tags,
        params: S.userNameParams,
        produces: ['text/plain'],
        response: { ...S.errorResponses },
      },
    },
    async (req, reply) => {
      const name = req.params.name;
      const fleet = fleetFor(req);
      const hadCert = Boolean(fleet.getUser(name).certSerial);
      const text = await fleet.profile(name);
      // A first profile issues the certificate: a write like any other.
      if (!hadCert) await afterWrite();
      return reply
        .type('text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}.ovpn"`)
        .send(text);
    },
  );
}
