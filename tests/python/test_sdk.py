"""local-mcp's MCP contract (SPEC.md §3) through the official MCP Python SDK.

Every test runs over stdio and over streamable HTTP, with the SDK's
`Client(mode="auto")` (probes `server/discover`, the 2026-07-28 era, and falls
back to `initialize`) and `Client(mode="legacy")` (the `initialize` handshake,
2025-11-25 era). Instructions are queued by a separate `local-mcp add` process
on the same database.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import pytest
from conftest import LocalMcp
from mcp.shared.exceptions import MCPError
from mcp_types import REQUEST_TIMEOUT
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

pytestmark = pytest.mark.anyio

TOOL = "get_user_request"
TEST_LIMIT = 40  # seconds: no single test may run longer, whatever the server does


def payload(result: Any) -> dict[str, Any]:
    """The structured result, checked against the text content holding the same JSON."""
    assert not result.is_error, f"tool error: {result.content}"
    structured = result.structured_content
    assert structured is not None, f"no structuredContent: {result}"
    texts = [c.text for c in result.content if c.type == "text"]
    assert len(texts) == 1, f"expected one text content, got {result.content}"
    assert json.loads(texts[0]) == structured
    assert structured["status"] == "ok"
    return structured


def assert_no_instruction(p: dict[str, Any]) -> None:
    assert p["result_type"] == "default_response", p
    assert p["instruction"] is None, p
    assert isinstance(p.get("response"), str) and p["response"], p


# --- discovery ---------------------------------------------------------------


async def test_negotiated_era(server, mode):
    """`auto` reaches the 2026-07-28 era (server/discover); `legacy` uses initialize."""
    h = server()
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            if mode == "legacy":
                assert client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
                assert client.session.initialize_result is not None
            else:
                assert client.protocol_version in MODERN_PROTOCOL_VERSIONS, (
                    f"mode=auto fell back to {client.protocol_version}"
                )
                assert client.session.discover_result is not None
            assert client.server_info is not None and client.server_info.name == "local-mcp"
            assert client.instructions and "again" in client.instructions


async def test_list_tools(server):
    h = server()
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            listed = await client.list_tools()
    assert [t.name for t in listed.tools] == [TOOL]
    tool = listed.tools[0]
    assert tool.input_schema["type"] == "object"
    assert "agent_id" in tool.input_schema.get("properties", {})
    assert tool.output_schema is not None
    assert tool.output_schema["type"] == "object"
    assert {"status", "result_type", "instruction", "remaining_pending", "waited_seconds"} <= set(
        tool.output_schema["properties"]
    )
    assert tool.description and "again" in tool.description


# --- calls ---------------------------------------------------------------------


async def test_call_structured_equals_text(server):
    h = server(wait_seconds=1)
    iid = h.add("structured check")
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            result = await client.call_tool(TOOL, {})
            p = payload(result)
            assert p["result_type"] == "instruction"
            assert p["instruction"]["id"] == iid
            assert p["instruction"]["content"] == "structured check"
            assert p["instruction"]["consumed_at"]
            assert p["remaining_pending"] == 0
            assert isinstance(p["waited_seconds"], int | float)

            # The empty-queue answer has the same two forms.
            p = payload(await client.call_tool(TOOL, {"agent_id": "py-sdk"}))
            assert_no_instruction(p)


async def test_oldest_first_each_once(server):
    h = server(wait_seconds=1)
    ids = [h.add(text) for text in ("one", "two", "three")]
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            got = []
            for remaining in (2, 1, 0):
                p = payload(await client.call_tool(TOOL, {}))
                assert p["result_type"] == "instruction", p
                assert p["remaining_pending"] == remaining, p
                got.append((p["instruction"]["id"], p["instruction"]["content"]))
            assert got == list(zip(ids, ("one", "two", "three"), strict=True))

            started = time.monotonic()
            p = payload(await client.call_tool(TOOL, {}))
            assert_no_instruction(p)
            assert time.monotonic() - started >= 0.9
    assert h.pending() == []
    assert sorted(i["id"] for i in h.consumed()) == sorted(ids)


async def test_empty_queue_waits_then_default_response(server):
    h = server(wait_seconds=1)
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            started = time.monotonic()
            p = payload(await client.call_tool(TOOL, {}))
            took = time.monotonic() - started
    assert 0.9 <= took < 5, f"call took {took:.3f} s"
    assert_no_instruction(p)
    assert p["remaining_pending"] == 0
    assert 0.9 <= p["waited_seconds"] < 5, p


async def test_wakeup_by_another_process(server):
    h = server(wait_seconds=10)
    outcome: dict[str, Any] = {}
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:

            async def call() -> None:
                outcome["payload"] = payload(await client.call_tool(TOOL, {}))
                outcome["returned"] = time.monotonic()

            async with anyio.create_task_group() as tg:
                started = time.monotonic()
                tg.start_soon(call)
                await anyio.sleep(0.5)
                assert "payload" not in outcome, f"returned before anything was queued: {outcome}"
                iid = await anyio.to_thread.run_sync(h.add, "wake")
                added = time.monotonic()
    p = outcome["payload"]
    assert p["result_type"] == "instruction", p
    assert p["instruction"]["id"] == iid and p["instruction"]["content"] == "wake"
    assert outcome["returned"] - added < 3, f"woke {outcome['returned'] - added:.3f} s after the add"
    assert outcome["returned"] - started < 5
    assert h.pending() == []


async def test_abandoned_call_consumes_nothing(server):
    """SPEC §3 rule 5: a call the client gave up on must not swallow the next instruction.

    The server waits 5 s; the client gives up after 1 s (the SDK's per-request
    timeout). An instruction queued at t=2 s must still be pending at t=6 s,
    after the server's wait would have ended, and the next call gets it.
    """
    h = server(wait_seconds=5)
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            t0 = time.monotonic()
            with pytest.raises(MCPError) as timed_out:
                await client.call_tool(TOOL, {}, read_timeout_seconds=1)
            assert timed_out.value.code == REQUEST_TIMEOUT, timed_out.value
            assert time.monotonic() - t0 < 2.5

            await anyio.sleep(max(0.0, 2 - (time.monotonic() - t0)))
            iid = await anyio.to_thread.run_sync(h.add, "after the timeout")
            await anyio.sleep(max(0.0, 6 - (time.monotonic() - t0)))

            pending = await anyio.to_thread.run_sync(h.pending)
            consumed = await anyio.to_thread.run_sync(h.consumed)
            assert [i["id"] for i in pending] == [iid], (
                "the abandoned call swallowed the instruction queued after the client gave up\n"
                f"pending={pending}\nconsumed={consumed}\n--- server stderr ---\n{h.log()}"
            )
            assert consumed == []

            p = payload(await client.call_tool(TOOL, {}))
            assert p["result_type"] == "instruction", p
            assert p["instruction"]["id"] == iid
            assert p["instruction"]["content"] == "after the timeout"
    assert h.pending() == []
    assert [i["id"] for i in h.consumed()] == [iid]


@pytest.mark.parametrize(
    ("arguments", "mentions"),
    [({"agent_id": "has space"}, "agent_id"), ({"bogus": 1}, "bogus")],
    ids=["agent_id-with-space", "unknown-field"],
)
async def test_invalid_arguments_are_tool_errors(server, arguments, mentions):
    h = server(wait_seconds=1)
    iid = h.add("must stay pending")
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            result = await client.call_tool(TOOL, arguments)
    assert result.is_error is True, result
    text = " ".join(c.text for c in result.content if c.type == "text")
    assert mentions in text, f"message does not name {mentions!r}: {text!r}"
    assert 10 <= len(text) <= 500 and "\n" not in text.strip(), f"unreadable message: {text!r}"
    assert [i["id"] for i in h.pending()] == [iid]


# --- shutdown (SPEC §3 rule 8), HTTP server only --------------------------------


@pytest.mark.parametrize("transport", ["http"])
async def test_sigterm_exits_within_2s(server):
    h = server(wait_seconds=10)
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            await client.list_tools()
    h.terminate()
    took = await anyio.to_thread.run_sync(h.wait_exit, 3.0)
    assert took is not None and took <= 2.0, (
        f"`local-mcp serve` still running {3.0 if took is None else round(took, 3)} s after SIGTERM "
        f"(exit code {h.proc.poll()})\n--- server stderr ---\n{h.log()}"
    )


@pytest.mark.parametrize("transport", ["http"])
async def test_sigterm_ends_waiting_call_without_consuming(server):
    h = server(wait_seconds=10)
    outcome: dict[str, Any] = {}
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            # The SDK validates every result against the tool's outputSchema and lists
            # the tools first when it has not seen them: do that now, while the server
            # is still up, or that follow-up request fails against a stopped server.
            await client.list_tools()

            async def call() -> None:
                try:
                    outcome["payload"] = payload(await client.call_tool(TOOL, {}))
                except Exception as exc:  # reported below
                    outcome["error"] = repr(exc)
                outcome["returned"] = time.monotonic()

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.sleep(0.5)
                signalled = time.monotonic()
                h.terminate()
                with anyio.move_on_after(5):
                    while "returned" not in outcome:
                        await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
    exit_took = await anyio.to_thread.run_sync(h.wait_exit, 3.0)
    assert "returned" in outcome, f"the waiting call did not return within 5 s of SIGTERM\n{h.log()}"
    assert "payload" in outcome, f"the waiting call failed instead: {outcome}\n{h.log()}"
    assert_no_instruction(outcome["payload"])
    assert outcome["returned"] - signalled < 2
    assert exit_took is not None, f"`local-mcp serve` still running 3 s after SIGTERM\n{h.log()}"


# --- queues (issue 15) -------------------------------------------------------


async def test_the_queue_argument_picks_the_queue(server):
    """`queue` in the arguments takes from that queue and leaves `default` alone."""
    h = server()
    h.cli("add", "--queue", "shop", "for shop")
    h.add("for default")
    with anyio.fail_after(TEST_LIMIT):
        async with h.client() as client:
            p = payload(await client.call_tool(TOOL, {"queue": "shop", "agent_id": "a1"}))
            bad = await client.call_tool(TOOL, {"queue": "my shop"})
    assert p["queue"] == "shop" and p["instruction"]["content"] == "for shop", p
    assert bad.is_error and "invalid `queue`" in bad.content[0].text, bad
    assert [i["content"] for i in h.pending()] == ["for default"]


async def test_a_stdio_client_with_roots_gets_its_projects_queue(tmp_path, mode):
    """The official SDK's roots callback names the project; over stdio its folder is the queue.

    On the 2025-11-25 era (`legacy`) the server asks `roots/list` once. A client on
    the 2026-07-28 era (`auto`; SEP-2577 deprecates roots) declares no roots in its
    handshake, so it is not asked and gets the fallback queue at once: `default`
    here, the test folder being in no git repository.
    """
    from mcp_types import ListRootsResult, Root

    h = LocalMcp("stdio", mode, tmp_path, wait_seconds=0)
    h.cli("add", "--queue", "my-shop", "for my shop")
    h.add("for default")
    asked: list[bool] = []

    async def roots(_context: Any) -> ListRootsResult:
        asked.append(True)
        return ListRootsResult(roots=[Root(uri="file:///nowhere/projects/my%20shop")])

    try:
        with anyio.fail_after(TEST_LIMIT):
            async with h.client(list_roots_callback=roots) as client:
                p = payload(await client.call_tool(TOOL, {}))
    finally:
        h.stop()
    expected = {"legacy": ("my-shop", "for my shop", 1), "auto": ("default", "for default", 0)}
    queue, content, times_asked = expected[mode]
    assert p["queue"] == queue and p["instruction"]["content"] == content, p
    assert len(asked) == times_asked, asked
    left_on_default = {"legacy": ["for default"], "auto": []}[mode]
    assert [i["content"] for i in h.pending()] == left_on_default
