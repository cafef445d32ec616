// axe-core (from node_modules, injected into the page) on the UI with realistic
// content, light and dark, desktop and phone: no serious or critical violation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useBrowser, serverFor, pageFor } from '../support/fixture.js';
import { DESKTOP, MOBILE, openApp } from '../support/browser.js';
import { seedWaiting, seedDeskAfterWaiting, shownWaiting, shownDesk } from '../support/desk.js';
import { axe, check, serveAxe } from '../support/axe.js';
import { attrIs } from '../support/wait.js';

const browser = useBrowser();

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
