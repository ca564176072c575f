/**
 * A user's TOTP on the user page: the status line every role sees (not enrolled, waiting for
 * confirmation, active; recovery codes left; whether the agents ask for a code at connect),
 * and the admin's card: enrol (the QR code, the otpauth URI and the ten recovery codes, shown
 * in the answer to the enrolment alone and never again), confirm with a first code, reset.
 *
 * The card is in the live region but marked `data-keep`: the browser script's live refresh (a
 * session moving anywhere) leaves it as it is, so it never wipes the recovery codes or a
 * half-typed code. The script swaps the card itself after each TOTP action (GET/POST
 * /console/users/{name}/totp).
 */
import type { TotpEnrolment, TotpStatus } from '../../api/index.js';
import type { TotpAsked } from '../data.js';
import { type Html, html } from '../html.js';
import { badge } from './format.js';

export type TotpState = 'none' | 'pending' | 'active';

export function totpState(s: TotpStatus): TotpState {
  return !s.enrolled ? 'none' : s.confirmed ? 'active' : 'pending';
}

/** The status line of the user's facts. */
export function totpFacts(status: TotpStatus, asked: TotpAsked): Html {
  const state = totpState(status);
  const word =
    state === 'active'
      ? badge('ok', 'active')
      : state === 'pending'
        ? badge('warn', 'waiting for confirmation')
        : asked.asked
          ? // The agents ask, and no code can be right: every connect is refused.
            badge('bad', 'not enrolled')
          : badge('off', 'not enrolled');
  const left =
    state === 'none'
      ? ''
      : html`, ${status.recoveryCodesLeft} recovery code${status.recoveryCodesLeft === 1 ? '' : 's'}
        left`;
  return html`<span data-testid="totp-status" data-state="${state}">${word}${left}</span>
    <br /><span data-testid="totp-asked" data-asked="${asked.asked ? 'yes' : 'no'}"
      >${asked.asked ? 'asked for a code at connect' : 'not asked at connect'}:
      ${asked.why}${
        asked.asked && state === 'none' ? ': enrol them, or every connect is refused' : ''
      }</span
    >`;
}

/**
 * The QR code of the enrolment, inlined. qrcode's SVG is no user input, but it is markup from
 * outside this module: it is inlined only when it has exactly the shape qrcode 1.5's renderer
 * writes (svg-tag.js: a viewBox, an optional background path, one stroked path of M/m/h moves),
 * and then rebuilt from the numbers read out of it through html``, so nothing from the string
 * reaches the page unescaped, whatever a later qrcode writes. Anything else: no picture, and
 * the URI below it still works.
 */
const QR_SVG =
  /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" (?:width="\d+" height="\d+" )?viewBox="0 0 (\d{1,3}) \1" shape-rendering="crispEdges">(?:<path fill="#[0-9a-f]{6}" d="M0 0h\1v\1H0z"\/>)?<path stroke="#[0-9a-f]{6}" d="((?:[Mmh]\d{1,3}(?:\.5)?(?: \d{1,3}(?:\.5)?)?)*)"\/><\/svg>\s*$/;

export function qrCode(svg: string): Html {
  const m = QR_SVG.exec(svg);
  if (!m)
    return html`<p class="notice" data-testid="totp-qr-missing">
      No QR code to show (its picture was not of the expected form): type the URI below into the app
      instead.
    </p>`;
  const size = Number(m[1]);
  return html`<svg
    class="qr"
    data-testid="totp-qr"
    xmlns="http://www.w3.org/2000/svg"
    viewBox="${`0 0 ${size} ${size}`}"
    shape-rendering="crispEdges"
    role="img"
    aria-label="QR code of the otpauth URI"
  >
    <path fill="#ffffff" d="${`M0 0h${size}v${size}H0z`}"></path>
    <path stroke="#000000" d="${m[2]}"></path>
  </svg>`;
}

/** What the enrolment answers once: QR code, URI, recovery codes. */
function enrolmentShown(user: string, e: TotpEnrolment): Html {
  return html`<div class="enrolment" data-testid="totp-enrolment">
    <p>
      Scan the QR code with the authenticator app on ${user}'s phone, or type the URI into it. Then
      confirm below with the code the app shows.
    </p>
    <div class="qr-box">${qrCode(e.qrSvg)}</div>
    <p>URI for manual entry:<br /><code class="uri" data-testid="totp-uri">${e.uri}</code></p>
    <p class="notice">
      <strong>Recovery codes, shown only now.</strong> The controller keeps only their hashes: they
      cannot be shown again. Hand them to ${user}; each works once instead of a code.
    </p>
    <ol class="codes" data-testid="recovery-codes">
      ${e.recoveryCodes.map((c) => html`<li><code>${c}</code></li>`)}
    </ol>
  </div>`;
}

/** The admin's card: the actions the current state allows, and a new enrolment's answer. */
export function totpCard(user: string, status: TotpStatus, enrolment?: TotpEnrolment): Html {
  const state = totpState(status);
  const button = (action: string, label: string, cls = '') =>
    html`<button
      type="button"
      class="${cls}"
      data-action="${action}"
      data-user="${user}"
      data-enrolled="${status.enrolled ? 'yes' : 'no'}"
      data-testid="${action}"
    >
      ${label}
    </button>`;
  return html`<section
    class="card totp"
    id="totp-card"
    data-keep="totp-card"
    data-testid="totp-card"
    data-user="${user}"
    data-state="${state}"
    aria-labelledby="totp-title"
  >
    <h2 id="totp-title">Second factor (TOTP)</h2>
    ${enrolment && enrolmentShown(user, enrolment)}
    ${
      state === 'pending' &&
      html`<form data-form="totp-confirm" data-user="${user}" aria-label="Confirm the enrolment">
        <div class="field">
          <label for="totp-code">Code the app shows now</label>
          <input
            id="totp-code"
            name="code"
            required
            inputmode="numeric"
            pattern="[0-9]{6}"
            maxlength="6"
            autocomplete="one-time-code"
            data-testid="totp-code"
          />
        </div>
        <button type="submit" data-testid="totp-confirm">Confirm</button>
      </form>`
    }
    ${
      state === 'none'
        ? html`<p class="muted">Not enrolled.</p>`
        : state === 'active'
          ? html`<p class="muted">Active. A lost phone: reset, then enrol again.</p>`
          : !enrolment &&
            html`<p class="muted">
              Enrolled, not confirmed yet. The recovery codes were shown once, at enrolment; enrol
              again for new ones.
            </p>`
    }
    <p class="actions">
      ${button('totp-enrol', state === 'none' ? 'Enrol in TOTP' : 'Enrol again (new secret)')}
      ${status.enrolled && button('totp-reset', 'Reset TOTP', 'danger')}
    </p>
  </section>`;
}
