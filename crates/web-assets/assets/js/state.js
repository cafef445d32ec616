// The one place that owns the page's data. Features change it only through
// the functions here; every change schedules one render on the next frame,
// and renderers read the state and update the DOM from it.

export const HISTORY_PAGE = 50;

export const state = {
  /** Pending items in queue order (the agent takes index 0 next). */
  pending: [],
  /** Taken items loaded so far, newest first. */
  history: [],
  /** How many items were taken in all (more than `history.length` when older pages are not loaded). */
  historyTotal: 0,
  /** Every agent seen, most recently seen first, as `/api/status` gives them. */
  agents: [],
  /** The most recently seen agent, or null. */
  agent: null,
  server: null,
  settings: null,
  /** `connecting`, `live` or `reconnecting`. */
  connection: "connecting",
  /** True once the first full load finished. */
  loaded: false,
  /** The id of the pending item being edited in place, or null. */
  editing: null,
  /** Ids that arrived since the last render, for the entrance animations. */
  fresh: new Set(),
};

const listeners = new Set();
let frame = 0;

/** Calls `render(state)` after every batch of changes. */
export function subscribe(render) {
  listeners.add(render);
}

function schedule() {
  if (frame) return;
  frame = requestAnimationFrame(flush);
}

/**
 * Renders now instead of on the next frame: for changes the person's very next
 * keystroke depends on (an editor opening must have focus before it arrives).
 */
export function flush() {
  if (frame) cancelAnimationFrame(frame);
  frame = 0;
  for (const render of listeners) render(state);
  state.fresh.clear();
}

/** Applies `change(state)` and schedules a render. */
export function update(change) {
  change(state);
  schedule();
}

function without(list, id) {
  const index = list.findIndex((item) => item.id === id);
  if (index !== -1) list.splice(index, 1);
  return index;
}

/**
 * Puts an item where its status says it belongs. A new pending item goes to
 * the end of the queue; an edited one stays in its place; one that an
 * interrupted delivery put back goes to the head, as the server does.
 */
export function putItem(item) {
  update((s) => {
    if (item.status === "pending") {
      const at = s.pending.findIndex((p) => p.id === item.id);
      if (at !== -1) {
        s.pending[at] = item;
        return;
      }
      if (without(s.history, item.id) !== -1) {
        s.historyTotal = Math.max(0, s.historyTotal - 1);
        s.pending.unshift(item);
      } else {
        s.pending.push(item);
      }
    } else {
      without(s.pending, item.id);
      const at = s.history.findIndex((h) => h.id === item.id);
      if (at !== -1) {
        s.history[at] = item;
        return;
      }
      s.history.unshift(item);
      s.historyTotal += 1;
    }
    s.fresh.add(item.id);
  });
}

/** Forgets a pending item (deleted). */
export function dropItem(id) {
  update((s) => {
    without(s.pending, id);
    if (s.editing === id) s.editing = null;
  });
}

/** Orders the pending items as `ids` says; items not named keep their relative order at the end. */
export function orderPending(ids) {
  update((s) => {
    const rank = new Map(ids.map((id, i) => [id, i]));
    s.pending.sort((a, b) => (rank.get(a.id) ?? Infinity) - (rank.get(b.id) ?? Infinity));
  });
}

/** Takes in a whole `/api/status` object. */
export function putStatus(status) {
  update((s) => {
    s.server = status.server;
    s.agent = status.agent;
    s.agents = status.agents ?? [];
    s.settings = status.settings;
    s.historyTotal = status.queue.consumed_count;
  });
}

/** Takes in one agent record from `agent.updated`. */
export function putAgent(agent) {
  update((s) => {
    const at = s.agents.findIndex((a) => a.agent_id === agent.agent_id);
    if (at !== -1) s.agents.splice(at, 1);
    // Most recently seen first, as the server orders them.
    const seen = Date.parse(agent.last_seen_at);
    const before = s.agents.findIndex((a) => Date.parse(a.last_seen_at) <= seen);
    if (before === -1) s.agents.push(agent);
    else s.agents.splice(before, 0, agent);
    s.agent = s.agents[0] ?? null;
  });
}

/** Replaces everything after a full load. */
export function putSnapshot({ status, pending, history }) {
  update((s) => {
    s.pending = pending;
    s.history = history;
    s.loaded = true;
  });
  putStatus(status);
}

/** Appends an older page of taken items (given newest first). */
export function putOlder(items) {
  update((s) => {
    const known = new Set(s.history.map((h) => h.id));
    for (const item of items) if (!known.has(item.id)) s.history.push(item);
  });
}

export function setConnection(value) {
  update((s) => {
    s.connection = value;
  });
}

export function setEditing(id) {
  update((s) => {
    s.editing = id;
  });
  flush();
}

export function setSettings(settings) {
  update((s) => {
    s.settings = settings;
  });
}
