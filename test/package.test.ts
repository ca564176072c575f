/**
 * What `npm pack` publishes is the product: the built code, the CLI entry, the JSON Schema and
 * the OpenAPI document — no benchmarks, tests, golden files or test doubles.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

describe('npm pack', () => {
  it('builds dist/ from nothing first, as in a fresh clone', () => {
    const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(scripts.prepack).toBe('npm run --silent build');
    // npm runs `prebuild` before `build`: it empties dist/, so nothing stale is packed.
    expect(scripts.prebuild).toMatch(/rmSync\('dist'/);
    expect(scripts.build).toMatch(/^tsc -p tsconfig\.build\.json && /);
  });

  it('publishes the product and nothing of its tests or benchmarks', () => {
    const [pack] = JSON.parse(
      execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
        cwd: ROOT,
        encoding: 'utf8',
      }),
    ) as [{ files: { path: string }[] }];
    const paths = pack.files.map((f) => f.path);
    expect(paths).toContain('bin/ovpn-fleet.js');
    expect(paths).toContain('schema/fleet.schema.json');
    expect(paths).toContain('docs/openapi.json');
    const stray = paths.filter(
      (p) =>
        /^(bench|test|src|scripts)\//.test(p) ||
        /\.test\.(js|ts)$/.test(p) ||
        /(^|\/)testing\.(js|d\.ts)$/.test(p) ||
        p.includes('golden'),
    );
    expect(stray).toEqual([]);
  }, 60_000);
});
