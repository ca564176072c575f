/**
 * Builders for tests (and benchmarks): a test states only what matters to it and gets a
 * valid, deterministic everything-else. Not part of the build (see tsconfig.build.json).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { it } from 'vitest';
import { InputError } from './errors.js';
import { addressAt, FIRST_USER_OFFSET } from './core/ipam.js';
import { mustParsePrefix } from './core/ip.js';
import { generateTlsCryptKey } from './core/pki.js';
import type { RenderSnapshot, RenderUser } from './render/types.js';
import { EXAMPLE_FLEET_YAML } from './spec/example.js';
import type { FleetInput, FleetSpec } from './spec/schema.js';
import { validateSpec } from './spec/validate.js';
import type { Clock, Fleet } from './service/fleet.js';
import { initFleet } from './service/open.js';

/** The instant every test clock shows. */
export const FIXED_NOW = new Date('2026-03-01T12:00:00Z');

export function fixedClock(at: Date = FIXED_NOW): Clock & { advanceDays(days: number): void } {
  let now = at.getTime();
  return {
    now: () => new Date(now),
    advanceDays(days: number) {
      now += days * 86_400_000;
    },
  };
}

/** The example fleet.yaml as plain data (a fresh copy on every call). */
export function exampleInput(): FleetInput {
  return parse(EXAMPLE_FLEET_YAML) as FleetInput;
}

function mustValidate(input: unknown): FleetSpec {
  const v = validateSpec(input);
  if (!v.spec) {
    throw new Error(
      `test spec is invalid:\n${v.errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}`,
    );
  }
  return v.spec;
}

/** The parsed, validated example spec; top-level fields in `overrides` replace the example's. */
export function exampleSpec(overrides: Partial<FleetInput> = {}): FleetSpec {
  return mustValidate({ ...exampleInput(), ...overrides });
}

/** The example input, changed in place by `mutate`, then validated (throws listing errors). */
export function specWith(mutate: (input: FleetInput) => void): FleetSpec {
  const input = exampleInput();
  mutate(input);
  return mustValidate(input);
}

/** BGP version of the example: each server peers with its site router at .1 / .5 of its /30. */
/** The example with the servers' own input protected, SSH allowed from admin networks. */
export function protectedSpec(): FleetSpec {
  return specWith((input) => {
    input.firewall = {
      protectServers: true,
      allowInput: [{ proto: 'tcp', ports: [22], from: ['10.99.0.0/24', 'fd00:99::/64'] }],
    };
  });
}

export function bgpSpec(): FleetSpec {
  return specWith((input) => {
    input.routing = {
      protocol: 'bgp',
      bgp: {
        asn: 65100,
        neighbors: ['10.255.1', '10.255.2', '10.255.3'].flatMap((net, i) => [
          { address: `${net}.1`, asn: 65001 + i, password: 'bgp-secret-1' },
          { address: `${net}.5`, asn: 65001 + i },
        ]),
      },
    };
  });
}

/** RIP version of the example, with MD5 authentication. */
export function ripSpec(): FleetSpec {
  return specWith((input) => {
    input.routing = { protocol: 'rip', rip: { auth: { key: 'rip-secret' } } };
  });
}

const fakePem = (label: string, what: string) =>
  `-----BEGIN ${label}-----\n${Buffer.from(`fake ${what} for tests`).toString('base64')}\n-----END ${label}-----\n`;

/** A fixed tls-crypt key: bytes 0, 1, 2, … 255. */
export const FIXED_TLS_CRYPT_KEY = generateTlsCryptKey((n) =>
  Uint8Array.from({ length: n }, (_, i) => i),
);

/**
 * A deterministic snapshot. User `i` defaults to name `user<i+1>`, the i-th free pair of
 * addresses in the spec's pools (10.200.0.2 ↔ …::2, …), no groups, enabled.
 */
export function snapshotWith(
  users: Partial<RenderUser>[],
  spec: FleetSpec = exampleSpec(),
): RenderSnapshot {
  const v4 = mustParsePrefix(spec.pools.ipv4);
  const v6 = mustParsePrefix(spec.pools.ipv6);
  const servers: RenderSnapshot['servers'] = new Map();
  for (const site of spec.sites) {
    for (const s of site.servers) {
      servers.set(s.name, {
        certPem: fakePem('CERTIFICATE', `server certificate of ${s.name}`),
        keyPem: fakePem('PRIVATE KEY', `server key of ${s.name}`),
        managementPassword: `mgmt-${s.name}-0123456789abcdef`,
      });
    }
  }
  return {
    users: users.map((u, i) => {
      const offset = FIRST_USER_OFFSET + BigInt(i);
      return {
        name: `user${i + 1}`,
        ipv4: addressAt(v4, offset),
        ipv6: addressAt(v6, offset),
        groups: [],
        enabled: true,
        ...u,
      };
    }),
    caPem: fakePem('CERTIFICATE', 'CA certificate'),
    crlPem: fakePem('X509 CRL', 'CRL'),
    tlsCryptKey: FIXED_TLS_CRYPT_KEY,
    servers,
  };
}

export interface TempFleet {
  dir: string;
  fleet: Fleet;
  clock: ReturnType<typeof fixedClock>;
  /** Closes the store and removes the directory. */
  cleanup(): Promise<void>;
}

/** `initFleet` (example fleet.yaml unless `yaml` is given) in a fresh temp dir, fixed clock. */
export async function tempFleetDir(opts: { yaml?: string; now?: Date } = {}): Promise<TempFleet> {
  const dir = mkdtempSync(join(tmpdir(), 'ovf-test-'));
  const clock = fixedClock(opts.now);
  try {
    const fleet = await initFleet(dir, { ...(opts.yaml ? { yaml: opts.yaml } : {}), clock });
    return {
      dir,
      fleet,
      clock,
      async cleanup() {
        await fleet.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The message of the InputError `fn` throws; anything else (or nothing) fails the test. */
export function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputError) return err.message;
    throw err;
  }
  throw new Error('expected an InputError, but nothing was thrown');
}

/**
 * A self-signed ECDSA P-256 certificate, valid one day, made by the openssl binary: its own
 * trust anchor. Files `<dir>/<name>.crt` and `.key`; extra `-addext` values (e.g. a
 * subjectAltName) as given.
 */
export function selfSignedCert(
  dir: string,
  name: string,
  addext: string[] = [],
): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
    ...addext.flatMap((e) => ['-addext', e]),
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  return { cert, key };
}

/**
 * A test that needs something this machine may lack (`why` says what, or is undefined when it is
 * there). Without it the test is skipped on a workstation, visibly, its reason in its name;
 * under CI=true it runs and fails with that reason: a check that cannot run must not pass.
 */
export function itNeeds(
  why: string | undefined,
  name: string,
  fn: () => unknown,
  timeoutMs?: number,
): void {
  if (!why) it(name, fn, timeoutMs);
  else if (process.env.CI === 'true')
    it(name, () => {
      throw new Error(`cannot run under CI: ${why}`);
    });
  else it.skip(`${name} (skipped: ${why})`, fn);
}
