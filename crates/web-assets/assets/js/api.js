// The JSON API client: every request goes through `request`, which adds the
// token when there is one, turns error bodies into `ApiError`s, and on a 401
// asks the person for the token once and retries.

const TOKEN_KEY = "local-mcp:token";

/** An error answer from the API, with its status, code, message and field. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field ?? null;
  }
}

let askForToken = null;
let pendingAsk = null;

/** Sets the function that asks the person for a token; it resolves with the token. */
export function onTokenNeeded(ask) {
  askForToken = ask;
}

/** The token kept for this tab, or null. */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function saveToken(value) {
  try {
    sessionStorage.setItem(TOKEN_KEY, value);
  } catch {
    // Private modes may refuse storage; the token then lasts until reload.
  }
  memoryToken = value;
}

let memoryToken = null;

/** Headers for a request: the bearer token, when one is known. */
export function authHeaders() {
  const value = token() ?? memoryToken;
  return value ? { Authorization: `Bearer ${value}` } : {};
}

/**
 * Waits until the person has given a token. Several requests that hit a 401
 * together share one prompt.
 */
export async function obtainToken(rejected) {
  if (!askForToken) throw new ApiError(401, "unauthorized", "this server needs a token");
  if (!pendingAsk) {
    pendingAsk = askForToken(rejected).then(
      (value) => {
        saveToken(value);
        pendingAsk = null;
        return value;
      },
      (err) => {
        pendingAsk = null;
        throw err;
      },
    );
  }
  return pendingAsk;
}

/** Checks a candidate token against the API without keeping it. */
export async function tokenWorks(value) {
  const res = await fetch("/api/config", {
    headers: { Authorization: `Bearer ${value}`, Accept: "application/json" },
    cache: "no-store",
  });
  return res.ok;
}

async function errorFrom(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // Not JSON: a proxy or a crash page. The status says enough.
  }
  const err = body?.error;
  const message =
    err?.message ??
    (res.status >= 500
      ? "the server could not do that just now; try again"
      : `the server answered ${res.status}`);
  return new ApiError(res.status, err?.code ?? "http", message, err?.field);
}

/**
 * Sends one API request and returns the parsed JSON body (null for 204).
 * Throws `ApiError` for error answers and for network failures (status 0).
 */
export async function request(method, path, body) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Accept: "application/json", ...authHeaders() };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", "the server cannot be reached; is local-mcp still running?");
    }
    if (res.status === 401 && attempt < 3) {
      await obtainToken(attempt > 0 || Boolean(token()));
      continue;
    }
    if (!res.ok) throw await errorFrom(res);
    if (res.status === 204) return null;
    return res.json();
  }
}

/** `?queue=NAME` (or `&queue=NAME` after `join`), for the routes that take one. */
function inQueue(queue, join = "?") {
  return `${join}queue=${encodeURIComponent(queue)}`;
}

const item = (id) => `/api/instructions/${encodeURIComponent(id)}`;

export const api = {
  /** Every queue's counts and agents are in its `queues`; `queue` picks whose `agent`, `agents` and `queue` it shows. */
  status: (queue = null) => request("GET", queue === null ? "/api/status" : `/api/status${inQueue(queue)}`),
  pending: (queue) => request("GET", `/api/instructions?status=pending${inQueue(queue, "&")}`),
  consumed: (queue, limit, offset) =>
    request("GET", `/api/instructions?status=consumed&limit=${limit}&offset=${offset}${inQueue(queue, "&")}`),
  /** Queues `content` at the end of `queue`; with `to`, only that agent of the queue may take it. */
  create: (content, queue, to = null) =>
    request("POST", "/api/instructions", to ? { content, queue, to_agent_id: to } : { content, queue }),
  edit: (id, content, queue) => request("PATCH", `${item(id)}${inQueue(queue)}`, { content }),
  remove: (id, queue) => request("DELETE", `${item(id)}${inQueue(queue)}`),
  requeue: (id, queue) => request("POST", `${item(id)}/requeue${inQueue(queue)}`, {}),
  reorder: (ids, queue) => request("POST", "/api/instructions/reorder", { ids, queue }),
  config: () => request("GET", "/api/config"),
  saveConfig: (patch) => request("PATCH", "/api/config", patch),
};
