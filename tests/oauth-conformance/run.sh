#!/usr/bin/env bash
# OAuth 2.0 conformance test: npm `oauth4webapi` (pinned in package.json, a strict
# client nobody here wrote) performs discovery, the authorization_code grant with
# PKCE and OpenID Connect (the hosted sign-in page driven over plain HTTP, no
# browser), the refresh_token and client_credentials grants, revocation,
# introspection and RFC 9068 access-token validation against a live, throwaway
# Latchkey server and must accept every response (conformance.mjs).
#
# Builds the latchkey server, registers three clients with `latchkey clients create`
# in a fresh data directory (public `web`: scopes read+write, audience latchkey;
# public `app`: scope read, redirect URI http://127.0.0.1:9/callback;
# confidential `jobs`: scope jobs, audience jobs-api, introspect_any), starts the server on a free
# 127.0.0.1 port with --issuer equal to its base URL, signs a user up and in as
# client `web` with curl, then runs conformance.mjs. Exits non-zero on any failure.
#
# Environment:
#   LATCHKEY_BIN       use this server binary instead of building one
#   HEALTH_TIMEOUT     seconds to wait for /healthz (default 30)
#   TEST_TIMEOUT       seconds conformance.mjs may run (default 120)
#   LATCHKEY_SIGNING_ALGORITHM  passed through to the server (EdDSA, ES256, RS256)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../live-server.sh"
test_timeout="${TEST_TIMEOUT:-120}"

lk_require node npm curl python3
lk_binary
lk_log "installing oauth4webapi (npm ci)"
if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1); then
    lk_log "npm ci failed:"; sed 's/^/  | /' "$work/npm.log" >&2; exit 1
fi

# --- clients (registered in the data directory before the server starts) ---------
public_client=web
conf_client=jobs

create_client() { # OUTFILE ARGS...
    local out="$1"; shift
    if ! timeout 60 "$bin" clients --data-dir "$data" create "$@" >"$out" 2>"$work/clients.err"; then
        lk_log "latchkey clients create $* failed:"; sed 's/^/  | /' "$work/clients.err" "$out" >&2; exit 1
    fi
}
create_client "$work/client-web.json" "$public_client" --type public --scope read --scope write --audience latchkey
# app signs people in through the hosted page (authorization code + PKCE).
# Nothing listens at its redirect URI: the test reads the redirects' Location.
code_client=app
redirect_uri="http://127.0.0.1:9/callback"
create_client "$work/client-app.json" "$code_client" --type public --scope read --audience latchkey \
    --redirect-uri "$redirect_uri"
# jobs also introspects the web client's tokens, so it is registered as a resource server.
create_client "$work/client-jobs.json" "$conf_client" --type confidential --scope jobs --audience jobs-api \
    --introspect-any
conf_secret="$(lk_json_field "$work/client-jobs.json" client_secret)" \
    || { lk_log "no client_secret in: $(cat "$work/client-jobs.json")"; exit 1; }

# --- server (issuer = its base URL, which the default is) ------------------------
lk_start_server
lk_log "server is up at $base_url"

# --- user and initial tokens (curl) ----------------------------------------------
username="oauth-$RANDOM$RANDOM"
password="oauth conformance correct horse battery"

post() { # PATH BODY OUTFILE -> prints the HTTP status
    curl -s -o "$3" -w '%{http_code}' --max-time 10 -X POST "$base_url$1" \
        -H 'content-type: application/json' --data-binary "$2" || echo 000
}

status="$(post /v1/sign-up "$(printf '{"username":"%s","password":"%s"}' "$username" "$password")" "$work/sign-up.json")"
if [[ "$status" != "201" ]]; then
    lk_log "POST /v1/sign-up: expected 201, got $status: $(cat "$work/sign-up.json" 2>/dev/null)"
    lk_show_server_log; exit 1
fi
status="$(post /v1/sign-in "$(printf '{"username":"%s","password":"%s","client_id":"%s","scope":"read write","audience":"latchkey"}' \
    "$username" "$password" "$public_client")" "$work/sign-in.json")"
if [[ "$status" != "200" ]]; then
    lk_log "POST /v1/sign-in: expected 200, got $status: $(cat "$work/sign-in.json" 2>/dev/null)"
    lk_show_server_log; exit 1
fi

access_token="$(lk_json_field "$work/sign-in.json" access_token)" \
    && refresh_token="$(lk_json_field "$work/sign-in.json" refresh_token)" \
    || { lk_log "sign-in response lacks tokens: $(cat "$work/sign-in.json")"; exit 1; }

# --- conformance -------------------------------------------------------------------
rc=0
LATCHKEY_ISSUER="$base_url" \
LATCHKEY_PUBLIC_CLIENT="$public_client" \
LATCHKEY_CONF_CLIENT="$conf_client" \
LATCHKEY_CONF_SECRET="$conf_secret" \
LATCHKEY_ACCESS_TOKEN="$access_token" \
LATCHKEY_REFRESH_TOKEN="$refresh_token" \
LATCHKEY_CODE_CLIENT="$code_client" \
LATCHKEY_REDIRECT_URI="$redirect_uri" \
LATCHKEY_USERNAME="$username" \
LATCHKEY_PASSWORD="$password" \
    timeout "$test_timeout" node "$here/conformance.mjs" || rc=$?
if ((rc != 0)); then
    ((rc == 124)) && lk_log "conformance.mjs did not finish within ${test_timeout}s"
    lk_log "conformance failed (exit $rc)"
    lk_show_server_log
fi
exit "$rc"
