#!/usr/bin/env bash
# Runs the Postman collection (docs/latchkey.postman_collection.json) with
# newman (pinned in package.json) against a throwaway server. The exit code
# is newman's. Extra arguments go to newman.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../live-server.sh"

lk_require node npm curl python3
lk_binary
lk_log "installing newman (npm ci)"
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
lk_start_server
lk_log "server is up at $base_url"

rc=0
"$here/node_modules/.bin/newman" run "$lk_root/docs/latchkey.postman_collection.json" \
    --env-var "base_url=$base_url" --bail "$@" || rc=$?
if ((rc != 0)); then
    lk_log "newman failed (exit $rc)"
    lk_show_server_log
fi
exit "$rc"
