/**
 * Connect-time authentication between an agent and the controller (JSON over HTTP, agent
 * token as for /v1/agent/poll):
 *
 *   agent → POST /v1/agent/auth/begin    a user must sign in in a browser (WEB_AUTH): the
 *                                        controller opens a sign-in and answers its id and the
 *                                        URL the client is sent to
 *   agent → GET  /v1/agent/auth/wait?id= long-poll for that sign-in's outcome: 200 with it as
 *                                        soon as it is known, 204 after AUTH_WAIT_MS
 *   agent → POST /v1/agent/auth/answer   a TOTP code (or a recovery code) a client gave to a
 *                                        CR_TEXT challenge: the controller checks it and answers
 *
 * The agent never asks the controller about a certificate-only user or a reconnect with a
 * valid token: those it decides alone, from its bundle (auth.json) and OpenVPN's session_state.
 * Codes, secrets and URLs' state parameters never appear in the controller's logs.
 */
import { z } from 'zod';

/** How long GET /v1/agent/auth/wait holds the request before answering 204. */
export const AUTH_WAIT_MS = 25_000;

const user = z.string().min(1).max(64).describe("the certificate's common name (the user name)");
const realAddress = z
  .string()
  .max(256)
  .optional()
  .describe('where the client connects from (ADDR:PORT), for the audit log');

export const AuthBeginRequest = z.strictObject({
  user,
  realAddress,
});
export type AuthBeginRequest = z.infer<typeof AuthBeginRequest>;

export const AuthBeginAnswer = z.strictObject({
  id: z.string().min(1).max(128).describe('the sign-in, for /v1/agent/auth/wait'),
  url: z
    .string()
    .min(1)
    .max(900)
    .describe('where the client signs in (sent as WEB_AUTH::url; OpenVPN allows 1024 bytes)'),
});
export type AuthBeginAnswer = z.infer<typeof AuthBeginAnswer>;

export const AuthWaitQuery = z.object({
  id: z.string().min(1).max(128).describe('a sign-in id from /v1/agent/auth/begin'),
});
export type AuthWaitQuery = z.infer<typeof AuthWaitQuery>;

/** The outcome of a sign-in or a code. */
export const AuthOutcome = z.strictObject({
  ok: z.boolean(),
  /** Why not, in words the user sees in the client's AUTH_FAILED. */
  reason: z.string().max(200).optional(),
  /** Our groups for this session (from the identity provider's mapped groups). */
  groups: z.array(z.string().max(64)).max(256).optional(),
});
export type AuthOutcome = z.infer<typeof AuthOutcome>;

export const AuthAnswerRequest = z.strictObject({
  user,
  realAddress,
  method: z.literal('totp').describe('what was asked: a TOTP code (or a recovery code)'),
  response: z.string().max(256).describe("the client's answer, decoded from base64"),
});
export type AuthAnswerRequest = z.infer<typeof AuthAnswerRequest>;

/** A new TOTP enrolment, answered once (POST /v1/users/{name}/totp; admin). */
export const TotpEnrolment = z.strictObject({
  uri: z.string().describe('otpauth://totp/… for the authenticator app'),
  qrSvg: z.string().describe('the URI as a QR code (SVG), for the console'),
  recoveryCodes: z.array(z.string()).describe('ten one-time recovery codes, shown only now'),
});
export type TotpEnrolment = z.infer<typeof TotpEnrolment>;

export const TotpStatus = z.strictObject({
  enrolled: z.boolean(),
  confirmed: z.boolean(),
  recoveryCodesLeft: z.number().int().min(0),
});
export type TotpStatus = z.infer<typeof TotpStatus>;

export const TotpConfirmBody = z.strictObject({
  code: z.string().regex(/^\d{6}$/, 'is not a 6-digit code'),
});
export type TotpConfirmBody = z.infer<typeof TotpConfirmBody>;
