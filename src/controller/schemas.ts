/**
 * The route schemas fastify validates requests with, serialises responses with, and builds the
 * OpenAPI document from — all generated from the wire contract in src/api.
 */
import * as api from '../api/index.js';
import { jsonSchema } from '../api/index.js';

export const errorSchema = jsonSchema(api.ErrorBody);

/** Every status the API can answer with an error body (see http.ts for the mapping). */
export const errorResponses = {
  400: errorSchema,
  401: errorSchema,
  403: errorSchema,
  404: errorSchema,
  409: errorSchema,
  422: errorSchema,
  429: errorSchema,
  500: errorSchema,
  503: errorSchema,
  504: errorSchema,
} as const;

export const userSchema = jsonSchema(api.User);
export const userDetailSchema = jsonSchema(api.UserDetail);
export const userNameParams = jsonSchema(api.NameParams);
export const serverNameParams = userNameParams;
export const newUserBody = jsonSchema(api.NewUserBody);
export const groupsBody = jsonSchema(api.GroupsBody);
export const userListQuery = jsonSchema(api.UserListQuery);
export const bulkBody = jsonSchema(api.BulkBody);
export const bulkResult = jsonSchema(api.BulkResult);
export const importResult = jsonSchema(api.ImportResult);
export const sessionSchema = jsonSchema(api.SessionView);
export const serverSchema = jsonSchema(api.ServerView);
export const auditSchema = jsonSchema(api.AuditEntry);
export const auditQuery = jsonSchema(api.AuditQuery);
export const healthResponse = jsonSchema(api.Health);
export const pollQuery = jsonSchema(api.PollQuery);
export const agentHeaders = jsonSchema(api.AgentRequestHeaders);
export const reportBody = jsonSchema(api.AgentReport);
export const directiveSchema = jsonSchema(api.Directive);
export const historySchema = jsonSchema(api.HistoryEntry);
export const historyQuery = jsonSchema(api.HistoryQuery);
export const routesViewSchema = jsonSchema(api.RoutesView);
export const killBody = jsonSchema(api.KillBody);
export const killResult = jsonSchema(api.KillResult);
export const signInBody = jsonSchema(api.SignInBody);
export const sessionInfo = jsonSchema(api.SessionInfo);
export const passwordChangeBody = jsonSchema(api.PasswordChangeBody);
export const rolloutSchema = jsonSchema(api.RolloutView);
export const rolloutStatusSchema = jsonSchema(api.RolloutStatusView);
export const rolloutStartBody = jsonSchema(api.RolloutStartBody);
