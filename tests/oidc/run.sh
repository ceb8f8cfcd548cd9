#!/usr/bin/env bash
# "Sign in with Latchkey" with a real relying party: npm openid-client v6
# (pinned in package.json) runs the OpenID Connect authorization-code flow
# against a live, throwaway latchkey server, and Debian's Chromium
# (/usr/bin/chromium, or $CHROMIUM) driven by npm playwright-core (it
# downloads no browser) is the person signing in on the hosted pages. The
# app's redirect endpoints are a loopback server inside the test. Each
# *.test.mjs starts its own server (harness.mjs) and runs under Node's test
# runner; the versions used are printed. Screenshots go to $OIDC_TEST_OUTPUT
# (default: tests/oidc/output).
#
# Environment:
#   LATCHKEY_BIN   use this server binary instead of building one
#   TEST_TIMEOUT   seconds the whole run may take (default 300)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../live-server.sh"
lk_require node npm
lk_binary
chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium_bin" && -z "${CHROMIUM:-}" && $(id -u) -eq 0 ]]; then
    lk_log "installing Debian's chromium"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$work/apt.log" 2>&1 \
        || { lk_log "apt-get install chromium failed:"; sed 's/^/  | /' "$work/apt.log" >&2; exit 1; }
fi
[[ -x "$chromium_bin" ]] || { lk_log "Chromium not found at $chromium_bin (apt-get install chromium)"; exit 2; }
lk_log "installing openid-client and playwright-core (npm ci)"
if ! (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1); then
    lk_log "npm ci failed:"; sed 's/^/  | /' "$work/npm.log" >&2; exit 1
fi
export OIDC_TEST_OUTPUT="${OIDC_TEST_OUTPUT:-$here/output}"
export LATCHKEY_BIN="$bin" CHROMIUM="$chromium_bin"
cd "$here"
timeout "${TEST_TIMEOUT:-300}" node --test --test-concurrency=1 ./*.test.mjs
