/**
 * The version of the installed package, read from its package.json when asked: one number to
 * bump at release time, and `ovpn-fleet --version` always tells which package is installed
 * (the same relative path from src/cli under tsx and from dist/cli once built and installed).
 */
import { readFileSync } from 'node:fs';

const PACKAGE_JSON = new URL('../../package.json', import.meta.url);

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new Error(`${PACKAGE_JSON.pathname}: no "version"`);
  return pkg.version;
}
