#!/usr/bin/env bash
# Server CPU per successful request, next to throughput and p99, for one
# harness run against a fresh release `latchkey serve` on loopback.
#
#   bash bench/cpu-per-request.sh BIN_DIR SCENARIO WORKERS PORT [HARNESS FLAGS...]
#   e.g. bash bench/cpu-per-request.sh target/release refresh 64 18511
#        bash bench/cpu-per-request.sh target/release me 64 18511 --rate 10000
#
# BIN_DIR holds `latchkey` and `latchkey-bench` (so two builds can be
# compared back to back). CPU is utime+stime of the server over the
# harness's timed phase only, read by the harness itself (--server-pid);
# the server hashes with cheap Argon2 (256 KiB, t=1) so that setup is quick,
# unless ARGON2=default (for the sign-in scenario: its CPU per sign-in is
# compared with one hash at the default cost). Rate limits are off. The run
# is bounded by the harness's --duration (10 s); only 127.0.0.1 is contacted.
set -euo pipefail
bin=$1 scenario=$2 workers=$3 port=$4
shift 4
work=$(mktemp -d)
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
if [[ "${ARGON2:-cheap}" == default ]]; then
    : >"$work/cfg.toml"
else
    printf '[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n' >"$work/cfg.toml"
fi
"$bin/latchkey" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --config "$work/cfg.toml" --sign-up-rate-limit 0 --tokens-rate-limit 0 \
    >"$work/log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
"$bin/latchkey-bench" --scenario "$scenario" --target "http://127.0.0.1:$port" \
    --workers "$workers" --duration 10s --server-pid "$server_pid" \
    --json "$work/report.json" "$@" >"$work/out" 2>&1
python3 - "$work/report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
total, cpu = report["total"], report["server_cpu"]
if cpu["cpu_s"] is None:
    sys.exit(f'server CPU unknown: {cpu["error"]}')
ok = cpu["ok_requests"]
print(
    f'{report["params"]["scenario"]}, {report["params"]["workers"]} workers'
    f'{", open loop at %s/s" % report["params"]["rate"] if report["params"].get("rate") else ""}: '
    f'{ok / report["elapsed_s"]:.0f} ok/s, p50 {total["latency_us"]["p50"] / 1000:.2f} ms, '
    f'p99 {total["latency_us"]["p99"] / 1000:.2f} ms, '
    f'server CPU {cpu["cpu_us_per_ok"] or 0:.1f} µs per ok request ({ok} ok, {cpu["cpu_s"]:.2f} s CPU)'
)
PY
