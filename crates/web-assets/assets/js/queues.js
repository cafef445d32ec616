// Named queues: the tabs that switch between them (each with its pending count
// and its agents' states, live for every queue), the "New queue…" dialog, and
// the queue on show kept in the address (`#queue=shop`) so that it survives a
// reload and can be bookmarked. With only the `default` queue there are no tabs.

import { h, numberFormat, reconcile, setText, toast } from "./dom.js";
import { LABELS } from "./agents.js";
import {
  DEFAULT_QUEUE,
  agentsOf,
  isDraft,
  manyQueues,
  pendingOf,
  queueNames,
  selectQueue,
  state,
  subscribe,
} from "./state.js";

/** At most this many agent dots on a tab; the rest are counted ("+3"). */
const DOTS = 5;
const NAME_MAX = 128;
const NAME_CHARS = /^[A-Za-z0-9._:@-]+$/;

let onSwitch = () => {};

/**
 * Wires the tabs, the dialog and the address. `switched()` runs after the
 * queue on show changed (the app then loads it). Returns the queue to show
 * first: the one the address names, else `default`.
 */
export function initQueues(switched) {
  onSwitch = switched;
  initTabs();
  initDialog();
  window.addEventListener("hashchange", () => {
    const wanted = queueFromAddress();
    if (wanted !== state.queue) show(wanted, { focus: false });
  });
  subscribe(render);
  return queueFromAddress();
}

/**
 * Why `name` cannot be a queue name (the server's rule: 1–128 of A–Z a–z 0–9
 * and `. _ : @ -`), or null when it can.
 */
export function queueNameProblem(name) {
  if (name === "") return "Type a name for the queue.";
  if (name.length > NAME_MAX) return `That is ${name.length} characters; a queue name has at most ${NAME_MAX}.`;
  if (!NAME_CHARS.test(name)) {
    const bad = [...name].find((c) => !NAME_CHARS.test(c));
    const shown = bad === " " ? "a space" : `“${bad}”`;
    return `A queue name may only contain letters, digits and . _ : @ - (it has ${shown}).`;
  }
  return null;
}

/** The queue the address names (`#queue=shop`), `default` when none or when the name is not a queue name. */
function queueFromAddress() {
  const name = new URLSearchParams(location.hash.slice(1)).get("queue");
  if (name === null || name === "") return DEFAULT_QUEUE;
  if (queueNameProblem(name)) {
    toast(`“${name.slice(0, 40)}” in the address is not a queue name; showing the default queue.`);
    writeAddress(DEFAULT_QUEUE);
    return DEFAULT_QUEUE;
  }
  return name;
}

/** Puts the queue on show in the address without adding a history entry; `default` leaves it bare. */
function writeAddress(name) {
  const bare = location.pathname + location.search;
  const url = name === DEFAULT_QUEUE ? bare : `${bare}#queue=${name}`;
  if (location.pathname + location.search + location.hash !== url) history.replaceState(null, "", url);
}

/** Shows queue `name`: selects its tab, writes the address and has the app load it. */
export function show(name, { focus = false } = {}) {
  if (name !== state.queue) {
    selectQueue(name);
    writeAddress(name);
    onSwitch();
  }
  if (focus) requestAnimationFrame(() => tabOf(name)?.focus());
}

/* Tabs ---------------------------------------------------------------------- */

function tabOf(name) {
  return document.querySelector(`#queue-tabs [role="tab"][data-queue="${CSS.escape(name)}"]`);
}

function initTabs() {
  const list = document.getElementById("queue-tabs");
  list.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) show(tab.dataset.queue, { focus: true });
  });
  // Arrow keys move along the tabs and show each queue as they go (a switch
  // costs one local request); Home and End jump to the ends.
  list.addEventListener("keydown", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (!tab || event.altKey || event.ctrlKey || event.metaKey) return;
    const names = queueNames(state);
    const at = names.indexOf(tab.dataset.queue);
    let to = -1;
    if (event.key === "ArrowRight") to = (at + 1) % names.length;
    else if (event.key === "ArrowLeft") to = (at - 1 + names.length) % names.length;
    else if (event.key === "Home") to = 0;
    else if (event.key === "End") to = names.length - 1;
    if (to === -1) return;
    event.preventDefault();
    show(names[to], { focus: true });
  });
}

function queueTab(name) {
  return h(
    "button",
    { class: "queue-tab", type: "button", role: "tab", id: `queue-tab-${name}`, dataset: { queue: name } },
    h("span", { class: "queue-tab-name", text: name }),
    h("span", { class: "queue-tab-count mono" }),
    h("span", { class: "queue-tab-agents" }),
    h("span", { class: "visually-hidden queue-tab-says" }),
  );
}

/** `a1 waiting for you, a2 working`: a queue's agents as words. */
function agentsInWords(agents) {
  if (agents.length === 0) return "no agent yet";
  return agents.map((a) => `${a.agent_id} ${LABELS[a.state] ?? a.state}`).join(", ");
}

function refreshTab(tab, name, s) {
  const selected = name === s.queue;
  tab.setAttribute("aria-selected", String(selected));
  tab.tabIndex = selected ? 0 : -1;
  tab.setAttribute("aria-controls", "queue-panel");
  const draft = isDraft(s, name);
  tab.dataset.draft = String(draft);
  const pending = pendingOf(s, name);
  tab.dataset.pending = String(pending);
  const count = tab.querySelector(".queue-tab-count");
  setText(count, draft ? "new" : numberFormat.format(pending));
  count.dataset.zero = String(pending === 0);

  const agents = agentsOf(s, name);
  const dots = tab.querySelector(".queue-tab-agents");
  reconcile(
    dots,
    agents.slice(0, DOTS),
    (a) => a.agent_id,
    () => h("span", { class: "queue-tab-agent", "aria-hidden": "true" }),
    () => {},
  );
  agents.slice(0, DOTS).forEach((a, i) => {
    const dot = dots.children[i];
    dot.dataset.state = a.state;
    dot.title = `${a.agent_id}: ${LABELS[a.state] ?? a.state}`;
  });
  tab.dataset.more = agents.length > DOTS ? `+${agents.length - DOTS}` : "";
  // What the tab says to a screen reader after its name: the count and the agents.
  const waiting = draft ? "new queue, nothing sent yet" : `${numberFormat.format(pending)} up next`;
  setText(tab.querySelector(".queue-tab-says"), `, ${waiting}; ${agentsInWords(agents)}`);
  tab.title = `${name}: ${waiting}; ${agentsInWords(agents)}`;
  count.setAttribute("aria-hidden", "true");
}

function render(s) {
  const many = manyQueues(s);
  const bar = document.getElementById("queues");
  bar.hidden = !many;
  const panel = document.getElementById("queue-panel");
  if (many) {
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", `queue-tab-${s.queue}`);
  } else {
    panel.removeAttribute("role");
    panel.removeAttribute("aria-labelledby");
  }
  const names = many ? queueNames(s) : [];
  reconcile(
    document.getElementById("queue-tabs"),
    names,
    (name) => name,
    (name) => {
      const tab = queueTab(name);
      refreshTab(tab, name, s);
      return tab;
    },
    (tab, name) => refreshTab(tab, name, s),
  );
  // Keep the selected tab in sight when the tabs scroll sideways.
  if (many && shownTab !== s.queue) {
    shownTab = s.queue;
    tabOf(s.queue)?.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
}

let shownTab = null;

/* New queue dialog ------------------------------------------------------------ */

function initDialog() {
  const dialog = document.getElementById("queue-dialog");
  const form = document.getElementById("queue-form");
  const field = document.getElementById("queue-input");
  const error = document.getElementById("queue-error");

  const clear = () => {
    error.textContent = "";
    field.removeAttribute("aria-invalid");
  };

  document.getElementById("queue-new").addEventListener("click", () => {
    clear();
    field.value = "";
    dialog.showModal();
    field.focus();
  });
  document.getElementById("queue-cancel").addEventListener("click", () => dialog.close());
  field.addEventListener("input", clear);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = field.value.trim();
    const problem = queueNameProblem(name);
    if (problem) {
      error.textContent = problem;
      field.setAttribute("aria-invalid", "true");
      field.focus();
      return;
    }
    dialog.close();
    show(name);
    document.getElementById("composer-input").focus();
  });
}
