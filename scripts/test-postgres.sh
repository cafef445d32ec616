#!/usr/bin/env bash
# Makes sure a PostgreSQL server for the tests runs on loopback (127.0.0.1:5432):
# installs Debian's package if missing, starts its cluster, and gives the
# `postgres` role the test password. Idempotent. Then run the tests with
#   export LOCAL_MCP_TEST_PG_URL=postgres://postgres:local-mcp-test@127.0.0.1:5432/postgres
# (what this script prints, alone on its last line). Each test creates its own
# database and drops it.
set -euo pipefail

start_server() {
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
    pg_createcluster "$version" main >/dev/null
fi
online() { pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; }
# A server that was killed (say, when the last session ended) can leave its
# processes a moment to go and its lock files behind: a start right then fails,
# the next one succeeds.
for try in 1 2 3 4 5; do
    online && break
    pg_ctlcluster "$version" main start && break
    [ "$try" = 5 ] && exit 1
    sleep 1
done
for _ in $(seq 1 100); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.1
done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null
su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'local-mcp-test'\"" >/dev/null
}

# Standard output carries the address and nothing else: whatever the tools
# print (apt, the cluster scripts, psql) goes to standard error. No extra file
# descriptor is opened for this, since the server started here would inherit it
# and hold a caller's `$(...)` open.
start_server >&2
echo "postgres://postgres:local-mcp-test@127.0.0.1:5432/postgres"

