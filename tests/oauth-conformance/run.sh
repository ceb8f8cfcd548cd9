#!/usr/bin/env bash
# OAuth 2.0 conformance test: npm `oauth4webapi` (pinned in package.json, a strict
# client nobody here wrote) performs discovery, the refresh_token and
# client_credentials grants, revocation, introspection and RFC 9068 access-token
# validation against a live, throwaway Latchkey server and must accept every
# response (conformance.mjs).
#
# Builds the latchkey server, registers two clients with `latchkey clients create`
# in a fresh data directory (public `web`: scopes read+write, audience latchkey;
# confidential `jobs`: scope jobs, audience jobs-api), starts the server on a free
# 127.0.0.1 port with --issuer equal to its base URL, signs a user up and in as
# client `web` with curl, then runs conformance.mjs. Exits non-zero on any failure.
#
# Environment:
#   LATCHKEY_BIN       use this server binary instead of building one
#   LATCHKEY_PORT      listen on this port instead of a free one picked at random
#   HEALTH_TIMEOUT     seconds to wait for /healthz (default 30)
#   TEST_TIMEOUT       seconds conformance.mjs may run (default 120)
#   LATCHKEY_SIGNING_ALGORITHM  passed through to the server (EdDSA, ES256, RS256)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
health_timeout="${HEALTH_TIMEOUT:-30}"
test_timeout="${TEST_TIMEOUT:-120}"

log() { printf 'run.sh: %s\n' "$*" >&2; }

for tool in node npm curl; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 2; }
done

# The server reads LATCHKEY_* variables; only pass through what is documented above.
unset LATCHKEY_LISTEN LATCHKEY_DATA_DIR LATCHKEY_ISSUER LATCHKEY_CONFIG

work="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-oauth.XXXXXX")"
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

show_server_log() {
    log "server log:"
    sed 's/^/  | /' "$work/server.log" >&2 || true
}

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

# --- oauth4webapi (pinned, from package-lock.json) ---------------------------
log "installing oauth4webapi (npm ci)"
if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1); then
    log "npm ci failed:"; sed 's/^/  | /' "$work/npm.log" >&2; exit 1
fi

# --- helpers -------------------------------------------------------------------
json_field() { # FILE FIELD
    node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const v=j[process.argv[2]];if(typeof v!=="string"||!v)process.exit(1);process.stdout.write(v)' "$1" "$2"
}

free_port() {
    # Ask the OS for a free loopback port; the tiny window until the server binds it
    # is covered by retrying with another port if the server dies at start-up.
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close();})'
}

http_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

# --- clients (registered in the data directory before the server starts) ---------
data="$work/data"
public_client=web
conf_client=jobs

create_client() { # OUTFILE ARGS...
    local out="$1"; shift
    if ! timeout 60 "$bin" clients --data-dir "$data" create "$@" >"$out" 2>"$work/clients.err"; then
        log "latchkey clients create $* failed:"; sed 's/^/  | /' "$work/clients.err" "$out" >&2; exit 1
    fi
}
create_client "$work/client-web.json" "$public_client" --type public --scope read --scope write --audience latchkey
create_client "$work/client-jobs.json" "$conf_client" --type confidential --scope jobs --audience jobs-api
conf_secret="$(json_field "$work/client-jobs.json" client_secret)" \
    || { log "no client_secret in: $(cat "$work/client-jobs.json")"; exit 1; }

# --- server ----------------------------------------------------------------
start_server() {
    local port="$1"
    "$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" \
        --issuer "http://127.0.0.1:$port" >"$work/server.log" 2>&1 &
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
    log "server on port $port failed to start (attempt $attempt)"
    show_server_log
    if ((rc == 2)) || [[ -n "${LATCHKEY_PORT:-}" ]]; then exit 1; fi
done
[[ -n "$base_url" ]] || { log "server failed to start"; exit 1; }
log "server is up at $base_url"

# --- user and initial tokens (curl) ----------------------------------------------
username="oauth-$RANDOM$RANDOM"
password="oauth conformance correct horse battery"

post() { # PATH BODY OUTFILE -> prints the HTTP status
    curl -s -o "$3" -w '%{http_code}' --max-time 10 -X POST "$base_url$1" \
        -H 'content-type: application/json' --data-binary "$2" || echo 000
}

status="$(post /v1/sign-up "$(printf '{"username":"%s","password":"%s"}' "$username" "$password")" "$work/sign-up.json")"
if [[ "$status" != "201" ]]; then
    log "POST /v1/sign-up: expected 201, got $status: $(cat "$work/sign-up.json" 2>/dev/null)"
    show_server_log; exit 1
fi
status="$(post /v1/sign-in "$(printf '{"username":"%s","password":"%s","client_id":"%s","scope":"read write","audience":"latchkey"}' \
    "$username" "$password" "$public_client")" "$work/sign-in.json")"
if [[ "$status" != "200" ]]; then
    log "POST /v1/sign-in: expected 200, got $status: $(cat "$work/sign-in.json" 2>/dev/null)"
    show_server_log; exit 1
fi

access_token="$(json_field "$work/sign-in.json" access_token)" \
    && refresh_token="$(json_field "$work/sign-in.json" refresh_token)" \
    || { log "sign-in response lacks tokens: $(cat "$work/sign-in.json")"; exit 1; }

# --- conformance -------------------------------------------------------------------
rc=0
LATCHKEY_ISSUER="$base_url" \
LATCHKEY_PUBLIC_CLIENT="$public_client" \
LATCHKEY_CONF_CLIENT="$conf_client" \
LATCHKEY_CONF_SECRET="$conf_secret" \
LATCHKEY_ACCESS_TOKEN="$access_token" \
LATCHKEY_REFRESH_TOKEN="$refresh_token" \
    timeout "$test_timeout" node "$here/conformance.mjs" || rc=$?
if ((rc != 0)); then
    ((rc == 124)) && log "conformance.mjs did not finish within ${test_timeout}s"
    log "conformance failed (exit $rc)"
    show_server_log
fi
exit "$rc"
