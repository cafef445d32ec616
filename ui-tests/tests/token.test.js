// A server with API_TOKEN: the page asks for the token once, refuses a wrong
// one, then works — including the live event stream — and never puts the token
// in a URL.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, serverFor, pageFor } from '../support/fixture.js';
import { getUserRequest } from '../support/api.js';
import { attrIs, textsAre, until, visible, hidden } from '../support/wait.js';

const browser = useBrowser();
const TOKEN = 'ui-test-token-7f3c2a9e41';
const texts = (page) => page.locator('#pending-list > li.ticket .ticket-text');

test('the token dialog: wrong token refused, right token unlocks, events flow, token never in a URL', async (t) => {
  const { server, api } = await serverFor(t, { env: { API_TOKEN: TOKEN } });
  // Without the token the API refuses (the premise of the dialog).
  const refused = await fetch(server.url + '/api/status');
  assert.equal(refused.status, 401);
  await api.add('queued before the page opened');

  const page = await pageFor(t, browser(), server, { open: false });
  const requests = [];
  page.on('request', (request) => requests.push(request));
  await page.goto(server.url + '/');

  const dialog = page.locator('dialog#token-dialog');
  await visible(dialog);
  assert.equal(await dialog.evaluate((d) => d.open && d.matches(':modal')), true, 'the dialog is open and modal');
  const input = page.locator('#token-input');
  assert.equal(await input.getAttribute('type'), 'password');
  assert.equal(await input.evaluate((el) => el.labels?.[0]?.textContent.trim() ?? el.getAttribute('aria-label')), 'API token');

  // A wrong token: an error, the dialog stays.
  await input.fill('not-the-token');
  await page.locator('#token-submit').click();
  await visible(page.locator('#token-error'));
  assert.ok(((await page.locator('#token-error').textContent()) ?? '').trim().length > 0, '#token-error has text');
  assert.equal(await dialog.evaluate((d) => d.open), true, 'still open after a wrong token');

  // The right token: unlocked, the list loads, the stream is live.
  await input.fill(TOKEN);
  await page.locator('#token-submit').click();
  await hidden(dialog);
  await textsAre(texts(page), ['queued before the page opened']);
  await attrIs(page.locator('#connection'), 'data-state', 'live');

  // Live events with the token: a change through the API and a consumption by an agent.
  await api.add('added through the API after unlocking');
  await textsAre(texts(page), ['queued before the page opened', 'added through the API after unlocking']);
  await api.setConfig({ default_wait_seconds: 0 });
  const answer = await getUserRequest(server, 'claude-main', { token: TOKEN });
  assert.equal(answer.instruction.content, 'queued before the page opened');
  await textsAre(texts(page), ['added through the API after unlocking']);
  await visible(page.locator('#history-list > li.ticket.consumed'));

  // Kept for the session (sessionStorage), not for good (localStorage).
  const stored = await page.evaluate(() => ({
    session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
    local: Object.keys(localStorage).map((k) => localStorage.getItem(k)),
  }));
  assert.ok(stored.session.some((v) => v && v.includes(TOKEN)), 'the token is in sessionStorage');
  assert.ok(!stored.local.some((v) => v && v.includes(TOKEN)), 'the token is not in localStorage');

  // A reload in the same tab does not ask again.
  await page.reload();
  await attrIs(page.locator('#connection'), 'data-state', 'live');
  await textsAre(texts(page), ['added through the API after unlocking']);
  assert.equal(await dialog.evaluate((d) => d.open), false, 'no dialog after a reload');

  // Never in a URL; sent as a header on the API and on the event stream.
  const urls = requests.map((r) => r.url());
  assert.ok(urls.length > 0);
  const leaking = urls.filter((u) => u.includes(TOKEN) || decodeURIComponent(u).includes(TOKEN));
  assert.deepEqual(leaking, [], 'no request URL contains the token');
  const events = requests.filter((r) => new URL(r.url()).pathname === '/api/events');
  assert.ok(events.length > 0, 'the page opened the event stream');
  assert.ok(
    (await Promise.all(events.map((r) => r.allHeaders()))).some((h) => h.authorization === `Bearer ${TOKEN}`),
    'the event stream carries Authorization: Bearer <token>',
  );
  const apiCalls = requests.filter((r) => new URL(r.url()).pathname.startsWith('/api/instructions'));
  assert.ok(apiCalls.length > 0);
  const lastCall = apiCalls[apiCalls.length - 1];
  assert.equal((await lastCall.allHeaders()).authorization, `Bearer ${TOKEN}`);
  assert.deepEqual(page.offsite, []);
});

test('Enter in the token field submits it', async (t) => {
  const { server, api } = await serverFor(t, { env: { API_TOKEN: TOKEN } });
  await api.add('visible after unlocking');
  const page = await pageFor(t, browser(), server, { open: false });
  await page.goto(server.url + '/');
  await visible(page.locator('dialog#token-dialog'));
  await page.locator('#token-input').fill(TOKEN);
  await page.locator('#token-input').press('Enter');
  await hidden(page.locator('dialog#token-dialog'));
  await textsAre(texts(page), ['visible after unlocking']);
  await until(async () => assert.equal(await page.title(), '(1) local-mcp'));
});
