#!/usr/bin/env bash
# Runs PyPI schemathesis (pinned in requirements.txt) against a throwaway
# server, from the server's own /openapi.json: every operation, bounded
# examples, with checks that nothing answers 5xx, that every response's
# status, content type and body are what the document says. The exit code
# is schemathesis's. Extra arguments go to `schemathesis run`.
# Credentials for the document's security schemes are set by hooks.py.
#
# The server hashes with cheap Argon2 and has no per-address rate limits,
# so the run measures the API rather than the password hash. Before it
# starts, a user signs up (for `bearer` tokens), a confidential client
# is registered (for `client_basic`) and another with `latchkey:admin`
# (whose token the `/admin/v1` routes get).
#
# Environment:
#   LATCHKEY_BIN       use this server binary instead of building one
#   MAX_EXAMPLES       examples per operation and phase (default 100)
#   PYTHON             interpreter for the virtualenv (default python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../live-server.sh"
python="${PYTHON:-python3}"
max_examples="${MAX_EXAMPLES:-100}"

lk_require curl "$python"
lk_binary

( "$python" -m venv "$work/venv" \
    && "$work/venv/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$here/requirements.txt" ) >"$work/pip.log" 2>&1 &
pip_pid=$!

# --- a confidential client, registered before the server starts -------------
client_id=schemathesis
if ! timeout 60 "$bin" clients --data-dir "$data" create "$client_id" --type confidential \
        --introspect-any >"$work/client.json" 2>"$work/client.err"; then
    lk_log "latchkey clients create failed:"; sed 's/^/  | /' "$work/client.err" >&2; exit 1
fi
client_secret="$(lk_json_field "$work/client.json" client_secret)" \
    || { lk_log "no client_secret in: $(cat "$work/client.json")"; exit 1; }

# --- an administrator: a confidential client with the admin scope ------------
if ! timeout 60 "$bin" clients --data-dir "$data" create schemathesis-ops --type confidential \
        --scope latchkey:admin >"$work/admin.json" 2>"$work/admin.err"; then
    lk_log "latchkey clients create (admin) failed:"; sed 's/^/  | /' "$work/admin.err" >&2; exit 1
fi
admin_secret="$(lk_json_field "$work/admin.json" client_secret)"

# Cheap hashing, no per-address rate limits and no sign-in throttle: the run's wrong passwords would lock its own
# user's sign-ins (hooks.py) out.
printf '[argon2]\nmemory_kib = 256\niterations = 1\nparallelism = 1\n[throttle]\nenabled = false\n[rate_limits]\nrecovery_per_minute = 0\n' >"$work/config.toml"
lk_start_server --config "$work/config.toml" --sign-up-rate-limit 0 --tokens-rate-limit 0
lk_log "server is up at $base_url"

# --- a user (hooks.py signs it in) ---------------------------------------------
post() { # PATH BODY OUTFILE -> prints the HTTP status
    curl -s -o "$3" -w '%{http_code}' --max-time 10 -X POST "$base_url$1" \
        -H 'content-type: application/json' --data-binary "$2" || echo 000
}
credentials="$(printf '{"username":"st-%s","password":"schemathesis correct horse"}' "$RANDOM$RANDOM")"
status="$(post /v1/sign-up "$credentials" "$work/sign-up.json")"
[[ "$status" == 201 ]] || { lk_log "sign-up: $status $(cat "$work/sign-up.json")"; lk_show_server_log; exit 1; }

rc=0; wait "$pip_pid" || rc=$?
if ((rc != 0)); then lk_log "virtualenv / pip install failed:"; sed 's/^/  | /' "$work/pip.log" >&2; exit 1; fi

# The admin client's token (10 minutes, longer than the run) for the
# /admin/v1 routes; taken after the install, so none of it is spent waiting.
curl -s -o "$work/admin-token.json" --max-time 10 -u "schemathesis-ops:$admin_secret" \
    -d grant_type=client_credentials "$base_url/oauth/token"
admin_token="$(lk_json_field "$work/admin-token.json" access_token)" \
    || { lk_log "no admin token: $(cat "$work/admin-token.json")"; exit 1; }

# From the throwaway directory: schemathesis leaves its cache in the
# current one.
cd "$work"
rc=0
LK_HOOKS="$here/hooks.py" LK_BASE_URL="$base_url" LK_CREDENTIALS="$credentials" \
    LK_CLIENT_ID="$client_id" LK_CLIENT_SECRET="$client_secret" LK_ADMIN_TOKEN="$admin_token" \
    timeout 300 "$work/venv/bin/schemathesis" --config-file "$here/schemathesis.toml" \
    run "$base_url/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$max_examples" --seed 1 --workers 2 \
    --request-timeout 10 --no-color "$@" || rc=$?
if ((rc != 0)); then
    lk_log "schemathesis failed (exit $rc)"
    lk_show_server_log
fi
exit "$rc"
