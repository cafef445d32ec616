#!/usr/bin/env bash
# Runs `local-mcp serve` in the background, as a small service you manage by hand.
#
#   scripts/server.sh start | stop | restart | status | logs [-f] [N]
#
# start    launch `local-mcp serve` detached (nohup, and setsid where there is one),
#          write its PID file, wait until GET /healthz answers (at most
#          LOCAL_MCP_START_TIMEOUT seconds, default 10) and print the URL. On failure
#          it prints the end of the log and stops what it started. Already running:
#          says so, exit 0. A PID file whose process is gone is removed first.
# stop     SIGTERM, wait up to LOCAL_MCP_STOP_TIMEOUT seconds (default 10), then
#          SIGKILL; removes the PID file. Not running: says so, exit 0.
# restart  stop, then start.
# status   running or stopped, PID, URL and whether /healthz answers. Exit status as in
#          LSB init scripts: 0 running, 3 stopped.
# logs     the last N lines of the server log (default 50); -f keeps following it.
#
# Where things go: the state folder is $LOCAL_MCP_HOME, else
# ${XDG_STATE_HOME:-~/.local/state}/local-mcp (the XDG place for state that is not
# user data; the queue itself stays at DB_PATH, by default under ~/.local/share). It
# holds local-mcp.pid, local-mcp.url (the URL the server printed) and logs/server.log
# (appended to; moved to server.log.1 at start once it is over 10 MB).
#
# Which binary: $LOCAL_MCP_BIN, else `local-mcp` on PATH, else target/release/local-mcp
# or target/debug/local-mcp in this repository (also under $CARGO_TARGET_DIR).
#
# Configuration is local-mcp's own: the environment is passed through unchanged, so
#   HTTP_PORT=8001 DB_PATH=/tmp/q.sqlite3 scripts/server.sh start
# works like `local-mcp serve` would (HOST, API_TOKEN, LOCAL_MCP_CONFIG, LOG_LEVEL, ...).
# `stop`, `status` and `logs` need only the same LOCAL_MCP_HOME as `start`.
#
# Written for bash 3.2 (macOS) and later; needs curl or bash's /dev/tcp for /healthz.
set -euo pipefail

prog=server.sh
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")

home_dir=${LOCAL_MCP_HOME:-${XDG_STATE_HOME:-${HOME:?HOME is not set; set LOCAL_MCP_HOME}/.local/state}/local-mcp}
pid_file=$home_dir/local-mcp.pid
url_file=$home_dir/local-mcp.url
log_dir=$home_dir/logs
log_file=$log_dir/server.log
start_timeout=${LOCAL_MCP_START_TIMEOUT:-10}
stop_timeout=${LOCAL_MCP_STOP_TIMEOUT:-10}
rotate_bytes=$((10 * 1024 * 1024))

usage() {
    cat <<EOF
Usage: scripts/server.sh COMMAND

Run local-mcp's HTTP server (\`local-mcp serve\`) in the background.

Commands:
  start          start it in the background, wait until /healthz answers, print the URL
  stop           stop it (SIGTERM, then SIGKILL after ${stop_timeout} s)
  restart        stop, then start
  status         running or stopped, PID and URL; exit 0 running, 3 stopped
  logs [-f] [N]  the last N lines of its log (default 50); -f follows the log
  help           this text

Files (state folder: \$LOCAL_MCP_HOME, else \${XDG_STATE_HOME:-~/.local/state}/local-mcp):
  PID file  $pid_file
  log       $log_file

Binary: \$LOCAL_MCP_BIN, else local-mcp on PATH, else target/release or target/debug
in this repository. The environment goes to local-mcp unchanged, e.g.
  HTTP_PORT=8001 DB_PATH=/tmp/q.sqlite3 scripts/server.sh start
Timeouts: LOCAL_MCP_START_TIMEOUT (default 10 s), LOCAL_MCP_STOP_TIMEOUT (default 10 s).
EOF
}

say() { printf '%s\n' "$*"; }
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

# The PID in the PID file, or nothing (no file, or not a number).
read_pid() {
    local pid=""
    if [[ -f $pid_file ]]; then
        IFS= read -r pid <"$pid_file" || true
    fi
    case $pid in
        '' | *[!0-9]*) ;;
        *) printf '%s\n' "$pid" ;;
    esac
}

# The command line of a process, empty when it is gone or a zombie.
proc_cmd() {
    if [[ -d /proc/$1 ]]; then
        tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
    else
        ps -p "$1" -o command= 2>/dev/null | grep -v '<defunct>' || true
    fi
}

# Is process $1 there (and not a zombie)?
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state='?' stat
    if [[ -r /proc/$1/stat ]]; then
        stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        state=${stat%% *}
    else
        state=$(ps -p "$1" -o stat= 2>/dev/null) || state='?'
    fi
    case $state in
        Z* | X*) return 1 ;;
        *) return 0 ;;
    esac
}

# Is this PID a live `... serve` process (not some other process that got the PID)?
running() {
    [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 1
    case $(proc_cmd "$1") in
        *' serve'*) return 0 ;;
        *) return 1 ;;
    esac
}

# The URL from HOST and HTTP_PORT, as local-mcp would compute it by default.
env_url() {
    local host=${HOST:-127.0.0.1} port=${HTTP_PORT:-8000}
    case $host in *:*) host="[$host]" ;; esac
    printf 'http://%s:%s\n' "$host" "$port"
}

# A URL this machine can reach: a wildcard bind address becomes loopback.
local_url() {
    local url=$1
    url=${url/:\/\/0.0.0.0:/://127.0.0.1:}
    url=${url/:\/\/\[::\]:/://[::1]:}
    printf '%s\n' "$url"
}

# The URL in the "local-mcp listening on URL" line written to the log after byte $1.
listening_url() {
    [[ -f $log_file ]] || return 0
    tail -c +"$(($1 + 1))" "$log_file" 2>/dev/null |
        sed -n 's/.*local-mcp listening on \(https*:\/\/[^ "[:cntrl:]]*\).*/\1/p' | tail -n 1
}

# Does GET URL/healthz answer 200?
healthy() {
    local url=$1
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 2 "$url/healthz" 2>/dev/null
        return
    fi
    local hostport=${url#*://}
    hostport=${hostport%%/*}
    local host=${hostport%:*} port=${hostport##*:} line=""
    host=${host#[}
    host=${host%]}
    (
        exec 3<>"/dev/tcp/$host/$port" || exit 1
        printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$hostport" >&3
        IFS= read -r -t 2 line <&3 || exit 1
        case $line in "HTTP/"*" 200"*) exit 0 ;; *) exit 1 ;; esac
    ) 2>/dev/null
}

log_size() {
    if [[ -f $log_file ]]; then wc -c <"$log_file" | tr -d ' '; else echo 0; fi
}

find_bin() {
    if [[ -n ${LOCAL_MCP_BIN:-} ]]; then
        [[ -f $LOCAL_MCP_BIN && -x $LOCAL_MCP_BIN ]] ||
            die "LOCAL_MCP_BIN=$LOCAL_MCP_BIN is not an executable file"
        bin=$LOCAL_MCP_BIN
        return
    fi
    if bin=$(command -v local-mcp 2>/dev/null); then
        return
    fi
    local dir candidate
    for dir in ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR"} "$repo_dir/target"; do
        for candidate in "$dir/release/local-mcp" "$dir/debug/local-mcp"; do
            if [[ -f $candidate && -x $candidate ]]; then
                bin=$candidate
                return
            fi
        done
    done
    die "cannot find the local-mcp binary. Install it (cargo install --path bins/local-mcp),
  build it here (cargo build --release -p local-mcp), or set LOCAL_MCP_BIN=/path/to/local-mcp"
}

# Waits up to $2 seconds for process $1 to be gone. Returns 1 if it is still there.
wait_gone() {
    local pid=$1 wait_s=$2 i
    for ((i = 0; i < wait_s * 10; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    ! alive "$pid"
}

cmd_start() {
    local pid url offset
    pid=$(read_pid)
    if [[ -n $pid ]] && running "$pid"; then
        url=$(cat "$url_file" 2>/dev/null || env_url)
        say "local-mcp is already running (PID $pid): $url"
        return 0
    fi
    if [[ -f $pid_file ]]; then
        say "removing stale PID file $pid_file (process ${pid:-?} is gone)"
        rm -f "$pid_file" "$url_file"
    fi
    find_bin
    mkdir -p "$log_dir" || die "cannot create the log folder $log_dir (set LOCAL_MCP_HOME to a writable folder)"
    if [[ -f $log_file ]] && (($(log_size) > rotate_bytes)); then
        mv -f "$log_file" "$log_file.1"
    fi
    printf '=== %s server.sh start: %s serve\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$bin" >>"$log_file" ||
        die "cannot write the log file $log_file"
    offset=$(log_size)

    local launcher=()
    if command -v setsid >/dev/null 2>&1; then
        launcher=(setsid)
    fi
    # stdin from /dev/null and both outputs to the log: the server holds nothing of
    # this terminal (or of a pipe this script's output goes into).
    nohup ${launcher[@]+"${launcher[@]}"} "$bin" serve </dev/null >>"$log_file" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$pid_file"

    local start=$SECONDS
    url=""
    while :; do
        # alive, not running: until it has exec'd, the child is still this script.
        if ! alive "$pid"; then
            start_failed "$pid" "$offset" "local-mcp exited during start-up"
        fi
        url=$(listening_url "$offset")
        # Without the listening line (LOG_LEVEL above info), try HOST/HTTP_PORT, but
        # only after a moment, so that another server on that port is not mistaken for
        # this one while it is still failing to bind.
        if [[ -z $url ]] && ((SECONDS - start >= 2)); then
            url=$(env_url)
        fi
        if [[ -n $url ]]; then
            url=$(local_url "$url")
            if healthy "$url"; then
                break
            fi
        fi
        if ((SECONDS - start >= start_timeout)); then
            start_failed "$pid" "$offset" \
                "no answer from ${url:-the server}/healthz within ${start_timeout} s (raise LOCAL_MCP_START_TIMEOUT if it needs longer)"
        fi
        sleep 0.2
    done
    printf '%s\n' "$url" >"$url_file"
    say "local-mcp started (PID $pid): $url"
    say "  web UI $url/   MCP $url/mcp"
    say "  logs   $log_file   (scripts/server.sh logs -f)"
}

start_failed() {
    local pid=$1 offset=$2 message=$3
    if alive "$pid"; then
        kill -s TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 5; then
            kill -s KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 2 || true
        fi
    fi
    rm -f "$pid_file" "$url_file"
    {
        printf '%s: error: %s\n' "$prog" "$message"
        printf 'last lines of %s:\n' "$log_file"
        tail -c +"$((offset + 1))" "$log_file" | tail -n 20 | sed 's/^/  | /'
    } >&2
    exit 1
}

cmd_stop() {
    local pid
    pid=$(read_pid)
    if [[ -z $pid ]]; then
        rm -f "$pid_file" "$url_file"
        say "local-mcp is not running (no PID file at $pid_file)"
        return 0
    fi
    if ! running "$pid"; then
        rm -f "$pid_file" "$url_file"
        say "local-mcp is not running (process $pid is gone; removed its stale PID file)"
        return 0
    fi
    kill -s TERM "$pid" 2>/dev/null || die "cannot signal process $pid (started by another user?)"
    if ! wait_gone "$pid" "$stop_timeout"; then
        say "local-mcp (PID $pid) did not stop within ${stop_timeout} s; sending SIGKILL"
        kill -s KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || die "process $pid is still there after SIGKILL"
    fi
    rm -f "$pid_file" "$url_file"
    say "local-mcp stopped (PID $pid)"
}

cmd_status() {
    local pid url
    pid=$(read_pid)
    if [[ -n $pid ]] && running "$pid"; then
        url=$(cat "$url_file" 2>/dev/null || env_url)
        say "local-mcp is running"
        say "  PID     $pid"
        if healthy "$url"; then
            say "  URL     $url (answering /healthz)"
        else
            say "  URL     $url (NOT answering /healthz; see scripts/server.sh logs)"
        fi
        say "  logs    $log_file"
        return 0
    fi
    if [[ -f $pid_file ]]; then
        say "local-mcp is stopped (stale PID file $pid_file: process ${pid:-?} is gone)"
    else
        say "local-mcp is stopped"
    fi
    return 3
}

cmd_logs() {
    local follow=0 lines=50 arg
    for arg in "$@"; do
        case $arg in
            -f | --follow) follow=1 ;;
            '' | *[!0-9]*) die "logs takes [-f] [N], not '$arg' (e.g. scripts/server.sh logs -f 100)" ;;
            *) lines=$arg ;;
        esac
    done
    [[ -f $log_file ]] || die "no log yet at $log_file (scripts/server.sh start writes it)"
    if ((follow)); then
        exec tail -n "$lines" -F "$log_file"
    fi
    tail -n "$lines" "$log_file"
}

main() {
    local command=${1:-}
    [[ $# -gt 0 ]] && shift
    case $command in
        start | stop | restart | status)
            [[ $# -eq 0 ]] || die "$command takes no arguments (configure local-mcp with environment variables, e.g. HTTP_PORT=8001)"
            ;;
    esac
    case $command in
        start) cmd_start ;;
        stop) cmd_stop ;;
        restart)
            cmd_stop
            cmd_start
            ;;
        status) cmd_status || exit $? ;;
        logs) cmd_logs "$@" ;;
        help | -h | --help) usage ;;
        '')
            usage >&2
            exit 2
            ;;
        *)
            printf '%s: error: unknown command %s\n\n' "$prog" "$command" >&2
            usage >&2
            exit 2
            ;;
    esac
}

main "$@"
