/**
 * `--metrics-listen ADDR:PORT` and `--metrics-token-file FILE`, shared by `controller` and
 * `agent`. The metrics listener speaks plain HTTP (what Prometheus scrapes most simply), so
 * beyond loopback it needs a token: the numbers say who is connected where, which is nobody's
 * business on the network. The token then does cross the network in clear; keep such a
 * listener on a management network.
 */
import { InputError } from '../errors.js';
import { isLoopback, parseAddress } from '../client/client.js';
import { readFileOrFail } from './options.js';

export const METRICS_LISTEN_HELP =
  'also serve GET /metrics on plain HTTP at ADDR:PORT (loopback, or any address with --metrics-token-file)';
export const METRICS_TOKEN_HELP =
  'file holding a bearer token that GET /metrics needs (Prometheus: authorization.credentials_file)';

/** Shorter than this is guessable by whoever can reach the listener. */
const MIN_TOKEN_LENGTH = 16;

export function readMetricsToken(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  const token = readFileOrFail(file, '--metrics-token-file').toString('utf8').trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token))
    throw new InputError(
      '--metrics-token-file',
      `${file} must hold one token of at least ${MIN_TOKEN_LENGTH} characters, without spaces`,
    );
  return token;
}

/** ADDR:PORT (IPv6 in brackets); anything but loopback only with a token. */
export function parseMetricsListen(
  text: string,
  hasToken: boolean,
): { host: string; port: number } {
  const e = parseAddress(text, '--metrics-listen');
  if (e.kind !== 'tcp' || e.tls || /^\w+:\/\//.test(text))
    throw new InputError('--metrics-listen', `"${text}" is not ADDR:PORT (plain HTTP, no scheme)`);
  if (!isLoopback(e.host) && !hasToken)
    throw new InputError(
      '--metrics-listen',
      `${text} is not a loopback address: give --metrics-token-file too`,
    );
  return { host: e.host, port: e.port };
}
