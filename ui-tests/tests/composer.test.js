// The composer: Send and Ctrl/Cmd+Enter add to the end of the queue, the API's
// error for empty content is shown, and the character counter follows the text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor } from '../support/fixture.js';
import { focused, textsAre, until, visible } from '../support/wait.js';

const browser = useBrowser();
const tickets = (page) => page.locator('#pending-list > li.ticket .ticket-text');

test('Send adds the instruction; the composer is cleared and keeps focus', async (t) => {
  const { page, api } = await appFor(t, browser());
  const input = page.locator('#composer-input');
  await input.fill('write the failing test first');
  await page.locator('#composer-send').click();
  await textsAre(tickets(page), ['write the failing test first']);
  assert.deepEqual(await api.pendingTexts(), ['write the failing test first']);
  assert.equal(await input.inputValue(), '');
  // Clicking the button moved the focus to it; the contract says the textarea keeps it.
  await focused(input);
  await until(async () => assert.equal(await page.title(), '(1) local-mcp'));
});

test('Ctrl+Enter and Cmd+Enter send from the textarea, in order', async (t) => {
  const { page, api } = await appFor(t, browser());
  const input = page.locator('#composer-input');
  await input.focus();
  await page.keyboard.type('first by Ctrl+Enter');
  await page.keyboard.press('Control+Enter');
  await textsAre(tickets(page), ['first by Ctrl+Enter']);
  assert.equal(await input.inputValue(), '');
  await focused(input);

  await page.keyboard.type('second by Cmd+Enter');
  await page.keyboard.press('Meta+Enter');
  await textsAre(tickets(page), ['first by Ctrl+Enter', 'second by Cmd+Enter']);
  assert.deepEqual(await api.pendingTexts(), ['first by Ctrl+Enter', 'second by Cmd+Enter']);

  // A plain Enter is a newline, not a send.
  await page.keyboard.type('line one');
  await page.keyboard.press('Enter');
  await page.keyboard.type('line two');
  assert.equal(await input.inputValue(), 'line one\nline two');
  assert.equal((await api.pendingTexts()).length, 2);
  await page.keyboard.press('Control+Enter');
  await until(async () => assert.deepEqual(await api.pendingTexts(),
    ['first by Ctrl+Enter', 'second by Cmd+Enter', 'line one\nline two']));
  await until(async () => assert.equal(await tickets(page).count(), 3));
  assert.equal(await page.title(), '(3) local-mcp');
});

test('empty content: the error is shown and nothing is queued', async (t) => {
  const { page, api } = await appFor(t, browser());
  // What the API says about empty (after trimming) content.
  const refused = await api.call('POST', '/api/instructions', { content: '   ' });
  assert.equal(refused.status, 422);
  const apiMessage = refused.json.error.message;

  const error = page.locator('#composer-error');
  await page.locator('#composer-input').fill('   ');
  await page.locator('#composer-send').click();
  await visible(error);
  const shown = (await error.textContent()).trim();
  assert.ok(shown.length > 0, '#composer-error has text');
  assert.ok(shown === apiMessage || /empty/i.test(shown),
    `#composer-error says why: ${JSON.stringify(shown)} (API: ${JSON.stringify(apiMessage)})`);
  assert.deepEqual(await api.pendingTexts(), []);
  assert.equal(await tickets(page).count(), 0);

  // The error goes away once a valid instruction is sent.
  await page.locator('#composer-input').fill('now with content');
  await page.locator('#composer-send').click();
  await textsAre(tickets(page), ['now with content']);
  await until(async () => {
    const text = ((await error.textContent()) ?? '').trim();
    assert.ok(!(await error.isVisible()) || text === '', `error cleared, still: ${JSON.stringify(text)}`);
  });
});

test('the counter shows the length against the 32,768 limit', async (t) => {
  const { page } = await appFor(t, browser());
  const count = page.locator('#composer-count');
  const input = page.locator('#composer-input');
  await until(async () => assert.match((await count.textContent()).trim(), /^0\s*\/\s*32,768$/));
  await input.focus();
  await page.keyboard.type('hello');
  await until(async () => assert.match((await count.textContent()).trim(), /^5\s*\/\s*32,768$/));
  await input.fill('x'.repeat(1234));
  await until(async () => assert.match((await count.textContent()).trim(), /^1,234\s*\/\s*32,768$/));
  await input.fill('');
  await until(async () => assert.match((await count.textContent()).trim(), /^0\s*\/\s*32,768$/));
});
