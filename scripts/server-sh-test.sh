#!/usr/bin/env bash
# Tests scripts/server.sh against a built local-mcp binary. Builds nothing itself.
#
#   cargo build -p local-mcp && bash scripts/server-sh-test.sh
#
# LOCAL_MCP_BIN picks the binary (default target/debug/local-mcp). Everything runs
# in temporary folders (LOCAL_MCP_HOME, DB_PATH) on a free port, and the server is
# stopped on exit whatever happens. The last line is
#   server-sh-tests: N passed, M failed
# and the exit status is non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."

server=scripts/server.sh
bin=${LOCAL_MCP_BIN:-${CARGO_TARGET_DIR:-target}/debug/local-mcp}
if [[ ! -x $bin ]]; then
    echo "server-sh-test: no binary at $bin (run cargo build -p local-mcp, or set LOCAL_MCP_BIN)" >&2
    echo "server-sh-tests: 0 passed, 1 failed"
    exit 1
fi
LOCAL_MCP_BIN=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tmp=$(mktemp -d)
LOCAL_MCP_HOME=$tmp/home
DB_PATH=$tmp/queue.sqlite3
HTTP_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
export LOCAL_MCP_BIN LOCAL_MCP_HOME DB_PATH HTTP_PORT
unset HOST API_TOKEN LOCAL_MCP_CONFIG LOG_LEVEL LOG_FORMAT LOG_FILE
url=http://127.0.0.1:$HTTP_PORT
pid_file=$LOCAL_MCP_HOME/local-mcp.pid

passed=0
failed=0
cleanup() {
    bash "$server" stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() {
    passed=$((passed + 1))
    echo "ok    $1"
}
not_ok() {
    failed=$((failed + 1))
    echo "FAIL  $1"
    shift
    if [[ $# -gt 0 ]]; then printf '%s\n' "$@" | sed 's/^/      | /'; fi
}

# run CMD...: sets out (stdout and stderr) and rc, never fails the script.
run() {
    set +e
    out=$("$@" 2>&1)
    rc=$?
    set -e
}

healthz() { curl -fsS --max-time 2 "$url/healthz" >/dev/null 2>&1; }
pid_now() { cat "$pid_file" 2>/dev/null || true; }
# Process $1 has ended (a zombie counts: whether init reaps it soon is not ours to test).
gone() {
    ! kill -0 "$1" 2>/dev/null && return 0
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null || ps -p "$1" -o stat= 2>/dev/null) || return 0
    stat=${stat##*) }
    case $stat in Z* | X*) return 0 ;; *) return 1 ;; esac
}

echo "server-sh-test: $LOCAL_MCP_BIN on port $HTTP_PORT, state in $LOCAL_MCP_HOME"

# 1. status when stopped
run bash "$server" status
if [[ $rc -eq 3 && $out == *stopped* ]]; then ok "status when stopped exits 3"; else not_ok "status when stopped exits 3 (got $rc)" "$out"; fi

# 2. start returns promptly and /healthz answers
t0=$(date +%s)
run bash "$server" start
t1=$(date +%s)
if [[ $rc -eq 0 && $((t1 - t0)) -le 10 && $out == *"$url"* ]] && healthz; then
    ok "start returns in $((t1 - t0)) s, prints $url, /healthz answers"
else
    not_ok "start returns promptly and /healthz answers (rc $rc, $((t1 - t0)) s)" "$out"
fi
first_pid=$(pid_now)

# 3. start again
run bash "$server" start
if [[ $rc -eq 0 && $out == *"already running"* && $(pid_now) == "$first_pid" ]]; then
    ok "start again says already running"
else
    not_ok "start again says already running (rc $rc)" "$out"
fi

# 4. status when running
run bash "$server" status
if [[ $rc -eq 0 && -n $first_pid && $out == *running* && $out == *"$first_pid"* && $out == *"$url"* ]]; then
    ok "status exits 0 and shows PID $first_pid and the URL"
else
    not_ok "status exits 0 and shows the PID (rc $rc, PID file '$first_pid')" "$out"
fi

# 5. logs N (before anything else writes to the log)
run bash "$server" logs 5
lines=$(printf '%s\n' "$out" | wc -l | tr -d ' ')
if [[ $rc -eq 0 && $lines -le 5 && $out == *"listening on $url"* ]]; then
    ok "logs 5 prints $lines lines including the listening line"
else
    not_ok "logs 5 prints at most 5 lines including the listening line (rc $rc, $lines lines)" "$out"
fi

# 6. an instruction added through the API is in `local-mcp list` on the same database
text="server-sh-test $$ $RANDOM"
run curl -fsS --max-time 5 -X POST "$url/api/instructions" -H 'Content-Type: application/json' \
    -d "{\"content\":\"$text\"}"
run "$LOCAL_MCP_BIN" list
if [[ $rc -eq 0 && $out == *"$text"* ]]; then
    ok "an instruction added via the API shows in local-mcp list"
else
    not_ok "an instruction added via the API shows in local-mcp list (rc $rc)" "$out"
fi

# 7. restart: a new PID, still answering
run bash "$server" restart
new_pid=$(pid_now)
if [[ $rc -eq 0 && -n $new_pid && $new_pid != "$first_pid" ]] && healthz && gone "$first_pid"; then
    ok "restart gives a new PID ($first_pid -> $new_pid) and still answers"
else
    not_ok "restart gives a new PID and still answers (rc $rc, $first_pid -> $new_pid)" "$out"
fi

# 8. stop: PID file gone, process gone, port closed
run bash "$server" stop
if [[ $rc -eq 0 && ! -e $pid_file ]] && gone "$new_pid" && ! healthz &&
    ! (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then
    ok "stop removes the PID file, ends the process and closes the port"
else
    not_ok "stop removes the PID file and closes the port (rc $rc)" "$out"
fi

# 9. stop again
run bash "$server" stop
if [[ $rc -eq 0 && $out == *"not running"* ]]; then ok "stop when stopped says so and exits 0"; else not_ok "stop when stopped exits 0 (got $rc)" "$out"; fi

# 10. a stale PID file (its process is gone) is cleaned up by start
sleep 0 &
dead_pid=$!
wait "$dead_pid"
echo "$dead_pid" >"$pid_file"
run bash "$server" status
status_rc=$rc
run bash "$server" start
if [[ $status_rc -eq 3 && $rc -eq 0 && $out == *stale* && $(pid_now) != "$dead_pid" ]] && healthz; then
    ok "start cleans up a stale PID file and starts"
else
    not_ok "start cleans up a stale PID file (status rc $status_rc, start rc $rc)" "$out"
fi
run bash "$server" stop

# 11. a server that cannot start: clear error with the log tail, no PID file left
python3 -c 'import socket,time,sys;s=socket.socket();s.bind(("127.0.0.1",int(sys.argv[1])));s.listen();time.sleep(30)' "$HTTP_PORT" &
blocker=$!
for _ in 1 2 3 4 5 6 7 8 9 10; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then break; fi
    sleep 0.2
done
run bash "$server" start
kill "$blocker" 2>/dev/null || true
wait "$blocker" 2>/dev/null || true
if [[ $rc -ne 0 && $out == *"Address already in use"* && ! -e $pid_file ]]; then
    ok "start on a taken port fails with the log tail and leaves no PID file"
else
    not_ok "start on a taken port fails with the log tail (rc $rc)" "$out"
fi

echo "server-sh-tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
