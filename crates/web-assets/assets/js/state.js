// The one place that owns the page's data. Features change it only through
// the functions here; every change schedules one render on the next frame,
// and renderers read the state and update the DOM from it.

export const HISTORY_PAGE = 50;

/** The queue of everything that names none. */
export const DEFAULT_QUEUE = "default";

export const state = {
  /** The name of the queue on show; the lists, counts and agents below are its own. */
  queue: DEFAULT_QUEUE,
  /** Every queue the server has, as `/api/queues` lists them: `{name, pending_count, consumed_count, agents}`. */
  queues: [],
  /** Queues started on this page that the server does not have yet (nothing was sent to them). */
  drafts: new Set(),
  /** Pending items in queue order (the agent takes index 0 next). */
  pending: [],
  /** Taken items loaded so far, newest first. */
  history: [],
  /** How many items were taken in all (more than `history.length` when older pages are not loaded). */
  historyTotal: 0,
  /** Every agent seen on this queue, most recently seen first, as `/api/status` gives them. */
  agents: [],
  /** This queue's most recently seen agent, or null. */
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

/**
 * How long a taken-count moved by an event stands before the last status's
 * count replaces it. The server reads a status and sends change events
 * separately, so a status can already count a consumption whose event comes
 * after it; counting that event again would stay wrong until the next status,
 * which may never come if nothing else changes. Statuses come at most four a
 * second, so a newer one arrives well within this.
 */
export const COUNT_SETTLE_MS = 1_000;
let settleTimer = 0;

function settleHistoryTotal() {
  clearTimeout(settleTimer);
  settleTimer = setTimeout(() => {
    update((s) => {
      const entry = s.queues.find((q) => q.name === s.queue);
      if (entry && s.loaded) s.historyTotal = entry.consumed_count;
    });
  }, COUNT_SETTLE_MS);
}

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
    queueEntry(s, item.queue ?? DEFAULT_QUEUE);
    // A copy older than the one on show changes nothing: the answer to our own
    // add can arrive after the event of the agent taking it. The server writes
    // every `updated_at` in one fixed-width format, so text order is time order.
    // At the same instant a taken copy wins over a pending one: taking is the
    // later step (a server may add and hand over in one commit).
    const known = s.pending.find((p) => p.id === item.id) ?? s.history.find((h) => h.id === item.id);
    if (known && known.updated_at > item.updated_at) return;
    if (known && known.updated_at === item.updated_at && known.status !== "pending" && item.status === "pending") return;
    if (item.status === "pending") {
      const at = s.pending.findIndex((p) => p.id === item.id);
      if (at !== -1) {
        s.pending[at] = item;
        return;
      }
      if (without(s.history, item.id) !== -1) {
        s.historyTotal = Math.max(0, s.historyTotal - 1);
        settleHistoryTotal();
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
      settleHistoryTotal();
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

/** The entry of queue `name` in `s.queues`, made (empty) when the server's list does not have it yet. */
function queueEntry(s, name) {
  let entry = s.queues.find((q) => q.name === name);
  if (!entry) {
    entry = { name, pending_count: 0, consumed_count: 0, agents: [] };
    s.queues.push(entry);
    s.queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  return entry;
}

/** Points the shown queue's agents at its entry. */
function showAgentsOf(s) {
  const entry = s.queues.find((q) => q.name === s.queue);
  s.agents = entry ? entry.agents : [];
  s.agent = s.agents[0] ?? null;
}

/** Takes in a whole `/api/status` object (of any queue: every queue's counts and agents are in `queues`). */
export function putStatus(status) {
  update((s) => {
    s.server = status.server;
    s.settings = status.settings;
    s.queues = (status.queues ?? []).map((q) => ({ ...q, agents: q.agents ?? [] }));
    showAgentsOf(s);
    const entry = s.queues.find((q) => q.name === s.queue);
    s.historyTotal = entry ? entry.consumed_count : 0;
  });
}

/** Takes in one agent record from `agent.updated`, of whichever queue it is on. */
export function putAgent(agent) {
  update((s) => {
    const agents = queueEntry(s, agent.queue ?? DEFAULT_QUEUE).agents;
    const at = agents.findIndex((a) => a.agent_id === agent.agent_id);
    if (at !== -1) agents.splice(at, 1);
    // Most recently seen first, as the server orders them.
    const seen = Date.parse(agent.last_seen_at);
    const before = agents.findIndex((a) => Date.parse(a.last_seen_at) <= seen);
    if (before === -1) agents.push(agent);
    else agents.splice(before, 0, agent);
    showAgentsOf(s);
  });
}

/**
 * Shows queue `name` instead: its lists stay empty until the next full load
 * brings them. A name the server does not know becomes a draft, shown as a
 * new, empty queue until something is sent to it or an agent calls on it.
 */
export function selectQueue(name) {
  update((s) => {
    if (s.queue === name) return;
    s.queue = name;
    if (isDraft(s, name)) s.drafts.add(name);
    s.pending = [];
    s.history = [];
    s.editing = null;
    s.loaded = false;
    const entry = s.queues.find((q) => q.name === name);
    s.historyTotal = entry ? entry.consumed_count : 0;
    showAgentsOf(s);
  });
}

/** Whether queue `name` is one the server does not have yet. */
export function isDraft(s, name) {
  return !s.queues.some((q) => q.name === name);
}

/** The names of every queue to offer, `default` first, then by name; drafts included. */
export function queueNames(s) {
  const names = new Set([DEFAULT_QUEUE, ...s.queues.map((q) => q.name), ...s.drafts, s.queue]);
  const rest = [...names].filter((n) => n !== DEFAULT_QUEUE).sort();
  return [DEFAULT_QUEUE, ...rest];
}

/** How many instructions wait on queue `name`: the loaded list's length for the one on show. */
export function pendingOf(s, name) {
  if (name === s.queue && s.loaded) return s.pending.length;
  return s.queues.find((q) => q.name === name)?.pending_count ?? 0;
}

/** The agents seen on queue `name`, most recently seen first. */
export function agentsOf(s, name) {
  return s.queues.find((q) => q.name === name)?.agents ?? [];
}

/** Whether the page offers more than the one `default` queue (and so shows the queue tabs). */
export function manyQueues(s) {
  return queueNames(s).length > 1;
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
