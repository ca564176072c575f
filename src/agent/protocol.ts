/**
 * The agent's side of the wire contract, which now lives in src/api (one definition for the
 * controller, the agent and the clients). Kept as a re-export while the agent's files move
 * their imports over.
 */
export {
  type AgentReport,
  type Directive,
  POLL_WAIT_MS,
  type ServerHealth,
  type SessionReport,
} from '../api/index.js';
