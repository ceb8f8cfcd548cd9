# Sourced by the live-server test scripts (tests/*/run.sh): finds or builds
# the latchkey binary, starts a throwaway server on 127.0.0.1:0 with a fresh
# data directory, and always stops it and removes its files on exit.
#
#   source "$root/tests/live-server.sh"
#   lk_binary                       # sets $bin (LATCHKEY_BIN, or a release build)
#   lk_start_server [serve flags]   # sets $base_url; issuer = $base_url
#
# Variables: $work (temporary directory), $data (the server's data directory).
# Environment: LATCHKEY_BIN, HEALTH_TIMEOUT (seconds, default 30).

lk_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
lk_name="$(basename "$(dirname "${BASH_SOURCE[1]:-$0}")")"
health_timeout="${HEALTH_TIMEOUT:-30}"

# The server reads LATCHKEY_* variables; tests pass what they mean as flags.
unset LATCHKEY_LISTEN LATCHKEY_DATA_DIR LATCHKEY_ISSUER LATCHKEY_CONFIG LATCHKEY_DATABASE_URL

lk_log() { printf '%s: %s\n' "$lk_name" "$*" >&2; }

lk_require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { lk_log "$tool is required"; exit 2; }
    done
}

work="$(mktemp -d "${TMPDIR:-/tmp}/latchkey-$lk_name.XXXXXX")"
data="$work/data"
server_pid=""
base_url=""

lk_cleanup() {
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
trap lk_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

lk_show_server_log() {
    lk_log "server log:"
    sed 's/^/  | /' "$work/server.log" >&2 || true
}

# JSON string field of a file: lk_json_field FILE FIELD
lk_json_field() {
    python3 -c 'import json,sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
sys.exit(1) if not isinstance(v, str) or not v else print(v, end="")' "$1" "$2"
}

lk_binary() {
    if [[ -n "${LATCHKEY_BIN:-}" ]]; then
        bin="$LATCHKEY_BIN"
    else
        lk_log "building latchkey-server (release)"
        (cd "$lk_root" && cargo build --release --quiet -p latchkey-server)
        bin="${CARGO_TARGET_DIR:-$lk_root/target}/release/latchkey"
    fi
    [[ -x "$bin" ]] || { lk_log "server binary not found: $bin"; exit 2; }
}

# Starts the server on a port the OS picks, reads the address from its JSON
# log, and waits (bounded) until /healthz answers 200.
lk_start_server() {
    mkdir -p "$data"
    "$bin" --log-json serve --listen 127.0.0.1:0 --data-dir "$data" "$@" >"$work/server.log" 2>&1 &
    server_pid=$!
    local deadline=$((SECONDS + health_timeout)) addr=""
    while ((SECONDS < deadline)); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            server_pid=""
            lk_log "server exited at start-up"; lk_show_server_log; exit 1
        fi
        if [[ -z "$addr" ]]; then
            addr="$(grep -o '"message":"listening","addr":"[^"]*"' "$work/server.log" | head -n 1 | sed 's/.*"addr":"\([^"]*\)"/\1/' || true)"
        fi
        if [[ -n "$addr" ]] && [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$addr/healthz" || true)" == "200" ]]; then
            base_url="http://$addr"
            return 0
        fi
        sleep 0.1
    done
    lk_log "server did not become healthy within ${health_timeout}s"; lk_show_server_log; exit 1
}
