/**
 * Admin passwords: scrypt (memory-hard, in Node's crypto, no native add-on) with its cost in
 * the stored string, so that the cost can be raised later while older hashes still verify.
 *
 * Stored form (PHC-like): `$scrypt$ln=15,r=8,p=1$<salt>$<key>`, salt and key in unpadded
 * base64. N = 2^ln. With N = 2^15, r = 8 one hash needs 128·N·r = 32 MiB, exactly Node's
 * default `maxmem` (32 MiB). Node's docs say it is an error when "(approximately)
 * 128 * N * r > maxmem"; OpenSSL counts a little more than that, and indeed these parameters
 * fail with the default ("memory limit exceeded", tried on Node 20). So maxmem is always given,
 * twice the need of the parameters at hand.
 */
import { type ScryptOptions, randomBytes, randomInt, scrypt, timingSafeEqual } from 'node:crypto';

interface Cost {
  ln: number;
  r: number;
  p: number;
}

/** What new hashes use. Raise here; hashes stored with less keep verifying. */
const CURRENT: Cost = { ln: 15, r: 8, p: 1 };
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/**
 * Bounds for parameters read back from the store: a tampered row must not make one sign-in
 * attempt allocate gigabytes or run for minutes.
 */
const BOUNDS: Record<keyof Cost, [number, number]> = { ln: [10, 20], r: [1, 32], p: [1, 16] };

export const MIN_PASSWORD_LENGTH = 12;
/** Long enough for any passphrase, short enough that nobody makes the controller hash megabytes. */
export const MAX_PASSWORD_LENGTH = 1024;

function derive(password: string, salt: Buffer, keyBytes: number, cost: Cost): Promise<Buffer> {
  const N = 2 ** cost.ln;
  const options: ScryptOptions = {
    N,
    r: cost.r,
    p: cost.p,
    maxmem: 2 * 128 * N * cost.r * cost.p,
  };
  // NFC: the same password typed on another keyboard or OS may arrive in another Unicode form.
  const text = password.normalize('NFC');
  return new Promise((resolve, reject) =>
    scrypt(text, salt, keyBytes, options, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, CURRENT);
  const { ln, r, p } = CURRENT;
  return `$scrypt$ln=${ln},r=${r},p=${p}$${b64(salt)}$${b64(key)}`;
}

/** Written unpadded; padding is accepted (a hash made by another tool). */
const STORED =
  /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

function parseStored(stored: string): { cost: Cost; salt: Buffer; key: Buffer } | undefined {
  const m = STORED.exec(stored);
  if (!m) return undefined;
  const cost: Cost = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  for (const k of ['ln', 'r', 'p'] as const) {
    const [lo, hi] = BOUNDS[k];
    if (!(cost[k] >= lo && cost[k] <= hi)) return undefined;
  }
  const salt = Buffer.from(m[4], 'base64');
  const key = Buffer.from(m[5], 'base64');
  if (salt.length < 8 || key.length < 16 || key.length > 64) return undefined;
  return { cost, salt, key };
}

let dummy: Promise<string> | undefined;

/**
 * True when `password` matches the stored hash. Compared in constant time. An unusable stored
 * string (or `undefined`: no such account) still costs one full hash at today's parameters, so
 * the time taken does not tell a missing account from a wrong password.
 */
export async function verifyPassword(
  password: string,
  stored: string | undefined,
): Promise<boolean> {
  const parsed = stored === undefined ? undefined : parseStored(stored);
  if (!parsed) {
    dummy ??= hashPassword(randomBytes(16).toString('hex'));
    const d = parseStored(await dummy)!;
    await derive(password, d.salt, d.key.length, d.cost);
    return false;
  }
  const key = await derive(password, parsed.salt, parsed.key.length, parsed.cost);
  return timingSafeEqual(key, parsed.key);
}

/**
 * Why a new password is refused, or undefined. The message never repeats the password: it
 * ends up in a terminal, a log line or an HTTP answer.
 */
export function passwordProblem(password: string): string | undefined {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH)
    return `must be at least ${MIN_PASSWORD_LENGTH} characters (got ${length})`;
  if (password.length > MAX_PASSWORD_LENGTH)
    return `must be at most ${MAX_PASSWORD_LENGTH} characters`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(password))
    return 'must not contain control characters (a line break, a tab, an escape)';
  return undefined;
}

/** No 0/O, 1/l/I: a one-time password is read off a terminal and typed in by a person. */
const ALPHABET = 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';

/** 20 characters of a 56-letter alphabet, each uniformly random: about 116 bits. */
export function generatePassword(): string {
  let out = '';
  for (let i = 0; i < 20; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}
