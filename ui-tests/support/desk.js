// Realistic content for the accessibility checks and the screenshots, in two
// states (a waiting call takes the first instruction added, so an agent waiting
// and instructions pending cannot be seen at the same time):
//   waiting: four consumed (two agents), the rail empty, claude-main waiting;
//   desk:    five consumed, three pending, claude-main working.

import assert from 'node:assert/strict';
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
