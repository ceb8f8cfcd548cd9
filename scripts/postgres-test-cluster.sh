#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for Latchkey's PostgreSQL tests.
#
#   bash scripts/postgres-test-cluster.sh start   # install if needed, create, start, wait until ready
#   bash scripts/postgres-test-cluster.sh url     # print the URL for LATCHKEY_TEST_DATABASE_URL
#   bash scripts/postgres-test-cluster.sh ca      # print the path of the CA that signed its TLS certificate
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
# - It also speaks TLS (`ssl=on`), for the TLS tests: `start` makes a
#   throwaway CA (tls/ca.crt) and a server certificate for `localhost` and
#   `127.0.0.1` signed by it with `openssl` (installed from the Debian
#   packages if missing), plus a second, unrelated CA (tls/other-ca.crt)
#   that a client must refuse the server with. Plain connections from
#   loopback are still accepted, so tests that do not ask for TLS work as
#   before. `ca` prints tls/ca.crt's path (LATCHKEY_TEST_DATABASE_CA).
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

# Makes the throwaway CAs and the server certificate in "$1/tls".
make_certificates() {
    local tls="$1/tls"
    if ! command -v openssl >/dev/null 2>&1; then
        [[ $(id -u) -eq 0 ]] || die "openssl not found; install it (apt-get install openssl) or run as root"
        log "installing openssl from the Debian packages"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2 \
            || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2; }
    fi
    mkdir -p "$tls"
    local ca_ext="basicConstraints=critical,CA:TRUE"
    local ca
    for ca in ca other-ca; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=Latchkey test $ca" -addext "$ca_ext" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$tls/$ca.key" -out "$tls/$ca.crt" 2>/dev/null
    done
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
        -days 30 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
    rm -f -- "$tls/ca.key" "$tls/other-ca.key" "$tls/server.csr" "$tls/server.ext" "$tls/ca.srl"
    chmod 0755 "$tls"
    chmod 0644 "$tls/ca.crt" "$tls/other-ca.crt" "$tls/server.crt"
    chmod 0600 "$tls/server.key"
    [[ $(id -u) -eq 0 ]] && chown -R postgres: "$tls"
    return 0
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

    make_certificates "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    # Loopback only, trusted; nothing else may connect.
    as_owner tee "$dir/data/pg_hba.conf" >/dev/null <<'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$READY_TIMEOUT" \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $dir -c max_connections=300 $durability -c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key" \
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
    ca)
        dir=$(cluster_dir)
        [[ -n "$dir" && -f "$dir/tls/ca.crt" ]] || die "no cluster on port $PORT; run start first"
        echo "$dir/tls/ca.crt"
        ;;
    *) die "usage: $0 start|stop|url|ca" ;;
esac
