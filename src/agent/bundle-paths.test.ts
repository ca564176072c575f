import { describe, expect, it } from 'vitest';
import { directiveProblem, parseDirective } from './bundle-paths.js';

const good = () => ({
  token: 't1',
  bundle: {
    digest: 'a'.repeat(64),
    files: [
      { path: 'server.conf', content: 'port 1194\n', mode: 0o644 },
      { path: 'ccd/alice', content: '', mode: 0o644 },
    ],
  },
  evict: [{ user: 'alice', since: '2024-01-01T00:00:00Z' }],
  drain: false,
});

/** A directive as anything at all: these tests spoil it on purpose. */
type Mutable = any;

describe('directiveProblem', () => {
  it('accepts what the controller sends', () => {
    expect(directiveProblem(good())).toBeUndefined();
    const text = JSON.stringify(good());
    expect(parseDirective(text)).toEqual({ directive: good() });
  });

  it.each<[string, (d: Mutable) => void, string]>([
    ['no token', (d) => delete d.token, 'token'],
    ['numeric token', (d) => (d.token = 5), 'token'],
    ['drain as a string', (d) => (d.drain = 'false'), 'drain'],
    ['evict missing', (d) => delete d.evict, 'evict'],
    ['evict entry without since', (d) => (d.evict = [{ user: 'a' }]), 'evict[0]'],
    ['bundle missing', (d) => delete d.bundle, 'bundle'],
    ['digest not a string', (d) => (d.bundle.digest = 1), 'bundle.digest'],
    ['digest with a newline', (d) => (d.bundle.digest = 'ab\ncd'), 'bundle.digest'],
    ['files not an array', (d) => (d.bundle.files = {}), 'bundle.files'],
    ['file without path', (d) => (d.bundle.files = [{ content: '', mode: 0o644 }]), 'files[0]'],
    ['content not a string', (d) => (d.bundle.files[0].content = null), '"server.conf"'],
    ['mode a string', (d) => (d.bundle.files[0].mode = '644'), '"server.conf": mode'],
    ['mode fractional', (d) => (d.bundle.files[0].mode = 1.5), 'mode'],
    ['mode setuid', (d) => (d.bundle.files[0].mode = 0o4755), 'mode'],
    ['mode negative', (d) => (d.bundle.files[0].mode = -1), 'mode'],
    ['absolute path', (d) => (d.bundle.files[1].path = '/etc/passwd'), '"/etc/passwd"'],
    ['.. path', (d) => (d.bundle.files[1].path = 'ccd/../../x'), '"ccd/../../x"'],
    ['NUL in path', (d) => (d.bundle.files[1].path = 'ccd/a\0b'), 'control character'],
  ])('refuses %s, naming it', (_name, spoil, named) => {
    const d: Mutable = good();
    spoil(d);
    const problem = directiveProblem(d);
    expect(problem).toContain(named);
    expect(problem).not.toMatch(/\n/);
    expect(parseDirective(JSON.stringify(d))).toEqual({ problem });
  });

  it('refuses what is not JSON or not an object', () => {
    expect(parseDirective('{')).toEqual({ problem: 'not JSON' });
    expect(parseDirective('[]')).toEqual({ problem: 'not an object' });
    expect(parseDirective('null')).toEqual({ problem: 'not an object' });
  });
});
