#!/usr/bin/env bash
# `make test`: installs what the tests need, then runs them all. Exits non-zero on any failure.
#   scripts/test.sh          everything
#   scripts/test.sh rust     cargo test only
#   scripts/test.sh clients  the real-client suite only (tests/clients)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
log=$(mktemp -d)/test.log
trap 'rm -rf "$(dirname "$log")"' EXIT

./scripts/deps.sh

status=0
if [ "$what" = all ] || [ "$what" = rust ]; then
  echo "== cargo test --workspace"
  cargo test --workspace --color never 2>&1 | tee -a "$log" || status=1
fi

if [ "$what" = all ] || [ "$what" = clients ]; then
  echo "== real clients (tests/clients): pusher-js, pusher, ws, curl, poussr.js"
  # `cargo test` builds target/debug/poussr with the same features, so this reuses that build.
  cargo test --workspace --no-run --color never
  (
    cd tests/clients
    # The lock file pins every package; `npm ci` installs exactly that, and only when it changed.
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      npm ci --no-audit --no-fund
    fi
    POUSSR_BIN="$PWD/../../target/debug/poussr" node --test --test-concurrency=1 --test-timeout=120000 \
      --test-reporter=spec ./*.test.mjs
  ) 2>&1 | tee -a "$log" || status=1
fi

# One closing line for the whole run, summed over both runners.
passed=$(grep -oE '(test result: [a-zA-Z]+\. [0-9]+ passed|ℹ pass [0-9]+)' "$log" | grep -oE '[0-9]+$|[0-9]+ passed' \
  | awk '{ s += $1 } END { print s + 0 }')
failed=$(grep -oE '([0-9]+ failed;|ℹ fail [0-9]+)' "$log" | grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
[ "$failed" -eq 0 ] || status=1
echo
echo "make test: ${passed:-0} passed, ${failed:-0} failed"
exit $status
