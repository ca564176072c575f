/**
 * The login page: a form the browser script sends to `POST /v1/session` as JSON; on success it
 * goes to `next` (a console path only) or the Overview, otherwise it shows the error line. When
 * the answer says `mustChangePassword` (a one-time password), the script shows the second form
 * instead and sends `POST /v1/session/password {current, next}` with the session's CSRF token
 * first: until then every other route refuses the session.
 */
import { html } from '../html.js';
import type { Page } from '../layout.js';

/** `next` only when it is a path inside the console: never another site, never `//host`. */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string') return '/console';
  return /^\/console(?:[/?][^\\\s]*)?$/.test(next) && !next.startsWith('//') ? next : '/console';
}

export function loginPage(next: unknown): Page {
  return {
    title: 'Sign in',
    live: html`<form
        class="card login"
        data-form="login"
        data-next="${safeNext(next)}"
        data-testid="login-form"
      >
        <div class="field">
          <label for="login-name">Name</label>
          <input
            id="login-name"
            name="name"
            autocomplete="username"
            required
            data-testid="login-name"
          />
        </div>
        <div class="field">
          <label for="login-password">Password</label>
          <input
            id="login-password"
            name="password"
            type="password"
            autocomplete="current-password"
            required
            data-testid="login-password"
          />
        </div>
        <button type="submit" data-testid="login-submit">Sign in</button>
        <p id="login-error" class="error" role="alert" data-testid="login-error"></p>
        <noscript><p class="error">The console needs JavaScript to sign in.</p></noscript>
      </form>
      <form
        class="card login"
        data-form="password"
        data-next="${safeNext(next)}"
        data-testid="password-form"
        aria-labelledby="password-title"
        hidden
      >
        <h2 id="password-title">Choose a new password</h2>
        <p>You signed in with a one-time password. Choose your own to go on.</p>
        <div class="field">
          <label for="password-current">One-time password</label>
          <input
            id="password-current"
            name="current"
            type="password"
            autocomplete="current-password"
            required
            data-testid="password-current"
          />
        </div>
        <div class="field">
          <label for="password-next">New password</label>
          <input
            id="password-next"
            name="next"
            type="password"
            autocomplete="new-password"
            required
            data-testid="password-next"
          />
        </div>
        <div class="field">
          <label for="password-again">New password again</label>
          <input
            id="password-again"
            name="again"
            type="password"
            autocomplete="new-password"
            required
            data-testid="password-again"
          />
        </div>
        <button type="submit" data-testid="password-submit">Set password</button>
        <p id="password-error" class="error" role="alert" data-testid="password-error"></p>
      </form>`,
  };
}
