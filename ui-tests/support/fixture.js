// Per-test fixtures: every test gets its own server on a fresh database, and its
// own browser context; all are closed when the test ends (pass or fail). One
// browser per test file (`useBrowser`).

import { before, after } from 'node:test';
import { launchBrowser, newPage, openApp } from './browser.js';
import { startServer } from './server.js';
import { apiClient } from './api.js';

/** Launches Chromium before the file's tests and closes it after; returns a getter. */
export function useBrowser() {
  let browser = null;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    if (browser) await browser.close();
  });
  return () => browser;
}

/** A fresh server for test `t` (stopped when `t` ends) and an API client for it. */
export async function serverFor(t, options = {}) {
  const server = await startServer(options);
  t.after(() => server.stop());
  return { server, api: apiClient(server, options.env?.API_TOKEN ?? null) };
}

/** A page on `server` for test `t` (its context closed when `t` ends), the app opened and live. */
export async function pageFor(t, browser, server, options = {}) {
  const page = await newPage(browser, server, options);
  t.after(() => page.context().close());
  if (options.open !== false) await openApp(page, server);
  return page;
}

/** Server + API + opened page in one go. */
export async function appFor(t, browser, options = {}) {
  const { server, api } = await serverFor(t, options.server);
  const page = await pageFor(t, browser, server, options.page);
  return { server, api, page };
}
