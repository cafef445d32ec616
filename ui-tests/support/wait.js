// Waiting on conditions, never on time: `until` retries an assertion (a function
// that throws while the condition is not met) until it passes, like Playwright's
// web-first `expect`, and on timeout throws the last assertion error, so a
// failure says what was expected and what was there.

import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';

export const TIMEOUT = Number(process.env.UI_TEST_TIMEOUT_MS || 10_000);

// Backoff between retries of a check (not a fixed wait for something to happen:
// the loop ends as soon as the check passes).
const BACKOFF = [0, 10, 25, 50, 100, 100, 200, 250];

export async function until(check, { timeout = TIMEOUT, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (let i = 0; ; i++) {
    try {
      return await check();
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) break;
    await delay(BACKOFF[Math.min(i, BACKOFF.length - 1)]);
  }
  if (last instanceof Error) {
    last.message = `${what} not met within ${timeout} ms: ${last.message}`;
    throw last;
  }
  throw new Error(`${what} not met within ${timeout} ms: ${String(last)}`);
}

/** Waits until `locator`'s text content (trimmed, whitespace squeezed) equals `expected`. */
export async function textIs(locator, expected, opts) {
  return until(async () => {
    assert.equal(squeeze(await locator.textContent({ timeout: 500 })), expected);
  }, { what: `text of ${locator}`, ...opts });
}

/** Waits until `locator`'s text contains `expected` (string or RegExp). */
export async function textHas(locator, expected, opts) {
  return until(async () => {
    const text = squeeze(await locator.textContent({ timeout: 500 }));
    if (expected instanceof RegExp) assert.match(text, expected);
    else assert.ok(text.includes(expected), `expected ${JSON.stringify(text)} to contain ${JSON.stringify(expected)}`);
    return text;
  }, { what: `text of ${locator}`, ...opts });
}

/** Waits until attribute `name` of `locator` equals `expected`. */
export async function attrIs(locator, name, expected, opts) {
  return until(async () => {
    assert.equal(await locator.getAttribute(name, { timeout: 500 }), expected);
  }, { what: `[${name}] of ${locator}`, ...opts });
}

/** Waits until the texts of all elements matched by `locator` equal `expected` (an array). */
export async function textsAre(locator, expected, opts) {
  return until(async () => {
    const texts = (await locator.allTextContents()).map(squeeze);
    assert.deepEqual(texts, expected);
  }, { what: `texts of ${locator}`, ...opts });
}

/** Waits until `locator` matches exactly `n` elements. */
export async function countIs(locator, n, opts) {
  return until(async () => {
    assert.equal(await locator.count(), n);
  }, { what: `count of ${locator}`, ...opts });
}

/** Waits until `locator` is visible / hidden. */
export async function visible(locator, opts) {
  await locator.waitFor({ state: 'visible', timeout: TIMEOUT, ...opts });
}
export async function hidden(locator, opts) {
  await locator.waitFor({ state: 'hidden', timeout: TIMEOUT, ...opts });
}

/** Waits until `locator` (a single element) has the focus. */
export async function focused(locator, opts) {
  return until(async () => {
    assert.ok(await locator.evaluate((el) => el === document.activeElement, undefined, { timeout: 500 }),
      `${locator} is not focused (active: ${await locator.page().evaluate(describeActive)})`);
  }, { what: `focus on ${locator}`, ...opts });
}

/** A short description of document.activeElement, for messages. */
export function describeActive() {
  const el = document.activeElement;
  if (!el) return 'none';
  const id = el.id ? `#${el.id}` : '';
  const cls = el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '';
  return `${el.tagName.toLowerCase()}${id}${cls}`;
}

export function squeeze(text) {
  return (text ?? '').replace(/\s+/g, ' ').trim();
}

/**
 * Starts recording every text `#announcer` takes (a MutationObserver in the
 * page), so that an announcement replaced a moment later by another one is
 * still seen. Call after the page loaded.
 */
export async function recordAnnouncements(page) {
  await page.evaluate(() => {
    const el = document.getElementById('announcer');
    window.__announcements = [el.textContent];
    new MutationObserver(() => window.__announcements.push(el.textContent))
      .observe(el, { childList: true, characterData: true, subtree: true });
  });
}

/** Waits until `#announcer` has said something containing `text` (since `recordAnnouncements`). */
export async function announced(page, text, opts) {
  return until(async () => {
    const said = await page.evaluate(() => window.__announcements);
    assert.ok(Array.isArray(said), 'recordAnnouncements(page) was not called');
    assert.ok(said.some((s) => (s ?? '').includes(text)),
      `#announcer never said ${JSON.stringify(text)}; it said ${JSON.stringify(said)}`);
  }, { what: 'announcement', ...opts });
}
