#!/usr/bin/env bash
# A live server's /metrics read by a parser nobody here wrote: PyPI
# prometheus_client (pinned in requirements.txt, in a throwaway virtualenv).
# Starts a throwaway server (no refresh grace, so a replay is reuse at
# once), scrapes /metrics, signs up, signs in (right and wrong password),
# rotates a refresh token and replays it, scrapes again, and has check.py
# assert that every metric family is there and the counters moved by
# exactly that.
#
# Environment: LATCHKEY_BIN (else a release build), HEALTH_TIMEOUT, PYTHON.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../live-server.sh"
python="${PYTHON:-python3}"

lk_require curl "$python"
lk_binary
lk_log "installing prometheus_client (pinned) into a virtualenv"
if ! ( "$python" -m venv "$work/venv" \
    && "$work/venv/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$here/requirements.txt" ) >"$work/pip.log" 2>&1; then
    lk_log "virtualenv / pip install failed:"; sed 's/^/  | /' "$work/pip.log" >&2; exit 1
fi

lk_start_server --refresh-grace 0s
lk_log "server is up at $base_url"

# post PATH JSON: prints the status; the body goes to $work/body.json.
post() {
    curl -s -o "$work/body.json" -w '%{http_code}' --max-time 10 \
        -H 'content-type: application/json' -d "$2" "$base_url$1"
}
expect() { # expect WANT GOT WHAT
    if [[ "$1" != "$2" ]]; then
        lk_log "$3 answered $2, expected $1: $(cat "$work/body.json")"; lk_show_server_log; exit 1
    fi
}

curl -sf --max-time 10 "$base_url/metrics" >"$work/before.txt"
user="metrics-$RANDOM$RANDOM"
password="metrics correct horse battery staple"
expect 201 "$(post /v1/sign-up "{\"username\":\"$user\",\"password\":\"$password\"}")" sign-up
expect 401 "$(post /v1/sign-in "{\"username\":\"$user\",\"password\":\"not $password\"}")" "wrong sign-in"
expect 200 "$(post /v1/sign-in "{\"username\":\"$user\",\"password\":\"$password\"}")" sign-in
refresh_token="$(lk_json_field "$work/body.json" refresh_token)"
expect 200 "$(post /v1/tokens/refresh "{\"refresh_token\":\"$refresh_token\"}")" refresh
expect 401 "$(post /v1/tokens/refresh "{\"refresh_token\":\"$refresh_token\"}")" "replayed refresh"
curl -sf --max-time 10 "$base_url/metrics" >"$work/after.txt"

"$work/venv/bin/python" "$here/check.py" "$work/before.txt" "$work/after.txt"
