#!/usr/bin/env bash
# Peer comparison (issue "Fast and durable"): Django REST framework +
# SimpleJWT under gunicorn against Latchkey, same machine, same harness, same
# scenarios, one run. Loopback only; every load stops by itself (10 s each).
#
#   bash bench/peers/simplejwt/run.sh            # prints both tables + ratios
#
# Every run uses --request-timeout 30s (both servers): SimpleJWT's sign-in
# (PBKDF2-SHA256, 1 000 000 iterations, Django's default) queues longer than
# the harness's default 5 s with 16 workers on 2 cores.
#
# Environment knobs (defaults in brackets):
#   DURATION [10s]  GUNICORN_WORKERS [2 x cores + 1]
#   GUNICORN_CLASS [gthread]  GUNICORN_THREADS [1]  OUT [a temp dir, removed]
#
# Peer set-up: a venv in a temp dir with the exact versions of
# requirements.txt (from PyPI), the Django project in this directory (SQLite
# in WAL mode with synchronous=FULL, SimpleJWT with ROTATE_REFRESH_TOKENS and
# BLACKLIST_AFTER_ROTATION, the token_blacklist app), `migrate`, then gunicorn
# on 127.0.0.1. gunicorn's `sync` worker closes the connection after every
# answer (it has no keep-alive); the `gthread` worker with one thread per
# process is the same one-request-at-a-time-per-process model *with*
# keep-alive, so it is the default here (GUNICORN_CLASS=sync to compare).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
duration="${DURATION:-10s}"
cores="$(nproc)"
gworkers="${GUNICORN_WORKERS:-$((2 * cores + 1))}"
gclass="${GUNICORN_CLASS:-gthread}"
gthreads="${GUNICORN_THREADS:-1}"
work="$(mktemp -d)"
out="${OUT:-$work/out}"
mkdir -p "$out"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$work/venv" "$work/data" "$work"/*.sqlite3*
    [[ -n "${OUT:-}" ]] || rm -rf "$work"
}
trap cleanup EXIT

echo "== build (release)"
(cd "$root" && cargo build --release --quiet -p latchkey-server -p latchkey-bench)
bin="$root/target/release"

echo "== peer venv ($work/venv) with pinned requirements"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --require-virtualenv -r "$here/requirements.txt"
py="$work/venv/bin/python"

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== migrate"
export PEER_DB="$work/peer.sqlite3"
(cd "$here" && "$py" manage.py migrate --noinput -v 0)

echo "== start gunicorn ($gworkers x $gclass, threads=$gthreads)"
gport="$(free_port)"
(cd "$here" && exec "$work/venv/bin/gunicorn" peer.wsgi:application \
    --bind "127.0.0.1:$gport" --workers "$gworkers" --worker-class "$gclass" \
    --threads "$gthreads" --keep-alive 5 --backlog 2048 --log-level warning) \
    >"$out/gunicorn.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gport/api/me/" || true)"
    [[ "$code" == 401 ]] && break
    sleep 0.2
done
[[ "$code" == 401 ]] || { echo "gunicorn did not start"; cat "$out/gunicorn.log"; exit 1; }

echo "== start latchkey (fresh data dir)"
# All load comes from one address: the per-address limits are off.
"$bin/latchkey" --log-json serve --listen 127.0.0.1:0 --data-dir "$work/data" \
    --sign-up-rate-limit 0 --tokens-rate-limit 0 >"$out/latchkey.log" 2>&1 &
pids+=($!)
addr=""
for _ in $(seq 1 100); do
    addr="$(grep -o '"message":"listening","addr":"[^"]*"' "$out/latchkey.log" | sed 's/.*"addr":"\([^"]*\)"/\1/' || true)"
    [[ -n "$addr" ]] && break
    sleep 0.1
done
[[ -n "$addr" ]] || { echo "latchkey did not start"; cat "$out/latchkey.log"; exit 1; }

declare -A target=( [simplejwt]="http://127.0.0.1:$gport" [latchkey]="http://$addr" )
# scenario:workers, as in BENCHMARKS.md
for sw in sign-in:16 refresh:64 me:64; do
    s="${sw%%:*}"; w="${sw##*:}"
    for peer in simplejwt latchkey; do
        echo "== $peer $s (--workers $w --duration $duration)"
        cmd=("$bin/latchkey-bench" --target "${target[$peer]}" --profile "$peer"
             --scenario "$s" --workers "$w" --duration "$duration" --request-timeout 30s --json "$out/$peer-$s.json")
        echo "\$ ${cmd[*]}"
        "${cmd[@]}" 2>"$out/$peer-$s.err" | tee "$out/$peer-$s.txt"
        sleep 2
    done
done

echo "== versions"
{
    cd "$here"
    echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/{print $2}') GiB, Linux $(uname -r)"
    echo "python: $("$py" --version 2>&1 | cut -d' ' -f2)"
    "$py" -c 'import django, rest_framework, rest_framework_simplejwt, gunicorn, jwt; print("Django:", django.get_version()); print("djangorestframework:", rest_framework.VERSION); print("djangorestframework-simplejwt:", rest_framework_simplejwt.__version__); print("gunicorn:", gunicorn.__version__); print("PyJWT:", jwt.__version__)'
    "$py" -c 'import os; os.environ["DJANGO_SETTINGS_MODULE"]="peer.settings"; import django; django.setup(); from django.contrib.auth.hashers import get_hasher; h=get_hasher(); print("password hasher:", h.algorithm, "iterations", getattr(h, "iterations", "?"))' 2>/dev/null || true
    echo "gunicorn: $gworkers workers, --worker-class $gclass --threads $gthreads --keep-alive 5"
    echo "latchkey: $("$bin/latchkey" --version 2>/dev/null || echo '?') ($(cd "$root" && git rev-parse --short HEAD)), rustc $(rustc --version | cut -d' ' -f2)"
} | tee "$out/versions.txt"

echo "== Latchkey / SimpleJWT"
"$py" - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
def load(p, s):
    r = json.load(open(os.path.join(out, f"{p}-{s}.json")))
    o = r["operations"][0]
    lat = o.get("latency_us") or {}
    ok = o["status"].get("200", 0)
    return dict(rps=ok / r["elapsed_s"], p50=lat.get("p50", 0) / 1000, p99=lat.get("p99", 0) / 1000,
                status=o["status"], reconnects=r["reconnects"], errors=o["errors"])
print(f"{'scenario':<8} {'peer':<10} {'200/s':>9} {'p50 ms':>8} {'p99 ms':>8}  status / reconnects")
for s in ["sign-in", "refresh", "me"]:
    a, b = load("latchkey", s), load("simplejwt", s)
    for name, r in (("simplejwt", b), ("latchkey", a)):
        print(f"{s:<8} {name:<10} {r['rps']:>9.1f} {r['p50']:>8.2f} {r['p99']:>8.2f}  {r['status']} / {r['reconnects']}")
    ratio = a["rps"] / b["rps"] if b["rps"] else float("inf")
    p99r = a["p99"] / b["p99"] if b["p99"] else float("nan")
    print(f"{s:<8} {'ratio L/S':<10} {ratio:>9.2f} {'':>8} {p99r:>8.2f}")
PY
