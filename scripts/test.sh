#!/usr/bin/env bash
# `make test`: installs what the tests need, then runs them all. Exits non-zero on any failure.
#   scripts/test.sh          everything
#   scripts/test.sh rust     cargo test only
#   scripts/test.sh clients [FILE...]  the real-client suite only (tests/clients), or only the given files
#   scripts/test.sh desktop [FILE...]  the real desktop window over WebDriver only (tests/desktop), or those files
#   scripts/test.sh windows [FILE...]  the Windows build (`make windows`) under Wine: poussr-os's tests, the
#                                      client suites of WINDOWS_SUITES and tests/clients/windows, or those files
# A FILE is a path, or the name of a file in the suite's folder (cluster.test.mjs). TEST_NAME=PATTERN runs only
# the Node tests whose name matches (node --test-name-pattern).
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."
what=${1:-all}
[ $# -eq 0 ] || shift
if [ $# -gt 0 ] && [ "$what" != clients ] && [ "$what" != desktop ] && [ "$what" != windows ]; then
  echo "test.sh: only 'clients', 'desktop' and 'windows' take test files" >&2
  exit 2
fi
work=$(mktemp -d)
log=$work/test.log
xvfb_pid=""
wine_started=""
cleanup() {
  [ -z "$xvfb_pid" ] || kill "$xvfb_pid" 2>/dev/null || true
  # Only the wineserver of this run's prefix, and only if this run started it.
  [ -z "$wine_started" ] || wineserver -k 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

./scripts/deps.sh

# No hub of the tests announces itself over mDNS: tests never multicast on this machine's interfaces. The
# discovery test turns it back on for a hub inside network namespaces of its own.
export POUSSR_NO_MDNS=1

# A full run from a fresh clone grows cargo's target directory to about 6.5 GB (the debug builds, the Windows
# release build and its Wine prefix). Say so before a build dies half-way with "No space left on device".
# The estimate counts what the target directory holds already as reusable.
FULL_RUN_MB=8000
# Cargo's target directory wherever it is (CARGO_TARGET_DIR, build.target-dir in .cargo/config.toml).
cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps \
    | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).target_directory))'
}
disk_ready() {
  local dir probe used have
  dir=$(cargo_target_dir)
  probe=$dir
  while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
  used=$( (du -sm "$dir" 2>/dev/null || echo 0) | cut -f1)
  have=$(df -Pm "$probe" | awk 'NR == 2 { print $4 }')
  if [ $((FULL_RUN_MB - used)) -gt "$have" ]; then
    echo "make test: a full run needs about $((FULL_RUN_MB / 1000)) GB in cargo's target directory ($dir)," \
      "which holds $((used / 1000)) GB now, and the disk has $((have / 1000)) GB free." \
      "Free some space (\`cargo clean\` frees the target directory, at the cost of a full build) and run again." >&2
    exit 1
  fi
}
[ "$what" != all ] || disk_ready

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

# The Node suites drive the binaries that `cargo test` builds (same features, so nothing is rebuilt), found in
# cargo's target directory.
if [ "$what" != rust ]; then
  cargo test --workspace --no-run --color never 2>&1 | tail -n 1
  target_dir=$(cargo_target_dir)
  exe=""
  case "$(uname -s)" in MINGW* | MSYS* | CYGWIN*) exe=.exe ;; esac
fi

# The TLS tests' CA, made by the hub's own `poussr cert create`: Node trusts it from its start
# (NODE_EXTRA_CA_CERTS is read once, when a process starts), as a user's Node program would.
tls_ready() {
  [ -f "$work/tls/ca.pem" ] || "$target_dir/debug/poussr$exe" cert create --dir "$work/tls" --name localhost --name 127.0.0.1 >/dev/null
}

# The test files of suite folder $1: the ones given on the command line, else all of them.
test_files() {
  if [ $# -gt 1 ]; then
    local dir=$1 f
    shift
    for f in "$@"; do
      case $f in
        /*) echo "$f" ;;
        *) if [ -e "$caller/$f" ]; then echo "$caller/$f"; else echo "$dir/$f"; fi ;;
      esac
    done
  else
    ls "$1"/*.test.mjs
  fi
}

# --test-name-pattern when TEST_NAME is set.
name_pattern=()
[ -z "${TEST_NAME:-}" ] || name_pattern=(--test-name-pattern="$TEST_NAME")

# A virtual environment with pysher (PyPI), made again when the requirements change.
python_ready() {
  local venv=$1/.venv
  if [ ! -x "$venv/bin/python" ] || [ "$1/python/requirements.txt" -nt "$venv/.installed" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$1/python/requirements.txt"
    touch "$venv/.installed"
  fi
}

if [ "$what" = all ] || [ "$what" = clients ]; then
  echo "== real clients (tests/clients): pusher-js, pusher, pysher, python-zeroconf, ws, curl, poussr.js, Chromium"
  npm_ready tests/clients
  python_ready tests/clients
  # The pusher-js and laravel-echo the hub serves are the lock file's, byte for byte.
  run_logged ./scripts/vendor.sh --check
  mapfile -t files < <(test_files tests/clients "$@")
  echo "hub: $target_dir/debug/poussr$exe"
  tls_ready
  run_logged env POUSSR_BIN="$target_dir/debug/poussr$exe" POUSSR_TEST_PYTHON="$PWD/tests/clients/.venv/bin/python" \
    POUSSR_TEST_TLS_DIR="$work/tls" NODE_EXTRA_CA_CERTS="$work/tls/ca.pem" \
    node --test --test-concurrency=1 --test-timeout=120000 \
    --test-reporter=spec "${name_pattern[@]}" "${files[@]}"
fi

# A display for what makes windows (the desktop app; Wine's windows): a virtual one on the first free
# number when there is none (Xvfb writes the number it took).
display_ready() {
  if [ -z "${DISPLAY:-}" ]; then
    Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" 2>"$work/xvfb.log" &
    xvfb_pid=$!
    for _ in $(seq 50); do [ -s "$work/display" ] && break; sleep 0.1; done
    export DISPLAY=":$(cat "$work/display")"
  fi
}

# The client suites that also run against the Windows build under Wine: the Pusher protocol, the HTTP API,
# Poussr v1, client events, bad input, restarts and the dashboard (the others drive Linux-only parts: network
# namespaces, nginx, Redis, file-size limits).
WINDOWS_SUITES=(pusher channels poussr-v1 client-events bad-input reconnect recovery dashboard)

if [ "$what" = all ] || [ "$what" = windows ]; then
  echo "== the Windows build (make windows), tested under Wine"
  # scripts/windows.sh prints the installer's path last; its output goes to the log like the rest.
  if ! ./scripts/windows.sh 2>&1 | tee "$work/windows.log" | tee -a "$log"; then
    # Counted as a failure in the closing line, and nothing is tested against an older build.
    echo "make test: the Windows build failed; 1 failed" | tee -a "$log"
    echo "ℹ fail 1" >>"$log"
    status=1
  else
    setup=$(tail -n 1 "$work/windows.log")
    windows_built=$target_dir/x86_64-pc-windows-gnu/release
    wine_env=$(./scripts/wine.sh "$target_dir/wine-prefix")
    eval "$wine_env"
    wine_started=1
    # Wine makes its windows (poussr.exe's hidden one, which hears the end of the session) on an X display.
    display_ready
    # One wineserver for the whole stage, started and booted now with its output going nowhere. Wine starts its
    # own services with the first program of a wineserver, and they would keep that program's pipes (a test's,
    # or this script's tee) open for as long as they run.
    wineserver -k >/dev/null 2>&1 || true
    wineserver -p >/dev/null 2>&1
    wine wineboot >/dev/null 2>&1
    echo "== cargo test -p poussr-os, built for Windows and run under Wine"
    run_logged env CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
      cargo test -p poussr-os --target x86_64-pc-windows-gnu --color never
    echo "== real clients against poussr.exe under Wine (tests/clients: ${WINDOWS_SUITES[*]}; tests/clients/windows)"
    npm_ready tests/clients
    python_ready tests/clients
    tls_ready
    if [ $# -gt 0 ]; then
      mapfile -t files < <(test_files tests/clients "$@")
    else
      files=()
      for suite in "${WINDOWS_SUITES[@]}"; do files+=("tests/clients/$suite.test.mjs"); done
      files+=(tests/clients/windows/*.test.mjs)
    fi
    run_logged env POUSSR_BIN="$windows_built/poussr.exe" POUSSR_TEST_PYTHON="$PWD/tests/clients/.venv/bin/python" \
      POUSSR_TEST_TLS_DIR="$work/tls" NODE_EXTRA_CA_CERTS="$work/tls/ca.pem" \
      POUSSR_SETUP="$setup" POUSSR_WINDOWS_STAGE="$target_dir/windows/stage" \
      node --test --test-concurrency=1 --test-timeout=180000 \
      --test-reporter=spec "${name_pattern[@]}" "${files[@]}"
    wineserver -k 2>/dev/null || true
  fi
fi

if [ "$what" = all ] || [ "$what" = desktop ]; then
  echo "== the desktop window over WebDriver (tests/desktop)"
  npm_ready tests/desktop
  # python-xlib closes the window as a window manager would.
  python_ready tests/clients
  display_ready
  # A session bus of its own, for the single-instance check of the app.
  mapfile -t files < <(test_files tests/desktop "$@")
  echo "app: $target_dir/debug/poussr-desktop$exe"
  run_logged env POUSSR_DESKTOP_BIN="$target_dir/debug/poussr-desktop$exe" \
    POUSSR_TEST_PYTHON="$PWD/tests/clients/.venv/bin/python" dbus-run-session -- \
    node --test --test-concurrency=1 --test-timeout=180000 --test-reporter=spec "${name_pattern[@]}" "${files[@]}"
fi

# One closing line for the whole run, summed over both runners.
passed=$(grep -oE '(test result: [a-zA-Z]+\. [0-9]+ passed|ℹ pass [0-9]+)' "$log" | grep -oE '[0-9]+$|[0-9]+ passed' \
  | awk '{ s += $1 } END { print s + 0 }')
# Node counts apart the tests it cancelled because a hook failed (a hub that did not start): they failed too.
failed=$(grep -oE '([0-9]+ failed;|ℹ (fail|cancelled) [0-9]+)' "$log" | grep -oE '[0-9]+' | awk '{ s += $1 } END { print s + 0 }')
[ "$failed" -eq 0 ] || status=1
echo
echo "make test: ${passed:-0} passed, ${failed:-0} failed"
exit $status
