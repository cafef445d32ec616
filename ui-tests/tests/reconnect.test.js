// The server goes away: the page says "reconnecting…"; a new server on the same
// port and database comes up: the page is live again and shows what changed
// while it was down (a full refetch).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { useBrowser, pageFor } from '../support/fixture.js';
import { startServer, freshDir, removeDir, binaryPath } from '../support/server.js';
import { apiClient, getUserRequest } from '../support/api.js';
import { attrIs, textHas, textsAre, until, visible } from '../support/wait.js';

const browser = useBrowser();
const texts = (page) => page.locator('#pending-list > li.ticket .ticket-text');

/** `local-mcp add TEXT` on the database, as a person at the terminal would (no server needed). */
function cliAdd(dbPath, text) {
  return new Promise((resolve, reject) => {
    const child = spawn(binaryPath(), ['add', text], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', DB_PATH: dbPath, AUDIT_LOG: 'off' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`local-mcp add exited ${code}: ${out}`))));
  });
}

test('server stopped: "reconnecting…"; restarted on the same port and database: live, refetched', async (t) => {
  const dir = await freshDir();
  const dbPath = join(dir, 'local_mcp.sqlite3');
  let server = await startServer({ dbPath });
  t.after(async () => {
    await server.stop();
    await removeDir(dir);
  });
  const api1 = apiClient(server);
  const kept = await api1.add('kept across the restart');
  const removed = await api1.add('deleted while the page was away');
  const page = await pageFor(t, browser(), server);
  await textsAre(texts(page), ['kept across the restart', 'deleted while the page was away']);
  await page.evaluate(() => { window.__notReloaded = true; });

  const port = server.port;
  await server.stop();
  const connection = page.locator('#connection');
  await attrIs(connection, 'data-state', 'reconnecting');
  await textHas(connection, 'reconnecting');

  // While no server runs: a terminal adds one.
  await cliAdd(dbPath, 'added at the terminal while the server was down');

  server = await startServer({ dbPath, port });
  assert.equal(server.port, port, 'the new server has the same port');
  const api2 = apiClient(server);
  // Right after the restart, maybe before the page reconnected: a delete and an
  // edit through the API. Either way the page must end up showing them.
  await api2.remove(removed.id);
  await api2.edit(kept.id, 'kept across the restart, edited after it');

  await attrIs(connection, 'data-state', 'live', { timeout: 20_000 });
  await textHas(connection, 'live');
  await textsAre(texts(page), ['kept across the restart, edited after it', 'added at the terminal while the server was down']);
  await until(async () => assert.equal(await page.title(), '(2) local-mcp'));
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page itself was not reloaded');

  // And the stream works again: a consumption on the new server shows up live.
  await api2.setConfig({ default_wait_seconds: 0 });
  const answer = await getUserRequest(server, 'claude-main');
  assert.equal(answer.instruction.content, 'kept across the restart, edited after it');
  await textsAre(texts(page), ['added at the terminal while the server was down']);
  await visible(page.locator(`#history-list > li.ticket.consumed[data-id="${kept.id}"]`));
});
