// The live event stream, read with fetch rather than EventSource so that the
// bearer token travels in a header and never in a URL. Reconnects by itself
// with a growing delay, and tells the app when it is live or dropped so the
// page can show "reconnecting…" and refetch everything once back.

import { authHeaders, obtainToken } from "./api.js";

/** No bytes for this long means the stream is dead (heartbeats come every 15 s). */
const SILENCE_MS = 40_000;
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 8_000;

/**
 * Splits SSE text into messages. Returns the messages complete so far and the
 * unfinished rest, which the caller prepends to the next chunk.
 */
export function parseFrames(buffer) {
  const messages = [];
  const normalised = buffer.replace(/\r\n?/g, "\n");
  const blocks = normalised.split("\n\n");
  const rest = blocks.pop();
  for (const block of blocks) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    if (data.length > 0 || id !== null) messages.push({ event, id, data: data.join("\n") });
  }
  return { messages, rest };
}

/**
 * Opens the stream and keeps it open. `handlers.open()` runs each time it
 * (re)connects, `handlers.drop()` when it is lost, `handlers.message(type,
 * envelope)` for every event. Returns a function that stops it.
 */
export function connect(handlers) {
  let lastId = null;
  let stopped = false;
  let controller = null;
  let retry = RETRY_MIN_MS;
  let silenceTimer = null;

  const armSilence = () => {
    clearTimeout(silenceTimer);
    silenceTimer = setTimeout(() => controller?.abort(), SILENCE_MS);
  };

  async function runOnce(attempt) {
    controller = new AbortController();
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    armSilence();
    const res = await fetch("/api/events", { headers, signal: controller.signal, cache: "no-store" });
    if (res.status === 401) {
      await obtainToken(Boolean(headers.Authorization));
      return;
    }
    if (!res.ok || !res.body) throw new Error(`events answered ${res.status}`);
    retry = RETRY_MIN_MS;
    attempt.opened = true;
    handlers.open();
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      armSilence();
      buffer += value;
      const { messages, rest } = parseFrames(buffer);
      buffer = rest;
      for (const message of messages) {
        if (message.id !== null) lastId = message.id;
        if (!message.data) continue;
        let envelope;
        try {
          envelope = JSON.parse(message.data);
        } catch {
          continue;
        }
        handlers.message(message.event, envelope);
      }
    }
  }

  async function loop() {
    while (!stopped) {
      const attempt = { opened: false };
      try {
        await runOnce(attempt);
      } catch {
        // Dropped, refused or timed out: all mean "try again shortly".
      } finally {
        clearTimeout(silenceTimer);
      }
      if (stopped) return;
      handlers.drop();
      if (!attempt.opened) retry = Math.min(retry * 2, RETRY_MAX_MS);
      await new Promise((resolve) => setTimeout(resolve, attempt.opened ? RETRY_MIN_MS : retry));
    }
  }

  loop();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
