// Screenshots for a person to look at, at 1280×800 and 390×844 in the light and
// dark themes (chosen by prefers-color-scheme, with no stored choice), with
// realistic content: target/ui-screenshots/{desktop,mobile}-{light,dark}.png
// (pending, consumed, agents), ...-waiting.png (an agent waiting for you) and
// ...-queues.png (three queues, shop on show with two agents).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useBrowser, serverFor, pageFor } from '../support/fixture.js';
import { DESKTOP, MOBILE, openApp } from '../support/browser.js';
import { repoRoot } from '../support/server.js';
import { seedWaiting, seedDeskAfterWaiting, shownWaiting, shownDesk, seedQueues, shownQueues } from '../support/desk.js';
import { attrIs } from '../support/wait.js';

const browser = useBrowser();
const OUT = process.env.UI_SCREENSHOTS_DIR || join(repoRoot, 'target', 'ui-screenshots');

/** Width and height from a PNG's IHDR chunk. */
async function pngSize(path) {
  const bytes = await readFile(path);
  assert.equal(bytes.subarray(1, 4).toString('latin1'), 'PNG', `${path} is a PNG`);
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20), bytes: bytes.length };
}

for (const [name, viewport] of [['desktop', DESKTOP], ['mobile', MOBILE]]) {
  for (const theme of ['light', 'dark']) {
    test(`screenshots: ${name}-${theme}.png and ${name}-${theme}-waiting.png`, async (t) => {
      await mkdir(OUT, { recursive: true });
      const { server, api } = await serverFor(t);
      const call = await seedWaiting(server, api);
      const page = await pageFor(t, browser(), server, { viewport, open: false });
      await page.emulateMedia({ colorScheme: theme });
      await openApp(page, server);
      assert.equal(await page.evaluate(() => localStorage.getItem('local-mcp:theme')), null, 'no stored theme choice');
      await attrIs(page.locator('html'), 'data-theme', theme);

      await shownWaiting(page);
      const waitingPath = join(OUT, `${name}-${theme}-waiting.png`);
      await page.screenshot({ path: waitingPath });

      await seedDeskAfterWaiting(api, call);
      await shownDesk(page);
      const deskPath = join(OUT, `${name}-${theme}.png`);
      await page.screenshot({ path: deskPath });

      for (const path of [deskPath, waitingPath]) {
        const size = await pngSize(path);
        assert.deepEqual({ width: size.width, height: size.height }, viewport, path);
        assert.ok(size.bytes > 10_000, `${path} has content (${size.bytes} bytes)`);
        console.log(`screenshot: ${path} (${size.width}×${size.height}, ${size.bytes} bytes)`);
      }
      assert.deepEqual(page.offsite, []);
    });
  }
}

for (const [name, viewport] of [['desktop', DESKTOP], ['mobile', MOBILE]]) {
  for (const theme of ['light', 'dark']) {
    test(`screenshots: ${name}-${theme}-queues.png`, async (t) => {
      await mkdir(OUT, { recursive: true });
      const { server, api } = await serverFor(t);
      await seedQueues(server, api);
      const page = await pageFor(t, browser(), server, { viewport, colorScheme: theme, open: false });
      await page.goto(`${server.url}/#queue=shop`);
      await page.locator('#connection[data-state="live"]').waitFor();
      await attrIs(page.locator('html'), 'data-theme', theme);
      await shownQueues(page);
      const path = join(OUT, `${name}-${theme}-queues.png`);
      await page.screenshot({ path });
      const size = await pngSize(path);
      assert.deepEqual({ width: size.width, height: size.height }, viewport, path);
      assert.ok(size.bytes > 10_000, `${path} has content (${size.bytes} bytes)`);
      console.log(`screenshot: ${path} (${size.width}×${size.height}, ${size.bytes} bytes)`);
      assert.deepEqual(page.offsite, []);
    });
  }
}
