// Small DOM and formatting helpers shared by the features: element building,
// keyed list reconciliation that keeps focus, times, the toast and the
// screen-reader announcer.

/** Builds an element: `h("button", {class: "x", onclick}, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** Sets text only when it changed, so screen readers and selection are not disturbed. */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/**
 * Makes `list`'s children one per item, in order, reusing the element of an
 * item with the same key. `make(item)` builds a new element and `refresh(el,
 * item)` brings an existing one up to date. Focus inside a moved element is
 * put back after the move.
 */
export function reconcile(list, items, key, make, refresh) {
  const focused = document.activeElement;
  const focusedItem = focused && list.contains(focused) ? focused : null;
  const existing = new Map();
  for (const child of list.children) existing.set(child.dataset.key, child);
  let cursor = list.firstElementChild;
  for (const item of items) {
    const k = key(item);
    let el = existing.get(k);
    if (el) {
      existing.delete(k);
      refresh(el, item);
    } else {
      el = make(item);
      el.dataset.key = k;
    }
    if (el === cursor) {
      cursor = cursor.nextElementSibling;
    } else {
      list.insertBefore(el, cursor);
    }
  }
  for (const stale of existing.values()) stale.remove();
  // Moving an element drops its focus; give it back, unless focus went
  // somewhere on purpose meanwhile (an editor that opened, say).
  const lost = document.activeElement === null || document.activeElement === document.body;
  if (focusedItem && focusedItem.isConnected && lost) {
    focusedItem.focus({ preventScroll: true });
  }
}

// A 24-hour clock, as on a departure board, whatever the locale's habit.
const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
});
const shortClock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dateClock = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

/** `14:32:05`, or `Nov 20, 14:32` for another day. */
export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date();
  return date.toDateString() === today.toDateString() ? clock.format(date) : dateClock.format(date);
}

/** `14:32`. */
export function formatShortTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : shortClock.format(date);
}

/** Whole seconds from `iso` until now (never negative). */
export function secondsSince(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return 0;
  return Math.max(0, Math.floor((now - then) / 1000));
}

/** `just now`, `12 s ago`, `3 min ago`, `2 h ago`, `4 d ago`. */
export function formatAgo(iso, now = Date.now()) {
  if (!iso) return "never";
  const s = secondsSince(iso, now);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** `14 s`, `3 min 05 s`, `1 h 02 min`. */
export function formatDuration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
  }
  return `${Math.floor(seconds / 3600)} h ${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")} min`;
}

export const numberFormat = new Intl.NumberFormat("en-US");

let announced = { at: 0, text: "" };

/**
 * Says `message` to screen readers (the page's polite live region). Messages
 * that come close together are read as one, so a quick second one (an add
 * that wakes the agent, then the agent taking it) does not silence the first.
 */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  const now = Date.now();
  const text = now - announced.at < 1500 ? `${announced.text} ${message}` : message;
  announced = { at: now, text };
  // Clearing first makes a repeated message be read again.
  region.textContent = "";
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

let toastTimer = 0;

/**
 * Shows `message` at the bottom of the page for `ms`. With `action` ({label,
 * run}) the toast carries one button; pressing it runs the action and hides
 * the toast.
 */
export function toast(message, action = null, ms = 8000) {
  const box = document.getElementById("toast");
  const text = document.getElementById("toast-text");
  const button = document.getElementById("toast-undo");
  clearTimeout(toastTimer);
  text.textContent = message;
  button.hidden = !action;
  button.onclick = null;
  if (action) {
    button.textContent = action.label;
    button.onclick = () => {
      hideToast();
      action.run();
    };
  }
  box.hidden = false;
  toastTimer = setTimeout(hideToast, ms);
}

export function hideToast() {
  clearTimeout(toastTimer);
  const box = document.getElementById("toast");
  if (box.contains(document.activeElement)) document.getElementById("composer-input")?.focus();
  box.hidden = true;
}

/** Whether an event target is a place where typing text goes. */
export function isTyping(target) {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}
