// Named queues: the tabs list every queue with its pending count and agents,
// live for queues not on show; a queue on show has only its own items, history
// and agents; the composer sends to it and can address one of its agents; edit,
// delete and reorder stay within it; "New queue…" starts one; the tabs work by
// keyboard; the choice is in the address and survives a reload; axe is clean.
// With only the default queue none of it shows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor, serverFor, pageFor } from '../support/fixture.js';
import { DESKTOP, MOBILE } from '../support/browser.js';
import { getUserRequest } from '../support/api.js';
import { axe, check, serveAxe } from '../support/axe.js';
import { seedQueues, shownQueues } from '../support/desk.js';
import {
  attrIs, countIs, describeActive, focused, hidden, textHas, textIs, textsAre, until, visible,
} from '../support/wait.js';

const browser = useBrowser();
const pendingTexts = (page) => page.locator('#pending-list > li.ticket .ticket-text');
const historyTexts = (page) => page.locator('#history-list > li.ticket.consumed .ticket-text');
const tabs = (page) => page.locator('#queue-tabs [role="tab"]');
const tab = (page, name) => page.locator(`#queue-tabs [role="tab"][data-queue="${name}"]`);
const titleIs = (page, title) => until(async () => assert.equal(await page.title(), title), { what: `title is ${title}` });
const hashIs = (page, hash) => until(async () => assert.equal(await page.evaluate(() => location.hash), hash), { what: `address ends in ${hash}` });

/** The tab's pending count as the page shows it, once it is `n`. */
async function tabCountIs(page, name, n) {
  await attrIs(tab(page, name), 'data-pending', String(n));
  await textIs(tab(page, name).locator('.queue-tab-count'), String(n));
}

/** Which tab is selected, waited for, and that it is the only one. */
async function selectedIs(page, name) {
  await attrIs(tab(page, name), 'aria-selected', 'true');
  await until(async () => {
    const selected = await page.locator('#queue-tabs [role="tab"][aria-selected="true"]').evaluateAll(
      (els) => els.map((el) => el.dataset.queue));
    assert.deepEqual(selected, [name], 'exactly one tab is selected');
  });
}

/** An agent call on `queue` that returns at once (the wait set to 0 first). */
async function agentCall(server, api, agent, queue) {
  await api.setConfig({ default_wait_seconds: 0 });
  return getUserRequest(server, agent, { queue });
}

test('with only the default queue the page is as simple as before: no tabs, no queue names', async (t) => {
  const { page, api } = await appFor(t, browser());
  await api.add('one thing');
  await textsAre(pendingTexts(page), ['one thing']);
  await titleIs(page, '(1) local-mcp');
  assert.equal(await page.locator('#queues').isHidden(), true, 'the queue tabs are hidden');
  assert.equal(await tabs(page).count(), 0);
  for (const id of ['#queue-fact', '#composer-queue', '#composer-to-field', '#settings-scope', '#pending-empty-queue', '#agents-queue-hint']) {
    assert.equal(await page.locator(id).isHidden(), true, `${id} is hidden`);
  }
  assert.equal(await page.locator('#queue-panel').getAttribute('role'), null, 'no tab panel without tabs');
  await visible(page.locator('#queue-new'));
  assert.equal(await page.evaluate(() => location.hash), '');
  assert.deepEqual(page.pageErrors, []);
});

test('the tabs list every queue with its pending count, updated live for queues not on show', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  await hidden(page.locator('#queues'));

  // Another queue gets an instruction through the API: its tab appears with the count.
  await api.addTo('shop', 'list the products');
  await visible(page.locator('#queues'));
  await textsAre(tabs(page).locator('.queue-tab-name'), ['default', 'shop']);
  await selectedIs(page, 'default');
  await tabCountIs(page, 'shop', 1);
  await tabCountIs(page, 'default', 0);
  await api.addTo('shop', 'price the products');
  await tabCountIs(page, 'shop', 2);
  await api.addTo('blog', 'draft a post');
  await textsAre(tabs(page).locator('.queue-tab-name'), ['default', 'blog', 'shop']);
  await tabCountIs(page, 'blog', 1);

  // The default queue on show has none of them.
  await visible(page.locator('#pending-empty'));
  await countIs(page.locator('#pending-list > li.ticket'), 0);

  // An agent on shop takes one: the count drops, and its dot shows its state.
  const answer = await agentCall(server, api, 'a1', 'shop');
  assert.equal(answer.queue, 'shop');
  assert.equal(answer.instruction.content, 'list the products');
  await tabCountIs(page, 'shop', 1);
  const dot = tab(page, 'shop').locator('.queue-tab-agent');
  await countIs(dot, 1);
  await attrIs(dot, 'data-state', 'working');
  await textHas(tab(page, 'shop'), 'a1 working');
  // A call that finds shop empty of what it may take leaves a1 idle.
  await api.call('DELETE', `/api/instructions/${(await api.pending('shop'))[0].id}`, undefined, { expect: 204 });
  await tabCountIs(page, 'shop', 0);
  await agentCall(server, api, 'a1', 'shop');
  await attrIs(dot, 'data-state', 'idle');
  await textHas(tab(page, 'shop'), 'a1 idle');

  // The default tab never counted them.
  await tabCountIs(page, 'default', 0);
  assert.deepEqual(page.pageErrors, []);
});

test('a selected queue shows only its items, history and agents; the choice is in the address and survives reload', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  await api.add('default: taken');
  await agentCall(server, api, 'claude-main', 'default');
  await api.add('default: waiting');
  await api.addTo('shop', 'shop: taken');
  await api.addTo('shop', 'shop: waiting');
  await agentCall(server, api, 'a1', 'shop');

  await textsAre(pendingTexts(page), ['default: waiting']);
  await textsAre(historyTexts(page), ['default: taken']);
  await textIs(page.locator('#agent-name'), 'claude-main');
  await tabCountIs(page, 'shop', 1);

  await tab(page, 'shop').click();
  await selectedIs(page, 'shop');
  await textsAre(pendingTexts(page), ['shop: waiting']);
  await textsAre(historyTexts(page), ['shop: taken']);
  await textsAre(page.locator('#agent-list > li.agent .agent-name'), ['a1']);
  await textIs(page.locator('#agent-name'), 'a1');
  await textIs(page.locator('#queue-name'), 'shop');
  await visible(page.locator('#queue-fact'));
  await textHas(page.locator('#composer-queue'), 'shop');
  await textIs(page.locator('#history-count'), '1');
  await visible(page.locator('#settings-scope'));
  await hashIs(page, '#queue=shop');
  await titleIs(page, '(1) shop · local-mcp');
  // The panel is the selected tab's.
  assert.equal(await page.locator('#queue-panel').getAttribute('role'), 'tabpanel');
  assert.equal(await page.locator('#queue-panel').getAttribute('aria-labelledby'), await tab(page, 'shop').getAttribute('id'));

  // Reload: still shop, from the address.
  await page.evaluate(() => { window.__before = true; });
  await page.reload();
  await page.locator('#connection[data-state="live"]').waitFor();
  assert.equal(await page.evaluate(() => window.__before), undefined, 'the page did reload');
  await selectedIs(page, 'shop');
  await textsAre(pendingTexts(page), ['shop: waiting']);
  await textsAre(historyTexts(page), ['shop: taken']);
  await textsAre(page.locator('#agent-list > li.agent .agent-name'), ['a1']);

  // A bookmark opens its queue directly, in a fresh page.
  const other = await pageFor(t, browser(), server, { open: false });
  await other.goto(`${server.url}/#queue=shop`);
  await other.locator('#connection[data-state="live"]').waitFor();
  await selectedIs(other, 'shop');
  await textsAre(pendingTexts(other), ['shop: waiting']);

  // Live changes to the queue on show appear; the default queue's do not.
  await api.addTo('shop', 'shop: live');
  await api.add('default: live');
  await textsAre(pendingTexts(page), ['shop: waiting', 'shop: live']);
  await tabCountIs(page, 'default', 2);

  // Back to default, and the address is bare again.
  await tab(page, 'default').click();
  await selectedIs(page, 'default');
  await textsAre(pendingTexts(page), ['default: waiting', 'default: live']);
  await hashIs(page, '');
  await titleIs(page, '(2) default · local-mcp');
  assert.deepEqual(page.pageErrors, []);
  assert.deepEqual(other.pageErrors, []);
});

test('edit, delete (with undo) and reorder work within the selected queue', async (t) => {
  const { page, api, server } = await appFor(t, browser(), { page: { open: false } });
  await api.add('default: stays');
  const one = await api.addTo('shop', 'shop one');
  const two = await api.addTo('shop', 'shop two');
  await page.goto(`${server.url}/#queue=shop`);
  await page.locator('#connection[data-state="live"]').waitFor();
  await textsAre(pendingTexts(page), ['shop one', 'shop two']);
  const shopTexts = async () => (await api.pending('shop')).map((i) => i.content);

  // Reorder with Alt+ArrowUp: the request names shop.
  const reorders = [];
  page.on('request', (r) => {
    if (r.url().endsWith('/api/instructions/reorder')) reorders.push(r.postDataJSON());
  });
  const ticketTwo = page.locator(`#pending-list > li.ticket[data-id="${two.id}"]`);
  await ticketTwo.focus();
  await page.keyboard.press('Alt+ArrowUp');
  await textsAre(pendingTexts(page), ['shop two', 'shop one']);
  await until(async () => assert.deepEqual(await shopTexts(), ['shop two', 'shop one']));
  assert.deepEqual(reorders, [{ ids: [two.id, one.id], queue: 'shop' }]);

  // Edit in place.
  await ticketTwo.locator('button.ticket-edit').click();
  const editor = ticketTwo.locator('textarea.ticket-editor');
  await focused(editor);
  await editor.fill('shop two, reworded');
  await page.keyboard.press('Enter');
  await textsAre(pendingTexts(page), ['shop two, reworded', 'shop one']);
  await until(async () => assert.deepEqual(await shopTexts(), ['shop two, reworded', 'shop one']));

  // Delete, then undo: back at its place in shop.
  await ticketTwo.locator('button.ticket-delete').click();
  await textsAre(pendingTexts(page), ['shop one']);
  await until(async () => assert.deepEqual(await shopTexts(), ['shop one']));
  await page.locator('#toast-undo').click();
  await textsAre(pendingTexts(page), ['shop two, reworded', 'shop one']);
  await until(async () => assert.deepEqual(await shopTexts(), ['shop two, reworded', 'shop one']));

  // The default queue was never touched.
  assert.deepEqual(await api.pendingTexts(), ['default: stays']);
  assert.deepEqual(page.pageErrors, []);
});

test('the composer sends to the selected queue, for any agent or for the one chosen', async (t) => {
  const { page, api, server } = await appFor(t, browser(), { page: { open: false } });
  // Two agents call on shop (the queue comes to exist with them).
  await agentCall(server, api, 'a1', 'shop');
  await agentCall(server, api, 'a2', 'shop');
  await page.goto(`${server.url}/#queue=shop`);
  await page.locator('#connection[data-state="live"]').waitFor();
  await selectedIs(page, 'shop');
  await countIs(page.locator('#agent-list > li.agent'), 2);

  // The "For" menu offers any agent, then the queue's agents.
  const to = page.locator('#composer-to');
  await visible(page.locator('#composer-to-field'));
  await until(async () => assert.deepEqual(
    await to.locator('option').evaluateAll((els) => els.map((o) => [o.value, o.textContent])),
    [['', 'any agent'], ['a1', 'a1'], ['a2', 'a2']]));
  assert.equal(await to.inputValue(), '');

  await page.locator('#composer-input').fill('for whoever is free');
  await page.locator('#composer-send').click();
  await textsAre(pendingTexts(page), ['for whoever is free']);

  await to.selectOption('a1');
  await page.locator('#composer-input').fill('only for a1');
  await page.keyboard.press('Control+Enter');
  await textsAre(pendingTexts(page), ['for whoever is free', 'only for a1']);

  // On the server: both on shop, the second for a1; nothing on default.
  const items = await api.pending('shop');
  assert.deepEqual(items.map((i) => [i.content, i.queue, i.to_agent_id]),
    [['for whoever is free', 'shop', null], ['only for a1', 'shop', 'a1']]);
  assert.deepEqual(await api.pendingTexts(), []);

  // The addressed ticket says whom it is for; the other says nothing.
  const forA1 = page.locator(`#pending-list > li.ticket[data-id="${items[1].id}"]`);
  await textIs(forA1.locator('.ticket-for'), 'for a1');
  assert.equal(await forA1.locator('.ticket-for').isVisible(), true);
  assert.match(await forA1.getAttribute('aria-label'), /for a1 only/);
  assert.equal(await page.locator(`#pending-list > li.ticket[data-id="${items[0].id}"] .ticket-for`).isHidden(), true);

  // Only a1 takes it: a2 gets the other one, then nothing.
  assert.equal((await agentCall(server, api, 'a2', 'shop')).instruction.content, 'for whoever is free');
  assert.notEqual((await agentCall(server, api, 'a2', 'shop')).result_type, 'instruction');
  assert.equal((await agentCall(server, api, 'a1', 'shop')).instruction.content, 'only for a1');
  await textsAre(historyTexts(page), ['only for a1', 'for whoever is free']);

  // Another queue: the menu goes back to "any agent" (default has no agent: no menu).
  await tab(page, 'default').click();
  await selectedIs(page, 'default');
  await hidden(page.locator('#composer-to-field'));
  assert.equal(await to.inputValue(), '');
  assert.deepEqual(page.pageErrors, []);
});

test('"New queue…" checks the name, opens the new queue, and the first send creates it', async (t) => {
  const { page, api, server } = await appFor(t, browser());
  await page.locator('#queue-new').click();
  const dialog = page.locator('dialog#queue-dialog');
  await visible(dialog);
  const input = page.locator('#queue-input');
  await focused(input);

  // The server's rule, checked before anything is sent.
  await input.fill('my shop');
  await page.locator('#queue-submit').click();
  await textHas(page.locator('#queue-error'), 'letters, digits and . _ : @ -');
  await textHas(page.locator('#queue-error'), 'a space');
  await attrIs(input, 'aria-invalid', 'true');
  assert.equal(await dialog.evaluate((d) => d.open), true, 'the dialog stays open');
  await input.fill('');
  await page.keyboard.press('Enter');
  await textHas(page.locator('#queue-error'), 'Type a name');

  await input.fill('my-shop');
  await page.keyboard.press('Enter');
  await hidden(dialog);
  await selectedIs(page, 'my-shop');
  await hashIs(page, '#queue=my-shop');
  await focused(page.locator('#composer-input'));
  await textIs(tab(page, 'my-shop').locator('.queue-tab-count'), 'new');
  await visible(page.locator('#pending-empty'));
  await textHas(page.locator('#pending-empty-queue'), 'new queue');
  await textHas(page.locator('#agents-command'), 'local-mcp mcp-config --client claude-code --queue my-shop');
  // The server does not have it until something is sent.
  assert.deepEqual((await api.queues()).map((q) => q.name), ['default']);

  await page.keyboard.type('set up the shop');
  await page.keyboard.press('Control+Enter');
  await textsAre(pendingTexts(page), ['set up the shop']);
  await tabCountIs(page, 'my-shop', 1);
  await until(async () => {
    const queues = await api.queues();
    assert.deepEqual(queues.map((q) => [q.name, q.pending_count]), [['default', 0], ['my-shop', 1]]);
  });
  assert.deepEqual((await api.pending('my-shop')).map((i) => i.content), ['set up the shop']);

  // A refusal by the server is shown as the server words it.
  await page.route('**/api/instructions', (route) => route.fulfill({
    status: 422,
    contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'validation', field: 'queue', message: 'queue "my-shop" is refused for this test' } }),
  }), { times: 1 });
  await page.locator('#composer-input').fill('refused');
  await page.locator('#composer-send').click();
  await textIs(page.locator('#composer-error'), 'Queue "my-shop" is refused for this test.');
  await attrIs(page.locator('#composer-input'), 'aria-invalid', 'true');

  // An existing name opens that queue.
  await page.locator('#queue-new').click();
  await input.fill('default');
  await page.keyboard.press('Enter');
  await selectedIs(page, 'default');
  await hashIs(page, '');

  // An address naming no valid queue falls back to default and says so.
  await page.goto(`${server.url}/#queue=no%20spaces`);
  await page.locator('#connection[data-state="live"]').waitFor();
  await selectedIs(page, 'default');
  await textHas(page.locator('#toast-text'), 'not a queue name');
  // The refusal above is the one error the console saw (Chromium logs the 422).
  assert.deepEqual(page.pageErrors.filter((e) => !e.includes('422')), []);
});

test('keyboard: one Tab stop for the tabs, arrows and Home/End switch queues, with a visible focus ring', async (t) => {
  const { page, api } = await appFor(t, browser());
  await api.addTo('alpha', 'alpha work');
  await api.addTo('beta', 'beta work');
  await api.add('default work');
  await textsAre(tabs(page).locator('.queue-tab-name'), ['default', 'alpha', 'beta']);
  await textsAre(pendingTexts(page), ['default work']);

  // Tab reaches the selected tab; the others are not Tab stops.
  const path = [];
  for (let i = 0; i < 20; i++) {
    await page.keyboard.press('Tab');
    path.push(await page.evaluate(describeActive));
    if (await page.evaluate(() => document.activeElement?.getAttribute('role') === 'tab')) break;
  }
  const focusedTab = () => page.evaluate(() => document.activeElement?.dataset.queue ?? null);
  assert.equal(await focusedTab(), 'default', `Tab reached the selected tab: ${path.join(' -> ')}`);
  assert.deepEqual(await tabs(page).evaluateAll((els) => els.map((el) => el.tabIndex)), [0, -1, -1]);
  const ring = await page.evaluate(() => {
    const el = document.activeElement;
    const style = getComputedStyle(el);
    return { focusVisible: el.matches(':focus-visible'), outlineStyle: style.outlineStyle, outlineWidth: style.outlineWidth };
  });
  assert.equal(ring.focusVisible, true);
  assert.notEqual(ring.outlineStyle, 'none', JSON.stringify(ring));
  assert.notEqual(ring.outlineWidth, '0px', JSON.stringify(ring));

  // ArrowRight selects and shows the next queue, focus following.
  await page.keyboard.press('ArrowRight');
  await selectedIs(page, 'alpha');
  await focused(tab(page, 'alpha'));
  await textsAre(pendingTexts(page), ['alpha work']);
  assert.deepEqual(await tabs(page).evaluateAll((els) => els.map((el) => el.tabIndex)), [-1, 0, -1]);
  await page.keyboard.press('ArrowRight');
  await selectedIs(page, 'beta');
  await textsAre(pendingTexts(page), ['beta work']);
  // Past the end it wraps to the first; ArrowLeft wraps back.
  await page.keyboard.press('ArrowRight');
  await selectedIs(page, 'default');
  await page.keyboard.press('ArrowLeft');
  await selectedIs(page, 'beta');
  await focused(tab(page, 'beta'));
  await page.keyboard.press('Home');
  await selectedIs(page, 'default');
  await focused(tab(page, 'default'));
  await page.keyboard.press('End');
  await selectedIs(page, 'beta');
  await focused(tab(page, 'beta'));
  await textsAre(pendingTexts(page), ['beta work']);
  await hashIs(page, '#queue=beta');

  // Tab leaves the tabs for the panel: the composer is next.
  await page.keyboard.press('Tab');
  await focused(page.locator('#composer-input'));
  // And the shortcuts list the arrows.
  await page.evaluate(() => document.activeElement.blur());
  await page.keyboard.press('?');
  await textHas(page.locator('#shortcuts-dialog'), 'queue tabs');
  assert.deepEqual(page.pageErrors, []);
});

for (const [name, viewport, theme] of [['desktop', DESKTOP, 'light'], ['mobile', MOBILE, 'dark']]) {
  test(`axe with several queues: ${name} ${viewport.width}×${viewport.height}, ${theme} — no serious or critical violations`, async (t) => {
    const { server, api } = await serverFor(t);
    await seedQueues(server, api);
    const page = await pageFor(t, browser(), server, { viewport, colorScheme: theme, open: false });
    await serveAxe(page);
    await page.goto(`${server.url}/#queue=shop`);
    await page.locator('#connection[data-state="live"]').waitFor();
    await attrIs(page.locator('html'), 'data-theme', theme);
    await shownQueues(page);
    const problems = [];
    const run = async (state) => {
      try {
        check(await axe(page), `${name} ${theme} (${state})`);
      } catch (e) {
        problems.push(e.message);
      }
    };
    await run('three queues, shop on show');
    await page.locator('#queue-new').click();
    await visible(page.locator('dialog#queue-dialog'));
    await page.locator('#queue-input').fill('not valid!');
    await page.keyboard.press('Enter');
    await textHas(page.locator('#queue-error'), 'letters');
    await run('the new queue dialog with an error');
    if (problems.length) assert.fail(problems.join('\n\n'));
  });
}
