// The server's JSON API and its MCP endpoint, called from Node (not from the
// page): to seed data, to check what the UI did on the server, and to act as a
// real agent. Loopback only: every URL is the server's own.

import assert from 'node:assert/strict';

/** A small client of one server's /api. `token` adds `Authorization: Bearer`. */
export function apiClient(server, token = null) {
  // call() returns {status, json} whatever the status; with `expect` it asserts the status.
  const base = server.url;
  async function call(method, path, body, { expect } = {}) {
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const json = text ? JSON.parse(text) : null;
    if (expect !== undefined) {
      assert.equal(res.status, expect, `${method} ${path}: ${res.status} ${text}`);
    }
    return { status: res.status, json };
  }
  const api = {
    call,
    async add(content) {
      return (await call('POST', '/api/instructions', { content }, { expect: 201 })).json.item;
    },
    /** Adds to a named queue; with `to`, for that agent of the queue only. */
    async addTo(queue, content, to = undefined) {
      const body = to === undefined ? { content, queue } : { content, queue, to_agent_id: to };
      return (await call('POST', '/api/instructions', body, { expect: 201 })).json.item;
    },
    async edit(id, content) {
      return (await call('PATCH', `/api/instructions/${id}`, { content }, { expect: 200 })).json.item;
    },
    async remove(id) {
      await call('DELETE', `/api/instructions/${id}`, undefined, { expect: 204 });
    },
    async reorder(ids) {
      return (await call('POST', '/api/instructions/reorder', { ids }, { expect: 200 })).json;
    },
    async list(status = 'all', query = '') {
      return (await call('GET', `/api/instructions?status=${status}${query}`, undefined, { expect: 200 })).json;
    },
    async pending(queue = undefined) {
      const query = queue === undefined ? '' : `&queue=${encodeURIComponent(queue)}`;
      return (await api.list('pending', query)).items;
    },
    /** Every queue with its counts and agents (`GET /api/queues`). */
    async queues() {
      return (await call('GET', '/api/queues', undefined, { expect: 200 })).json.queues;
    },
    async pendingTexts() {
      return (await api.pending()).map((item) => item.content);
    },
    async consumed() {
      return (await api.list('consumed')).items;
    },
    async config() {
      return (await call('GET', '/api/config', undefined, { expect: 200 })).json;
    },
    async setConfig(patch) {
      return (await call('PATCH', '/api/config', patch, { expect: 200 })).json;
    },
    async status() {
      return (await call('GET', '/api/status', undefined, { expect: 200 })).json;
    },
  };
  return api;
}

let rpcId = 0;

/**
 * One real MCP `tools/call` of `get_user_request` over streamable HTTP
 * (stateless: no `initialize` needed), as an agent makes it. Resolves to the
 * tool's structured result ({status, result_type, instruction, ...}); throws on a
 * JSON-RPC error or a tool error. The answer may be JSON or an SSE stream.
 * `queue` names the queue to take from (as the tool's `queue` argument).
 */
export async function getUserRequest(server, agentId, { token = null, signal, queue } = {}) {
  const id = ++rpcId;
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2025-11-25',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${server.url}/mcp`, {
    method: 'POST',
    headers,
    signal,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name: 'get_user_request',
        arguments: queue === undefined ? { agent_id: agentId } : { agent_id: agentId, queue },
      },
    }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /mcp: ${res.status} ${text}`);
  const message = parseRpcAnswer(res.headers.get('content-type') ?? '', text, id);
  if (message.error) throw new Error(`tools/call error: ${JSON.stringify(message.error)}`);
  const result = message.result;
  if (result.isError) throw new Error(`tool error: ${JSON.stringify(result.content)}`);
  return result.structuredContent ?? JSON.parse(result.content[0].text);
}

/** The JSON-RPC response with `id` from a JSON body or an SSE stream. */
export function parseRpcAnswer(contentType, text, id) {
  if (contentType.startsWith('application/json')) {
    const body = JSON.parse(text);
    const all = Array.isArray(body) ? body : [body];
    const found = all.find((m) => m.id === id);
    assert.ok(found, `no JSON-RPC answer with id ${id} in ${text}`);
    return found;
  }
  assert.ok(contentType.startsWith('text/event-stream'), `unexpected content-type ${contentType}`);
  // SSE: events are separated by blank lines; an event's data is its `data:` lines joined.
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).replace(/^ /, ''))
      .join('\n');
    if (!data) continue;
    const message = JSON.parse(data);
    if (message.id === id && ('result' in message || 'error' in message)) return message;
  }
  throw new Error(`no JSON-RPC answer with id ${id} in the SSE stream:\n${text}`);
}

/** Runs `task(i)` for i in 0..count with at most `limit` running at once. */
export async function pool(count, limit, task) {
  let next = 0;
  const results = new Array(count);
  async function worker() {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return results;
}
