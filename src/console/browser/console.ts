/**
 * The console's one browser script. The pages work as plain HTML; this adds what HTML alone
 * cannot do: sign in and out through the JSON API, send the actions (end a session, drain,
 * user changes) with the CSRF header, and keep the page's live region current from the
 * controller's event stream. No framework and no state of its own: after any change it asks
 * the server for the live region again.
 */

const CSRF_KEY = 'ovpn-fleet.csrf';

interface Answer {
  ok: boolean;
  status: number;
  data: unknown;
}

function csrfToken(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')?.content;
  return meta || sessionStorage.getItem(CSRF_KEY) || '';
}

function errorOf(answer: Answer): string {
  const data = answer.data as { error?: unknown } | null;
  if (data && typeof data.error === 'string') return data.error;
  return `the controller answered ${answer.status}`;
}

function toLogin(): void {
  const next = location.pathname + location.search;
  location.assign(`/console/login?next=${encodeURIComponent(next)}`);
}

/** A call to the JSON API as the signed-in person (the session cookie goes along). */
async function api(
  method: string,
  url: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<Answer> {
  const headers: Record<string, string> = {
    'x-csrf-token': csrfToken(),
    accept: 'application/json',
  };
  let payload: string | undefined;
  if (body !== undefined) {
    headers['content-type'] = contentType;
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(url, { method, headers, body: payload, credentials: 'same-origin' });
  let data: unknown = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  return { ok: res.ok, status: res.status, data };
}

function flash(text: string, kind: 'ok' | 'error' = 'ok'): void {
  const el = document.getElementById('flash');
  if (!el) return;
  el.textContent = text;
  el.className = `flash flash-${kind}`;
}

/** Runs an API call and reports it; a lapsed session goes to the login page. */
async function act(label: string, call: () => Promise<Answer>): Promise<boolean> {
  try {
    const answer = await call();
    if (answer.status === 401) {
      toLogin();
      return false;
    }
    if (!answer.ok) {
      flash(`${label}: ${errorOf(answer)}`, 'error');
      return false;
    }
    flash(`${label}: done.`);
    await refreshLive();
    return true;
  } catch (err) {
    flash(`${label}: ${err instanceof Error ? err.message : String(err)}`, 'error');
    return false;
  }
}

// --- sign in and out -------------------------------------------------------------------------

/** A console path only: never another origin, never `//host`. */
/** A text field of a form ('' for a missing field or a file). */
function text(data: FormData, key: string): string {
  const v = data.get(key);
  return typeof v === 'string' ? v : '';
}

function safeNext(next: string | undefined): string {
  return next && /^\/console(?:[/?][^\\\s]*)?$/.test(next) && !next.startsWith('//')
    ? next
    : '/console';
}

async function login(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  const error = document.getElementById('login-error');
  if (error) error.textContent = '';
  const answer = await api('POST', '/v1/session', {
    name: text(data, 'name'),
    password: text(data, 'password'),
  });
  if (!answer.ok) {
    if (error) error.textContent = errorOf(answer);
    return;
  }
  const session = answer.data as { csrfToken?: unknown; mustChangePassword?: unknown };
  if (typeof session.csrfToken === 'string') sessionStorage.setItem(CSRF_KEY, session.csrfToken);
  const change = document.querySelector<HTMLFormElement>('form[data-form="password"]');
  if (session.mustChangePassword === true && change) {
    // A one-time password: every other route refuses this session until it is replaced.
    form.hidden = true;
    change.hidden = false;
    const current = change.querySelector<HTMLInputElement>('input[name="current"]');
    if (current) current.value = text(data, 'password');
    change.querySelector<HTMLInputElement>('input[name="next"]')?.focus();
    return;
  }
  location.assign(safeNext(form.dataset.next));
}

async function changePassword(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  const error = document.getElementById('password-error');
  const say = (line: string) => {
    if (error) error.textContent = line;
  };
  say('');
  const next = text(data, 'next');
  if (next !== text(data, 'again')) return say('The two new passwords differ.');
  // The token of the session just opened (the login page has none in its meta tag).
  const answer = await api('POST', '/v1/session/password', {
    current: text(data, 'current'),
    next,
  });
  if (!answer.ok) return say(errorOf(answer));
  const session = answer.data as { csrfToken?: unknown };
  if (typeof session.csrfToken === 'string') sessionStorage.setItem(CSRF_KEY, session.csrfToken);
  location.assign(safeNext(form.dataset.next));
}

async function logout(): Promise<void> {
  await api('DELETE', '/v1/session').catch(() => undefined);
  sessionStorage.removeItem(CSRF_KEY);
  location.assign('/console/login');
}

// --- actions ---------------------------------------------------------------------------------

const USER_OPS: Record<
  string,
  { method: string; path: (name: string) => string; confirm?: string }
> = {
  enable: { method: 'POST', path: (n) => `/v1/users/${encodeURIComponent(n)}/enable` },
  disable: { method: 'POST', path: (n) => `/v1/users/${encodeURIComponent(n)}/disable` },
  revoke: {
    method: 'POST',
    path: (n) => `/v1/users/${encodeURIComponent(n)}/revoke`,
    confirm: 'Revoke the certificate of %s for good? Their sessions end.',
  },
  delete: {
    method: 'DELETE',
    path: (n) => `/v1/users/${encodeURIComponent(n)}`,
    confirm: 'Delete %s? The certificate is revoked and the addresses are quarantined.',
  },
};

async function onAction(button: HTMLElement): Promise<void> {
  const d = button.dataset;
  switch (d.action) {
    case 'logout':
      return logout();
    case 'kill': {
      const { user = '', server = '' } = d;
      if (!confirm(`End the session of ${user} on ${server}?`)) return;
      await act(`End ${user} on ${server}`, () =>
        api('POST', '/v1/sessions/kill', { server, user }),
      );
      return;
    }
    case 'drain':
    case 'undrain': {
      const server = d.server ?? '';
      if (d.action === 'drain' && !confirm(`Drain ${server}? Its users move to other servers.`))
        return;
      await act(`${d.action} ${server}`, () =>
        api('POST', `/v1/servers/${encodeURIComponent(server)}/${d.action}`),
      );
      return;
    }
    case 'totp-enrol':
      return enrolTotp(d.user ?? '', d.enrolled === 'yes');
    case 'totp-reset': {
      const user = d.user ?? '';
      if (
        !confirm(
          `Reset the TOTP of ${user}? The secret and the recovery codes stop working; if ${user} must answer a code, connects are refused until a new enrolment.`,
        )
      )
        return;
      if (
        await act(`Reset the TOTP of ${user}`, () =>
          api('DELETE', `/v1/users/${encodeURIComponent(user)}/totp`),
        )
      )
        await reloadTotpCard(user);
      return;
    }
    case 'user': {
      const op = USER_OPS[d.op ?? ''];
      const user = d.user ?? '';
      if (!op) return;
      if (op.confirm && !confirm(op.confirm.replace('%s', user))) return;
      await act(`${d.op} ${user}`, () => api(op.method, op.path(user)));
      return;
    }
  }
}

// --- TOTP (the user page's card, outside the live region: see pages/totp.ts) ---------------

const totpUrl = (user: string) => `/console/users/${encodeURIComponent(user)}/totp`;

/** Puts the card the controller answered in place of the page's TOTP card. */
function swapTotpCard(markup: string): void {
  const card = document.getElementById('totp-card');
  if (card) card.outerHTML = markup;
  document.querySelector<HTMLInputElement>('#totp-card input[name="code"]')?.focus();
}

/** The card as the controller sees it now (after a confirm or a reset: no codes in it). */
async function reloadTotpCard(user: string): Promise<void> {
  const res = await fetch(totpUrl(user), {
    credentials: 'same-origin',
    headers: { accept: 'text/html' },
  });
  if (res.ok) swapTotpCard(await res.text());
}

/**
 * A new enrolment: the answer is the card with the QR code, the URI and the recovery codes,
 * shown this once (the controller keeps no way to show them again; the answer is no-store).
 */
async function enrolTotp(user: string, enrolled: boolean): Promise<void> {
  const label = `Enrol ${user} in TOTP`;
  if (
    enrolled &&
    !confirm(
      `Enrol ${user} again? The current secret and recovery codes stop working at once: ${user}'s app needs the new QR code.`,
    )
  )
    return;
  try {
    const res = await fetch(totpUrl(user), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'x-csrf-token': csrfToken(), accept: 'text/html' },
    });
    if (res.status === 401) return toLogin();
    const text = await res.text();
    if (!res.ok) {
      let error = `the controller answered ${res.status}`;
      try {
        const data = JSON.parse(text) as { error?: unknown };
        if (typeof data.error === 'string') error = data.error;
      } catch {
        // not JSON: the status says enough
      }
      return flash(`${label}: ${error}`, 'error');
    }
    swapTotpCard(text);
    flash(`${label}: done. Copy the recovery codes now: they are not shown again.`);
    await refreshLive();
  } catch (err) {
    flash(`${label}: ${err instanceof Error ? err.message : String(err)}`, 'error');
  }
}

function selectedUsers(): string[] {
  return [...document.querySelectorAll<HTMLInputElement>('input[name="sel"]:checked')].map(
    (box) => box.value,
  );
}

async function onForm(form: HTMLFormElement): Promise<void> {
  const data = new FormData(form);
  switch (form.dataset.form) {
    case 'login':
      return login(form);
    case 'password':
      return changePassword(form);
    case 'add-user': {
      const name = text(data, 'name').trim();
      const groups = data.getAll('groups').map(String);
      if (await act(`Add ${name}`, () => api('POST', '/v1/users', { name, groups }))) form.reset();
      return;
    }
    case 'import': {
      const file = data.get('file');
      if (!(file instanceof File) || !file.size)
        return flash('Import: choose a CSV file first.', 'error');
      const text = await file.text();
      if (await act(`Import ${file.name}`, () => api('POST', '/v1/users/import', text, 'text/csv')))
        form.reset();
      return;
    }
    case 'totp-confirm': {
      const user = form.dataset.user ?? '';
      const code = text(data, 'code').trim();
      const path = `/v1/users/${encodeURIComponent(user)}/totp/confirm`;
      // A wrong code leaves the card as it is: the codes stay on screen for another try.
      if (await act(`Confirm the TOTP of ${user}`, () => api('POST', path, { code })))
        await reloadTotpCard(user);
      return;
    }
    case 'bulk': {
      const action = text(data, 'action');
      const names = selectedUsers();
      if (!names.length) return flash('Select at least one user first.', 'error');
      if (
        (action === 'revoke' || action === 'delete') &&
        !confirm(`${action} ${names.length} users?`)
      )
        return;
      await act(`${action} ${names.length} users`, () =>
        api('POST', '/v1/users/bulk', { action, names }),
      );
      return;
    }
  }
}

// --- the live region -------------------------------------------------------------------------

let refreshing: Promise<void> | undefined;
let again = false;

/** Fetches the live region again and swaps it in, keeping selection, focus and scroll. */
function refreshLive(): Promise<void> {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      do {
        again = false;
        await swapLive();
      } while (again);
    } finally {
      refreshing = undefined;
    }
  })();
  return refreshing;
}

async function swapLive(): Promise<void> {
  const live = document.getElementById('live');
  if (!live) return;
  const url = new URL(location.href);
  url.searchParams.set('fragment', '1');
  const res = await fetch(url, { credentials: 'same-origin', headers: { accept: 'text/html' } });
  if (res.redirected && new URL(res.url).pathname === '/console/login') return toLogin();
  if (!res.ok && res.status !== 404) return;
  const text = await res.text();
  if (text === live.dataset.last) return;
  const checked = new Set(selectedUsers());
  const focused = document.activeElement;
  const focusedKey = keyOf(focused);
  const scroll = window.scrollY;
  // What the person is working in stays as they left it (the TOTP card: codes shown once, a
  // code being typed): the old element takes the place of its new copy.
  const kept = new Map(
    [...live.querySelectorAll<HTMLElement>('[data-keep]')].map((el) => [el.dataset.keep, el]),
  );
  live.innerHTML = text;
  live.dataset.last = text;
  for (const fresh of live.querySelectorAll<HTMLElement>('[data-keep]')) {
    const old = kept.get(fresh.dataset.keep);
    if (old) fresh.replaceWith(old);
  }
  // Taken out of the page for a moment, a kept element lost the focus: give it back.
  if (focused instanceof HTMLElement && focused.isConnected && document.activeElement !== focused)
    focused.focus({ preventScroll: true });
  for (const box of live.querySelectorAll<HTMLInputElement>('input[name="sel"]'))
    box.checked = checked.has(box.value);
  if (focusedKey) live.querySelector<HTMLElement>(focusedKey)?.focus({ preventScroll: true });
  window.scrollTo({ top: scroll });
}

/** A selector finding "the same" control after a swap: same action on the same user/server. */
function keyOf(el: Element | null): string | undefined {
  if (!(el instanceof HTMLElement) || !document.getElementById('live')?.contains(el)) return;
  const parts = ['action', 'op', 'user', 'server']
    .filter((k) => el.dataset[k] !== undefined)
    .map((k) => `[data-${k}="${CSS.escape(el.dataset[k] ?? '')}"]`);
  if (el instanceof HTMLInputElement && el.name === 'sel')
    parts.push(`[name="sel"][value="${CSS.escape(el.value)}"]`);
  return parts.length ? `${el.tagName.toLowerCase()}${parts.join('')}` : undefined;
}

function listen(): void {
  const live = document.getElementById('live');
  const kinds = (live?.dataset.liveOn ?? '').split(' ').filter(Boolean);
  if (!live || !kinds.length || typeof EventSource === 'undefined') return;
  live.dataset.last = live.innerHTML;
  // The browser reconnects by itself after a drop (the stream asks for 2 s).
  const events = new EventSource('/console/events');
  events.addEventListener('change', (e) => {
    let what: string[] = [];
    try {
      what = (JSON.parse((e as MessageEvent<string>).data) as { what: string[] }).what;
    } catch {
      return;
    }
    if (what.some((k) => kinds.includes(k))) void refreshLive();
  });
}

// --- wiring ----------------------------------------------------------------------------------

document.addEventListener('click', (e) => {
  const target = e.target instanceof Element ? e.target : null;
  const button = target?.closest<HTMLElement>('button[data-action]');
  if (button) {
    e.preventDefault();
    void onAction(button);
  }
});

document.addEventListener('change', (e) => {
  const all = e.target;
  if (!(all instanceof HTMLInputElement) || !all.dataset.selectAll) return;
  for (const box of document.querySelectorAll<HTMLInputElement>(
    `input[name="${all.dataset.selectAll}"]`,
  ))
    box.checked = all.checked;
});

document.addEventListener('submit', (e) => {
  const form = e.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.form) return;
  e.preventDefault();
  void onForm(form);
});

listen();
