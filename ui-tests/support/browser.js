// Debian's Chromium, driven by playwright-core. No tool ever downloads a browser:
// the executable is /usr/bin/chromium, or $CHROMIUM.

import { chromium } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
}

export const DESKTOP = { width: 1280, height: 800 };
export const MOBILE = { width: 390, height: 844 };

/**
 * A new page in its own context (own localStorage and sessionStorage) with
 * `pageErrors` collecting uncaught exceptions and console errors, and every
 * request outside the server's origin aborted (the UI must need none; the test
 * fails on them through `offsite`).
 */
export async function newPage(browser, server, { viewport = DESKTOP, colorScheme = 'light', reducedMotion = 'reduce' } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, reducedMotion });
  const page = await context.newPage();
  page.pageErrors = [];
  page.offsite = [];
  page.on('pageerror', (e) => page.pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') page.pageErrors.push(`console.error: ${m.text()}`);
  });
  const origin = new URL(server.url).origin;
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + '/') || url === origin || url.startsWith('data:') || url.startsWith('blob:')) {
      return route.continue();
    }
    page.offsite.push(url);
    return route.abort();
  });
  return page;
}

/** Opens the UI and waits until its event stream is live. */
export async function openApp(page, server) {
  await page.goto(server.url + '/');
  await page.locator('#connection[data-state="live"]').waitFor({ timeout: 10_000 });
  return page;
}
