// The agent's state, loudest thing on the page: the status strip ("waiting
// for you · 14 s" with a pulse while a call is in flight) and the agents panel
// with every agent seen. Both are the queue on show's. Relative times refresh
// every second by themselves.

import { formatAgo, formatDuration, h, numberFormat, reconcile, secondsSince, setText } from "./dom.js";
import { DEFAULT_QUEUE, isDraft, manyQueues, state, subscribe } from "./state.js";

export const LABELS = {
  waiting: "waiting for you",
  working: "working",
  idle: "idle",
  gone: "gone",
};

export function initAgents() {
  subscribe(render);
  setInterval(() => tick(state), 1000);
}

/** What the strip says for an agent: its state, with the time waited while waiting. */
export function stripText(agent, now = Date.now()) {
  if (!agent) return "no agent yet";
  const label = LABELS[agent.state] ?? agent.state;
  if (agent.state === "waiting") return `${label} · ${formatDuration(secondsSince(agent.last_seen_at, now))}`;
  return label;
}

function agentItem(agent) {
  return h(
    "li",
    { class: "agent", dataset: { agentId: agent.agent_id } },
    h("span", { class: "agent-dot", "aria-hidden": "true" }),
    h("span", { class: "agent-name" }),
    h(
      "span",
      { class: "agent-line" },
      h("span", { class: "agent-state agent-state-label" }),
      h("span", { class: "agent-seen" }),
    ),
    h("span", { class: "agent-times agent-fetch" }),
  );
}

function refreshAgent(li, agent, now = Date.now()) {
  li.dataset.state = agent.state;
  setText(li.querySelector(".agent-name"), agent.agent_id);
  setText(li.querySelector(".agent-state"), LABELS[agent.state] ?? agent.state);
  const seen =
    agent.state === "waiting"
      ? `for ${formatDuration(secondsSince(agent.last_seen_at, now))}`
      : `seen ${formatAgo(agent.last_seen_at, now)}`;
  setText(li.querySelector(".agent-seen"), seen);
  const fetched = agent.last_fetch_at
    ? `last took one ${formatAgo(agent.last_fetch_at, now)}`
    : "has not taken anything yet";
  setText(li.querySelector(".agent-fetch"), fetched);
}

function render(s) {
  const agent = s.agent;
  const stateName = agent ? agent.state : "none";
  const strip = document.querySelector(".strip");
  strip.dataset.state = stateName;
  const label = document.getElementById("agent-state");
  label.dataset.state = stateName;
  setText(label, stripText(agent));
  setText(document.getElementById("agent-name"), agent ? agent.agent_id : "");
  setText(document.getElementById("pending-count"), numberFormat.format(s.pending.length));
  setText(document.getElementById("taken-count"), numberFormat.format(s.historyTotal));

  reconcile(
    document.getElementById("agent-list"),
    s.agents,
    (a) => a.agent_id,
    (a) => {
      const li = agentItem(a);
      refreshAgent(li, a);
      return li;
    },
    (li, a) => refreshAgent(li, a),
  );
  document.getElementById("agents-empty").hidden = !s.loaded || s.agents.length > 0;
  showQueueHelp(s);
}

/** The queue's name in the strip, and how to get an agent onto a queue other than `default`. */
function showQueueHelp(s) {
  const many = manyQueues(s);
  document.getElementById("queue-fact").hidden = !many;
  setText(document.getElementById("queue-name"), s.queue);
  const named = s.queue !== DEFAULT_QUEUE;
  const command = named ? ` --queue ${s.queue}` : "";
  setText(document.getElementById("agents-command"), `local-mcp mcp-config --client claude-code${command}`);
  const hint = document.getElementById("agents-queue-hint");
  hint.hidden = !named;
  setText(
    hint,
    `With --queue ${s.queue} every agent started from that config takes from this queue. Without it, each project gets a queue named after its folder; an agent can also pass "queue": "${s.queue}" to get_user_request.`,
  );
  const note = document.getElementById("pending-empty-queue");
  note.hidden = !named;
  setText(
    note,
    isDraft(s, s.queue)
      ? `“${s.queue}” is a new queue: it is kept on the server once you send its first instruction or an agent calls on it. Only agents on this queue take from it.`
      : `Only agents on the queue “${s.queue}” take from it.`,
  );
}

function tick(s) {
  const now = Date.now();
  setText(document.getElementById("agent-state"), stripText(s.agent, now));
  for (const li of document.querySelectorAll("#agent-list li.agent")) {
    const agent = s.agents.find((a) => a.agent_id === li.dataset.agentId);
    if (agent) refreshAgent(li, agent, now);
  }
}
