// A long history: 10,000 consumed instructions, made through the real server
// (API adds, real MCP calls to drain). The page shows the newest 50 with "Show
// older", keeps the DOM bounded, and still renders the rail and the status. The
// time to render is printed, not asserted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, pageFor } from '../support/fixture.js';
import { startServer, removeDir } from '../support/server.js';
import { apiClient, getUserRequest } from '../support/api.js';
import { makeHistoryDb, copyDb, loadAndMeasure, HISTORY_PENDING } from '../support/history.js';
import { countIs, textsAre, until, visible } from '../support/wait.js';

const browser = useBrowser();
const COUNT = 10_000;
let template = null;

before(async () => {
  template = await makeHistoryDb(COUNT);
  console.log(`history: seeded ${COUNT} consumed instructions through the API and MCP in ${(template.seedMs / 1000).toFixed(1)} s`);
});
after(async () => {
  if (template) await removeDir(template.dir);
});

/** A server on a fresh copy of the seeded database. */
async function historyServer(t) {
  const copy = await copyDb(template);
  const server = await startServer({ dbPath: copy.dbPath });
  t.after(async () => {
    await server.stop();
    await removeDir(copy.dir);
  });
  return { server, api: apiClient(server) };
}

const expectedNames = (from, to) => {
  const names = [];
  for (let i = from; i >= to; i--) names.push(`history item ${i}`);
  return names;
};

test('10,000 consumed: the newest 50, "Show older" adds the next 50, the DOM stays bounded', async (t) => {
  const { server, api } = await historyServer(t);
  const status = await api.status();
  assert.equal(status.queue.consumed_count, COUNT);

  const page = await pageFor(t, browser(), server, { open: false });
  const fetched = [];
  page.on('response', async (response) => {
    const url = new URL(response.url());
    if (url.pathname.startsWith('/api/instructions')) {
      const body = await response.body().catch(() => Buffer.alloc(0));
      fetched.push(`${url.pathname}${url.search} ${response.status()} ${body.length} B`);
    }
  });
  const times = await loadAndMeasure(page, server.url + '/');
  console.log(`history: 10,000 consumed — first-contentful-paint ${times.fcpMs.toFixed(0)} ms, ` +
    `newest 50 rendered ${times.historyMs.toFixed(0)} ms after navigation start (not asserted)`);

  const items = page.locator('#history-list > li.ticket.consumed');
  await countIs(items, 50);
  await textsAre(items.locator('.ticket-text'), expectedNames(COUNT, COUNT - 49));
  await visible(page.locator('#history-more'));
  await until(async () => {
    const digits = ((await page.locator('#history-count').textContent()) ?? '').replace(/[^0-9]/g, '');
    assert.equal(digits, String(COUNT), '#history-count shows the total taken');
  });

  // The rest of the page renders too.
  await textsAre(page.locator('#pending-list > li.ticket .ticket-text'), HISTORY_PENDING);
  await until(async () => assert.equal(await page.title(), `(${HISTORY_PENDING.length}) local-mcp`));
  await page.locator('#connection[data-state="live"]').waitFor();
  const agentState = await page.locator('#agent-state').getAttribute('data-state');
  assert.ok(['waiting', 'working', 'idle', 'gone'].includes(agentState), `#agent-state data-state ${agentState}`);
  await until(async () => assert.equal(await page.locator('#agent-name').textContent(), 'claude-main'));
  await countIs(page.locator('#agent-list > li.agent'), status.agents.length);

  // Bounded: one page of history in the DOM, not 10,000.
  const dom = await page.evaluate(() => ({
    history: document.querySelectorAll('#history-list li').length,
    nodes: document.getElementsByTagName('*').length,
  }));
  assert.equal(dom.history, 50);
  console.log(`history: DOM after load: ${dom.history} history items, ${dom.nodes} elements; fetched: ${fetched.join('; ')}`);

  // Show older: the next 50, in order, after the first 50.
  await page.locator('#history-more').click();
  await countIs(items, 100);
  await textsAre(items.locator('.ticket-text'), expectedNames(COUNT, COUNT - 99));
  await visible(page.locator('#history-more'));
  assert.equal(await page.evaluate(() => document.querySelectorAll('#history-list li').length), 100);
  assert.deepEqual(page.pageErrors, []);
});

test('with 10,000 in the history a new consumption still appears at the top at once', async (t) => {
  const { server, api } = await historyServer(t);
  const page = await pageFor(t, browser(), server);
  const items = page.locator('#history-list > li.ticket.consumed');
  await countIs(items, 50);
  await api.setConfig({ default_wait_seconds: 0 });
  const answer = await getUserRequest(server, 'claude-main');
  assert.equal(answer.instruction.content, HISTORY_PENDING[0]);
  await until(async () => assert.equal((await items.first().locator('.ticket-text').textContent()).trim(), HISTORY_PENDING[0]));
  await until(async () => {
    const digits = ((await page.locator('#history-count').textContent()) ?? '').replace(/[^0-9]/g, '');
    assert.equal(digits, String(COUNT + 1));
  });
  await textsAre(page.locator('#pending-list > li.ticket .ticket-text'), HISTORY_PENDING.slice(1));
  const inDom = await items.count();
  assert.ok(inDom <= 51, `the DOM stays bounded after a live consumption: ${inDom} items`);
});
