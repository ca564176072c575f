/**
 * Debian's chromium for tests and benches (launchChromium, the console's too), and a person at
 * it for the tests of SSO at connect: playwright-core opens the URL a VPN client got
 * (`WEB_AUTH::<url>`), signs in at the lab's test identity provider (idp-server.ts's form) and
 * returns the text of the page it ends on.
 */
import { existsSync } from 'node:fs';
// Types only at load: playwright-core is a dev dependency, and the installed CLI loads this
// module through the lab (sso-lab.ts) without it; launchChromium imports it when called.
import type { Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser cannot run here (for itNeeds), or undefined. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} missing (apt-get install chromium)`;
}

/**
 * Starts headless chromium; `executablePath` may be a wrapper that execs it in a namespace, and
 * `extraArgs` add to the flags below (the lab's trust in its own CA: sso-lab.ts labBrowser).
 */
export async function launchChromium(
  executablePath = CHROMIUM,
  extraArgs: string[] = [],
): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath,
    // Debian's chromium as root needs --no-sandbox; the rest keep it off any real network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      ...extraArgs,
    ],
  });
}

export interface BrowserSignIn {
  /** The text of the last page: the controller's answer, or the provider's form and its error. */
  text: string;
  /** Where the browser ended. */
  url: string;
  /** The HTTP status of the last page the browser loaded. */
  status?: number;
}

/**
 * Opens `url` in a fresh context (no cookies: a new person) and, when the provider's login form
 * shows, fills it with `user` and `password`. By default `ignoreHTTPSErrors`: the test
 * provider's certificate is trusted by the relying party (caFile), not by this browser;
 * `opts.checkCertificates` keeps chromium's checks (a browser that trusts the lab's CA).
 */
export async function signInWithBrowser(
  browser: Browser,
  url: string,
  user: string,
  password: string,
  /** Runs while the provider's form shows, before it is posted (a test moving its clock). */
  beforeSubmit?: () => unknown,
  opts: { checkCertificates?: boolean } = {},
): Promise<BrowserSignIn> {
  const context = await browser.newContext({ ignoreHTTPSErrors: !opts.checkCertificates });
  try {
    const page = await context.newPage();
    let status: number | undefined;
    page.on('response', (r) => {
      if (r.request().isNavigationRequest() && r.request().frame() === page.mainFrame())
        status = r.status();
    });
    await page.goto(url);
    // Our confirmation page first (whose connection, from where), then the provider's form.
    const go = page.getByTestId('sso-continue');
    if (await go.count()) {
      const confirmPage = page.url();
      await Promise.all([page.waitForURL((u) => u.href !== confirmPage), go.click()]);
    }
    const login = page.getByTestId('idp-login');
    if (await login.count()) {
      await login.fill(user);
      await page.getByTestId('idp-password').fill(password);
      await beforeSubmit?.();
      // Posting the form leaves the form's URL: back to the form with an error (its /login), or
      // through the provider's redirects to the controller's callback page.
      const form = page.url();
      await Promise.all([
        page.waitForURL((u) => u.href !== form),
        page.getByTestId('idp-submit').click(),
      ]);
    }
    return { text: (await page.locator('body').innerText()).trim(), url: page.url(), status };
  } finally {
    await context.close();
  }
}
