// The page's entry point: theme, shortcuts, the token prompt, the first load
// of the queue on show, the live event stream of every queue (with a full
// refetch after every reconnect) and the pending count in the title.

import { api, onTokenNeeded, tokenWorks } from "./api.js";
import { initAgents } from "./agents.js";
import { announce, isTyping, setText } from "./dom.js";
import { connect } from "./events.js";
import { initInstructions, reordered } from "./instructions.js";
import { initQueues } from "./queues.js";
import { initSettings } from "./settings.js";
import {
  DEFAULT_QUEUE,
  HISTORY_PAGE,
  dropItem,
  manyQueues,
  putAgent,
  putItem,
  putSnapshot,
  putStatus,
  selectQueue,
  setConnection,
  setSettings,
  state,
  subscribe,
} from "./state.js";

/* Theme --------------------------------------------------------------------- */

const THEME_KEY = "local-mcp:theme";
const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

function storedTheme() {
  try {
    const value = localStorage.getItem(THEME_KEY);
    return value === "dark" || value === "light" ? value : null;
  } catch {
    return null;
  }
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const toggle = document.getElementById("theme-toggle");
  toggle.setAttribute("aria-pressed", String(theme === "dark"));
  toggle.title = theme === "dark" ? "Switch to the light theme" : "Switch to the dark theme";
}

/** The remembered choice, else what the system prefers. */
function applyTheme() {
  setTheme(storedTheme() ?? (darkQuery.matches ? "dark" : "light"));
}

function initTheme() {
  applyTheme();
  darkQuery.addEventListener("change", applyTheme);
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch {
      // Not remembered, but switched for this page all the same.
    }
    setTheme(next);
  });
}

/* Shortcuts and dialogs ------------------------------------------------------ */

function initShortcuts() {
  const dialog = document.getElementById("shortcuts-dialog");
  const open = () => {
    if (!dialog.open) dialog.showModal();
  };
  document.getElementById("shortcuts-button").addEventListener("click", open);
  document.getElementById("shortcuts-close").addEventListener("click", () => dialog.close());
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target) || document.querySelector("dialog[open]")) return;
    if (event.key === "n") {
      event.preventDefault();
      document.getElementById("composer-input").focus();
    } else if (event.key === "?") {
      event.preventDefault();
      open();
    }
  });
}

/** Asks for the token in a modal dialog; resolves once the server accepts one. */
function askForToken(rejected) {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const field = document.getElementById("token-input");
  const error = document.getElementById("token-error");
  error.textContent = rejected ? "That token was refused. Check it and try again." : "";
  field.value = "";
  if (!dialog.open) dialog.showModal();
  field.focus();
  return new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      const value = field.value.trim();
      if (!value) {
        error.textContent = "Paste the token the server was started with.";
        field.setAttribute("aria-invalid", "true");
        return;
      }
      let ok = false;
      try {
        ok = await tokenWorks(value);
      } catch {
        error.textContent = "The server cannot be reached; is local-mcp still running?";
        return;
      }
      if (!ok) {
        error.textContent = "That token was refused. Check it and try again.";
        field.setAttribute("aria-invalid", "true");
        field.select();
        return;
      }
      form.removeEventListener("submit", submit);
      dialog.removeEventListener("cancel", keep);
      field.removeAttribute("aria-invalid");
      dialog.close();
      resolve(value);
    };
    // Nothing works without the token, so Escape does not dismiss the prompt.
    const keep = (event) => event.preventDefault();
    form.addEventListener("submit", submit);
    dialog.addEventListener("cancel", keep);
  });
}

/* Loading and live updates ------------------------------------------------------ */

let loading = null;

/**
 * Loads the queue on show afresh: the status (whose `queues` has every
 * queue's counts and agents), its pending list and its newest taken items. A
 * queue the server does not have yet (a new one, or a bookmarked one on a
 * fresh database) is shown empty. A switch to another queue while this runs
 * makes its answer moot: it is dropped and the other queue is loaded.
 */
function reload() {
  const queue = state.queue;
  if (loading && loading.queue === queue) return loading.promise;
  const promise = (async () => {
    try {
      const status = await api.status();
      if (state.queue !== queue) return;
      const entry = (status.queues ?? []).find((q) => q.name === queue);
      if (!entry) {
        putSnapshot({ status, pending: [], history: [] });
        return;
      }
      const total = entry.consumed_count;
      const want = Math.max(HISTORY_PAGE, state.history.length);
      const limit = Math.min(want, total);
      const [pending, consumed] = await Promise.all([
        api.pending(queue),
        limit > 0 ? api.consumed(queue, limit, total - limit) : Promise.resolve({ items: [] }),
      ]);
      if (state.queue !== queue) return;
      putSnapshot({ status, pending: pending.items, history: consumed.items.reverse() });
    } finally {
      if (loading?.promise === promise) loading = null;
    }
  })();
  loading = { queue, promise };
  return promise;
}

let checkTimer = 0;

/**
 * `status.changed` carries every queue's counts; if the one on show disagrees
 * with its list for a while (an event was missed), reload rather than show a
 * wrong queue.
 */
function checkCounts(status) {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => {
    const entry = (status.queues ?? []).find((q) => q.name === state.queue);
    if (state.loaded && (entry?.pending_count ?? 0) !== state.pending.length) reload().catch(() => {});
  }, 600);
}

/** The queue an event is about; events from before queues existed are the default queue's. */
function queueOf(data) {
  return data?.queue ?? DEFAULT_QUEUE;
}

function onEvent(type, envelope) {
  const data = envelope.data;
  switch (type) {
    case "instruction.created":
    case "instruction.updated":
    case "instruction.consumed":
    case "instruction.deleted":
      // Another queue's: its tab's count comes with the next status.changed
      // (within a quarter of a second). Counting events here instead could
      // count one twice, when that status was read just after the change.
      if (queueOf(data) !== state.queue) break;
      if (type === "instruction.deleted") {
        dropItem(data.id);
      } else {
        putItem(data);
        if (type === "instruction.consumed") {
          const who = data.consumed_by_agent_id ?? "The agent";
          announce(`${who} took: ${data.content.slice(0, 140)}`);
        }
      }
      break;
    case "instruction.reordered":
      if (queueOf(data) === state.queue) reordered(data.ids ?? []);
      break;
    case "config.updated":
      setSettings(data);
      break;
    case "agent.updated":
      putAgent(data);
      break;
    case "status.changed":
      putStatus(data);
      if (envelope.refetch) reload().catch(() => {});
      else checkCounts(data);
      break;
    default:
      break;
  }
}

function showConnection(s) {
  const el = document.getElementById("connection");
  el.dataset.state = s.connection;
  const text = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" }[s.connection];
  setText(el.querySelector(".connection-text"), text);
  el.title =
    s.connection === "live"
      ? "Changes appear here as they happen."
      : "The live connection to the server dropped; trying again. What you see may be out of date.";
}

function showTitle(s) {
  const n = s.pending.length;
  const name = manyQueues(s) ? `${s.queue} · local-mcp` : "local-mcp";
  const title = n > 0 ? `(${n}) ${name}` : name;
  if (document.title !== title) document.title = title;
  if (s.server) setText(document.getElementById("server-version"), `local-mcp ${s.server.version}`);
}

function start() {
  initTheme();
  initShortcuts();
  onTokenNeeded(askForToken);
  // The queue the address names is on show from the first paint.
  selectQueue(initQueues(() => reload().catch(() => {})));
  initInstructions(() => reload().catch(() => {}));
  initAgents();
  initSettings();
  subscribe(showConnection);
  subscribe(showTitle);
  // The first paint should not wait for the event stream to open.
  reload().catch(() => {});

  connect({
    open() {
      // Everything may have changed while the stream was down (or before it
      // opened): take a fresh copy, then follow the events.
      reload()
        .then(() => setConnection("live"))
        .catch(() => setConnection("reconnecting"));
    },
    drop() {
      setConnection("reconnecting");
    },
    message: onEvent,
  });
}

start();
