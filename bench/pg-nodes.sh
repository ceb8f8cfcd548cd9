#!/usr/bin/env bash
# Refresh throughput of N latchkey nodes sharing one PostgreSQL, all on this
# machine: starts N nodes (same data dir and database), runs one
# latchkey-bench refresh load per node at the same time (WORKERS split
# evenly), and prints each node's table; add the req/s up for the total.
#
#   bash scripts/postgres-test-cluster.sh start
#   bash bench/pg-nodes.sh 3            # WORKERS=64 DURATION=10s by default
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
nodes="${1:-1}"
workers="${WORKERS:-64}"
duration="${DURATION:-10s}"
url="${LATCHKEY_TEST_DATABASE_URL:-$(bash "$root/scripts/postgres-test-cluster.sh" url)}"
schema="bench_$$"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql "$url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && cargo build --release --quiet -p latchkey-server -p latchkey-bench)
bin="$root/target/release"
psql "$url" -qc "CREATE SCHEMA $schema" >/dev/null
sep="?"; [[ "$url" == *"?"* ]] && sep="&"
db="$url${sep}options=-csearch_path%3D$schema"

bases=()
for n in $(seq 1 "$nodes"); do
    "$bin/latchkey" --log-json serve --listen 127.0.0.1:0 --data-dir "$work/data" \
        --issuer http://latchkey.bench --database-url "$db" \
        --sign-up-rate-limit 0 --tokens-rate-limit 0 >"$work/node$n.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        addr="$(grep -o '"message":"listening","addr":"[^"]*"' "$work/node$n.log" | sed 's/.*"addr":"\([^"]*\)"/\1/' || true)"
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    [[ -n "$addr" ]] || { echo "node $n did not start"; cat "$work/node$n.log"; exit 1; }
    bases+=("http://$addr")
done

per_node=$((workers / nodes))
for n in $(seq 1 "$nodes"); do
    "$bin/latchkey-bench" --scenario refresh --target "${bases[$((n - 1))]}" \
        --workers "$per_node" --duration "$duration" --run-id "n$n$$" >"$work/bench$n.txt" 2>&1 &
    pids+=($!)
done
wait "${pids[@]:$nodes}"
for n in $(seq 1 "$nodes"); do
    echo "== node $n (${bases[$((n - 1))]}, $per_node workers)"
    cat "$work/bench$n.txt"
done
