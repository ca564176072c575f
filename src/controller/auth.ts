/** Bearer tokens: the admin token file, and constant-time comparison of presented tokens. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../sys/files.js';
import { Unauthorized } from './http-errors.js';

export const ADMIN_TOKEN_FILE = 'controller.token';

export function adminTokenPath(fleetDir: string): string {
  return join(fleetDir, ADMIN_TOKEN_FILE);
}

/** Reads `<fleetDir>/controller.token`, creating it (mode 0600) on first start. */
export function ensureAdminToken(fleetDir: string): {
  token: string;
  path: string;
  created: boolean;
} {
  const path = adminTokenPath(fleetDir);
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (token) return { token, path, created: false };
  }
  const token = randomBytes(32).toString('hex');
  writeFileAtomic(path, `${token}\n`, 0o600);
  return { token, path, created: true };
}

/** The token of an `Authorization: Bearer TOKEN` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  return m?.[1];
}

/**
 * A token prepared for comparison: hashing both sides gives equal lengths, so timingSafeEqual
 * never throws and the time taken says nothing about how much of a token matched.
 */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export function sameToken(presented: Buffer, expected: Buffer): boolean {
  return timingSafeEqual(presented, expected);
}

/** Who a request is: the admin, one server's agent, or (for a token both match) both. */
export interface Identity {
  admin: boolean;
  agent?: string;
}

/**
 * Knows the admin token and every server's agent token, as digests. Every candidate is
 * compared, in constant time each, so the time taken says nothing about which one matched.
 */
export class Authenticator {
  private readonly adminDigest: Buffer;
  private agentDigests = new Map<string, Buffer>();

  constructor(adminToken: string) {
    this.adminDigest = tokenDigest(adminToken);
  }

  /** The servers of the (re)loaded spec and their tokens. */
  setAgents(servers: readonly string[], tokenOf: (server: string) => string): void {
    this.agentDigests = new Map(servers.map((s) => [s, tokenDigest(tokenOf(s))]));
  }

  identify(header: string | undefined): Identity {
    const token = bearerToken(header);
    if (!token) throw new Unauthorized('missing bearer token (Authorization: Bearer TOKEN)');
    const presented = tokenDigest(token);
    const admin = sameToken(presented, this.adminDigest);
    let agent: string | undefined;
    for (const [server, digest] of this.agentDigests)
      if (sameToken(presented, digest)) agent = server;
    if (!admin && agent === undefined) throw new Unauthorized('invalid token');
    return agent === undefined ? { admin } : { admin, agent };
  }

  /** True only for a valid admin token; never throws. */
  isAdmin(header: string | undefined): boolean {
    try {
      return this.identify(header).admin;
    } catch {
      return false;
    }
  }
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's page
 * sends it), Path=/ (the console and the API), Secure when the controller serves HTTPS. No
 * Max-Age: the controller ends the session (idle timeout, lifetime), the browser forgets the
 * cookie when it closes.
 */
export function sessionCookie(name: string, id: string, secure: boolean): string {
  return `${name}=${id}; HttpOnly; SameSite=Strict; Path=/${secure ? '; Secure' : ''}`;
}

/** Tells the browser to drop the session cookie. */
export function clearedCookie(name: string, secure: boolean): string {
  return `${name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0${secure ? '; Secure' : ''}`;
}

/** Compares a presented CSRF token with the session's in constant time. */
export function sameCsrfToken(presented: string, expected: string): boolean {
  return sameToken(tokenDigest(presented), tokenDigest(expected));
}
