"""Harness for driving the `local-mcp` binary with the official MCP Python SDK.

Every test gets a fresh database in its own temporary directory. The `server`
fixture is a factory, parametrized over transport (`stdio`, `http`) and the
SDK's protocol-selection mode (`auto`, `legacy`):

    h = server(wait_seconds=1)          # starts `local-mcp serve` for http
    async with h.client() as client:    # spawns `local-mcp stdio` for stdio
        ...
    h.add("text")                       # `local-mcp add`, a separate process
    h.pending(), h.consumed()           # `local-mcp list --status ... --json`

Everything is bounded: process start-up, CLI calls and server shutdown have
time limits, and each test wraps its body in `anyio.fail_after`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LOCAL_MCP_BIN") or REPO / "target" / "debug" / "local-mcp")

TRANSPORTS = ("stdio", "http")
MODES = ("auto", "legacy")

STARTUP_TIMEOUT = 10.0  # seconds to wait for `listening on http://127.0.0.1:PORT`
CLI_TIMEOUT = 20.0  # seconds for one `local-mcp add` / `list`
STOP_GRACE = 2.0  # seconds after SIGTERM before teardown sends SIGKILL (SPEC §3 rule 8: exits within 2 s)

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
QUEUED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def base_env(tmp: Path, wait_seconds: float) -> dict[str, str]:
    """A clean environment: nothing from the caller's shell but PATH and HOME."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp)),
        "DB_PATH": str(tmp / "q.sqlite3"),
        "DEFAULT_WAIT_SECONDS": str(wait_seconds),
        "LOG_LEVEL": "debug",
        "NO_COLOR": "1",
    }
    return env


_STARTED: list[int] = []  # pids of every `local-mcp serve` this session started
_REAPERS: list[threading.Thread] = []
_KILLED: list[int] = []  # pids that needed SIGKILL after STOP_GRACE


def _reap(proc: subprocess.Popen[str], drain: threading.Thread | None) -> None:
    try:
        proc.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        _KILLED.append(proc.pid)
        proc.kill()
        proc.wait(10)
    if drain is not None:
        drain.join(5)


def _join_reapers() -> None:
    while _REAPERS:
        _REAPERS.pop().join(STOP_GRACE + 15)


def pytest_unconfigure(config: pytest.Config) -> None:
    _join_reapers()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    started = len(_STARTED)
    _join_reapers()
    if _KILLED:
        terminalreporter.write_line(
            f"note: {len(_KILLED)} of {started} `local-mcp serve` processes were still running "
            f"{STOP_GRACE} s after SIGTERM in teardown and were killed"
        )


class LocalMcp:
    """One test's server set-up: a database, an environment and, for HTTP, a process."""

    def __init__(self, transport: str, mode: str, tmp: Path, wait_seconds: float) -> None:
        self.transport = transport
        self.mode = mode
        self.tmp = tmp
        self.env = base_env(tmp, wait_seconds)
        self.log_path = tmp / "server-stderr.log"
        self._log_lines: list[str] = []
        self._log_lock = threading.Lock()
        self._errlog: IO[str] | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.url: str | None = None
        self._drain: threading.Thread | None = None
        self.exit_before_stop: int | None = None  # set when the server had died before teardown

    # --- server process ---------------------------------------------------

    def start(self) -> None:
        if self.transport == "http":
            self._start_http()

    def _start_http(self) -> None:
        env = dict(self.env, HTTP_PORT="0", HOST="127.0.0.1")
        self.proc = subprocess.Popen(
            [str(BIN), "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        _STARTED.append(self.proc.pid)
        port: list[str] = []
        seen = threading.Event()
        proc = self.proc

        def drain() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:  # keeps the pipe empty for the whole run
                with self._log_lock:
                    self._log_lines.append(line)
                if not port and (m := LISTENING.search(line)):
                    port.append(m.group(1))
                    seen.set()
            seen.set()  # EOF: the process is gone

        self._drain = threading.Thread(target=drain, name="local-mcp-stderr", daemon=True)
        self._drain.start()
        if not seen.wait(STARTUP_TIMEOUT) or not port:
            self.stop()
            raise RuntimeError(
                f"`local-mcp serve` printed no 'listening on' line within {STARTUP_TIMEOUT} s; "
                f"exit code {proc.poll()}; stderr:\n{self.log()}"
            )
        self.url = f"http://127.0.0.1:{port[0]}/mcp"

    def terminate(self) -> None:
        """Send SIGTERM to the HTTP server (no wait)."""
        assert self.proc is not None, "only the http transport has a long-running server"
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> float | None:
        """Seconds until the HTTP server exited, or None if it is still running after `timeout`."""
        assert self.proc is not None
        started = time.monotonic()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - started

    def stop(self) -> None:
        """Teardown: SIGTERM now; a background reaper waits up to STOP_GRACE, then SIGKILLs.

        The wait happens off the test's clock so that a server slow to stop does
        not add seconds to every test; `test_sigterm_*` assert the 2 s limit.
        """
        if self.proc is not None:
            self.exit_before_stop = self.proc.poll()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            reaper = threading.Thread(target=_reap, args=(self.proc, self._drain), daemon=True)
            reaper.start()
            _REAPERS.append(reaper)
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None

    def log(self) -> str:
        """The server's stderr so far (HTTP: the serve process; stdio: every spawned process)."""
        if self.transport == "http":
            with self._log_lock:
                return "".join(self._log_lines)
        if self._errlog is not None:
            self._errlog.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- MCP client -------------------------------------------------------

    def client(self, **kwargs: Any) -> Client:
        """An SDK `Client` for this transport and mode (use with `async with`)."""
        if self.transport == "http":
            assert self.url is not None, "server not started"
            return Client(self.url, mode=self.mode, **kwargs)
        if self._errlog is None:
            self._errlog = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        # Started in the test folder, outside any git repository: the agent uses the
        # `default` queue, as `add` does.
        params = StdioServerParameters(command=str(BIN), args=["stdio"], env=self.env, cwd=str(self.tmp))
        return Client(stdio_client(params, errlog=self._errlog), mode=self.mode, **kwargs)

    # --- the terminal commands, as another process -------------------------

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BIN), *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"`local-mcp {' '.join(args)}` exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def add(self, text: str) -> str:
        """Queues `text` with `local-mcp add`; returns the new instruction's id."""
        out = self.cli("add", text).stdout
        m = QUEUED_ID.search(out)
        assert m, f"`local-mcp add` printed no id: {out!r}"
        return m.group(0)

    def items(self, status: str) -> list[dict[str, Any]]:
        data = json.loads(self.cli("list", "--status", status, "--json").stdout)
        assert data["total"] == len(data["items"]), data
        return data["items"]

    def pending(self) -> list[dict[str, Any]]:
        return self.items("pending")

    def consumed(self) -> list[dict[str, Any]]:
        return self.items("consumed")


@pytest.fixture
def server(transport: str, mode: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Factory: `server(wait_seconds=N)` returns a started `LocalMcp`; torn down after the test."""
    if not BIN.exists():
        pytest.fail(f"{BIN} does not exist: run `cargo build -p local-mcp` (scripts/python-tests.sh does)")
    made: list[LocalMcp] = []

    def make(wait_seconds: float = 1) -> LocalMcp:
        h = LocalMcp(transport, mode, tmp_path, wait_seconds)
        made.append(h)
        h.start()
        return h

    yield make
    for h in made:
        h.stop()
        # Shown by pytest only when the test failed.
        print(f"----- server stderr ({h.transport}, mode={h.mode}) -----\n{h.log()}")
        if h.exit_before_stop is not None:
            print(f"----- `local-mcp serve` had already exited with code {h.exit_before_stop} before teardown -----")
