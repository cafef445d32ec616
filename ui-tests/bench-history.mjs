// How long the web UI takes to show a long history: seeds 10,000 consumed
// instructions once through the real server (API adds, drained by concurrent MCP
// calls), then loads the page several times, each in a fresh browser context (no
// cache), and prints the time from navigation start to the newest 50 history
// items rendered, and to the first contentful paint, with the medians.
//
//   cargo build -p local-mcp && cd ui-tests && node bench-history.mjs [runs] [count]
//
// Same binary and browser as the tests (LOCAL_MCP_BIN, CHROMIUM). Desktop
// viewport, reduced motion. The numbers depend on the machine; print, compare,
// do not assert.

import { cpus } from 'node:os';
import { execFileSync } from 'node:child_process';
import { launchBrowser, newPage, DESKTOP } from './support/browser.js';
import { startServer, removeDir, binaryPath } from './support/server.js';
import { makeHistoryDb, loadAndMeasure, median } from './support/history.js';

const runs = Number(process.argv[2] || 7);
const count = Number(process.argv[3] || 10_000);

const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
let chromiumVersion = '?';
try {
  chromiumVersion = execFileSync(chromium, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
} catch {
  // The version is only for the report.
}
console.log(`bench-history: ${count} consumed instructions, ${runs} page loads`);
console.log(`  binary ${binaryPath()}`);
console.log(`  ${chromiumVersion}, node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}`);

const db = await makeHistoryDb(count);
console.log(`  seeded in ${(db.seedMs / 1000).toFixed(1)} s`);
const server = await startServer({ dbPath: db.dbPath });
const browser = await launchBrowser();
const results = [];
try {
  // One warm-up load (the server's first queries, the browser's first page), not counted.
  for (let i = 0; i <= runs; i++) {
    const page = await newPage(browser, server, { viewport: DESKTOP });
    const r = await loadAndMeasure(page, server.url + '/');
    const shown = await page.locator('#history-list > li.ticket.consumed').count();
    await page.context().close();
    if (shown !== 50) throw new Error(`expected the newest 50 history items, the page shows ${shown}`);
    if (i === 0) {
      console.log(`  warm-up: history ${r.historyMs.toFixed(0)} ms, FCP ${r.fcpMs.toFixed(0)} ms`);
      continue;
    }
    results.push(r);
    console.log(`  run ${i}: history rendered ${r.historyMs.toFixed(0)} ms, first-contentful-paint ${r.fcpMs.toFixed(0)} ms, DOMContentLoaded ${r.domContentLoadedMs?.toFixed(0)} ms`);
  }
} finally {
  await browser.close();
  await server.stop();
  await removeDir(db.dir);
}
const fmt = (xs) => `median ${median(xs).toFixed(0)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;
console.log(`history rendered (newest 50 of ${count}): ${fmt(results.map((r) => r.historyMs))}`);
console.log(`first-contentful-paint: ${fmt(results.map((r) => r.fcpMs))}`);
