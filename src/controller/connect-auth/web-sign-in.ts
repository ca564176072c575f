/**
 * The seam between the connect path (agent → controller, sign-ins.ts) and the OpenID Connect
 * relying party that runs the browser sign-in (implemented beside this, with openid-client).
 * The connect path asks for a URL to send the client to, and hears once per finished sign-in.
 */
export interface WebSignInRequest {
  id: string;
  user: string;
  server: string;
  remote: string;
}
export type WebSignInResult =
  | { id: string; ok: true; subject: string; email?: string; groups: string[] }
  | { id: string; ok: false; reason: string; subject?: string };
export interface WebSignIn {
  /** The URL the client is sent to (WEB_AUTH::url): a page of this controller leading to the IdP. */
  begin(req: WebSignInRequest): Promise<string>;
  /** Called once per finished sign-in (groups are already mapped to ours and filtered). */
  onResult(listener: (r: WebSignInResult) => void): void;
  /**
   * Takes over a sign-in another controller began (it died, and the agent's long-poll came
   * here): what it is for, and from now on its result is handed to this controller's listeners
   * too (at once if it has finished). Undefined when no such sign-in is known.
   */
  adopt?(requestId: string): Promise<AdoptedSignIn | undefined>;
}

export interface AdoptedSignIn {
  user: string;
  server: string;
  remote: string;
  /** When its start link stops working (ms since the epoch). */
  expiresAt: number;
}
