// A keyboard-only run: no clicks and no programmatic focus, only keys — n, type,
// Ctrl+Enter, Tab to a ticket, Alt+ArrowUp, Enter to edit, Enter to save,
// Delete, ? for the shortcuts, Escape — with a visible focus ring.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor } from '../support/fixture.js';
import { getUserRequest } from '../support/api.js';
import { describeActive, focused, textsAre, until, visible, hidden } from '../support/wait.js';

const browser = useBrowser();
const texts = (page) => page.locator('#pending-list > li.ticket .ticket-text');

/** Presses Tab until `matches(activeElement)` holds (at most `limit` presses); returns the focus path. */
async function tabUntil(page, matches, arg, limit = 80) {
  const path = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    path.push(await page.evaluate(describeActive));
    if (await page.evaluate(matches, arg)) return path;
  }
  throw new Error(`Tab never reached the element; focus went: ${path.join(' -> ')}`);
}

test('keyboard only: add, move, edit, delete, shortcuts, with a visible focus ring', async (t) => {
  const { page, api } = await appFor(t, browser());
  await api.add('first seeded');
  await textsAre(texts(page), ['first seeded']);

  // n focuses the composer.
  await page.keyboard.press('n');
  await focused(page.locator('#composer-input'));
  assert.equal(await page.locator('#composer-input').inputValue(), '', 'the n itself is not typed');
  await page.keyboard.type('typed by keyboard');
  await page.keyboard.press('Control+Enter');
  await textsAre(texts(page), ['first seeded', 'typed by keyboard']);
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['first seeded', 'typed by keyboard']));

  // Tab to the new ticket.
  const [, typed] = await api.pending();
  await tabUntil(page, (id) => {
    const el = document.activeElement;
    return el?.matches('li.ticket') && el.dataset.id === id;
  }, typed.id);
  const ticket = page.locator(`#pending-list > li.ticket[data-id="${typed.id}"]`);

  // Alt+ArrowUp moves it first; it keeps the focus.
  await page.keyboard.press('Alt+ArrowUp');
  await textsAre(texts(page), ['typed by keyboard', 'first seeded']);
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['typed by keyboard', 'first seeded']));
  await focused(ticket);

  // Enter edits, Enter saves, the focus comes back to the ticket.
  await page.keyboard.press('Enter');
  const editor = ticket.locator('textarea.ticket-editor');
  await focused(editor);
  await page.keyboard.press('Control+A');
  await page.keyboard.type('edited by keyboard');
  await page.keyboard.press('Enter');
  await textsAre(texts(page), ['edited by keyboard', 'first seeded']);
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['edited by keyboard', 'first seeded']));
  await focused(ticket);

  // Delete deletes it.
  await page.keyboard.press('Delete');
  await textsAre(texts(page), ['first seeded']);
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['first seeded']));
  const afterDelete = await page.evaluate(describeActive);
  assert.ok(!/^(textarea|input)/.test(afterDelete), `focus after delete is not in a text field: ${afterDelete}`);

  // ? opens the shortcuts, Escape closes them.
  await page.keyboard.press('?');
  const shortcuts = page.locator('dialog#shortcuts-dialog');
  await visible(shortcuts);
  assert.equal(await shortcuts.evaluate((d) => d.open), true);
  const listed = (await shortcuts.textContent()).replace(/\s+/g, ' ');
  assert.match(listed, /Alt/, `the shortcuts mention Alt+arrows: ${listed}`);
  await page.keyboard.press('Escape');
  await hidden(shortcuts);
  assert.equal(await shortcuts.evaluate((d) => d.open), false);

  // The focus ring: Tab to a button; it matches :focus-visible with an outline.
  await tabUntil(page, () => document.activeElement?.tagName === 'BUTTON');
  const ring = await page.evaluate(() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return {
      what: `${el.tagName.toLowerCase()}#${el.id}.${el.className}`,
      focusVisible: el.matches(':focus-visible'),
      outlineStyle: style.outlineStyle,
      outlineWidth: style.outlineWidth,
    };
  });
  assert.equal(ring.focusVisible, true, `${ring.what} matches :focus-visible`);
  assert.notEqual(ring.outlineStyle, 'none', `${ring.what} has an outline: ${JSON.stringify(ring)}`);
  assert.notEqual(ring.outlineWidth, '0px', `${ring.what} outline has a width: ${JSON.stringify(ring)}`);

  // And a focused ticket shows a ring too.
  await tabUntil(page, () => document.activeElement?.matches('li.ticket'));
  const ticketRing = await page.evaluate(() => {
    const style = getComputedStyle(document.activeElement);
    return { outlineStyle: style.outlineStyle, outlineWidth: style.outlineWidth };
  });
  assert.notEqual(ticketRing.outlineStyle, 'none', `a focused ticket has an outline: ${JSON.stringify(ticketRing)}`);
  assert.deepEqual(page.pageErrors, []);
});

test('every control is reachable by Tab (new queue, composer, ticket buttons, history, settings, theme)', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  await api.add('to be taken');
  await api.add('stays pending');
  await api.setConfig({ default_wait_seconds: 0 });
  await getUserRequest(server, 'claude-main');
  await visible(page.locator('#history-list > li.ticket.consumed'));
  await textsAre(texts(page), ['stays pending']);

  const wanted = ['#queue-new', '#theme-toggle', '#shortcuts-button', '#composer-input', '#composer-send',
    '#pending-list button.ticket-edit', '#pending-list button.ticket-delete',
    '#history-list button.ticket-requeue',
    '#default_wait_seconds', '#default_empty_response', '#agent_stale_after_seconds', '#settings-save'];
  const reached = new Set();
  for (let i = 0; i < 120 && reached.size < wanted.length; i++) {
    await page.keyboard.press('Tab');
    const hits = await page.evaluate((selectors) => selectors.filter((s) => document.activeElement?.matches(s)), wanted);
    for (const hit of hits) reached.add(hit);
  }
  assert.deepEqual(wanted.filter((s) => !reached.has(s)), [], 'controls never reached by Tab');
});
