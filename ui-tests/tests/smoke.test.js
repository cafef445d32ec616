// The page loads from the real server with its own files only, goes live, and
// uses the vendored fonts; the theme toggle is remembered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, serverFor, pageFor } from '../support/fixture.js';
import { openApp } from '../support/browser.js';
import { seedConsumed } from '../support/seed.js';
import { attrIs, textHas, textIs, until } from '../support/wait.js';

const browser = useBrowser();

test('the server serves the page, its stylesheets and the fonts with their types', async (t) => {
  const { server } = await serverFor(t);
  const page = await fetch(server.url + '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const html = await page.text();
  assert.match(html, /<html/i);

  const css = await fetch(server.url + '/css/fonts.css');
  assert.equal(css.status, 200);
  assert.match(css.headers.get('content-type'), /^text\/css/);
  const rules = await css.text();
  for (const family of ['Big Shoulders Display', 'Atkinson Hyperlegible', 'JetBrains Mono']) {
    assert.ok(rules.includes(`font-family: "${family}"`), `fonts.css declares ${family}`);
  }
  const urls = [...rules.matchAll(/url\("([^"]+)"\)/g)].map((m) => m[1]);
  assert.equal(urls.length, 7, `seven faces in fonts.css: ${urls}`);
  for (const url of urls) {
    assert.match(url, /^\/fonts\/[a-z0-9-]+\.woff2$/);
    const font = await fetch(server.url + url);
    assert.equal(font.status, 200, url);
    assert.equal(font.headers.get('content-type'), 'font/woff2', url);
    const bytes = new Uint8Array(await font.arrayBuffer());
    assert.equal(String.fromCharCode(...bytes.slice(0, 4)), 'wOF2', `${url} is woff2`);
  }
});

test('the page loads with no errors and no request off the server, and goes live', async (t) => {
  const { server, api } = await serverFor(t);
  await seedConsumed(server, api, [['claude-main', 'write the failing test first']]);
  await api.add('then make it pass');
  const page = await pageFor(t, browser(), server, { open: false });
  await openApp(page, server);
  await textIs(page.locator('#connection'), 'live');
  await textIs(page.locator('#pending-list li.ticket .ticket-text'), 'then make it pass');
  await textIs(page.locator('#history-list li.ticket.consumed .ticket-text'), 'write the failing test first');
  assert.equal(await page.title(), '(1) local-mcp');

  // The three vendored families are in use once the page has rendered its content.
  const fonts = await page.evaluate(async () => {
    await document.fonts.ready;
    const faces = [...document.fonts].map((f) => ({ family: f.family.replace(/"/g, ''), status: f.status }));
    return faces;
  });
  for (const family of ['Big Shoulders Display', 'Atkinson Hyperlegible', 'JetBrains Mono']) {
    assert.ok(fonts.some((f) => f.family === family && f.status === 'loaded'),
      `a face of ${family} is loaded: ${JSON.stringify(fonts)}`);
  }
  assert.deepEqual(page.offsite, [], 'no request leaves the server');
  assert.deepEqual(page.pageErrors, [], 'no script error or console error');
});

test('the theme follows the system until toggled, and the choice is remembered', async (t) => {
  const { server } = await serverFor(t);
  const page = await pageFor(t, browser(), server, { colorScheme: 'dark' });
  const html = page.locator('html');
  const toggle = page.locator('#theme-toggle');
  await attrIs(html, 'data-theme', 'dark');
  await attrIs(toggle, 'aria-pressed', 'true');
  assert.equal(await page.evaluate(() => localStorage.getItem('local-mcp:theme')), null);

  await page.emulateMedia({ colorScheme: 'light' });
  await attrIs(html, 'data-theme', 'light', { what: 'theme follows prefers-color-scheme' });

  await toggle.click();
  await attrIs(html, 'data-theme', 'dark');
  await attrIs(toggle, 'aria-pressed', 'true');
  assert.equal(await page.evaluate(() => localStorage.getItem('local-mcp:theme')), 'dark');

  await page.reload();
  await page.locator('#connection[data-state="live"]').waitFor();
  await attrIs(html, 'data-theme', 'dark', { what: 'remembered after reload' });
  await toggle.click();
  await attrIs(html, 'data-theme', 'light');
  await attrIs(toggle, 'aria-pressed', 'false');
  assert.equal(await page.evaluate(() => localStorage.getItem('local-mcp:theme')), 'light');
  assert.deepEqual(page.pageErrors, []);
});

test('empty states say what to do next', async (t) => {
  const { server } = await serverFor(t);
  const page = await pageFor(t, browser(), server);
  await page.locator('#pending-empty').waitFor({ state: 'visible' });
  await page.locator('#history-empty').waitFor({ state: 'visible' });
  await textHas(page.locator('#agents-empty'), 'local-mcp mcp-config');
  await until(async () => assert.equal(await page.locator('#agent-state').getAttribute('data-state'), 'none'));
  await textIs(page.locator('#agent-name'), '');
  assert.equal(await page.title(), 'local-mcp');
});
