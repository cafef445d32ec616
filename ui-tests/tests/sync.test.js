// Two pages open on the same server stay in sync without a reload, through the
// live event stream; the title carries the pending count.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, serverFor, pageFor } from '../support/fixture.js';
import { focused, textsAre, until, visible } from '../support/wait.js';

const browser = useBrowser();
const texts = (page) => page.locator('#pending-list > li.ticket .ticket-text');
const titleIs = (page, title) => until(async () => assert.equal(await page.title(), title), { what: `title of a page is ${title}` });

test('add, edit, reorder and delete in one page appear in the other without reload', async (t) => {
  const { server, api } = await serverFor(t);
  const one = await pageFor(t, browser(), server);
  const two = await pageFor(t, browser(), server);
  // A marker that a reload would wipe.
  await two.evaluate(() => { window.__notReloaded = true; });
  await one.evaluate(() => { window.__notReloaded = true; });
  await titleIs(one, 'local-mcp');
  await titleIs(two, 'local-mcp');

  // Add in page one.
  await one.locator('#composer-input').fill('from page one');
  await one.locator('#composer-send').click();
  await textsAre(texts(two), ['from page one']);
  await titleIs(two, '(1) local-mcp');
  await titleIs(one, '(1) local-mcp');

  // Add in page two.
  await two.locator('#composer-input').fill('from page two');
  await two.keyboard.press('Control+Enter');
  await textsAre(texts(one), ['from page one', 'from page two']);
  await titleIs(one, '(2) local-mcp');

  // Edit in page two.
  const [first] = await api.pending();
  const ticketIn = (page) => page.locator(`#pending-list > li.ticket[data-id="${first.id}"]`);
  await ticketIn(two).locator('button.ticket-edit').click();
  const editor = ticketIn(two).locator('textarea.ticket-editor');
  await focused(editor);
  await editor.fill('from page one, edited in page two');
  await editor.press('Enter');
  await textsAre(texts(one), ['from page one, edited in page two', 'from page two']);

  // Reorder in page one.
  await ticketIn(one).locator('button.ticket-down').click();
  await textsAre(texts(two), ['from page two', 'from page one, edited in page two']);

  // Delete in page one.
  await ticketIn(one).locator('button.ticket-delete').click();
  await textsAre(texts(two), ['from page two']);
  await titleIs(two, '(1) local-mcp');
  const [last] = await api.pending();
  await one.locator(`#pending-list > li.ticket[data-id="${last.id}"] button.ticket-delete`).click();
  await visible(two.locator('#pending-empty'));
  await titleIs(two, 'local-mcp');
  await titleIs(one, 'local-mcp');

  assert.equal(await two.evaluate(() => window.__notReloaded), true, 'page two was not reloaded');
  assert.equal(await one.evaluate(() => window.__notReloaded), true, 'page one was not reloaded');
  assert.deepEqual(one.pageErrors, []);
  assert.deepEqual(two.pageErrors, []);
});

test('a change made through the API (another client) reaches every open page', async (t) => {
  const { server, api } = await serverFor(t);
  const one = await pageFor(t, browser(), server);
  const two = await pageFor(t, browser(), server);
  const a = await api.add('added by the API');
  await textsAre(texts(one), ['added by the API']);
  await textsAre(texts(two), ['added by the API']);
  await api.edit(a.id, 'edited by the API');
  await textsAre(texts(one), ['edited by the API']);
  await textsAre(texts(two), ['edited by the API']);
  await api.remove(a.id);
  await visible(one.locator('#pending-empty'));
  await visible(two.locator('#pending-empty'));
});
