// axe-core (from node_modules, injected into the page) on the UI with realistic
// content, light and dark, desktop and phone: no serious or critical violation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { useBrowser, serverFor, pageFor } from '../support/fixture.js';
import { DESKTOP, MOBILE, openApp } from '../support/browser.js';
import { seedWaiting, seedDeskAfterWaiting, shownWaiting, shownDesk } from '../support/desk.js';
import { attrIs } from '../support/wait.js';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');
const browser = useBrowser();

// The page's Content-Security-Policy allows scripts from 'self' only, so axe is
// served as if from the server (a routed same-origin URL), not injected inline:
// the page keeps its real CSP while it is checked.
const AXE_PATH = '/__ui-tests/axe.min.js';

async function serveAxe(page) {
  const source = await readFile(AXE, 'utf8');
  await page.context().route(`**${AXE_PATH}`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: source }));
}

async function axe(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) {
    await page.addScriptTag({ url: AXE_PATH });
  }
  return page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ['violations'] });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  });
}

function readable(violations) {
  return violations.map((v) => [
    `- [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`,
    ...v.nodes.slice(0, 10).map((n) => `    ${n.target}\n      ${(n.summary ?? '').replace(/\n/g, '\n      ')}`),
    v.nodes.length > 10 ? `    ... and ${v.nodes.length - 10} more` : '',
  ].filter(Boolean).join('\n')).join('\n');
}

function check(violations, what) {
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = violations.filter((v) => !bad.includes(v));
  if (minor.length) console.log(`axe ${what}: ${minor.length} minor/moderate (not failing):\n${readable(minor)}`);
  if (bad.length) assert.fail(`axe ${what}: ${bad.length} serious or critical violation(s):\n${readable(bad)}`);
}

for (const [name, viewport] of [['desktop', DESKTOP], ['mobile', MOBILE]]) {
  for (const theme of ['light', 'dark']) {
    test(`axe: ${name} ${viewport.width}×${viewport.height}, ${theme} theme — no serious or critical violations`, async (t) => {
      const { server, api } = await serverFor(t);
      const call = await seedWaiting(server, api);
      const page = await pageFor(t, browser(), server, { viewport, colorScheme: theme, open: false });
      await serveAxe(page);
      await openApp(page, server);
      await attrIs(page.locator('html'), 'data-theme', theme);

      await shownWaiting(page);
      const waiting = await axe(page);
      await seedDeskAfterWaiting(api, call);
      await shownDesk(page);
      const desk = await axe(page);

      // Both states checked before failing, so one run reports everything.
      const problems = [];
      for (const [state, violations] of [['agent waiting, rail empty', waiting], ['pending, consumed, agents', desk]]) {
        try {
          check(violations, `${name} ${theme} (${state})`);
        } catch (e) {
          problems.push(e.message);
        }
      }
      if (problems.length) assert.fail(problems.join('\n\n'));
    });
  }
}
