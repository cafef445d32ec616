// Delete goes to the server at once; Undo puts the same text back at the same
// place (a new id).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor } from '../support/fixture.js';
import { textHas, textsAre, until, visible } from '../support/wait.js';

const browser = useBrowser();
const texts = (page) => page.locator('#pending-list > li.ticket .ticket-text');

test('Delete removes the ticket on the server at once; Undo restores it at the same index', async (t) => {
  const { page, api } = await appFor(t, browser());
  const a = await api.add('ticket A');
  const b = await api.add('ticket B');
  const c = await api.add('ticket C');
  await textsAre(texts(page), ['ticket A', 'ticket B', 'ticket C']);
  await until(async () => assert.equal(await page.title(), '(3) local-mcp'));

  await page.locator(`#pending-list > li.ticket[data-id="${b.id}"] button.ticket-delete`).click();
  await textsAre(texts(page), ['ticket A', 'ticket C']);
  // Deleted on the server, not only hidden: the agent cannot take it.
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['ticket A', 'ticket C']));
  const gone = await api.call('GET', `/api/instructions/${b.id}`);
  assert.equal(gone.status, 404);
  await until(async () => assert.equal(await page.title(), '(2) local-mcp'));

  const toast = page.locator('#toast');
  await visible(toast);
  await textHas(toast, 'Instruction deleted');
  await page.locator('#toast-undo').click();

  await textsAre(texts(page), ['ticket A', 'ticket B', 'ticket C']);
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['ticket A', 'ticket B', 'ticket C']));
  const pending = await api.pending();
  assert.equal(pending[0].id, a.id);
  assert.equal(pending[2].id, c.id);
  assert.notEqual(pending[1].id, b.id, 'the restored instruction is a new one');
  const ids = await page.locator('#pending-list > li.ticket').evaluateAll((els) => els.map((el) => el.dataset.id));
  assert.deepEqual(ids, pending.map((i) => i.id), 'the page shows the new id');
  await until(async () => assert.equal(await page.title(), '(3) local-mcp'));
  // After the undo, Undo cannot be used again (hidden or disabled): no second restore.
  const undo = page.locator('#toast-undo');
  await until(async () => assert.ok(!(await undo.isVisible()) || (await undo.isDisabled()), 'Undo still usable'));
});

test('Undo of the first and of the last ticket restores them at the ends', async (t) => {
  const { page, api } = await appFor(t, browser());
  const a = await api.add('ticket A');
  await api.add('ticket B');
  const c = await api.add('ticket C');
  await textsAre(texts(page), ['ticket A', 'ticket B', 'ticket C']);

  await page.locator(`#pending-list > li.ticket[data-id="${a.id}"] button.ticket-delete`).click();
  await textsAre(texts(page), ['ticket B', 'ticket C']);
  await page.locator('#toast-undo').click();
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['ticket A', 'ticket B', 'ticket C']));

  await page.locator(`#pending-list > li.ticket[data-id="${c.id}"] button.ticket-delete`).click();
  await textsAre(texts(page), ['ticket A', 'ticket B']);
  await page.locator('#toast-undo').click();
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['ticket A', 'ticket B', 'ticket C']));
  await textsAre(texts(page), ['ticket A', 'ticket B', 'ticket C']);
});

test('deleting the only ticket shows the empty rail', async (t) => {
  const { page, api } = await appFor(t, browser());
  const a = await api.add('the only one');
  await textsAre(texts(page), ['the only one']);
  await page.locator(`#pending-list > li.ticket[data-id="${a.id}"] button.ticket-delete`).click();
  await visible(page.locator('#pending-empty'));
  assert.deepEqual(await api.pendingTexts(), []);
  await until(async () => assert.equal(await page.title(), 'local-mcp'));
});
