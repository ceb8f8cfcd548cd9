#!/usr/bin/env bash
# CI for clients/js: install the pinned dev dependencies (npm ci), build and
# run the tests against the real server binary (npm test), pack the package
# (npm pack) and check that the tarball carries the compiled modules and
# their type declarations, and nothing from src/ or test/.
#
# Environment:
#   LATCHKEY_BIN  the server binary the tests start (default: target/debug/latchkey
#                 of this repository; it is never built from here)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [[ -z "${LATCHKEY_BIN:-}" ]]; then
    LATCHKEY_BIN="$(cd "$here/../.." && pwd)/target/debug/latchkey"
fi
if [[ ! -x "$LATCHKEY_BIN" ]]; then
    echo "run-tests.sh: $LATCHKEY_BIN not found: build it (cargo build --bin latchkey) or set LATCHKEY_BIN" >&2
    exit 1
fi
export LATCHKEY_BIN

npm ci --no-audit --no-fund --loglevel=error
timeout 600 npm test

# The server embeds the compiled modules for its account page: they must be
# this build's (`npm run vendor` copies them).
vendored="$here/../../crates/latchkey-server/assets/account/client"
if ! diff -r --exclude='*.d.ts' --exclude='*.map' "$here/dist" "$vendored" >/dev/null; then
    echo "run-tests.sh: $vendored differs from this build: run \`npm run vendor\` in clients/js" >&2
    diff -r --exclude='*.d.ts' --exclude='*.map' "$here/dist" "$vendored" | head -20 >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="$(npm pack --silent --pack-destination "$work" | tail -n 1)"
tar -tzf "$work/$tarball" | sort >"$work/contents"
echo "== $tarball"
cat "$work/contents"

missing=0
for module in index client errors events lock storage tabs types; do
    for ext in js d.ts; do
        if ! grep -qx "package/dist/$module.$ext" "$work/contents"; then
            echo "run-tests.sh: the tarball lacks dist/$module.$ext" >&2
            missing=1
        fi
    done
done
for required in package/package.json package/README.md; do
    grep -qx "$required" "$work/contents" || { echo "run-tests.sh: the tarball lacks ${required#package/}" >&2; missing=1; }
done
if grep -E '^package/(src|test|node_modules)/' "$work/contents" >&2; then
    echo "run-tests.sh: the tarball carries sources, tests or dependencies" >&2
    missing=1
fi
# No runtime dependencies: the package must install with nothing else.
if tar -xzOf "$work/$tarball" package/package.json | grep -q '"dependencies"'; then
    echo "run-tests.sh: package.json declares runtime dependencies" >&2
    missing=1
fi
# The tarball is usable: a fresh project installs it and imports it.
mkdir "$work/consumer"
(cd "$work/consumer" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error "$work/$tarball" >/dev/null \
    && node --input-type=module -e 'import { LatchkeyClient, LatchkeyError, MemoryStorage, MutexLock } from "@latchkey/client";
        const c = new LatchkeyClient({ baseUrl: "http://127.0.0.1:1" });
        if (!(c instanceof EventTarget) || typeof LatchkeyError !== "function" || !new MemoryStorage() || !new MutexLock()) process.exit(1);
        c.close();') \
    || { echo "run-tests.sh: the packed tarball does not install and import" >&2; missing=1; }
exit "$missing"
