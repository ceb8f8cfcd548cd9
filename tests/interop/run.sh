#!/usr/bin/env bash
# Interop test: JWT libraries nobody here wrote verify Latchkey access tokens
# against the live JWKS of a throwaway server.
#
# Builds the latchkey server, starts it on 127.0.0.1 with a fresh data directory,
# signs a user up and in with curl, then runs
#   node/verify.mjs   - npm `jose` (jwtVerify + createRemoteJWKSet)
#   python/verify.py  - PyPI `PyJWT[crypto]` (PyJWKClient + jwt.decode)
# against it. Each verifier gets its own session (its own sign-in), since both
# exercise POST /v1/tokens/refresh. Exits non-zero if either verifier fails.
#
# Environment:
#   LATCHKEY_BIN       use this server binary instead of building one
#   LATCHKEY_PORT      listen on this port instead of a free one picked at random
#   HEALTH_TIMEOUT     seconds to wait for /healthz (default 30)
#   PYTHON             interpreter for the virtualenv (default python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
health_timeout="${HEALTH_TIMEOUT:-30}"
python="${PYTHON:-python3}"

log() { printf 'run.sh: %s\n' "$*" >&2; }

for tool in node npm curl "$python"; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-interop.XXXXXX")"
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
    (cd "$root" && cargo build --release --quiet -p latchkey-server)
    target_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps \
        | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).target_directory))')"
    bin="$target_dir/release/latchkey"
fi
[[ -x "$bin" ]] || { log "server binary not found: $bin"; exit 2; }

# --- verifier dependencies (pinned; in parallel with each other) ------------
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1) &
npm_pid=$!
( "$python" -m venv "$work/venv" \
    && "$work/venv/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$here/python/requirements.txt" ) >"$work/pip.log" 2>&1 &
pip_pid=$!
rc=0; wait "$npm_pid" || rc=$?
if ((rc != 0)); then log "npm ci failed:"; sed 's/^/  | /' "$work/npm.log" >&2; exit 1; fi
rc=0; wait "$pip_pid" || rc=$?
if ((rc != 0)); then log "virtualenv / pip install failed:"; sed 's/^/  | /' "$work/pip.log" >&2; exit 1; fi

# --- server ----------------------------------------------------------------
free_port() {
    # Ask the OS for a free loopback port; the tiny window until the server binds it
    # is covered by retrying with another port if the server dies at start-up.
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close();})'
}

http_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
}

start_server() {
    local port="$1"
    rm -rf "$work/data"
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
    rc=0; start_server "$port" || rc=$?
    if ((rc == 0)); then base_url="http://127.0.0.1:$port"; break; fi
    log "server on port $port failed to start (attempt $attempt)"
    show_server_log
    if ((rc == 2)) || [[ -n "${LATCHKEY_PORT:-}" ]]; then exit 1; fi
done
[[ -n "$base_url" ]] || { log "server failed to start"; exit 1; }

# --- user and tokens ---------------------------------------------------------
username="interop-$RANDOM$RANDOM"
password="interop correct horse battery staple"
credentials="$(printf '{"username":"%s","password":"%s"}' "$username" "$password")"

# post PATH BODY OUTFILE -> prints the HTTP status
post() {
    curl -s -o "$3" -w '%{http_code}' --max-time 10 -X POST "$base_url$1" \
        -H 'content-type: application/json' --data-binary "$2" || echo 000
}

json_field() { # FILE FIELD
    node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));const v=j[process.argv[2]];if(typeof v!=="string"||!v)process.exit(1);process.stdout.write(v)' "$1" "$2"
}

status="$(post /v1/sign-up "$credentials" "$work/sign-up.json")"
if [[ "$status" != "201" ]]; then
    log "POST /v1/sign-up: expected 201, got $status: $(cat "$work/sign-up.json" 2>/dev/null)"
    show_server_log; exit 1
fi

sign_in() { # OUT-PREFIX: sets ${1}_access and ${1}_refresh
    local out="$work/sign-in-$1.json" st
    st="$(post /v1/sign-in "$credentials" "$out")"
    if [[ "$st" != "200" ]]; then
        log "POST /v1/sign-in: expected 200, got $st: $(cat "$out" 2>/dev/null)"
        show_server_log; exit 1
    fi
    printf -v "${1}_access" '%s' "$(json_field "$out" access_token)"
    printf -v "${1}_refresh" '%s' "$(json_field "$out" refresh_token)"
}
sign_in jose
sign_in pyjwt

# --- verifiers ---------------------------------------------------------------
export LATCHKEY_BASE_URL="$base_url" LATCHKEY_ISSUER="$base_url"
failed=()

echo "== jose (node/verify.mjs)"
LATCHKEY_ACCESS_TOKEN="$jose_access" LATCHKEY_REFRESH_TOKEN="$jose_refresh" \
    node "$here/node/verify.mjs" || failed+=(jose)

echo "== PyJWT (python/verify.py)"
LATCHKEY_ACCESS_TOKEN="$pyjwt_access" LATCHKEY_REFRESH_TOKEN="$pyjwt_refresh" \
    "$work/venv/bin/python" "$here/python/verify.py" || failed+=(pyjwt)

if ((${#failed[@]} > 0)); then
    log "failed: ${failed[*]}"
    show_server_log
    exit 1
fi
