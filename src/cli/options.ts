/** Options more than one command takes, checked once: each failure is one line naming the option. */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { InputError } from '../errors.js';

export function readFileOrFail(path: string, field: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InputError(
      field,
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/**
 * `--controller` repeated, in order: several controllers, the first preferred. Repeated rather
 * than comma-separated, as `controller --listen` is: a unix socket path may hold a comma, and
 * each value stays one endpoint as parseEndpoint reads it (one `--controller X` works as before).
 */
export function collectControllers(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * The CA the controller's certificate must chain to. Checked here because node takes a file
 * without any certificate in it silently and only fails later, at every connect.
 */
export function readCaFile(path: string): Buffer {
  const pem = readFileOrFail(path, '--ca');
  const first = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(pem.toString());
  try {
    if (!first) throw new Error('no certificate');
    new X509Certificate(first[0]);
  } catch {
    throw new InputError('--ca', `${path} holds no PEM certificate`);
  }
  return pem;
}

/**
 * Characters OpenVPN's config parser treats specially (it splits on whitespace, reads quotes
 * and backslashes, starts comments at # and ;), and every control character: --base becomes
 * server.conf's `cd` line, where any of them could end the path and start another directive.
 */
const UNSAFE_IN_CONF = /[\s\u0000-\u001f\u007f-\u009f"'\\#;]/u;
const PLACEHOLDER = '{server}';

/**
 * The bundle directory on the servers, as --base gives it. `{server}` is the only brace
 * allowed: any other (a typo like `{sever}`) would end up literally in every server's path.
 */
export function parseBaseDir(text: string): string {
  const bad = UNSAFE_IN_CONF.exec(text);
  if (bad)
    throw new InputError(
      '--base',
      `${JSON.stringify(text)} holds ${JSON.stringify(bad[0])}, which server.conf cannot carry in a path`,
    );
  if (!isAbsolute(text)) throw new InputError('--base', `${text} is not an absolute path`);
  if (/[{}]/.test(text.replaceAll(PLACEHOLDER, '')))
    throw new InputError('--base', `${text}: only ${PLACEHOLDER} may stand in braces`);
  return text;
}

/** The base directory of one server. */
export function baseDirOf(base: string, server: string): string {
  return base.replaceAll(PLACEHOLDER, server);
}
