#!/usr/bin/env bash
# `make test`: installs what the tests need, then runs them all. Exits non-zero on any failure.
#   scripts/test.sh          everything
#   scripts/test.sh rust     cargo test only
#   scripts/test.sh clients  the real-client suite only (tests/clients)
#   scripts/test.sh desktop  the real desktop window over WebDriver only (tests/desktop)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
work=$(mktemp -d)
log=$work/test.log
xvfb_pid=""
cleanup() {
  [ -z "$xvfb_pid" ] || kill "$xvfb_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

./scripts/deps.sh

status=0
run_logged() { "$@" 2>&1 | tee -a "$log" || status=1; }

# npm ci installs exactly what the lock file says, and only when it changed.
npm_ready() {
  if [ ! -d "$1/node_modules" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    (cd "$1" && npm ci --no-audit --no-fund)
  fi
}

if [ "$what" = all ] || [ "$what" = rust ]; then
  echo "== cargo test --workspace"
  run_logged cargo test --workspace --color never
  # The hub without the Redis adapter (--no-default-features) must still build and refuse adapter = "redis".
  echo "== cargo test -p poussr --no-default-features --lib"
  run_logged cargo test -p poussr --no-default-features --lib --color never
fi

# The Node suites drive the binaries that `cargo test` builds (same features, so nothing is rebuilt).
if [ "$what" != rust ]; then
  cargo test --workspace --no-run --color never 2>&1 | tail -n 1
fi

if [ "$what" = all ] || [ "$what" = clients ]; then
  echo "== real clients (tests/clients): pusher-js, pusher, ws, curl, poussr.js"
  npm_ready tests/clients
  run_logged env POUSSR_BIN="$PWD/target/debug/poussr" node --test --test-concurrency=1 --test-timeout=120000 \
    --test-reporter=spec tests/clients/*.test.mjs
fi

if [ "$what" = all ] || [ "$what" = desktop ]; then
  echo "== the desktop window over WebDriver (tests/desktop)"
  npm_ready tests/desktop
  if [ -z "${DISPLAY:-}" ]; then
    # A virtual display on the first free number; Xvfb writes the number it took.
    Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.log" &
    xvfb_pid=$!
    for _ in $(seq 50); do [ -s "$work/display" ] && break; sleep 0.1; done
    export DISPLAY=":$(cat "$work/display")"
  fi
  # A session bus of its own, for the single-instance check of the app.
  run_logged env POUSSR_DESKTOP_BIN="$PWD/target/debug/poussr-desktop" dbus-run-session -- \
    node --test --test-concurrency=1 --test-timeout=180000 --test-reporter=spec tests/desktop/*.test.mjs
fi

# One closing line for the whole run, summed over both runners.
passed=$(grep -oE '(test result: [a-zA-Z]+\. [0-9]+ passed|ℹ pass [0-9]+)' "$log" | grep -oE '[0-9]+$|[0-9]+ passed' \
  | awk '{ s += $1 } END { print s + 0 }')
failed=$(grep -oE '([0-9]+ failed;|ℹ fail [0-9]+)' "$log" | grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
[ "$failed" -eq 0 ] || status=1
echo
echo "make test: ${passed:-0} passed, ${failed:-0} failed"
exit $status
