#!/usr/bin/env bash
# Runs the MCP Python SDK test suite (tests/python) against the local-mcp binary.
#
#   bash scripts/python-tests.sh [extra pytest args, e.g. -k abandoned]
#
# Idempotent: the virtualenv at target/py-venv is made (and the pinned
# requirements installed) only when it is missing or tests/python/requirements.txt
# changed since it was made. Builds the binary with cargo first. Exits non-zero
# when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

req=tests/python/requirements.txt
target_dir=${CARGO_TARGET_DIR:-target}
venv=target/py-venv
stamp=$venv/requirements.sha256
python=${PYTHON:-python3}

want=$( (cat "$req"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "python-tests: creating $venv from $req"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
    echo "$want" > "$stamp" # written last: a failed install is retried next run
fi

cargo build -q -p local-mcp
export PYTHONDONTWRITEBYTECODE=1
export LOCAL_MCP_BIN
LOCAL_MCP_BIN=$(cd "$target_dir" && pwd)/debug/local-mcp

report=$(mktemp)
trap 'rm -f "$report"' EXIT
set +e
"$venv/bin/python" -m pytest tests/python -q -rfE -p no:cacheprovider \
    --junitxml="$report" -o junit_family=xunit2 "$@"
rc=$?
set -e

"$venv/bin/python" - "$report" "$rc" <<'EOF'
import sys
import xml.etree.ElementTree as ET

report, rc = sys.argv[1], int(sys.argv[2])
passed = failed = skipped = 0
try:
    for case in ET.parse(report).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
except (OSError, ET.ParseError):  # no report: pytest could not even start
    pass
if rc and not failed:
    failed = 1  # pytest failed outside any test (collection, usage, no tests)
print(f"python-sdk-tests: {passed} passed, {failed} failed, {skipped} skipped")
EOF
exit "$rc"
