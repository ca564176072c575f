import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseMetricsListen, readMetricsToken } from './metrics-options.js';

const dir = mkdtempSync(join(tmpdir(), 'ovf-metrics-opts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('--metrics-listen', () => {
  it('takes loopback without a token', () => {
    expect(parseMetricsListen('127.0.0.1:9464', false)).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseMetricsListen('[::1]:9464', false)).toEqual({ host: '::1', port: 9464 });
  });

  it('refuses any other address without a token, and takes it with one', () => {
    expect(() => parseMetricsListen('0.0.0.0:9464', false)).toThrow(
      /--metrics-listen: 0.0.0.0:9464 is not a loopback address: give --metrics-token-file too/,
    );
    expect(() => parseMetricsListen('192.0.2.10:9464', false)).toThrow(/not a loopback/);
    expect(parseMetricsListen('192.0.2.10:9464', true)).toEqual({ host: '192.0.2.10', port: 9464 });
  });

  it('refuses what is not ADDR:PORT', () => {
    for (const bad of [
      'unix:/tmp/m.sock',
      'https://127.0.0.1:9464',
      'http://127.0.0.1:9464',
      '127.0.0.1',
      '127.0.0.1:0',
      'x:99999',
    ])
      expect(() => parseMetricsListen(bad, true), bad).toThrow(/--metrics-listen/);
  });
});

describe('--metrics-token-file', () => {
  it('reads one token, trimmed', () => {
    const file = join(dir, 'good');
    writeFileSync(file, 'a-long-enough-metrics-token\n');
    expect(readMetricsToken(file)).toBe('a-long-enough-metrics-token');
    expect(readMetricsToken(undefined)).toBeUndefined();
  });

  it('refuses a missing file, an empty or short token, or two words', () => {
    expect(() => readMetricsToken(join(dir, 'none'))).toThrow(
      /--metrics-token-file: cannot read .*none: ENOENT/,
    );
    for (const [name, content] of [
      ['empty', '\n'],
      ['short', 'abc\n'],
      ['two', 'a-long-enough-token and-more\n'],
    ]) {
      const file = join(dir, name);
      writeFileSync(file, content);
      expect(() => readMetricsToken(file), name).toThrow(/at least 16 characters, without spaces/);
    }
  });
});
