// A database with a long history (10,000 consumed instructions), made once
// through the real server and copied for each use, and the measurement of how
// long the page takes to show it.

import { copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, freshDir } from './server.js';
import { apiClient } from './api.js';
import { seedHistory, addMany } from './seed.js';

export const HISTORY_PENDING = ['next: profile the history query', 'then: add an index if it helps', 'then: commit'];

/**
 * Makes a database in a new directory holding `count` consumed instructions
 * ("history item 1" ... the newest "history item N", the newest 120 consumed by
 * claude-main one by one) and the HISTORY_PENDING instructions, through a real
 * server that is stopped afterwards. Returns { dir, dbPath, seedMs }.
 */
export async function makeHistoryDb(count) {
  const dir = await freshDir();
  const dbPath = join(dir, 'local_mcp.sqlite3');
  const server = await startServer({ dbPath });
  try {
    const api = apiClient(server);
    const seedMs = await seedHistory(server, api, count);
    await addMany(api, HISTORY_PENDING.length, (i) => HISTORY_PENDING[i]);
    return { dir, dbPath, seedMs };
  } finally {
    await server.stop();
  }
}

/** Copies the database files of `from` (the .sqlite3 and any -wal/-shm) into a fresh directory. */
export async function copyDb(from) {
  const dir = await freshDir();
  for (const name of await readdir(from.dir)) {
    if (name.startsWith('local_mcp.sqlite3')) await copyFile(join(from.dir, name), join(dir, name));
  }
  return { dir, dbPath: join(dir, 'local_mcp.sqlite3') };
}

/**
 * Navigates `page` to the UI and waits (in the page, on every animation frame)
 * until the history list holds `items` entries. Returns times in ms since the
 * navigation started: { historyMs, fcpMs, domContentLoadedMs }.
 */
export async function loadAndMeasure(page, url, items = 50) {
  await page.goto(url, { waitUntil: 'commit' });
  const historyMs = await (await page.waitForFunction((n) => {
    const count = document.querySelectorAll('#history-list > li.ticket.consumed').length;
    return count >= n ? performance.now() : false;
  }, items, { polling: 'raf', timeout: 60_000 })).jsonValue();
  const fcpMs = await (await page.waitForFunction(
    () => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? false,
    undefined, { polling: 'raf', timeout: 60_000 })).jsonValue();
  const domContentLoadedMs = await page.evaluate(() => performance.getEntriesByType('navigation')[0]?.domContentLoadedEventEnd ?? null);
  return { historyMs, fcpMs, domContentLoadedMs };
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
