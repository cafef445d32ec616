#!/usr/bin/env bash
# Fails if a crate depends on something its layer must not know (see ARCHITECTURE.md):
# queue-core stays free of diesel, actix and rmcp, and of tokio without its default
# `runtime` feature; the contract suite knows queue-core alone; adapters never depend
# on each other.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
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
forbid mcp-adapter "" '^actix' "the MCP handler is transport-agnostic; the binary mounts it in actix"
forbid http-api "" '^rmcp' "the HTTP API knows nothing of MCP; the binary mounts /mcp next to it"
forbid store-contract "" '^(queue-store|mcp-adapter|http-api|audit-log|web-assets|diesel|libsqlite3-sys|actix|rmcp|tokio)$' "the contract suite knows the port alone: queue-core, pure"
forbid audit-log "" '^(diesel|libsqlite3-sys|actix|rmcp)' "the audit log is a file and a hash chain, a sink of the core"
for adapter in queue-store mcp-adapter http-api audit-log; do
    cargo metadata --format-version 1 --no-deps | grep -q "\"name\":\"$adapter\"" || continue
    for other in queue-store mcp-adapter http-api audit-log; do
        [ "$adapter" = "$other" ] && continue
        forbid "$adapter" "" "^$other\$" "adapters never use each other"
    done
done

if [ "$fail" -ne 0 ]; then exit 1; fi
echo "layering: ok"
