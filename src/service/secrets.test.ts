import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFound } from '../errors.js';
import { type TempFleet, tempFleetDir } from '../testing.js';
import { openFleet } from './open.js';

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
});
afterEach(() => t.cleanup());

describe('secrets', () => {
  it('derives one management password and one agent token per server, stable across opens', () => {
    const [a, b] = t.fleet.serverNames();
    const s = t.fleet.secrets;
    expect(s.managementPassword(a)).toMatch(/^[0-9a-f]{32}$/);
    expect(s.managementPassword(a)).not.toBe(s.managementPassword(b));
    expect(s.agentToken(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(s.agentToken(a)).not.toBe(s.agentToken(b));
    const again = openFleet(t.dir);
    try {
      expect(again.secrets.agentToken(a)).toBe(s.agentToken(a));
      expect(again.secrets.managementPassword(b)).toBe(s.managementPassword(b));
      expect(again.secrets.tlsCryptKey()).toBe(s.tlsCryptKey());
    } finally {
      again.close();
    }
  });

  it('gives no agent token for a server that is not in fleet.yaml', () => {
    expect(() => t.fleet.secrets.agentToken('vpn99')).toThrow(NotFound);
  });

  it('creates the agent secret on first use; another connection to the store derives the same token', () => {
    const other = openFleet(t.dir);
    try {
      expect(t.fleet.store.getSetting('agent.secret')).toBeUndefined();
      const [a] = t.fleet.serverNames();
      expect(other.secrets.agentToken(a)).toBe(t.fleet.secrets.agentToken(a));
    } finally {
      other.close();
    }
  });

  it('ensure leaves existing secrets alone', async () => {
    const key = t.fleet.secrets.tlsCryptKey();
    const password = t.fleet.secrets.managementPassword('vpn11');
    await t.fleet.secrets.ensure();
    expect(t.fleet.secrets.tlsCryptKey()).toBe(key);
    expect(t.fleet.secrets.managementPassword('vpn11')).toBe(password);
  });
});
