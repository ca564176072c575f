/**
 * The login page: a form the browser script sends to `POST /v1/session` as JSON; on success it
 * goes to `next` (a console path only) or the Overview, otherwise it shows the error line.
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
    </form>`,
  };
}
