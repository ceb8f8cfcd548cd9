#!/usr/bin/env bash
# Checks deploy/latchkey.service with `systemd-analyze verify` (syntax,
# known directives, and that ExecStart's binary exists and is executable),
# and prints its `systemd-analyze security` exposure score.
#
#   bash deploy/verify-unit.sh [path/to/latchkey]
#
# - Installs Debian's `systemd` package when `systemd-analyze` is missing
#   (CI runs as root on a fresh Debian machine).
# - The unit names /usr/local/bin/latchkey, where an operator installs it.
#   Rather than install anything there, the check runs on a temporary copy
#   of the unit whose ExecStart points at the freshly built binary (the
#   argument, else $LATCHKEY_BIN, else target/debug/latchkey); that is the
#   only line changed, and the script says so. So the directives checked
#   are exactly the shipped ones, against a real binary.
# - It does not start the service: CI has no systemd as PID 1. That the
#   hardening lets the binary run is reasoned in the unit's comments and
#   docs/OPERATIONS.md (Deployment), not proven here.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT=deploy/latchkey.service
BIN="${1:-${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-target}/debug/latchkey}}"

log() { echo "verify-unit: $*" >&2; }
die() { log "$*"; exit 1; }

if ! command -v systemd-analyze >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "systemd-analyze not found; install systemd (apt-get install systemd) or run as root"
    log "installing systemd from the Debian packages (for systemd-analyze)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq systemd >&2
fi
[[ -x "$BIN" ]] || die "$BIN is not an executable latchkey binary; build it first (cargo build -p latchkey-server)"
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
sed "s|^ExecStart=/usr/local/bin/latchkey |ExecStart=$BIN |" "$UNIT" >"$tmp/latchkey.service"
grep -q "^ExecStart=$BIN serve " "$tmp/latchkey.service" || die "$UNIT has no ExecStart=/usr/local/bin/latchkey serve ... line"
log "checking $UNIT (ExecStart pointed at $BIN)"

# verify prints problems but may exit 0 on some of them: any output fails.
out=$(systemd-analyze verify "$tmp/latchkey.service" 2>&1) || { echo "$out" >&2; die "systemd-analyze verify failed"; }
if [[ -n "$out" ]]; then
    echo "$out" >&2
    die "systemd-analyze verify reported problems"
fi
log "systemd-analyze verify: no problems"

# The exposure score (0 = most locked down, 10 = not at all), for the record.
if score=$(systemd-analyze security --offline=true "$tmp/latchkey.service" 2>/dev/null | tail -n 1); then
    log "systemd-analyze security: ${score#→ }"
fi
