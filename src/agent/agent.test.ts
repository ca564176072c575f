import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent } from './agent.js';
import type { Directive } from './protocol.js';

let root: string;
let dir: string;
let outside: string;
let lines: string[];
let agent: Agent;

const GOOD = 'a'.repeat(64);
const NEXT = 'b'.repeat(64);

/** A bundle folder holding the last good bundle, and an agent that never started its loops. */
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'agent-test-'));
  dir = join(root, 'bundle');
  outside = join(root, 'outside');
  mkdirSync(join(dir, 'ccd'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'precious'), 'keep me\n');
  writeFileSync(join(dir, 'server.conf'), 'port 1194\n');
  writeFileSync(join(dir, 'ccd', 'alice'), 'push alice\n');
  writeFileSync(join(dir, 'VERSION'), `${GOOD}\n`);
  lines = [];
  agent = new Agent({
    server: 'vpn1',
    bundleDir: dir,
    controller: `unix:${join(root, 'controller.sock')}`,
    token: 'x',
    tunDevice: 'vpn0',
    routeProtocol: 201,
    log: (l) => lines.push(l),
  });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const directive = (files: Directive['bundle']['files']): Directive => ({
  token: 't2',
  bundle: { digest: NEXT, files },
  evict: [],
  drain: false,
});

const unchanged = () => {
  expect(readFileSync(join(dir, 'server.conf'), 'utf8')).toBe('port 1194\n');
  expect(readFileSync(join(dir, 'VERSION'), 'utf8')).toBe(`${GOOD}\n`);
  expect(readFileSync(join(outside, 'precious'), 'utf8')).toBe('keep me\n');
};

describe('Agent.handle refuses an unsafe directive whole', () => {
  it('a path out of the bundle: nothing written, one line naming it', async () => {
    const d = directive([
      { path: 'server.conf', content: 'port 1195\n', mode: 0o644 },
      { path: '../outside/precious', content: 'pwned\n', mode: 0o644 },
    ]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"../outside/precious"');
    expect(lines[0]).toContain(`last good bundle ${GOOD.slice(0, 12)} kept`);
    // The same directive again is refused again, without another line.
    expect(await agent.handle(d)).toBe(false);
    expect(lines).toHaveLength(1);
  });

  it('an absolute path', async () => {
    const d = directive([{ path: join(outside, 'precious'), content: 'pwned\n', mode: 0o644 }]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(lines[0]).toContain('absolute path');
  });

  it('ccd replaced by a link to a folder outside: nothing written or removed there', async () => {
    rmSync(join(dir, 'ccd'), { recursive: true });
    symlinkSync(outside, join(dir, 'ccd'));
    const d = directive([
      { path: 'server.conf', content: 'port 1195\n', mode: 0o644 },
      { path: 'ccd/bob', content: 'push bob\n', mode: 0o644 },
    ]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(readdirSync(outside)).toEqual(['precious']);
    expect(lines[0]).toMatch(/"ccd".*symlink/);
  });

  it('a dangling link as a folder on the way', async () => {
    symlinkSync(join(root, 'nowhere'), join(dir, 'hooks'));
    const d = directive([{ path: 'hooks/learn-address', content: '#!/bin/sh\n', mode: 0o755 }]);
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(existsSync(join(root, 'nowhere'))).toBe(false);
    expect(lines[0]).toContain('"hooks" is a symlink');
  });

  it('a directive of the wrong shape', async () => {
    const d = { ...directive([]), evict: 'everyone' } as unknown as Directive;
    expect(await agent.handle(d)).toBe(false);
    unchanged();
    expect(lines[0]).toContain('evict is not an array');
  });
});

describe('Agent controller endpoint', () => {
  it('takes --ca to pin the controller, and refuses it where there is no TLS to pin', () => {
    const options = {
      server: 'vpn1',
      bundleDir: dir,
      token: 'x',
      tunDevice: 'vpn0',
      routeProtocol: 201,
      ca: '-----BEGIN CERTIFICATE-----\n',
    };
    expect(() => new Agent({ ...options, controller: 'https://192.0.2.1:8443' })).not.toThrow();
    expect(() => new Agent({ ...options, controller: `unix:${join(root, 'c.sock')}` })).toThrow(
      /--ca/,
    );
  });
});
