import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NotFound } from '../errors.js';
import { type TempFleet, tempFleetDir } from '../testing.js';
import { openFleet } from './open.js';

let t: TempFleet;
beforeEach(async () => {
  t = await tempFleetDir();
});
afterEach(async () => await t.cleanup());

describe('secrets', () => {
  it('derives one management password and one agent token per server, stable across opens', async () => {
    const [a, b] = t.fleet.serverNames();
    const s = t.fleet.secrets;
    expect(await s.managementPassword(a)).toMatch(/^[0-9a-f]{32}$/);
    expect(await s.managementPassword(a)).not.toBe(await s.managementPassword(b));
    expect(await s.agentToken(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(await s.agentToken(a)).not.toBe(await s.agentToken(b));
    const again = await openFleet(t.dir);
    try {
      expect(await again.secrets.agentToken(a)).toBe(await s.agentToken(a));
      expect(await again.secrets.managementPassword(b)).toBe(await s.managementPassword(b));
      expect(await again.secrets.tlsCryptKey()).toBe(await s.tlsCryptKey());
    } finally {
      await again.close();
    }
  });

  it('gives no agent token for a server that is not in fleet.yaml', async () => {
    await expect(t.fleet.secrets.agentToken('vpn99')).rejects.toThrow(NotFound);
  });

  it('creates the agent secret on first use; another connection to the store derives the same token', async () => {
    const other = await openFleet(t.dir);
    try {
      expect(await t.fleet.store.getSetting('agent.secret')).toBeUndefined();
      const [a] = t.fleet.serverNames();
      expect(await other.secrets.agentToken(a)).toBe(await t.fleet.secrets.agentToken(a));
    } finally {
      await other.close();
    }
  });

  it('ensure leaves existing secrets alone', async () => {
    const key = await t.fleet.secrets.tlsCryptKey();
    const password = await t.fleet.secrets.managementPassword('vpn11');
    await t.fleet.secrets.ensure();
    expect(await t.fleet.secrets.tlsCryptKey()).toBe(key);
    expect(await t.fleet.secrets.managementPassword('vpn11')).toBe(password);
  });

  it('keeps one auth-token secret for the fleet and rotates it (audited)', async () => {
    const s = t.fleet.secrets;
    const first = await s.authTokenKey();
    expect(first).toMatch(/^-----BEGIN OpenVPN auth-token server key-----\n/);
    expect(await s.authTokenKey()).toBe(first);
    await s.rotateAuthTokenKey();
    const second = await s.authTokenKey();
    expect(second).not.toBe(first);
    const log = await t.fleet.store.auditLog(5);
    expect(log.map((e) => e.action)).toContain('auth.token-secret.rotate');
    expect(JSON.stringify(log)).not.toContain(second.split('\n')[1]);
  });
});
