#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for Latchkey's PostgreSQL tests.
#
#   bash scripts/postgres-test-cluster.sh start   # install if needed, create, start, wait until ready
#   bash scripts/postgres-test-cluster.sh url     # print the URL for LATCHKEY_TEST_DATABASE_URL
#   bash scripts/postgres-test-cluster.sh stop    # stop it and delete its files
#
# Typical use (CI does this):
#
#   bash scripts/postgres-test-cluster.sh start
#   LATCHKEY_TEST_DATABASE_URL=$(bash scripts/postgres-test-cluster.sh url) cargo test -p latchkey-store
#   bash scripts/postgres-test-cluster.sh stop
#
# - If `initdb` is not found, installs PostgreSQL from the Debian packages
#   (`apt-get update && apt-get install -y postgresql`; needs root). The
#   binaries are taken from /usr/lib/postgresql/<newest version>/bin.
# - The cluster lives in a temporary directory (recorded in
#   ${TMPDIR:-/tmp}/latchkey-pg-<port>.dir) owned by an unprivileged user:
#   PostgreSQL refuses to run as root, so as root the server runs as the
#   `postgres` system user that the package creates (via `runuser`);
#   otherwise as the calling user.
# - It listens only on 127.0.0.1, port $PGPORT (default 5433), no Unix
#   socket in a shared directory; loopback connections are trusted (no
#   password): this is for tests only, never for data that matters.
# - It has a role and a database named `latchkey`, owned by that role.
# - `start` is idempotent (a running cluster is left as it is) and waits at
#   most 30 s for the server to accept connections. `stop` is clean (fast
#   shutdown, then the directory is removed) and does nothing if no cluster
#   is running.
set -euo pipefail

PORT="${PGPORT:-5433}"
STATE_FILE="${TMPDIR:-/tmp}/latchkey-pg-${PORT}.dir"
URL="postgres://latchkey@127.0.0.1:${PORT}/latchkey"
READY_TIMEOUT=30

log() { echo "postgres-test-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# Finds the directory holding initdb/pg_ctl/postgres; installs if there is none.
find_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then
        echo "$dir"
        return
    fi
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    [[ $(id -u) -eq 0 ]] || die "initdb not found; install PostgreSQL (apt-get install postgresql) or run as root"
    log "installing PostgreSQL from the Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$dir" && -x "$dir/initdb" ]] || die "PostgreSQL installed but initdb not found"
    echo "$dir"
}

# Runs a command as the user that owns the cluster.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

cluster_dir() {
    [[ -f "$STATE_FILE" ]] && cat "$STATE_FILE" || true
}

is_running() {
    local dir="$1" bindir="$2"
    [[ -n "$dir" && -d "$dir/data" ]] && as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

wait_ready() {
    local bindir="$1" i
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U postgres; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

start() {
    local bindir dir
    bindir=$(find_bindir)
    dir=$(cluster_dir)
    if is_running "$dir" "$bindir"; then
        wait_ready "$bindir" || die "cluster in $dir is running but not ready"
        log "already running in $dir on 127.0.0.1:$PORT"
        return 0
    fi
    if [[ -n "$dir" ]]; then
        rm -rf -- "$dir"
        rm -f -- "$STATE_FILE"
    fi
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as (is the postgresql package installed?)"
    fi

    # Tests trade durability for speed; benchmarks want PostgreSQL's defaults
    # (PG_DURABLE=1), so their figures hold for a real deployment.
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [[ "${PG_DURABLE:-0}" == "1" ]] && durability=""
    dir=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-pg-${PORT}.XXXXXX")
    chmod 0755 "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    echo "$dir" >"$STATE_FILE"

    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # Loopback only, trusted; nothing else may connect.
    as_owner tee "$dir/data/pg_hba.conf" >/dev/null <<'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$READY_TIMEOUT" \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $dir -c max_connections=300 $durability" \
        start >/dev/null \
        || { tail -n 20 "$dir/server.log" >&2 || true; die "server did not start"; }
    wait_ready "$bindir" || { tail -n 20 "$dir/server.log" >&2 || true; die "server not ready after ${READY_TIMEOUT}s"; }

    "$bindir/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres >/dev/null <<'EOF'
CREATE ROLE latchkey LOGIN;
CREATE DATABASE latchkey OWNER latchkey;
EOF
    log "started in $dir on 127.0.0.1:$PORT"
}

stop() {
    local dir bindir
    dir=$(cluster_dir)
    if [[ -z "$dir" ]]; then
        log "not running"
        return 0
    fi
    bindir=$(find_bindir)
    if is_running "$dir" "$bindir"; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t "$READY_TIMEOUT" stop >/dev/null
    fi
    rm -rf -- "$dir"
    rm -f -- "$STATE_FILE"
    log "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) echo "$URL" ;;
    *) die "usage: $0 start|stop|url" ;;
esac
