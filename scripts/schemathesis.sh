#!/usr/bin/env bash
# Runs schemathesis (property-based API testing, from PyPI) against a real
# `local-mcp serve` and its own /openapi.json: every documented operation is
# called with generated valid and invalid requests, and every answer is checked
# for server errors and for conformance with the document (status codes,
# content types, headers, response schemas), plus the stateful and method
# checks (`--checks all`).
#
#   bash scripts/schemathesis.sh [extra `schemathesis run` args]
#   LOCAL_MCP_LONG_TESTS=1 bash scripts/schemathesis.sh     # 20x the examples
#   SCHEMATHESIS_MAX_EXAMPLES=N SCHEMATHESIS_SEED=S bash scripts/schemathesis.sh
#
# Idempotent: the virtualenv at target/schemathesis-venv is made (and the pinned
# scripts/schemathesis-requirements.txt installed) only when it is missing or the
# requirements changed. Builds the debug binary, serves it on a free loopback
# port over a fresh temporary database, stops it at the end. Prints, last,
# `schemathesis-tests: N passed, M failed` (one test per operation, plus the
# stateful run) and exits non-zero when anything failed.
#
# Left out: GET /api/events, the SSE stream. It never ends and sends a message
# only when something changes, so schemathesis would wait on it until its
# request timeout; the crate tests (crates/http-api/tests) cover the stream.
set -euo pipefail
cd "$(dirname "$0")/.."

req=scripts/schemathesis-requirements.txt
target_dir=${CARGO_TARGET_DIR:-target}
venv=$PWD/target/schemathesis-venv
stamp=$venv/requirements.sha256
python=${PYTHON:-python3}

want=$( (cat "$req"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [[ ! -x $venv/bin/schemathesis || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "schemathesis: creating $venv from $req"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    echo "$want" > "$stamp" # written last: a failed install is retried next run
fi

if [[ ${LOCAL_MCP_LONG_TESTS:-} == 1 ]]; then
    examples=${SCHEMATHESIS_MAX_EXAMPLES:-500}
    seed=${SCHEMATHESIS_SEED:-$RANDOM$RANDOM}
else
    examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}
    # Fixed, so that a CI run is repeatable; the long run explores.
    seed=${SCHEMATHESIS_SEED:-20261121}
fi

cargo build -q -p local-mcp
bin=$(cd "$target_dir" && pwd)/debug/local-mcp

tmp=$(mktemp -d)
server=
cleanup() {
    if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
        kill "$server" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$server" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# A server of its own: fresh database and audit log, loopback, a port the
# kernel picks, no token and no extra host names, whatever the caller's
# environment says.
env -u API_TOKEN -u ALLOWED_HOSTS -u LOCAL_MCP_CONFIG -u RUST_LOG \
    HOST=127.0.0.1 HTTP_PORT=0 DB_PATH="$tmp/queue.sqlite3" AUDIT_LOG="$tmp/audit.jsonl" \
    XDG_DATA_HOME="$tmp/data" XDG_STATE_HOME="$tmp/state" LOG_LEVEL=info LOG_FORMAT=text \
    "$bin" serve >"$tmp/server.log" 2>&1 &
server=$!
url=
for _ in $(seq 300); do
    url=$(grep -o 'local-mcp listening on http://[0-9.:]*' "$tmp/server.log" | head -1 | sed 's/.* on //' || true)
    [[ -n $url ]] && break
    if ! kill -0 "$server" 2>/dev/null; then
        echo "schemathesis: local-mcp serve exited before listening:" >&2
        cat "$tmp/server.log" >&2
        echo "schemathesis-tests: 0 passed, 1 failed"
        exit 1
    fi
    sleep 0.1
done
if [[ -z $url ]]; then
    echo "schemathesis: local-mcp serve did not listen within 30 s:" >&2
    cat "$tmp/server.log" >&2
    echo "schemathesis-tests: 0 passed, 1 failed"
    exit 1
fi
echo "schemathesis: $("$venv/bin/schemathesis" --version) against $url (max $examples examples per operation, seed $seed)"

# POST /api/instructions/{id}/requeue reads no body, but like every POST it
# needs `Content-Type: application/json` (SPEC §5: no cross-site "simple" form
# may reach the queue). OpenAPI cannot say "no body, but this content type", so
# schemathesis counts a bare POST as valid and the 415 as a rejected valid
# request; 415 is therefore an expected answer for that operation's valid data.
#
# 413 (a body over 256 KiB, which a `content` near its 32,768-character limit
# can reach once escaped) is a refusal like 422, so invalid data may get it.
#
# Every request carries `Content-Type: application/json`, as every client of
# this JSON API does: the guard answers a POST, PUT or PATCH without it with 415
# before any route is looked at (SPEC §5, first in the document's order), so a
# bare PUT to a path that takes no PUT would get 415 where schemathesis' method
# check wants the route's 405 and its Allow header, which it then checks.
cat >"$tmp/schemathesis.toml" <<'EOF'
headers = { "Content-Type" = "application/json" }

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

# A file the docs page really has, so that its 200 and 304 are reached.
[[operations]]
include-operation-id = "getDocsFile"
parameters = { "path.file" = "init.js" }

[[operations]]
include-operation-id = "requeueInstruction"
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 403, 404, 409, 415]

# A well-formed queue name the schema allows can still name no queue (422 on
# reads and reorders, issue 15), and a queue given in the body and the query
# string must agree (422 when not): rules between values, which no schema says.
[[operations]]
include-operation-id-regex = "^(listInstructions|getStatus|createInstruction|reorderInstructions)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", 401, 403, 404, 409, 422]
EOF

report=$tmp/junit.xml
set +e
# From the temporary folder: schemathesis keeps a cache of past failures in
# ./.schemathesis, which would otherwise land in the work tree and replay old
# cases into later runs.
(cd "$tmp" && "$venv/bin/schemathesis" --no-color --config-file "$tmp/schemathesis.toml" run "$url/openapi.json" \
    --checks all \
    --exclude-operation-id streamEvents \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 10 \
    --report junit --report-junit-path "$report" \
    "$@")
rc=$?
set -e

if ! kill -0 "$server" 2>/dev/null; then
    echo "schemathesis: local-mcp serve died during the run:" >&2
    tail -50 "$tmp/server.log" >&2
    rc=1
fi
if grep -q 'panicked' "$tmp/server.log"; then
    echo "schemathesis: the server panicked:" >&2
    grep -A5 'panicked' "$tmp/server.log" >&2
    rc=1
fi

"$venv/bin/python" - "$report" "$rc" <<'EOF'
import sys
import xml.etree.ElementTree as ET

report, rc = sys.argv[1], int(sys.argv[2])
passed = failed = 0
try:
    for case in ET.parse(report).getroot().iter("testcase"):
        if {child.tag for child in case} & {"failure", "error"}:
            failed += 1
        else:
            passed += 1
except (OSError, ET.ParseError):  # no report: schemathesis could not even start
    pass
if rc and not failed:
    failed = 1  # failed outside any operation (the schema, the server, usage)
print(f"schemathesis-tests: {passed} passed, {failed} failed")
EOF
exit "$rc"
