#!/usr/bin/env bash
# Builds the latchkey server, starts a throwaway instance on 127.0.0.1 with a fresh
# data directory, and runs the Postman collection (docs/latchkey.postman_collection.json)
# against it with newman. The exit code is newman's.
#
# Usage: tests/postman/run.sh [extra newman args...]
# Environment:
#   LATCHKEY_BIN       use this server binary instead of building one
#   LATCHKEY_PORT      listen on this port instead of a free one picked at random
#   HEALTH_TIMEOUT     seconds to wait for /healthz (default 30)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
collection="$root/docs/latchkey.postman_collection.json"
health_timeout="${HEALTH_TIMEOUT:-30}"

log() { printf 'run.sh: %s\n' "$*" >&2; }

command -v node >/dev/null || { log "node is required"; exit 2; }
command -v npm >/dev/null || { log "npm is required"; exit 2; }

# --- build -----------------------------------------------------------------
if [[ -n "${LATCHKEY_BIN:-}" ]]; then
    bin="$LATCHKEY_BIN"
else
    log "building latchkey-server (release)"
    (cd "$root" && cargo build --release --quiet -p latchkey-server)
    target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps \
        | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).target_directory))')"
    bin="$target_dir/release/latchkey"
fi
[[ -x "$bin" ]] || { log "server binary not found: $bin"; exit 2; }

# --- newman ----------------------------------------------------------------
log "installing newman (npm ci)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
newman="$here/node_modules/.bin/newman"

# --- server ----------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-postman.XXXXXX")"
server_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    # Ask the OS for a free loopback port; the tiny window until the server binds it
    # is covered by retrying with another port if the server dies at start-up.
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close();})'
}

http_status() {
    if command -v curl >/dev/null; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
    else
        node -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(r=>process.stdout.write(String(r.status)),()=>process.stdout.write("000"))' "$1"
    fi
}

start_server() {
    local port="$1"
    mkdir -p "$work/data"
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/server.log" 2>&1 &
    server_pid=$!
    local deadline=$((SECONDS + health_timeout))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            wait "$server_pid" 2>/dev/null || true
            server_pid=""
            return 1
        fi
        if [[ "$(http_status "http://127.0.0.1:$port/healthz")" == "200" ]]; then
            return 0
        fi
        sleep 0.2
    done
    log "server did not answer GET /healthz with 200 within ${health_timeout}s"
    return 2
}

base_url=""
for attempt in 1 2 3; do
    port="${LATCHKEY_PORT:-$(free_port)}"
    log "starting $bin on 127.0.0.1:$port (attempt $attempt)"
    rc=0; start_server "$port" || rc=$?
    if ((rc == 0)); then base_url="http://127.0.0.1:$port"; break; fi
    log "server log:"; sed 's/^/  | /' "$work/server.log" >&2 || true
    if ((rc == 2)) || [[ -n "${LATCHKEY_PORT:-}" ]]; then exit 1; fi
done
[[ -n "$base_url" ]] || { log "server failed to start"; exit 1; }
log "server is up at $base_url"

# --- run -------------------------------------------------------------------
rc=0
"$newman" run "$collection" --env-var "base_url=$base_url" --bail "$@" || rc=$?
if ((rc != 0)); then
    log "newman failed (exit $rc); server log:"
    sed 's/^/  | /' "$work/server.log" >&2 || true
fi
exit "$rc"
