// Inline edit of a pending ticket: Enter saves, Shift+Enter is a newline,
// Escape cancels; the server has what the page shows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor } from '../support/fixture.js';
import { countIs, focused, textsAre, until } from '../support/wait.js';

const browser = useBrowser();
const texts = (page) => page.locator('#pending-list > li.ticket .ticket-text');

async function seeded(t) {
  const app = await appFor(t, browser());
  const a = await app.api.add('first: read the code');
  const b = await app.api.add('second: write the test');
  await textsAre(texts(app.page), ['first: read the code', 'second: write the test']);
  return { ...app, a, b };
}

test('Edit, type, Enter: saved on the server under the same id, focus back on the ticket', async (t) => {
  const { page, api, a, b } = await seeded(t);
  const ticket = page.locator(`#pending-list > li.ticket[data-id="${a.id}"]`);
  await ticket.locator('button.ticket-edit').click();
  const editor = ticket.locator('textarea.ticket-editor');
  await focused(editor);
  assert.equal(await editor.inputValue(), 'first: read the code');
  await editor.fill('first: read ARCHITECTURE.md');
  await editor.press('Enter');
  await countIs(page.locator('textarea.ticket-editor'), 0);
  await textsAre(texts(page), ['first: read ARCHITECTURE.md', 'second: write the test']);
  await until(async () => {
    const pending = await api.pending();
    assert.deepEqual(pending.map((i) => [i.id, i.content]),
      [[a.id, 'first: read ARCHITECTURE.md'], [b.id, 'second: write the test']]);
  });
  await focused(page.locator(`#pending-list > li.ticket[data-id="${a.id}"]`));
});

test('Shift+Enter is a newline in the editor; Enter saves both lines', async (t) => {
  const { page, api, b } = await seeded(t);
  const ticket = page.locator(`#pending-list > li.ticket[data-id="${b.id}"]`);
  await ticket.locator('button.ticket-edit').click();
  const editor = ticket.locator('textarea.ticket-editor');
  await focused(editor);
  await editor.fill('second: write the test');
  await editor.press('End');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('and run it');
  assert.equal(await editor.inputValue(), 'second: write the test\nand run it');
  await page.keyboard.press('Enter');
  await until(async () => assert.deepEqual(await api.pendingTexts(),
    ['first: read the code', 'second: write the test\nand run it']));
  await countIs(page.locator('textarea.ticket-editor'), 0);
});

test('Escape cancels: the text and the server are unchanged, focus back on the ticket', async (t) => {
  const { page, api, a } = await seeded(t);
  const ticket = page.locator(`#pending-list > li.ticket[data-id="${a.id}"]`);
  await ticket.locator('button.ticket-edit').click();
  const editor = ticket.locator('textarea.ticket-editor');
  await focused(editor);
  await editor.fill('this must not be saved');
  await editor.press('Escape');
  await countIs(page.locator('textarea.ticket-editor'), 0);
  await textsAre(texts(page), ['first: read the code', 'second: write the test']);
  await focused(ticket);
  // Nothing was sent: the server still has the original, never updated.
  const pending = await api.pending();
  assert.deepEqual(pending.map((i) => i.content), ['first: read the code', 'second: write the test']);
  assert.equal(pending[0].updated_at, a.updated_at);
});

test('Enter on a focused ticket starts editing it too', async (t) => {
  const { page, api, b } = await seeded(t);
  const ticket = page.locator(`#pending-list > li.ticket[data-id="${b.id}"]`);
  await ticket.focus();
  await page.keyboard.press('Enter');
  const editor = ticket.locator('textarea.ticket-editor');
  await focused(editor);
  await editor.fill('second: edited from the keyboard');
  await editor.press('Enter');
  await until(async () => assert.deepEqual(await api.pendingTexts(),
    ['first: read the code', 'second: edited from the keyboard']));
});
