/**
 * The wire contract: every request, response, directive and report of the controller's HTTP
 * API, once, as a runtime schema with its TypeScript type derived from it. The controller, the
 * agent and the clients import this module, never each other. It imports nothing of ours.
 */
export * from './admins.js';
export * from './agent.js';
export * from './audit.js';
export * from './auth.js';
export * from './common.js';
export * from './health.js';
export * from './history.js';
export * from './host-routes.js';
export { jsonSchema, type JsonSchema } from './json-schema.js';
export * from './rollout.js';
export * from './servers.js';
export * from './session.js';
export * from './sessions.js';
export * from './users.js';
