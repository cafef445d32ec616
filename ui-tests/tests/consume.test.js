// An agent takes instructions through real MCP calls (POST /mcp, tools/call
// get_user_request): the page shows it live — history, announcement, agents —
// and a call waiting on an empty queue is shown and woken by the composer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor } from '../support/fixture.js';
import { getUserRequest } from '../support/api.js';
import { startWaitingCall } from '../support/seed.js';
import { announced, attrIs, countIs, recordAnnouncements, textHas, textIs, textsAre, until, visible, squeeze } from '../support/wait.js';

const browser = useBrowser();
const pendingTexts = (page) => page.locator('#pending-list > li.ticket .ticket-text');

test('a consumed instruction moves live to the history, struck through, with agent and time', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  const first = await api.add('write the failing test first');
  await api.add('then make it pass');
  await textsAre(pendingTexts(page), ['write the failing test first', 'then make it pass']);
  await visible(page.locator('#history-empty'));
  await recordAnnouncements(page);

  const answer = await getUserRequest(server, 'claude-main');
  assert.equal(answer.result_type, 'instruction');
  assert.equal(answer.instruction.id, first.id);
  assert.equal(answer.instruction.content, 'write the failing test first');

  // Off the rail, into the history.
  await textsAre(pendingTexts(page), ['then make it pass']);
  const item = page.locator(`#history-list > li.ticket.consumed[data-id="${first.id}"]`);
  await visible(item);
  await textIs(item.locator('.ticket-text'), 'write the failing test first');
  // The agent id, maybe with a word before it ("by claude-main").
  await until(async () => assert.match(squeeze(await item.locator('.consumed-by').textContent()), /(^|\s)claude-main$/));
  // Inside a <del>, and drawn struck through: a line-through on the text or on
  // an element around it (up to the ticket).
  const struck = await item.locator('.ticket-text').evaluate((el) => {
    const decorations = [];
    for (let node = el; node && !node.matches('li'); node = node.parentElement) {
      decorations.push(`${node.tagName.toLowerCase()}: ${getComputedStyle(node).textDecorationLine}`);
    }
    return { inDel: Boolean(el.closest('del')), decorations };
  });
  assert.ok(struck.inDel, 'the text is inside a <del>');
  assert.ok(struck.decorations.some((d) => d.includes('line-through')), `struck through: ${struck.decorations}`);
  const datetime = await item.locator('time.consumed-at').getAttribute('datetime');
  assert.ok(datetime, 'time.consumed-at has a datetime');
  assert.ok(Math.abs(Date.parse(datetime) - Date.parse(answer.instruction.consumed_at)) < 1000,
    `datetime ${datetime} is the consumption time ${answer.instruction.consumed_at}`);
  assert.ok(squeeze(await item.locator('time.consumed-at').textContent()).length > 0, 'the time is shown');
  await textHas(page.locator('#history-count'), '1');
  await countIs(page.locator('#history-list > li.ticket.consumed'), 1);

  // Announced for screen readers.
  await announced(page, 'claude-main took: write the failing test first');
  assert.equal(await page.locator('#announcer').getAttribute('aria-live'), 'polite');

  // The agent appears, and is the one in the status strip.
  const agent = page.locator('#agent-list > li.agent[data-agent-id="claude-main"]');
  await visible(agent);
  await textIs(agent.locator('.agent-name'), 'claude-main');
  await attrIs(agent, 'data-state', 'working');
  await textHas(agent.locator('.agent-state'), 'working');
  await textIs(page.locator('#agent-name'), 'claude-main');
  await attrIs(page.locator('#agent-state'), 'data-state', 'working');
  await until(async () => assert.equal(await page.title(), '(1) local-mcp'));

  // Relative times refresh by themselves (no event needed).
  const seen = squeeze(await agent.locator('.agent-seen').textContent());
  assert.ok(seen.length > 0, '.agent-seen shows a time');
  await until(async () => assert.notEqual(squeeze(await agent.locator('.agent-seen').textContent()), seen),
    { what: '.agent-seen refreshes', timeout: 15_000 });
  assert.deepEqual(page.pageErrors, []);
});

test('a call waiting on the empty queue shows "waiting"; an add in the UI wakes it with that instruction', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  const call = await startWaitingCall(server, api, 'claude-main', 60);
  await recordAnnouncements(page);
  const state = page.locator('#agent-state');
  await attrIs(state, 'data-state', 'waiting');
  await textHas(state, 'waiting for you');
  await textIs(page.locator('#agent-name'), 'claude-main');
  await attrIs(page.locator('#agent-list > li.agent[data-agent-id="claude-main"]'), 'data-state', 'waiting');
  await textHas(page.locator('#agent-list > li.agent[data-agent-id="claude-main"] .agent-state'), 'waiting for you');

  await page.locator('#composer-input').fill('wake up: run the tests');
  await page.keyboard.press('Control+Enter');
  const answer = await call.answer;
  assert.ok(!answer.error, `the call failed: ${answer.error}`);
  assert.equal(answer.result_type, 'instruction', 'woken by the add, not by the end of its wait');
  assert.equal(answer.instruction.content, 'wake up: run the tests');
  assert.ok(answer.waited_seconds < 60);

  await attrIs(state, 'data-state', 'working');
  await textHas(page.locator('#history-list > li.ticket.consumed .ticket-text'), 'wake up: run the tests');
  await visible(page.locator('#pending-empty'));
  // The page may also announce its own add ("Queued.") around the same moment.
  await announced(page, 'claude-main took: wake up: run the tests');
  assert.equal(await page.title(), 'local-mcp');
});

test('the answer to an add that arrives after the agent took it does not put it back on the rail', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  const call = await startWaitingCall(server, api, 'claude-main', 60);
  await attrIs(page.locator('#agent-state'), 'data-state', 'waiting');
  // Hold the page's own POST answer until the consumed event has been shown: the
  // order a busy machine can produce, made certain.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route('**/api/instructions', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const response = await route.fetch();
    await held;
    await route.fulfill({ response });
  });
  await page.locator('#composer-input').fill('taken before the answer');
  await page.keyboard.press('Control+Enter');
  const answer = await call.answer;
  assert.equal(answer.instruction?.content, 'taken before the answer');
  await textHas(page.locator('#history-list > li.ticket.consumed .ticket-text'), 'taken before the answer');
  release();
  // The composer clears right after the page took in the answer; two frames later
  // that has been rendered.
  await until(async () => assert.equal(await page.locator('#composer-input').inputValue(), ''), { what: 'the composer cleared' });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  assert.equal(await page.locator('#pending-list > li.ticket').count(), 0, 'the taken instruction came back to the rail');
  assert.equal(await page.locator('#history-list > li.ticket.consumed').count(), 1);
  await visible(page.locator('#pending-empty'));
  assert.equal(await page.title(), 'local-mcp');
});

test('a pending copy stamped at the same instant as the taken one does not put it back on the rail', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  const item = await api.add('added and taken at once');
  const answer = await getUserRequest(server, 'claude-main');
  assert.equal(answer.instruction.id, item.id);
  const history = page.locator('#history-list > li.ticket.consumed');
  await countIs(history, 1);
  // A server that hands an add to a waiting call in the add's own commit may
  // stamp both copies alike; the answer to the add (pending) then comes last.
  const onRail = await page.evaluate(async () => {
    const m = await import('/js/state.js');
    const [taken] = m.state.history;
    m.putItem({ ...taken, status: 'pending', consumed_at: null, consumed_by_agent_id: null });
    return m.state.pending.length;
  });
  assert.equal(onRail, 0, 'the pending copy replaced the taken one');
  await countIs(history, 1);
  await visible(page.locator('#pending-empty'));
});

test('a take the status already counted before its event came is counted once', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  const item = await api.add('counted by the status first');
  await textsAre(pendingTexts(page), ['counted by the status first']);
  const answer = await getUserRequest(server, 'claude-main');
  assert.equal(answer.instruction.id, item.id);
  const history = page.locator('#history-list > li.ticket.consumed');
  await countIs(history, 1);
  await until(async () => assert.equal(await page.locator('#history-count').textContent(), '1'));
  // The server reads a status and sends change events apart, so a status that
  // already counts a take can reach the page before the take's own event. Put
  // the page in that spot: its status counts the take (it does, from the
  // server), its list does not have it yet, and now the event comes.
  const counted = await page.evaluate(async () => {
    const m = await import('/js/state.js');
    const [taken] = m.state.history;
    m.update((s) => {
      s.history = s.history.filter((h) => h.id !== taken.id);
    });
    m.putItem(taken);
    return m.state.historyTotal;
  });
  assert.equal(counted, 2, 'the event alone counts the take again, for now');
  await until(async () => assert.equal(await page.locator('#history-count').textContent(), '1'), { what: 'the take counted once' });
  await countIs(history, 1);
  assert.equal((await api.status()).queues.find((q) => q.name === 'default').consumed_count, 1);
});

test('"Send again" requeues a consumed instruction at the end of the queue', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  const taken = await api.add('run the benchmarks');
  await api.add('already waiting');
  const answer = await getUserRequest(server, 'claude-main');
  assert.equal(answer.instruction.id, taken.id);
  const item = page.locator(`#history-list > li.ticket.consumed[data-id="${taken.id}"]`);
  await visible(item);
  await item.locator('button.ticket-requeue').click();
  await textsAre(pendingTexts(page), ['already waiting', 'run the benchmarks']);
  await until(async () => assert.deepEqual(await api.pendingTexts(), ['already waiting', 'run the benchmarks']));
  // The consumed one stays in the history.
  await visible(item);
  await until(async () => assert.equal(await page.title(), '(2) local-mcp'));
});

test('several agents are listed, each with its own state', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  await api.setConfig({ default_wait_seconds: 0 });
  const empty = await getUserRequest(server, 'codex-review');
  assert.notEqual(empty.result_type, 'instruction');
  await api.add('for claude');
  const got = await getUserRequest(server, 'claude-main');
  assert.equal(got.instruction.content, 'for claude');
  await countIs(page.locator('#agent-list > li.agent'), 2);
  const ids = await page.locator('#agent-list > li.agent').evaluateAll((els) => els.map((el) => el.dataset.agentId).sort());
  assert.deepEqual(ids, ['claude-main', 'codex-review']);
  await textIs(page.locator('#agent-name'), 'claude-main');
});
