// Instructions: the composer (to the queue on show, for any agent of it or for
// one), the pending rail (inline edit, delete with undo, drag, keyboard and
// button reordering) and the history of taken ones (struck through, stamped,
// "send again", paged so that ten thousand cost nothing). Every request names
// the queue on show.

import { api, ApiError } from "./api.js";
import {
  announce,
  formatShortTime,
  formatTime,
  h,
  numberFormat,
  reconcile,
  setText,
  toast,
} from "./dom.js";
import {
  DEFAULT_QUEUE,
  HISTORY_PAGE,
  dropItem,
  manyQueues,
  orderPending,
  putItem,
  putOlder,
  setEditing,
  state,
  subscribe,
} from "./state.js";

export const CONTENT_LIMIT = 32_768;

let refetch = () => {};

/** Wires the composer, the lists and their controls. `reload()` refetches everything. */
export function initInstructions(reload) {
  refetch = reload;
  initComposer();
  initRail();
  initHistory();
  subscribe(render);
}

/* Composer ----------------------------------------------------------------- */

function initComposer() {
  const form = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const send = document.getElementById("composer-send");
  const error = document.getElementById("composer-error");
  const to = document.getElementById("composer-to");

  const showCount = () => {
    const count = document.getElementById("composer-count");
    // The server counts characters (Unicode scalar values), not UTF-16 units.
    const length = [...input.value].length;
    setText(count, `${numberFormat.format(length)} / ${numberFormat.format(CONTENT_LIMIT)}`);
    count.dataset.level = length > CONTENT_LIMIT ? "over" : length > CONTENT_LIMIT * 0.9 ? "near" : "";
  };

  const submit = async () => {
    if (send.disabled) return;
    send.disabled = true;
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    const queue = state.queue;
    const agent = to.value || null;
    try {
      const { item } = await api.create(input.value, queue, agent);
      if (item.queue === state.queue) putItem(item);
      input.value = "";
      showCount();
      announce(agent ? `Queued for ${agent}.` : "Queued.");
    } catch (err) {
      error.textContent = messageOf(err);
      input.setAttribute("aria-invalid", "true");
    } finally {
      send.disabled = false;
      input.focus();
    }
  };

  input.addEventListener("input", () => {
    showCount();
    if (error.textContent) {
      error.textContent = "";
      input.removeAttribute("aria-invalid");
    }
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  showCount();
}

/**
 * The composer's "For" menu: any agent of the queue on show, or one of them.
 * It appears once the queue has an agent; the choice stays while the queue
 * stays on show, and goes back to "any agent" on another queue.
 */
let composerQueue = null;

function renderComposer(s) {
  const field = document.getElementById("composer-to-field");
  const select = document.getElementById("composer-to");
  if (composerQueue !== s.queue) {
    composerQueue = s.queue;
    select.value = "";
  }
  const chosen = select.value;
  const names = s.agents.map((a) => a.agent_id).sort();
  if (chosen && !names.includes(chosen)) names.push(chosen);
  const wanted = ["", ...names];
  const have = [...select.options].map((o) => o.value);
  if (wanted.join("\n") !== have.join("\n")) {
    select.replaceChildren(
      h("option", { value: "", text: "any agent" }),
      ...names.map((name) => h("option", { value: name, text: name })),
    );
    select.value = chosen;
  }
  field.hidden = names.length === 0;
  const chip = document.getElementById("composer-queue");
  chip.hidden = !manyQueues(s);
  setText(chip, ` on ${s.queue}`);
}

/** A sentence for the person from any failure. */
export function messageOf(err) {
  return err instanceof ApiError ? sentence(err.message) : "Something went wrong; try again.";
}

/** `text` with a capital first letter and a full stop. */
export function sentence(text) {
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}

/* Pending rail ----------------------------------------------------------- */

function initRail() {
  const list = document.getElementById("pending-list");

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    const ticket = event.target.closest("li.ticket");
    if (!button || !ticket) return;
    const id = ticket.dataset.id;
    if (button.classList.contains("ticket-edit")) startEdit(id);
    else if (button.classList.contains("ticket-delete")) remove(id);
    else if (button.classList.contains("ticket-up")) move(id, -1);
    else if (button.classList.contains("ticket-down")) move(id, +1);
    else if (button.classList.contains("ticket-save")) saveEdit(id);
    else if (button.classList.contains("ticket-cancel")) cancelEdit(id);
  });

  list.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target.classList.contains("ticket-editor")) {
      editorKeys(event, target.closest("li.ticket").dataset.id);
      return;
    }
    if (!target.matches("li.ticket")) return;
    const id = target.dataset.id;
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      move(id, event.key === "ArrowUp" ? -1 : +1);
    } else if (!event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      const next = event.key === "ArrowUp" ? target.previousElementSibling : target.nextElementSibling;
      next?.focus();
    } else if (event.key === "Enter" || event.key === "e") {
      event.preventDefault();
      startEdit(id);
    } else if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      remove(id);
    }
  });

  initDrag(list);
}

function pendingTicket(item) {
  const li = h(
    "li",
    { class: "ticket", tabindex: "0", dataset: { id: item.id } },
    h(
      "div",
      { class: "ticket-num" },
      h("span", { class: "ticket-pos" }),
      h("span", { class: "ticket-handle", "aria-hidden": "true", title: "Drag to reorder", text: "⠿" }),
    ),
    h("div", { class: "ticket-body" }),
    h(
      "div",
      { class: "ticket-tools" },
      h("button", { class: "tool ticket-up", type: "button", text: "↑" }),
      h("button", { class: "tool ticket-down", type: "button", text: "↓" }),
      h("button", { class: "tool ticket-edit", type: "button", text: "Edit" }),
      h("button", { class: "tool danger ticket-delete", type: "button", text: "Delete" }),
    ),
  );
  return li;
}

function refreshPending(li, item, index, count) {
  const label = item.content.length > 60 ? `${item.content.slice(0, 57)}…` : item.content;
  const only = item.to_agent_id ? `, for ${item.to_agent_id} only` : "";
  li.setAttribute("aria-label", `${index + 1} of ${count}${only}: ${label}`);
  setText(li.querySelector(".ticket-pos"), String(index + 1).padStart(2, "0"));
  const up = li.querySelector(".ticket-up");
  const down = li.querySelector(".ticket-down");
  up.setAttribute("aria-label", `Move up: ${label}`);
  down.setAttribute("aria-label", `Move down: ${label}`);
  up.disabled = index === 0;
  down.disabled = index === count - 1;
  li.querySelector(".ticket-edit").setAttribute("aria-label", `Edit: ${label}`);
  li.querySelector(".ticket-delete").setAttribute("aria-label", `Delete: ${label}`);
  if (state.fresh.has(item.id)) animate(li, "is-new");

  const body = li.querySelector(".ticket-body");
  const editing = state.editing === item.id;
  const editor = body.querySelector(".ticket-editor");
  if (editing && !editor) {
    const area = h("textarea", {
      class: "ticket-editor",
      rows: "3",
      "aria-label": "Edit instruction",
      "aria-describedby": `hint-${item.id}`,
    });
    area.value = item.content;
    body.replaceChildren(
      area,
      h("p", { class: "editor-hint", id: `hint-${item.id}`, text: "Enter saves · Shift+Enter new line · Esc cancels" }),
      h("p", { class: "field-error", role: "alert" }),
      h(
        "div",
        { class: "ticket-tools" },
        h("button", { class: "tool ticket-save", type: "button", text: "Save" }),
        h("button", { class: "tool ticket-cancel", type: "button", text: "Cancel" }),
      ),
    );
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  } else if (!editing) {
    let text = body.querySelector(".ticket-text");
    if (!text || editor) {
      text = h("p", { class: "ticket-text" });
      body.replaceChildren(
        text,
        h("p", { class: "ticket-meta" }, h("span", { class: "ticket-for" }), h("span", { class: "ticket-queued" })),
      );
    }
    setText(text, item.content);
    const edited = item.updated_at !== item.created_at ? " · edited" : "";
    setText(body.querySelector(".ticket-queued"), `queued ${formatTime(item.created_at)}${edited}`);
    const marker = body.querySelector(".ticket-for");
    marker.hidden = !item.to_agent_id;
    setText(marker, item.to_agent_id ? `for ${item.to_agent_id}` : "");
    marker.title = item.to_agent_id ? `Only ${item.to_agent_id} can take this; other agents of the queue skip it.` : "";
  }
}

function startEdit(id) {
  setEditing(id);
}

function cancelEdit(id) {
  setEditing(null);
  focusTicket(id);
}

async function saveEdit(id) {
  const li = ticketOf(id);
  const area = li?.querySelector(".ticket-editor");
  if (!area) return;
  const error = li.querySelector(".field-error");
  try {
    const { item } = await api.edit(id, area.value, state.queue);
    setEditing(null);
    putItem(item);
    focusTicket(id);
    announce("Saved.");
  } catch (err) {
    if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
      setEditing(null);
      toast("The agent took that instruction before your edit was saved.");
      refetch();
      return;
    }
    error.textContent = messageOf(err);
    area.setAttribute("aria-invalid", "true");
    area.focus();
  }
}

function editorKeys(event, id) {
  if (event.key === "Escape") {
    event.preventDefault();
    event.stopPropagation();
    cancelEdit(id);
  } else if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    saveEdit(id);
  }
}

function ticketOf(id) {
  return document.querySelector(`#pending-list li.ticket[data-id="${CSS.escape(id)}"]`);
}

function focusTicket(id) {
  requestAnimationFrame(() => ticketOf(id)?.focus());
}

/* Delete with undo --------------------------------------------------------- */

async function remove(id) {
  const index = state.pending.findIndex((p) => p.id === id);
  if (index === -1) return;
  const item = state.pending[index];
  const queue = state.queue;
  // Where focus goes next: the ticket that takes this one's place.
  const neighbour = state.pending[index + 1] ?? state.pending[index - 1] ?? null;
  try {
    await api.remove(id, queue);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
      toast("Too late: the agent already took that instruction.");
      refetch();
    } else {
      toast(messageOf(err));
    }
    return;
  }
  dropItem(id);
  if (neighbour) focusTicket(neighbour.id);
  else document.getElementById("composer-input").focus();
  toast("Instruction deleted", { label: "Undo", run: () => restore(item, index) });
}

/**
 * Undo of a delete: the same text again (for the same agent, if it was for
 * one), at the same place in its queue, even when another queue is on show now.
 */
async function restore(deleted, index) {
  const queue = deleted.queue ?? DEFAULT_QUEUE;
  try {
    const { item } = await api.create(deleted.content, queue, deleted.to_agent_id ?? null);
    if (queue !== state.queue) {
      const { items } = await api.pending(queue);
      const ids = items.map((p) => p.id).filter((id) => id !== item.id);
      ids.splice(Math.min(index, ids.length), 0, item.id);
      await api.reorder(ids, queue);
      announce(`Instruction restored on ${queue}.`);
      return;
    }
    putItem(item);
    const ids = state.pending.map((p) => p.id).filter((id) => id !== item.id);
    ids.splice(Math.min(index, ids.length), 0, item.id);
    await reorder(ids);
    focusTicket(item.id);
    announce("Instruction restored.");
  } catch (err) {
    toast(messageOf(err));
  }
}

/* Reordering ------------------------------------------------------------------ */

let reorderChain = Promise.resolve();
/** Orders this page sent whose `instruction.reordered` echo has not come back yet, oldest first. */
const echoes = [];

/**
 * Shows the new order at once and sends it. Each request carries the order as
 * it was when the person made that move, so quick moves in a row are all kept;
 * on a refusal the page reloads the truth.
 */
function reorder(ids) {
  orderPending(ids);
  const order = ids.slice();
  const queue = state.queue;
  echoes.push(order.join(","));
  reorderChain = reorderChain.then(async () => {
    try {
      await api.reorder(order, queue);
    } catch (err) {
      echoes.length = 0;
      if (err instanceof ApiError && err.status === 409) {
        toast("The queue changed meanwhile; here it is as it is now.");
      } else {
        toast(messageOf(err));
      }
      refetch();
    }
  });
  return reorderChain;
}

/**
 * An `instruction.reordered` event. The echo of an order this page sent earlier
 * than its latest would briefly undo the person's later moves, so it is
 * skipped; any other order (from another page, say) is shown.
 */
export function reordered(ids) {
  const key = ids.join(",");
  const at = echoes.indexOf(key);
  if (at !== -1) {
    echoes.splice(0, at + 1);
    if (echoes.length > 0) return;
  }
  orderPending(ids);
}

function move(id, by) {
  const ids = state.pending.map((p) => p.id);
  const from = ids.indexOf(id);
  const to = from + by;
  if (from === -1 || to < 0 || to >= ids.length) return;
  ids.splice(from, 1);
  ids.splice(to, 0, id);
  reorder(ids);
  const position = `${to + 1} of ${ids.length}`;
  announce(`Moved to ${position}.`);
  focusTicket(id);
}

/**
 * Drag by the handle with pointer events (mouse, pen and touch alike). Dropped
 * on a ticket, the dragged one takes that ticket's place; between tickets, it
 * goes where the pointer is.
 */
function initDrag(list) {
  let drag = null;

  const clear = () => {
    for (const el of list.querySelectorAll(".is-drop-target")) el.classList.remove("is-drop-target", "after");
  };

  const targetIndex = (y) => {
    const tickets = [...list.querySelectorAll("li.ticket")];
    const from = tickets.indexOf(drag.li);
    const over = tickets.findIndex((t) => {
      const r = t.getBoundingClientRect();
      return t !== drag.li && y >= r.top && y <= r.bottom;
    });
    if (over !== -1) return { to: over, mark: tickets[over], after: over > from };
    let to = 0;
    for (const t of tickets) {
      if (t === drag.li) continue;
      const r = t.getBoundingClientRect();
      if (r.top + r.height / 2 < y) to += 1;
    }
    return { to, mark: null, after: false };
  };

  list.addEventListener("pointerdown", (event) => {
    const handle = event.target.closest(".ticket-handle");
    if (!handle || event.button !== 0) return;
    event.preventDefault();
    const li = handle.closest("li.ticket");
    drag = { li, id: li.dataset.id, pointer: event.pointerId };
    handle.setPointerCapture(event.pointerId);
    li.classList.add("is-dragging");
  });

  list.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.pointer) return;
    clear();
    const { mark, after } = targetIndex(event.clientY);
    if (mark) mark.classList.add("is-drop-target", ...(after ? ["after"] : []));
  });

  const finish = (event, commit) => {
    if (!drag || event.pointerId !== drag.pointer) return;
    const { to } = targetIndex(event.clientY);
    const { li, id } = drag;
    drag = null;
    clear();
    li.classList.remove("is-dragging");
    if (!commit) return;
    const ids = state.pending.map((p) => p.id);
    const from = ids.indexOf(id);
    if (from === -1 || from === to) return;
    ids.splice(from, 1);
    ids.splice(to, 0, id);
    reorder(ids);
    announce(`Moved to ${to + 1} of ${ids.length}.`);
  };
  list.addEventListener("pointerup", (event) => finish(event, true));
  list.addEventListener("pointercancel", (event) => finish(event, false));
}

/* History ------------------------------------------------------------------------ */

function initHistory() {
  const list = document.getElementById("history-list");
  list.addEventListener("click", async (event) => {
    const button = event.target.closest("button.ticket-requeue");
    if (!button) return;
    const id = button.closest("li.ticket").dataset.id;
    button.disabled = true;
    try {
      const { item } = await api.requeue(id, state.queue);
      if (item.queue === state.queue) putItem(item);
      announce("Sent again: it is at the end of the queue.");
    } catch (err) {
      toast(messageOf(err));
    } finally {
      button.disabled = false;
    }
  });

  document.getElementById("history-more").addEventListener("click", loadOlder);
}

/** Loads the next page of older taken items. */
export async function loadOlder() {
  const more = document.getElementById("history-more");
  const loaded = state.history.length;
  const remaining = state.historyTotal - loaded;
  const queue = state.queue;
  if (remaining <= 0) return;
  more.disabled = true;
  try {
    const limit = Math.min(HISTORY_PAGE, remaining);
    const page = await api.consumed(queue, limit, remaining - limit);
    if (queue === state.queue) putOlder(page.items.reverse());
  } catch (err) {
    toast(messageOf(err));
  } finally {
    more.disabled = false;
  }
}

function historyTicket(item) {
  return h(
    "li",
    { class: "ticket consumed", dataset: { id: item.id } },
    h("div", { class: "ticket-num" }, h("time", { class: "mono" })),
    h(
      "div",
      { class: "ticket-body" },
      h("del", {}, h("span", { class: "ticket-text" })),
      h(
        "p",
        { class: "stamp" },
        h("span", { text: "taken" }),
        h("span", { class: "consumed-by" }),
        h("time", { class: "consumed-at" }),
      ),
    ),
    h(
      "div",
      { class: "ticket-tools" },
      h("button", { class: "tool ticket-requeue", type: "button", text: "Send again" }),
    ),
  );
}

function refreshHistory(li, item) {
  setText(li.querySelector(".ticket-text"), item.content);
  const at = li.querySelector("time.consumed-at");
  at.setAttribute("datetime", item.consumed_at ?? "");
  setText(at, formatTime(item.consumed_at));
  const stub = li.querySelector(".ticket-num time");
  stub.setAttribute("datetime", item.consumed_at ?? "");
  setText(stub, formatShortTime(item.consumed_at));
  setText(li.querySelector(".consumed-by"), item.consumed_by_agent_id ? `by ${item.consumed_by_agent_id}` : "");
  const label = item.content.length > 60 ? `${item.content.slice(0, 57)}…` : item.content;
  li.querySelector(".ticket-requeue").setAttribute("aria-label", `Send again: ${label}`);
  if (state.fresh.has(item.id)) animate(li, "is-taken");
}

/* Rendering ------------------------------------------------------------------------ */

/** Plays a one-off entrance animation; the class goes when it ends, so a later render cannot cut it short. */
function animate(el, name) {
  el.classList.add(name);
  el.addEventListener("animationend", () => el.classList.remove(name), { once: true });
}

function render(s) {
  renderComposer(s);
  const pendingList = document.getElementById("pending-list");
  const count = s.pending.length;
  const place = new Map(s.pending.map((item, i) => [item.id, i]));
  reconcile(
    pendingList,
    s.pending,
    (item) => item.id,
    (item) => {
      const li = pendingTicket(item);
      refreshPending(li, item, place.get(item.id), count);
      return li;
    },
    (li, item) => refreshPending(li, item, place.get(item.id), count),
  );
  document.getElementById("pending-empty").hidden = !s.loaded || count > 0;

  reconcile(
    document.getElementById("history-list"),
    s.history,
    (item) => item.id,
    (item) => {
      const li = historyTicket(item);
      refreshHistory(li, item);
      return li;
    },
    refreshHistory,
  );
  const older = s.historyTotal - s.history.length;
  const more = document.getElementById("history-more");
  more.hidden = older <= 0;
  setText(more, `Show older (${numberFormat.format(older)} more)`);
  document.getElementById("history-empty").hidden = !s.loaded || s.historyTotal > 0;
  setText(document.getElementById("history-count"), numberFormat.format(s.historyTotal));
}
