// Realistic content for the accessibility checks and the screenshots, in two
// states (a waiting call takes the first instruction added, so an agent waiting
// and instructions pending cannot be seen at the same time):
//   waiting: four consumed (two agents), the rail empty, claude-main waiting;
//   desk:    five consumed, three pending, claude-main working;
//   queues:  three queues (shop on show, with two agents and an addressed ticket).

import assert from 'node:assert/strict';
import { getUserRequest } from './api.js';
import { CONSUMED, PENDING, seedConsumed, startWaitingCall } from './seed.js';
import { addMany } from './seed.js';
import { attrIs, countIs, textsAre } from './wait.js';

/** Seeds the consumed history and leaves claude-main waiting. Returns `{ answer }` (a promise). */
export async function seedWaiting(server, api) {
  await seedConsumed(server, api, CONSUMED);
  return startWaitingCall(server, api, 'claude-main', 600);
}

/** From the waiting state: an instruction wakes the call, then PENDING are queued. */
export async function seedDeskAfterWaiting(api, call) {
  await api.add('Summarise what changed since the last commit in three bullets');
  const answer = await call.answer;
  assert.ok(!answer.error, String(answer.error));
  assert.equal(answer.result_type, 'instruction');
  await api.setConfig({ default_wait_seconds: 10 });
  await addMany(api, PENDING.length, (i) => PENDING[i]);
}

/** Waits until the page shows the waiting state. */
export async function shownWaiting(page) {
  await attrIs(page.locator('#agent-state'), 'data-state', 'waiting');
  await countIs(page.locator('#history-list > li.ticket.consumed'), CONSUMED.length);
  await page.locator('#pending-empty').waitFor({ state: 'visible' });
  await page.evaluate(() => document.fonts.ready.then(() => true));
}

/** Waits until the page shows the desk state. */
export async function shownDesk(page) {
  await textsAre(page.locator('#pending-list > li.ticket .ticket-text'), PENDING);
  await countIs(page.locator('#history-list > li.ticket.consumed'), CONSUMED.length + 1);
  await attrIs(page.locator('#agent-state'), 'data-state', 'working');
  await countIs(page.locator('#agent-list > li.agent'), 2);
  await page.evaluate(() => document.fonts.ready.then(() => true));
}

/**
 * Three queues as a person running agents in three projects has them: shop
 * (two agents, two pending, one of them for a1 only, one taken), blog (one
 * pending, no agent yet) and default (claude-main, one pending).
 */
export async function seedQueues(server, api) {
  const before = await api.config();
  await api.setConfig({ default_wait_seconds: 0 });
  await api.addTo('shop', 'Read the checkout code and list what touches the cart total');
  const taken = await getUserRequest(server, 'a1', { queue: 'shop' });
  assert.equal(taken.result_type, 'instruction');
  await getUserRequest(server, 'a2', { queue: 'shop' });
  await getUserRequest(server, 'claude-main', { queue: 'default' });
  await api.addTo('shop', 'Ship the order page behind the new flag');
  await api.addTo('shop', 'Fix the rounding of the cart total; you wrote that code', 'a1');
  await api.addTo('blog', 'Draft the release notes for 0.4 from the changelog');
  await api.add('Tidy the README: the install section is out of date');
  await api.setConfig({ default_wait_seconds: before.default_wait_seconds });
}

/** Waits until the page shows shop from `seedQueues` (opened at `#queue=shop`). */
export async function shownQueues(page) {
  await attrIs(page.locator('#queue-tabs [role="tab"][data-queue="shop"]'), 'aria-selected', 'true');
  await countIs(page.locator('#queue-tabs [role="tab"]'), 3);
  await textsAre(page.locator('#pending-list > li.ticket .ticket-text'), [
    'Ship the order page behind the new flag',
    'Fix the rounding of the cart total; you wrote that code',
  ]);
  await countIs(page.locator('#history-list > li.ticket.consumed'), 1);
  await countIs(page.locator('#agent-list > li.agent'), 2);
  await page.locator('#composer-to-field').waitFor({ state: 'visible' });
  await page.evaluate(() => document.fonts.ready.then(() => true));
}
