#!/usr/bin/env bash
# Fails if a crate depends on something its layer must not know (see ARCHITECTURE.md,
# "Layers"). Two checks:
#  1. Arrows between our own crates: each crate may depend (normal dependencies,
#     directly) only on the crates listed for it below; any other arrow fails.
#  2. Foreign crates a layer must not know: queue-core stays free of diesel, actix
#     and rmcp, and of tokio without its default `runtime` feature; the MCP handler
#     knows no actix; the HTTP API knows no rmcp.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0

# The allowed arrows, crate -> the workspace crates it may use. Everything
# points down towards queue-core; only the composition layers (mcp-http, the
# server library, the binary) join adapters together.
declare -A allowed=(
    [queue-core]=""
    [queue-store]="queue-core"
    [audit-log]="queue-core"
    [web-assets]=""
    [mcp-adapter]="queue-core"
    [http-api]="queue-core web-assets"
    [mcp-http]="queue-core mcp-adapter http-api"
    [local-mcp-server]="queue-core queue-store audit-log mcp-adapter http-api mcp-http"
    [local-mcp]="queue-core queue-store audit-log mcp-adapter http-api local-mcp-server"
    [store-contract]="queue-core"
)

members=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; [print(p["name"]) for p in json.load(sys.stdin)["packages"]]')
ours=$(echo "$members" | tr '\n' '|' | sed 's/|$//')

for krate in "${!allowed[@]}"; do
    echo "$members" | grep -qx "$krate" || { echo "layering: $krate is listed here but is no workspace crate"; fail=1; continue; }
    direct=$(cargo tree -p "$krate" -e normal --depth 1 --prefix none --format '{p}' 2>/dev/null |
        awk '{print $1}' | sort -u | grep -Ex "$ours" | grep -vx "$krate" || true)
    for dep in $direct; do
        case " ${allowed[$krate]} " in
            *" $dep "*) ;;
            *) echo "layering: $krate depends on $dep, an arrow not allowed here"; fail=1 ;;
        esac
    done
done
# A new library crate must be given its place above.
for krate in $members; do
    case "$krate" in integration|test-support) continue ;; esac
    if [ -z "${allowed[$krate]+set}" ]; then
        echo "layering: $krate has no entry in scripts/check-layering.sh: say which crates it may use"
        fail=1
    fi
done

deps_of() { # crate, extra cargo-tree flags...
    local krate=$1; shift
    cargo tree -p "$krate" -e normal --prefix none --format '{p}' "$@" 2>/dev/null | awk '{print $1}' | sort -u
}
forbid() { # crate, flags, pattern, why
    local krate=$1 flags=$2 pattern=$3 why=$4 found
    # shellcheck disable=SC2086
    found=$(deps_of "$krate" $flags | grep -E "$pattern" || true)
    if [ -n "$found" ]; then
        echo "layering: $krate ${flags:+($flags) }depends on $(echo "$found" | tr '\n' ' ')- $why"
        fail=1
    fi
}

forbid queue-core "" '^(diesel|libsqlite3-sys|actix|rmcp)' "the domain knows nothing of SQL, HTTP or MCP"
forbid queue-core "--no-default-features" '^tokio' "the pure core builds without tokio"
forbid mcp-adapter "" '^actix' "the MCP handler is transport-agnostic; mcp-http mounts it in actix"
forbid http-api "" '^rmcp' "the HTTP API knows nothing of MCP; the server mounts /mcp next to it"
forbid store-contract "" '^(queue-store|mcp-adapter|http-api|audit-log|web-assets|diesel|libsqlite3-sys|actix|rmcp|tokio)$' "the contract suite knows the port alone: queue-core, pure"
forbid audit-log "" '^(diesel|libsqlite3-sys|actix|rmcp)' "the audit log is a file and a hash chain, a sink of the core"

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "layering: ok"
