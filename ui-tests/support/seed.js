// Seeding data through the real server only: instructions are created with the
// JSON API and consumed by real MCP `tools/call`s, as agents would.

import assert from 'node:assert/strict';
import { getUserRequest, pool } from './api.js';
import { until } from './wait.js';

/**
 * Creates `count` instructions `text(i)` (i = 0..count-1) through the API. With
 * the default concurrency of 1 the queue order is text(0), text(1), ...; with more
 * they are created in parallel, in no particular order.
 */
export async function addMany(api, count, text, { concurrency = 1 } = {}) {
  return pool(count, concurrency, (i) => api.add(text(i)));
}

/**
 * Consumes every pending instruction with real MCP calls, `concurrency` agents
 * at once (agent ids `${agentPrefix}-1`...). The wait setting must be 0 (so a call
 * on the empty queue returns at once). Returns the number consumed.
 */
export async function drain(server, { concurrency = 8, agentPrefix = 'seed-agent', token = null } = {}) {
  let consumed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      const agent = concurrency === 1 ? agentPrefix : `${agentPrefix}-${w + 1}`;
      for (;;) {
        const answer = await getUserRequest(server, agent, { token });
        if (answer.result_type !== 'instruction') return;
        consumed++;
      }
    }),
  );
  return consumed;
}

/**
 * Seeds `count` consumed instructions ("history item 1" ... "history item N",
 * the newest) and returns the time it took (ms). The first ones are created and
 * consumed in parallel (`concurrency` agents `seed-agent-1`...). The last `sequentialTail` are consumed one at a time
 * by `lastAgent`, so the newest ones have strictly increasing consumption times
 * and a known order.
 */
export async function seedHistory(server, api, count, { concurrency = 32, sequentialTail = 120, lastAgent = 'claude-main' } = {}) {
  const started = Date.now();
  const before = await api.config();
  await api.setConfig({ default_wait_seconds: 0 });
  const text = (i) => `history item ${i + 1}`;
  const head = Math.max(0, count - sequentialTail);
  await addMany(api, head, text, { concurrency: Math.min(concurrency, 16) });
  const drainedHead = await drain(server, { concurrency });
  assert.equal(drainedHead, head, 'every seeded instruction of the head was consumed once');
  await addMany(api, count - head, (i) => text(head + i));
  const drainedTail = await drain(server, { concurrency: 1, agentPrefix: lastAgent });
  assert.equal(drainedTail, count - head, 'every seeded instruction of the tail was consumed once');
  await api.setConfig({ default_wait_seconds: before.default_wait_seconds });
  const status = await api.status();
  assert.equal(status.queue.consumed_count, count);
  return Date.now() - started;
}

// Realistic content for screenshots and accessibility checks.
export const CONSUMED = [
  ['claude-main', 'Read ARCHITECTURE.md and summarise the queue-store crate in five lines'],
  ['codex-review', 'Review the diff of http-api/src/events.rs for lock ordering'],
  ['claude-main', 'Write the failing test first for the reorder conflict (409)'],
  ['claude-main', 'Run cargo clippy --workspace and fix what it finds'],
];
export const PENDING = [
  'Then make the test pass with the smallest change; no refactor yet',
  'Add a line to docs/mcp.md about the progress notifications every 5 s',
  'Commit with a clear message and push nothing',
];

/** Consumes CONSUMED one by one with real MCP calls of their agents. */
export async function seedConsumed(server, api, consumed = CONSUMED) {
  const before = await api.config();
  await api.setConfig({ default_wait_seconds: 0 });
  for (const [agent, content] of consumed) {
    await api.add(content);
    const answer = await getUserRequest(server, agent);
    assert.equal(answer.result_type, 'instruction');
    assert.equal(answer.instruction.content, content);
  }
  await api.setConfig({ default_wait_seconds: before.default_wait_seconds });
}

/**
 * Starts a `get_user_request` call of `agent` that waits on the empty queue (the
 * wait set to `seconds`), and waits until the server reports it waiting. Returns
 * `{ answer }`: the promise of its answer, which never rejects (an error resolves to
 * `{error}`): it settles when an instruction arrives, the wait ends or the server
 * stops. A waiting call takes the first instruction added, so "an agent waiting"
 * and "instructions pending" cannot be seen at once.
 */
export async function startWaitingCall(server, api, agent, seconds = 600, { token = null } = {}) {
  await api.setConfig({ default_wait_seconds: seconds });
  const answer = getUserRequest(server, agent, { token }).catch((error) => ({ error }));
  await until(async () => {
    const status = await api.status();
    const found = status.agents.find((a) => a.agent_id === agent);
    assert.ok(found && found.waiting, `agent ${agent} not waiting yet: ${JSON.stringify(status.agents)}`);
  }, { what: `${agent} waiting` });
  // Wrapped: an async function returning a promise would wait for it.
  return { answer };
}
