// Reordering the pending rail by drag, by Alt+ArrowUp/Down and by the move
// buttons; the server's queue order is what the page shows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor } from '../support/fixture.js';
import { focused, textsAre, until } from '../support/wait.js';

const browser = useBrowser();
const texts = (page) => page.locator('#pending-list > li.ticket .ticket-text');

async function seeded(t) {
  const app = await appFor(t, browser());
  const items = {};
  for (const name of ['A', 'B', 'C', 'D']) items[name] = await app.api.add(`ticket ${name}`);
  await textsAre(texts(app.page), ['ticket A', 'ticket B', 'ticket C', 'ticket D']);
  const ticket = (name) => app.page.locator(`#pending-list > li.ticket[data-id="${items[name].id}"]`);
  return { ...app, items, ticket };
}

async function serverOrder(api, expected) {
  await until(async () => assert.deepEqual(await api.pendingTexts(), expected), { what: 'server queue order' });
}

test('dragging a ticket by its handle onto another puts it in that place', async (t) => {
  const { page, api, ticket } = await seeded(t);
  // Up: C onto A -> C takes A's place.
  await ticket('C').locator('.ticket-handle').dragTo(ticket('A'));
  await textsAre(texts(page), ['ticket C', 'ticket A', 'ticket B', 'ticket D']);
  await serverOrder(api, ['ticket C', 'ticket A', 'ticket B', 'ticket D']);
  // Down: A onto D -> A takes D's place (the last).
  await ticket('A').locator('.ticket-handle').dragTo(ticket('D'));
  await textsAre(texts(page), ['ticket C', 'ticket B', 'ticket D', 'ticket A']);
  await serverOrder(api, ['ticket C', 'ticket B', 'ticket D', 'ticket A']);
});

test('Alt+ArrowUp / Alt+ArrowDown move the focused ticket, which keeps the focus', async (t) => {
  const { page, api, ticket } = await seeded(t);
  await ticket('C').focus();
  // One key at a time, each move seen on the page and on the server before the next.
  const steps = [
    ['Alt+ArrowUp', ['ticket A', 'ticket C', 'ticket B', 'ticket D']],
    ['Alt+ArrowUp', ['ticket C', 'ticket A', 'ticket B', 'ticket D']],
    ['Alt+ArrowUp', ['ticket C', 'ticket A', 'ticket B', 'ticket D']], // at the top: no change
    ['Alt+ArrowDown', ['ticket A', 'ticket C', 'ticket B', 'ticket D']],
    ['Alt+ArrowDown', ['ticket A', 'ticket B', 'ticket C', 'ticket D']],
    ['Alt+ArrowDown', ['ticket A', 'ticket B', 'ticket D', 'ticket C']],
  ];
  for (const [key, order] of steps) {
    await page.keyboard.press(key);
    await textsAre(texts(page), order);
    await serverOrder(api, order);
    await focused(ticket('C'));
  }
});

test('quick Alt+ArrowDown presses all count: page and server end in the order asked for', async (t) => {
  const { page, api, ticket } = await seeded(t);
  await ticket('A').focus();
  // Three presses in a row, as fast as a key repeat: no move may be lost, and
  // the page and the server must agree once the requests are done.
  await page.keyboard.press('Alt+ArrowDown');
  await page.keyboard.press('Alt+ArrowDown');
  await page.keyboard.press('Alt+ArrowDown');
  const wanted = ['ticket B', 'ticket C', 'ticket D', 'ticket A'];
  await until(async () => {
    const shown = (await texts(page).allTextContents()).map((x) => x.trim());
    const stored = await api.pendingTexts();
    assert.deepEqual({ shown, stored }, { shown: wanted, stored: wanted });
  }, { what: 'three quick moves on the page and on the server' });
  await focused(ticket('A'));
});

test('the Move up / Move down buttons move the ticket one place', async (t) => {
  const { page, api, ticket } = await seeded(t);
  await ticket('A').locator('button.ticket-down').click();
  await textsAre(texts(page), ['ticket B', 'ticket A', 'ticket C', 'ticket D']);
  await serverOrder(api, ['ticket B', 'ticket A', 'ticket C', 'ticket D']);
  await ticket('D').locator('button.ticket-up').click();
  await textsAre(texts(page), ['ticket B', 'ticket A', 'ticket D', 'ticket C']);
  await serverOrder(api, ['ticket B', 'ticket A', 'ticket D', 'ticket C']);
  // Their names say what they do (text or aria-label).
  const name = (button) => button.evaluate((el) => `${el.getAttribute('aria-label') ?? ''} ${el.textContent}`);
  assert.match(await name(ticket('A').locator('button.ticket-up')), /Move up/);
  assert.match(await name(ticket('A').locator('button.ticket-down')), /Move down/);
});

test('an order changed elsewhere (the API) is shown live', async (t) => {
  const { page, api, items } = await seeded(t);
  await api.reorder([items.D.id, items.C.id, items.B.id, items.A.id]);
  await textsAre(texts(page), ['ticket D', 'ticket C', 'ticket B', 'ticket A']);
});
