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
# The administration folder's client: confidential, with the admin scope,
# created on the running server's data as an operator would.
"$bin" clients create postman-ops --type confidential --scope latchkey:admin \
    --data-dir "$data" >"$work/admin-client.json"
admin_secret="$(lk_json_field "$work/admin-client.json" client_secret)"

rc=0
"$here/node_modules/.bin/newman" run "$lk_root/docs/latchkey.postman_collection.json" \
    --env-var "base_url=$base_url" --env-var "admin_client_id=postman-ops" \
    --env-var "admin_client_secret=$admin_secret" --bail "$@" || rc=$?
if ((rc != 0)); then
    lk_log "newman failed (exit $rc)"
    lk_show_server_log
fi
exit "$rc"
