#!/usr/bin/env bash
# Issue "Fast and durable": the three measurements not covered by the plain
# harness runs, against a fresh release `latchkey serve` on loopback.
#
#   bash bench/measure.sh            # all three; or: bash bench/measure.sh a|b|c
#
# (a) refresh and me p99 idle vs during a sign-in flood: `latchkey-bench
#     --scenario refresh|me --workers 16` alone, then again while a second
#     latchkey-bench `--scenario sign-in --workers 32` runs; the p99s and the
#     ratios (target <= 2x). FLOOD_SERVER_ARGS adds serve flags to this part's
#     server, e.g. FLOOD_SERVER_ARGS="--hashing-threads 2".
# (b) server RSS (VmRSS of /proc/<pid>/status, sampled every 100 ms, peak)
#     with 100 000 live sessions under refresh load. To create the sessions
#     quickly the server runs with cheap Argon2 (--config with
#     [argon2] memory_kib=256 iterations=1 parallelism=1; the session limit
#     raised to 2000 per user and the password throttle off, since all 64
#     users sign in from one address): 64 users, then
#     100 000 timed sign-ins (--max-requests 100064 = 64 sign-ups + 100 000),
#     then refresh load (64 workers, 10 s).
# (c) cold start to ready on the data dir of (b): spawn -> first 200 from
#     GET /readyz (polled every 1 ms), median of 20 starts; SIGTERM and wait
#     between starts.
# Every load is bounded by --duration and --max-requests; every wait loop by
# a count; only 127.0.0.1 is contacted.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
what="${1:-abc}"
work="$(mktemp -d)"
server_pid=""
pids=()
cleanup() {
    for p in "${pids[@]}" $server_pid; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# BIN_DIR: binaries of another build to measure (no build then).
if [[ -n "${BIN_DIR:-}" ]]; then
    bin="$BIN_DIR"
else
    (cd "$root" && cargo build --release --quiet -p latchkey-server -p latchkey-bench)
    bin="$root/target/release"
fi
bench="$bin/latchkey-bench"

# start_server DATA_DIR [extra args...]: sets server_pid and base
start_server() {
    local data="$1"; shift
    local log="$work/server-$RANDOM.log"
    # All load comes from one address: the per-address limits are off.
    "$bin/latchkey" --log-json serve --listen 127.0.0.1:0 --data-dir "$data" \
        --sign-up-rate-limit 0 --tokens-rate-limit 0 "$@" >"$log" 2>&1 &
    server_pid=$!
    local addr=""
    for _ in $(seq 1 300); do
        addr="$(grep -o '"message":"listening","addr":"[^"]*"' "$log" | sed 's/.*"addr":"\([^"]*\)"/\1/' || true)"
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    [[ -n "$addr" ]] || { echo "server did not start"; cat "$log"; exit 1; }
    base="http://$addr"
}
stop_server() {
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
# jq-free field access on the harness's --json report
p99_ms() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f" % (r["operations"][0]["latency_us"]["p99"]/1000))' "$1"; }
rps() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); o=r["operations"][0]; print("%.0f" % (o["status"].get("200",0)/r["elapsed_s"]))' "$1"; }
status() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); o=r["operations"][0]; print(o["status"], "errors", o["errors"])' "$1"; }
run() { echo "\$ ${*/#$root\//}"; "$@"; }

if [[ "$what" == *a* ]]; then
    echo "== (a) refresh and me p99: idle vs during a sign-in flood"
    start_server "$work/data-a" ${FLOOD_SERVER_ARGS:-}
    for op in refresh me; do
        run "$bench" --target "$base" --scenario $op --workers 16 --duration 10s \
            --json "$work/a-$op-idle.json" --run-id "a-$op-idle" 2>/dev/null
    done
    # The flood first; the measured runs start once the flood's timed phase has.
    "$bench" --target "$base" --scenario sign-in --workers 32 --duration 60s \
        --json "$work/a-flood.json" --run-id a-flood >"$work/a-flood.txt" 2>"$work/a-flood.err" &
    flood=$!; pids+=($flood)
    for _ in $(seq 1 300); do grep -q "setup done" "$work/a-flood.err" && break; sleep 0.1; done
    echo "\$ target/release/latchkey-bench --target $base --scenario sign-in --workers 32 --duration 60s &   # the flood"
    for op in refresh me; do
        run "$bench" --target "$base" --scenario $op --workers 16 --duration 10s \
            --json "$work/a-$op-busy.json" --run-id "a-$op-busy" 2>/dev/null
    done
    kill -0 "$flood" 2>/dev/null && flood_alive=yes || flood_alive=NO
    kill -INT "$flood" 2>/dev/null || true
    wait "$flood" 2>/dev/null || true
    echo "-- the flood (stopped with SIGINT after the measured runs; still running at their end: $flood_alive)"
    cat "$work/a-flood.txt"
    stop_server
    for op in refresh me; do
        idle="$(p99_ms "$work/a-$op-idle.json")"; busy="$(p99_ms "$work/a-$op-busy.json")"
        echo "RESULT (a): $op p99 idle ${idle} ms ($(rps "$work/a-$op-idle.json")/s, $(status "$work/a-$op-idle.json")); during flood ${busy} ms ($(rps "$work/a-$op-busy.json")/s, $(status "$work/a-$op-busy.json"))"
        python3 -c 'import sys; i,b=float(sys.argv[2]),float(sys.argv[3]); r=b/i; print("RESULT (a): %s ratio %.2fx, target <= 2x: %s" % (sys.argv[1], r, "met" if r<=2 else "NOT met"))' "$op" "$idle" "$busy"
    done
    echo "RESULT (a): flood sign-ins $(rps "$work/a-flood.json")/s over its whole run"
fi

if [[ "$what" == *b* || "$what" == *c* ]]; then
    echo "== (b) RSS with 100 000 live sessions under refresh load (cheap Argon2 via --config)"
    # Room for 100 000 live sessions among 64 users, and no password-attempt
    # throttle: every sign-in comes from one address, 64 at a time.
    printf 'max_sessions_per_user = 2000\n[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n[throttle]\nenabled = false\n' >"$work/cheap.toml"
    start_server "$work/data-b" --config "$work/cheap.toml"
    rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
    # The anonymous part (heap, stacks) apart from the file-backed pages of
    # the binary's code, which the kernel can drop and reread.
    anon_kib() { awk '/^RssAnon:/{print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
    # sample_rss OUT: VmRSS every 100 ms, at most 6000 samples (10 min), until OUT.stop exists
    sample_rss() {
        local out="$1" n=0
        while [[ ! -e "$out.stop" && $n -lt 6000 ]]; do
            rss_kib >>"$out"; anon_kib >>"$out.anon"; n=$((n + 1)); sleep 0.1
        done
    }
    peak() { sort -n "$1" | tail -1; }
    echo "RSS at start (no sessions): $(rss_kib) KiB, of it anonymous $(anon_kib) KiB"
    sample_rss "$work/rss-signin" & pids+=($!)
    run "$bench" --target "$base" --scenario sign-in --workers 64 --max-requests 100064 \
        --duration 300s --request-timeout 30s --json "$work/b-signin.json" --run-id b-sessions 2>/dev/null
    touch "$work/rss-signin.stop"; wait "${pids[-1]}" 2>/dev/null || true
    sessions="$(sqlite3 "file:$work/data-b/latchkey.db?mode=ro" "SELECT count(*) FROM sessions WHERE revoked_at IS NULL" 2>/dev/null || echo '?')"
    echo "live sessions in the store after the sign-ins: $sessions; RSS now $(rss_kib) KiB"
    sample_rss "$work/rss-refresh" & pids+=($!)
    run "$bench" --target "$base" --scenario refresh --workers 64 --duration 10s \
        --json "$work/b-refresh.json" --run-id b-refresh 2>/dev/null
    touch "$work/rss-refresh.stop"; wait "${pids[-1]}" 2>/dev/null || true
    sessions="$(sqlite3 "file:$work/data-b/latchkey.db?mode=ro" "SELECT count(*) FROM sessions WHERE revoked_at IS NULL" 2>/dev/null || echo '?')"
    echo "RESULT (b): live sessions $sessions; peak VmRSS during the sign-ins $(peak "$work/rss-signin") KiB (anonymous $(peak "$work/rss-signin.anon") KiB), during refresh load $(peak "$work/rss-refresh") KiB (anonymous $(peak "$work/rss-refresh.anon") KiB) ($(wc -l <"$work/rss-refresh") samples; refresh $(rps "$work/b-refresh.json")/s, p99 $(p99_ms "$work/b-refresh.json") ms)"
    stop_server
fi

if [[ "$what" == *c* ]]; then
    echo "== (c) cold start to ready on the data dir of (b) (median of 20)"
    python3 - "$bin/latchkey" "$work/data-b" "$work/cheap.toml" <<'PY'
import http.client, socket, statistics, subprocess, sys, time
exe, data, cfg = sys.argv[1:4]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
times = []
for i in range(20):
    t0 = time.perf_counter()
    p = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--config", cfg],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = None
    deadline = t0 + 30
    while time.perf_counter() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                ready = time.perf_counter() - t0
                break
        except OSError:
            pass
        finally:
            c.close()
        time.sleep(0.001)
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()
    if ready is None:
        sys.exit(f"start {i}: not ready within 30 s")
    times.append(ready * 1000)
times.sort()
print("starts (ms):", " ".join("%.1f" % t for t in times))
print("RESULT (c): cold start to first 200 /readyz: median %.1f ms, min %.1f, max %.1f (n=20)"
      % (statistics.median(times), times[0], times[-1]))
PY
fi
