/** Moved to src/client/client.ts; kept while the agent's files move their imports over. */
export * from '../client/client.js';
