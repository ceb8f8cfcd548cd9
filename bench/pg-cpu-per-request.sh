#!/usr/bin/env bash
# One latchkey node on PostgreSQL under refresh load (64 workers, 10 s):
# refresh/s, p50, p99, the server's CPU per refresh (harness --server-pid)
# and PostgreSQL's, summed over its processes that lived through an 8 s
# window of the timed phase (backends of the node's pool live that long).
#
#   PGPORT=5434 PG_DURABLE=1 bash scripts/postgres-test-cluster.sh start
#   bash bench/pg-cpu-per-request.sh BIN_DIR PORT DATABASE_URL
#
# BIN_DIR holds `latchkey` and `latchkey-bench` (two builds can be compared
# back to back). A fresh schema per run, dropped at the end; only 127.0.0.1
# is contacted.
set -euo pipefail
bin=$1 port=$2 url=$3
schema="cpu_$$"
work=$(mktemp -d)
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    psql "$url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
psql "$url" -qc "CREATE SCHEMA $schema" >/dev/null
sep="?"; [[ "$url" == *"?"* ]] && sep="&"
"$bin/latchkey" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --database-url "$url${sep}options=-csearch_path%3D$schema" \
    --sign-up-rate-limit 0 --tokens-rate-limit 0 >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
# utime+stime in clock ticks of each postgres process, as "pid ticks" lines
postgres_ticks() {
    for p in $(pgrep -x postgres); do
        awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat" 2>/dev/null || true
    done
}
"$bin/latchkey-bench" --scenario refresh --target "http://127.0.0.1:$port" --workers 64 \
    --duration 10s --server-pid "$pid" --json "$work/report.json" >"$work/out" 2>&1 &
bench=$!
sleep 2.5
postgres_ticks >"$work/pg.start"
sleep 8
postgres_ticks >"$work/pg.end"
wait "$bench"
python3 - "$work/report.json" "$work/pg.start" "$work/pg.end" "$(getconf CLK_TCK)" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
ticks = lambda f: dict(line.split() for line in open(f))
start, end, hz = ticks(sys.argv[2]), ticks(sys.argv[3]), int(sys.argv[4])
pg_s = sum(int(end[p]) - int(start[p]) for p in end if p in start) / hz
ok = report["server_cpu"]["ok_requests"]
rate = ok / report["elapsed_s"]
lat = report["total"]["latency_us"]
print(f'{rate:.0f} refresh/s, p50 {lat["p50"] / 1000:.2f} ms, p99 {lat["p99"] / 1000:.2f} ms; '
      f'server CPU {report["server_cpu"]["cpu_us_per_ok"]:.1f} µs per refresh; '
      f'PostgreSQL CPU {pg_s / (rate * 8) * 1e6:.1f} µs per refresh')
PY
