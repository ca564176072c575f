import { describe, expect, it } from 'vitest';
import {
  checkControlPlaneOptions,
  controlPlanePlan,
  controllerEndpoints,
  labStoreEnv,
} from './control-plane.js';
import type { LabState } from './state.js';

const state = (over: Partial<LabState>): LabState => ({
  prefix: 'ovfx',
  fleetDir: '/f',
  dir: '/f/.lab/ovfx',
  createdAt: '',
  port: 1194,
  namespaces: [],
  frrInstances: [],
  processes: [],
  clients: [],
  controlPlane: true,
  ...over,
});

describe('lab control plane options', () => {
  it('refuses two controllers on SQLite, an unknown store, and a store without control plane', () => {
    expect(() =>
      checkControlPlaneOptions({ controllers: 2, store: 'sqlite', controlPlane: true }),
    ).toThrow(/--store postgres/);
    expect(() =>
      checkControlPlaneOptions({ controllers: 1, store: 'mysql', controlPlane: true }),
    ).toThrow(/"mysql" is not one of sqlite, postgres/);
    expect(() =>
      checkControlPlaneOptions({ controllers: 3, store: 'postgres', controlPlane: true }),
    ).toThrow(/1 or 2/);
    expect(() =>
      checkControlPlaneOptions({ controllers: 1, store: 'postgres', controlPlane: false }),
    ).toThrow(/without control plane/);
    expect(() =>
      checkControlPlaneOptions({ controllers: 1, store: 'sqlite', controlPlane: true }),
    ).not.toThrow();
  });

  it('names every controller, first preferred; the URL comes from a file, never the environment string', () => {
    expect(controllerEndpoints(state({ controllers: 2 }))).toEqual([
      'unix:/f/.lab/ovfx/controller.sock',
      'unix:/f/.lab/ovfx/controller2.sock',
    ]);
    expect(controllerEndpoints(state({ controlPlane: false }))).toEqual([]);
    const pg = state({
      store: 'postgres',
      postgres: {
        ns: 'ovfx-db',
        address: '10.253.0.2',
        port: 5432,
        dir: '/tmp/x',
        controllerUrlFile: '/f/.lab/ovfx/db/controller.url',
        toolUrlFile: '/f/.lab/ovfx/db/tool.url',
      },
    });
    const env = labStoreEnv(pg, 'controller', { OVPN_FLEET_DATABASE_URL: 'postgres://x', A: '1' });
    expect(env).toEqual({ A: '1', OVPN_FLEET_DATABASE_URL_FILE: '/f/.lab/ovfx/db/controller.url' });
    expect(labStoreEnv(pg, 'tool', {}).OVPN_FLEET_DATABASE_URL_FILE).toBe(
      '/f/.lab/ovfx/db/tool.url',
    );
  });

  it('puts the database and the second controller on their own links to the core', () => {
    const p = controlPlanePlan('ovfx', 'ovfx-core');
    expect(p.links.map((l) => [l.a.ns, l.b.ns])).toEqual([
      ['ovfx-core', 'ovfx-db'],
      ['ovfx-core', 'ovfx-ctl2'],
    ]);
    expect(p.links[0].b.v4).toBe(`${p.dbAddress}/30`);
  });
});
