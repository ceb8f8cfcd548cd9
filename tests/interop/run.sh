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
# The server signs with INTEROP_ALGORITHM (default EdDSA, RFC 8037's name
# for Ed25519). After a passing EdDSA round the script runs itself once more
# with RFC 9864's fully specified name, Ed25519, and reports which
# verifiers accept it; that round informs the default (docs/API.md) and
# fails the run only with INTEROP_REQUIRE_ED25519=1.
#
# Environment:
#   LATCHKEY_BIN       use this server binary instead of building one
#   HEALTH_TIMEOUT     seconds to wait for /healthz (default 30)
#   PYTHON             interpreter for the virtualenv (default python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../live-server.sh"
python="${PYTHON:-python3}"

lk_require node npm curl "$python"
lk_binary

# --- verifier dependencies (pinned; in parallel with each other) ------------
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1) &
npm_pid=$!
( "$python" -m venv "$work/venv" \
    && "$work/venv/bin/python" -m pip install -q --disable-pip-version-check \
        -r "$here/python/requirements.txt" ) >"$work/pip.log" 2>&1 &
pip_pid=$!
rc=0; wait "$npm_pid" || rc=$?
if ((rc != 0)); then lk_log "npm ci failed:"; sed 's/^/  | /' "$work/npm.log" >&2; exit 1; fi
rc=0; wait "$pip_pid" || rc=$?
if ((rc != 0)); then lk_log "virtualenv / pip install failed:"; sed 's/^/  | /' "$work/pip.log" >&2; exit 1; fi

algorithm="${INTEROP_ALGORITHM:-EdDSA}"
lk_start_server --signing-algorithm "$algorithm"

# --- user and tokens ---------------------------------------------------------
username="interop-$RANDOM$RANDOM"
password="interop correct horse battery staple"
credentials="$(printf '{"username":"%s","password":"%s"}' "$username" "$password")"

# post PATH BODY OUTFILE -> prints the HTTP status
post() {
    curl -s -o "$3" -w '%{http_code}' --max-time 10 -X POST "$base_url$1" \
        -H 'content-type: application/json' --data-binary "$2" || echo 000
}

status="$(post /v1/sign-up "$credentials" "$work/sign-up.json")"
if [[ "$status" != "201" ]]; then
    lk_log "POST /v1/sign-up: expected 201, got $status: $(cat "$work/sign-up.json" 2>/dev/null)"
    lk_show_server_log; exit 1
fi

sign_in() { # OUT-PREFIX: sets ${1}_access and ${1}_refresh
    local out="$work/sign-in-$1.json" st
    st="$(post /v1/sign-in "$credentials" "$out")"
    if [[ "$st" != "200" ]]; then
        lk_log "POST /v1/sign-in: expected 200, got $st: $(cat "$out" 2>/dev/null)"
        lk_show_server_log; exit 1
    fi
    printf -v "${1}_access" '%s' "$(lk_json_field "$out" access_token)"
    printf -v "${1}_refresh" '%s' "$(lk_json_field "$out" refresh_token)"
}
sign_in jose
sign_in pyjwt

# --- verifiers ---------------------------------------------------------------
export LATCHKEY_BASE_URL="$base_url" LATCHKEY_ISSUER="$base_url" LATCHKEY_EXPECT_ALG="$algorithm"
failed=()

echo "== jose (node/verify.mjs)"
LATCHKEY_ACCESS_TOKEN="$jose_access" LATCHKEY_REFRESH_TOKEN="$jose_refresh" \
    node "$here/node/verify.mjs" || failed+=(jose)

echo "== PyJWT (python/verify.py)"
LATCHKEY_ACCESS_TOKEN="$pyjwt_access" LATCHKEY_REFRESH_TOKEN="$pyjwt_refresh" \
    "$work/venv/bin/python" "$here/python/verify.py" || failed+=(pyjwt)

if ((${#failed[@]} > 0)); then
    lk_log "$algorithm: failed: ${failed[*]}"
    [[ "$algorithm" == EdDSA ]] && lk_show_server_log
    exit 1
fi
lk_log "$algorithm: every verifier accepted the tokens"

if [[ "$algorithm" == EdDSA ]]; then
    echo "== the same with RFC 9864's fully specified name: --signing-algorithm Ed25519"
    if INTEROP_ALGORITHM=Ed25519 bash "$here/run.sh"; then
        lk_log "Ed25519 (RFC 9864): accepted by jose and PyJWT"
    else
        lk_log "Ed25519 (RFC 9864): not accepted by every verifier (see above); EdDSA stays the default"
        if [[ "${INTEROP_REQUIRE_ED25519:-0}" == 1 ]]; then exit 1; fi
    fi
fi
exit 0
