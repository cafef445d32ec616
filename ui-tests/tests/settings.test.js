// Settings: the API's validation message is shown beside the field it is about,
// with aria-invalid; a good save says "Saved" and the server has the value.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, appFor } from '../support/fixture.js';
import { attrIs, textHas, until, visible } from '../support/wait.js';

const browser = useBrowser();

async function valuesShown(page) {
  return {
    default_wait_seconds: await page.locator('#default_wait_seconds').inputValue(),
    default_empty_response: await page.locator('#default_empty_response').inputValue(),
    agent_stale_after_seconds: await page.locator('#agent_stale_after_seconds').inputValue(),
  };
}

/** The message the API gives for `patch`. */
async function apiMessage(api, patch) {
  const refused = await api.call('PATCH', '/api/config', patch);
  assert.equal(refused.status, 422, JSON.stringify(refused.json));
  return refused.json.error.message;
}

/**
 * Waits until `locator` shows the API's `message`. The field's name at the start
 * of the API's message may be left out (the label beside the field names it),
 * and case and a final full stop do not count: "default_wait_seconds must be
 * between 0 and 86400" may be shown as "Must be between 0 and 86400.".
 */
async function showsApiMessage(locator, message, field) {
  const norm = (text) => text.trim().replace(/\.$/, '').toLowerCase();
  const bare = (text) => norm(text).replace(new RegExp(`^${field}\\s+`), '');
  await until(async () => {
    const shown = ((await locator.textContent()) ?? '').trim();
    assert.ok(shown.length > 0, `${locator} is empty`);
    assert.equal(bare(shown), bare(message), `shown ${JSON.stringify(shown)}, API said ${JSON.stringify(message)}`);
  }, { what: `${locator} shows the API message` });
}

test('the form shows the server settings', async (t) => {
  const { page, api } = await appFor(t, browser());
  const config = await api.config();
  assert.equal(await page.locator('form#settings').getAttribute('novalidate'), '');
  await until(async () => assert.deepEqual(await valuesShown(page), {
    default_wait_seconds: String(config.default_wait_seconds),
    default_empty_response: config.default_empty_response,
    agent_stale_after_seconds: String(config.agent_stale_after_seconds),
  }));
});

test('a wait of 100000 shows the API message beside the field; nothing is saved', async (t) => {
  const { page, api } = await appFor(t, browser());
  const message = await apiMessage(api, { default_wait_seconds: 100000 });
  const before = await api.config();
  await until(async () => assert.equal(await page.locator('#default_wait_seconds').inputValue(), String(before.default_wait_seconds)));

  await page.locator('#default_wait_seconds').fill('100000');
  await page.locator('#settings-save').click();
  const error = page.locator('#default_wait_seconds-error');
  await visible(error);
  await showsApiMessage(error, message, 'default_wait_seconds');
  await attrIs(page.locator('#default_wait_seconds'), 'aria-invalid', 'true');
  // The other fields are not marked.
  assert.notEqual(await page.locator('#agent_stale_after_seconds').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(await api.config(), before);
  const status = ((await page.locator('#settings-status').textContent()) ?? '').trim();
  assert.ok(!/^saved/i.test(status), `#settings-status must not say "Saved": ${JSON.stringify(status)}`);

  // Corrected: saved, the error and the mark go away.
  await page.locator('#default_wait_seconds').fill('42');
  await page.locator('#settings-save').click();
  await textHas(page.locator('#settings-status'), /^Saved/);
  await until(async () => assert.equal((await api.config()).default_wait_seconds, 42));
  await until(async () => assert.notEqual(await page.locator('#default_wait_seconds').getAttribute('aria-invalid'), 'true'));
  await until(async () => {
    const text = ((await error.textContent()) ?? '').trim();
    assert.ok(!(await error.isVisible()) || text === '', `error cleared, still: ${JSON.stringify(text)}`);
  });
});

test('a good save of all three fields: "Saved", and GET /api/config has them', async (t) => {
  const { page, api } = await appFor(t, browser());
  await until(async () => assert.equal(await page.locator('#default_wait_seconds').inputValue(), '10'));
  await page.locator('#default_wait_seconds').fill('25');
  await page.locator('#default_empty_response').fill('call get_user_request again; keep going');
  await page.locator('#agent_stale_after_seconds').fill('90');
  await page.locator('#settings-save').click();
  await textHas(page.locator('#settings-status'), /^Saved/);
  await until(async () => assert.deepEqual(await api.config(), {
    default_wait_seconds: 25,
    default_empty_response: 'call get_user_request again; keep going',
    agent_stale_after_seconds: 90,
  }));
  // It survives a reload (it is the server's value, not the form's).
  await page.reload();
  await until(async () => assert.deepEqual(await valuesShown(page), {
    default_wait_seconds: '25',
    default_empty_response: 'call get_user_request again; keep going',
    agent_stale_after_seconds: '90',
  }));
});

test('the stale threshold and the empty response show their own API messages', async (t) => {
  const { page, api } = await appFor(t, browser());
  const staleMessage = await apiMessage(api, { agent_stale_after_seconds: 0 });
  const responseMessage = await apiMessage(api, { default_empty_response: 'x'.repeat(4097) });
  await until(async () => assert.equal(await page.locator('#agent_stale_after_seconds').inputValue(), '30'));

  await page.locator('#agent_stale_after_seconds').fill('0');
  await page.locator('#settings-save').click();
  await showsApiMessage(page.locator('#agent_stale_after_seconds-error'), staleMessage, 'agent_stale_after_seconds');
  await attrIs(page.locator('#agent_stale_after_seconds'), 'aria-invalid', 'true');

  await page.locator('#agent_stale_after_seconds').fill('30');
  await page.locator('#default_empty_response').fill('x'.repeat(4097));
  await page.locator('#settings-save').click();
  await showsApiMessage(page.locator('#default_empty_response-error'), responseMessage, 'default_empty_response');
  await attrIs(page.locator('#default_empty_response'), 'aria-invalid', 'true');
  assert.equal((await api.config()).agent_stale_after_seconds, 30);
});

test('settings saved elsewhere (the API) appear in the form live', async (t) => {
  const { page, api } = await appFor(t, browser());
  await until(async () => assert.equal(await page.locator('#default_wait_seconds').inputValue(), '10'));
  await api.setConfig({ default_wait_seconds: 42 });
  await until(async () => assert.equal(await page.locator('#default_wait_seconds').inputValue(), '42'),
    { what: 'the form follows config.updated' });
});
