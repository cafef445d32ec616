#!/usr/bin/env bash
# Runs the browser test suite (ui-tests/) against the local-mcp binary in Debian's
# headless Chromium.
#
#   bash scripts/ui-tests.sh [extra node --test args, e.g. --test-name-pattern=Undo]
#
# Idempotent: installs Debian's chromium with apt only when the browser is
# missing (CHROMIUM, default /usr/bin/chromium; needs root or sudo), runs
# `npm ci` in ui-tests/ only when node_modules does not match package-lock.json
# (no tool downloads a browser: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1), builds the
# binary with cargo, runs every test file one after the other (each test starts
# its own servers; the machine may have 2 cores) and prints, last,
#   ui-tests: N passed, M failed
# Exits non-zero when any test fails. Screenshots go to target/ui-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=${CHROMIUM:-/usr/bin/chromium}
target_dir=${CARGO_TARGET_DIR:-target}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if [[ ! -x $chromium ]]; then
    echo "ui-tests: $chromium is missing; installing Debian's chromium"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q chromium
fi
"$chromium" --version 2>/dev/null || true

if ! command -v node >/dev/null; then
    echo "ui-tests: node (20 or newer) is needed" >&2
    exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if (( node_major < 20 )); then
    echo "ui-tests: node $(node --version) is too old, 20 or newer is needed" >&2
    exit 1
fi

# npm ci only when the installed modules were not made from this lock file (and node).
stamp=ui-tests/node_modules/.ui-tests-lock.sha256
want=$( (cat ui-tests/package-lock.json; node --version) | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "ui-tests: npm ci"
    (cd ui-tests && npm ci --no-audit --no-fund)
    echo "$want" > "$stamp" # written last: a failed install is retried next run
fi

cargo build -q -p local-mcp
export LOCAL_MCP_BIN
LOCAL_MCP_BIN=$(cd "$target_dir" && pwd)/debug/local-mcp
export CHROMIUM=$chromium

report=$(mktemp)
trap 'rm -f "$report"' EXIT
started=$(date +%s)
set +e
(cd ui-tests && node --test --test-concurrency=1 --test-reporter=tap "$@" tests/) | tee "$report"
rc=${PIPESTATUS[0]}
set -e

# Node's TAP summary: "# pass N", "# fail M" (cancelled tests count as failed).
passed=$(awk '/^# pass /      { print $3 }' "$report" | tail -n1)
failed=$(awk '/^# fail /      { print $3 }' "$report" | tail -n1)
cancelled=$(awk '/^# cancelled / { print $3 }' "$report" | tail -n1)
passed=${passed:-0}
failed=$(( ${failed:-0} + ${cancelled:-0} ))
if (( rc != 0 && failed == 0 )); then
    failed=1 # the runner failed outside any test (a file that does not load, ...)
fi
echo "ui-tests: screenshots in $target_dir/ui-screenshots/, took $(( $(date +%s) - started )) s"
echo "ui-tests: $passed passed, $failed failed"
exit "$rc"
