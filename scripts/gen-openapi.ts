/** Writes docs/openapi.json from the controller's route schemas: `npm run openapi`. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { buildController } from '../src/controller/app.js';
import { initFleet } from '../src/service/open.js';

/** The document as the controller serves it, from a throw-away example fleet. */
export async function openApiDocument(): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'ovpn-fleet-openapi-'));
  try {
    await (await initFleet(dir)).close();
    const ctl = await buildController({
      fleetDir: dir,
      baseDir: () => '/etc/ovpn-fleet',
      adminToken: 'unused',
    });
    try {
      return ctl.app.swagger();
    } finally {
      await ctl.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const OPENAPI_FILE = fileURLToPath(new URL('../docs/openapi.json', import.meta.url));

/** Formatted as the repository's prettier config wants it, so format:check stays green. */
export async function openApiText(): Promise<string> {
  const config = (await resolveConfig(OPENAPI_FILE)) ?? {};
  return format(JSON.stringify(await openApiDocument()), { ...config, parser: 'json' });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OPENAPI_FILE, await openApiText());
  process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
}
