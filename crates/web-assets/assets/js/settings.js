// The settings form: filled from the live settings unless the person is
// editing it, saved with PATCH /api/config (only the fields that changed), and
// the API's validation messages shown next to the field they are about. They
// apply to every queue.

import { api, ApiError } from "./api.js";
import { setText } from "./dom.js";
import { messageOf, sentence } from "./instructions.js";
import { manyQueues, setSettings, subscribe } from "./state.js";

const FIELDS = ["default_wait_seconds", "default_empty_response", "agent_stale_after_seconds"];
const NUMERIC = new Set(["default_wait_seconds", "agent_stale_after_seconds"]);

let shown = null;

export function initSettings() {
  const form = document.getElementById("settings");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  form.addEventListener("input", (event) => {
    clearError(event.target.id);
    setText(document.getElementById("settings-status"), "");
  });
  subscribe(render);
}

function input(field) {
  return document.getElementById(field);
}

function clearError(field) {
  const error = document.getElementById(`${field}-error`);
  if (error) error.textContent = "";
  input(field)?.removeAttribute("aria-invalid");
}

/** The form's value for a field, as the API wants it: whole numbers as numbers when they are. */
function valueOf(field) {
  const raw = input(field).value;
  if (!NUMERIC.has(field)) return raw;
  const trimmed = raw.trim();
  return /^-?\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

function dirty(field) {
  return shown !== null && String(valueOf(field)) !== String(shown[field]);
}

async function save() {
  const status = document.getElementById("settings-status");
  const button = document.getElementById("settings-save");
  FIELDS.forEach(clearError);
  const patch = {};
  for (const field of FIELDS) if (dirty(field)) patch[field] = valueOf(field);
  button.disabled = true;
  setText(status, "Saving…");
  try {
    const settings = await api.saveConfig(patch);
    shown = null;
    setSettings(settings);
    setText(status, "Saved");
  } catch (err) {
    if (err instanceof ApiError && err.field && FIELDS.includes(err.field)) {
      // The label beside the field already names it: say only what is wrong.
      const rest = err.message.startsWith(err.field) ? err.message.slice(err.field.length).trim() : err.message;
      document.getElementById(`${err.field}-error`).textContent = sentence(rest);
      input(err.field).setAttribute("aria-invalid", "true");
      input(err.field).focus();
      setText(status, "Not saved: see the message above.");
    } else {
      setText(status, `Not saved: ${messageOf(err)}`);
    }
  } finally {
    button.disabled = false;
  }
}

function render(s) {
  // With several queues, say that the settings are not the queue's own.
  document.getElementById("settings-scope").hidden = !manyQueues(s);
  if (!s.settings) return;
  for (const field of FIELDS) {
    const el = input(field);
    const incoming = s.settings[field];
    // Keep what the person typed and has not saved yet, unless the setting
    // itself changed meanwhile (saved elsewhere) and they are not in that field.
    const changedElsewhere = shown !== null && shown[field] !== incoming;
    if (dirty(field) && (!changedElsewhere || document.activeElement === el)) continue;
    const value = String(incoming);
    if (el.value !== value) el.value = value;
  }
  shown = { ...s.settings };
}
