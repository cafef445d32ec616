#!/usr/bin/env python3
"""Checks the example service files under contrib/ against a built local-mcp.

    cargo build -p local-mcp && python3 scripts/contrib-test.py

What a Linux machine can check of them, without systemd or launchd running:

- the systemd user unit passes `systemd-analyze verify --user`, as shipped and
  with its example Environment lines switched on;
- the launchd plist, after the sed command its comment gives, is a valid
  property list with the label launchctl is told to use, and its commented
  EnvironmentVariables example is valid once uncommented;
- the command each file starts (ExecStart with %h expanded; ProgramArguments
  with its environment and log file) really serves, and stops with exit status
  0 on SIGTERM within the unit's TimeoutStopSec, so that neither Restart=on-failure
  nor KeepAlive/SuccessfulExit=false restarts a clean stop.

LOCAL_MCP_BIN picks the binary (default target/debug/local-mcp). Everything runs in
a temporary home on a free loopback port. The last line is
    contrib-tests: N passed, M failed
and the exit status is non-zero when anything failed.
"""

import os
import plistlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib/systemd/local-mcp.service"
PLIST = ROOT / "contrib/launchd/dev.local-mcp.plist"

passed = 0
failed = 0


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port, within):
    """Polls /healthz until it answers 200 or `within` seconds pass."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def serve_and_stop(name, argv, env, stop_within, log=None):
    """Runs argv as the service manager would, checks it serves, sends SIGTERM and
    checks a clean exit within `stop_within` seconds."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    except OSError as e:
        check(False, f"{name}: the command starts", str(e))
        return
    try:
        check(healthy(int(env["HTTP_PORT"]), 20), f"{name}: the command serves /healthz")
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=stop_within)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, f"{name}: SIGTERM stops it with status 0 within {stop_within} s",
              f"exit status {code}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if log:
            out.close()


def unit_values(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def systemd(binary, home):
    text = UNIT.read_text()
    exec_start = unit_values(text, "ExecStart")
    check(len(exec_start) == 1, "systemd: one ExecStart line", str(exec_start))
    if not exec_start:
        return
    analyze = shutil.which("systemd-analyze")
    check(analyze is not None, "systemd: systemd-analyze is installed (Debian package systemd)")
    # The unit as shipped names ~/.cargo/bin/local-mcp; verify checks the binary
    # exists, so point it at the one under test, as a user would edit it.
    as_installed = text.replace("%h/.cargo/bin/local-mcp", str(binary))
    examples_on = re.sub(r"^#(Environment=)", r"\1", as_installed, flags=re.M)
    runtime = Path(home) / "run"
    runtime.mkdir(mode=0o700)
    for label, unit_text in (("as shipped", as_installed), ("with the examples on", examples_on)):
        if analyze is None:
            break
        unit_dir = Path(home) / label.replace(" ", "-")
        unit_dir.mkdir()
        path = unit_dir / "local-mcp.service"
        path.write_text(unit_text)
        res = subprocess.run([analyze, "verify", "--user", str(path)],
                             env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
                             capture_output=True, text=True)
        check(res.returncode == 0 and not res.stderr.strip() and not res.stdout.strip(),
              f"systemd: systemd-analyze verify --user ({label}) is clean",
              (res.stdout + res.stderr).strip())

    # Run ExecStart the way systemd would: %h is the home folder, Environment=
    # lines (here the examples, switched on) set the variables.
    bindir = Path(home) / ".cargo/bin"
    bindir.mkdir(parents=True)
    (bindir / "local-mcp").symlink_to(binary)
    argv = shlex.split(exec_start[0].replace("%h", home))
    env = {"HOME": home, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for assignment in unit_values(examples_on, "Environment"):
        k, v = assignment.split("=", 1)
        env[k] = v.replace("%h", home)
    check(env.get("API_TOKEN") is not None and env.get("DB_PATH", "").startswith(home),
          "systemd: the example Environment lines parse (API_TOKEN, DB_PATH under %h)", str(env))
    env["HTTP_PORT"] = str(free_port())
    stop = unit_values(text, "TimeoutStopSec")
    check(unit_values(text, "KillSignal") == ["SIGTERM"], "systemd: KillSignal is SIGTERM")
    serve_and_stop("systemd", argv, env, int(stop[0]) if stop else 90)


def launchd(binary, home):
    # Exactly the install step the file's comment gives: sed "s|/Users/YOU|$HOME|g".
    text = PLIST.read_text().replace("/Users/YOU", home)
    try:
        plist = plistlib.loads(text.encode())
    except Exception as e:  # noqa: BLE001 - any parse failure is the finding
        check(False, "launchd: the plist parses", str(e))
        return
    check(True, "launchd: the plist parses")
    check(plist.get("Label") == PLIST.stem, "launchd: Label matches the file name",
          f"{plist.get('Label')} vs {PLIST.stem}")
    argv = plist.get("ProgramArguments", [])
    check(argv[:1] == [f"{home}/.cargo/bin/local-mcp"] and argv[1:] == ["serve"],
          "launchd: ProgramArguments runs ~/.cargo/bin/local-mcp serve", str(argv))
    check(plist.get("KeepAlive") == {"SuccessfulExit": False} and plist.get("RunAtLoad") is True,
          "launchd: RunAtLoad, and KeepAlive restarts only after a failure")
    example = re.search(r"<!--[^>]*?(<key>EnvironmentVariables</key>\s*<dict>.*?</dict>)\s*-->",
                        text, flags=re.S)
    env_example = {}
    if example:
        try:
            wrapped = f'<?xml version="1.0"?><plist version="1.0"><dict>{example.group(1)}</dict></plist>'
            env_example = plistlib.loads(wrapped.encode()).get("EnvironmentVariables", {})
        except Exception as e:  # noqa: BLE001
            check(False, "launchd: the EnvironmentVariables example parses", str(e))
    check(bool(env_example) and env_example.get("DB_PATH", "").startswith(home),
          "launchd: the EnvironmentVariables example is valid once uncommented", str(env_example))

    bindir = Path(home) / ".cargo/bin"
    if not (bindir / "local-mcp").exists():
        bindir.mkdir(parents=True, exist_ok=True)
        (bindir / "local-mcp").symlink_to(binary)
    log = plist.get("StandardErrorPath", "")
    check(log and log == plist.get("StandardOutPath"), "launchd: stdout and stderr go to one log")
    # launchd creates the log file, not its folder; ~/Library/Logs exists on a Mac.
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    env = {"HOME": home, "PATH": "/usr/bin:/bin", **env_example, "HTTP_PORT": str(free_port())}
    serve_and_stop("launchd", argv, env, 20, log=log)
    logged = Path(log).read_text(errors="replace") if Path(log).exists() else ""
    check("listening on http://" in logged, f"launchd: the server logs to {log}", logged[-500:])


def main():
    binary = Path(os.environ.get("LOCAL_MCP_BIN")
                  or Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug/local-mcp")
    if not os.access(binary, os.X_OK):
        print(f"contrib-test: no binary at {binary} (run cargo build -p local-mcp, or set LOCAL_MCP_BIN)")
        print("contrib-tests: 0 passed, 1 failed")
        return 1
    binary = binary.resolve()
    for name, fn in (("systemd", systemd), ("launchd", launchd)):
        with tempfile.TemporaryDirectory(prefix=f"contrib-{name}-") as home:
            try:
                fn(binary, home)
            except Exception as e:  # noqa: BLE001 - report, count, go on
                check(False, f"{name}: the check ran to the end", repr(e))
    print(f"contrib-tests: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
