/**
 * How long OpenVPN holds a key for the agent (management-client-auth): from the moment the
 * agent has a whole `>CLIENT:CONNECT|REAUTH` (its env block ended) to OpenVPN's SUCCESS for the
 * first answer to that key — `client-auth-nt`, `client-deny` or `client-pending-auth` (a sign-in
 * then takes as long as the user does, which is not the hold's cost). One log line per held
 * key, so an operator (and bench/auth.ts) reads what the hold costs every connect; the socket
 * transit of the request itself is not in it (well under a millisecond on a unix socket).
 */
import type { AuthManagement } from './connect-auth.js';
import type { ClientAuthRequest } from './management.js';

/** The line's shape; bench/auth.ts parses it. */
export const ANSWER_LINE =
  /client (\d+) key (\d+) (CONNECT|REAUTH) answered \((\S+)\) in ([\d.]+) ms/;

export class AnswerTiming implements AuthManagement {
  /** Held keys not yet answered: `CID/KID` → when the request arrived, and which it was. */
  private readonly held = new Map<string, { at: number; reauth: boolean }>();

  constructor(
    private readonly management: AuthManagement,
    private readonly now: () => number,
    private readonly log: (line: string) => void,
  ) {}

  /** Call as each request arrives, before it is decided. */
  arrived(req: ClientAuthRequest): void {
    this.held.set(`${req.clientId}/${req.keyId}`, { at: this.now(), reauth: req.reauth });
  }

  /** A client's held keys (its id), or every one (undefined), will get no answer: not timed. */
  forget(clientId: number | undefined): void {
    if (clientId === undefined) this.held.clear();
    else
      for (const key of [...this.held.keys()])
        if (key.startsWith(`${clientId}/`)) this.held.delete(key);
  }

  authorize(clientId: number, keyId: number): Promise<void> {
    return this.timed(clientId, keyId, 'client-auth-nt', () =>
      this.management.authorize(clientId, keyId),
    );
  }

  deny(clientId: number, keyId: number, reason: string, clientReason: string): Promise<void> {
    return this.timed(clientId, keyId, 'client-deny', () =>
      this.management.deny(clientId, keyId, reason, clientReason),
    );
  }

  pendingAuth(clientId: number, keyId: number, extra: string, timeout: number): Promise<void> {
    return this.timed(clientId, keyId, 'client-pending-auth', () =>
      this.management.pendingAuth(clientId, keyId, extra, timeout),
    );
  }

  private async timed(
    clientId: number,
    keyId: number,
    command: string,
    send: () => Promise<void>,
  ): Promise<void> {
    const key = `${clientId}/${keyId}`;
    const since = this.held.get(key);
    // Only the first answer is the hold: later ones end a sign-in the user took time over.
    this.held.delete(key);
    await send();
    if (!since) return;
    const ms = this.now() - since.at;
    this.log(
      `client ${clientId} key ${keyId} ${since.reauth ? 'REAUTH' : 'CONNECT'} answered (${command}) in ${ms.toFixed(2)} ms`,
    );
  }
}
