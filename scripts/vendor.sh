#!/usr/bin/env bash
# Copies the browser builds of pusher-js and laravel-echo that the hub serves (src/vendor.rs) from the
# versions pinned in tests/clients/package-lock.json, with their licence texts, into src/vendor/.
#   scripts/vendor.sh          refresh the copies (after changing the pinned versions)
#   scripts/vendor.sh --check  fail when a copy differs from the lock's package (make test runs this)
# The copies are kept in git so that `cargo build` needs neither npm nor the network; the check keeps them
# byte for byte what the lock file pins. After a refresh, update the versions in src/vendor.rs and the
# integrity hashes in the README (a Rust test says which).
set -euo pipefail
cd "$(dirname "$0")/.."
modules=tests/clients/node_modules
out=src/vendor
check=${1:-}

if [ ! -d "$modules/pusher-js" ] || [ tests/clients/package-lock.json -nt "$modules/.package-lock.json" ]; then
  (cd tests/clients && npm ci --no-audit --no-fund)
fi

# name in the lock · file in the package · file in src/vendor
files=(
  "pusher-js dist/web/pusher.min.js pusher.min.js"
  "pusher-js LICENCE pusher-js.LICENCE.txt"
  "pusher-js dist/web/pusher.min.js.LICENSE.txt pusher.min.js.LICENSE.txt"
  "laravel-echo dist/echo.iife.js echo.iife.js"
  "laravel-echo LICENSE.md laravel-echo.LICENSE.md"
)
status=0
for entry in "${files[@]}"; do
  read -r package file copy <<<"$entry"
  locked=$(node -p "require('./tests/clients/package-lock.json').packages['node_modules/$package'].version")
  installed=$(node -p "require('./$modules/$package/package.json').version")
  if [ "$locked" != "$installed" ]; then
    echo "vendor: $package $installed is installed but the lock pins $locked; run npm ci in tests/clients" >&2
    exit 1
  fi
  if [ "$check" = --check ]; then
    if ! cmp -s "$modules/$package/$file" "$out/$copy"; then
      echo "vendor: $out/$copy is not $package $locked's $file; run scripts/vendor.sh" >&2
      status=1
    fi
    grep -A1 "package: \"$package\"," src/vendor.rs | grep -q "version: \"$locked\"," || {
      echo "vendor: src/vendor.rs does not serve $package as version $locked" >&2
      status=1
    }
  else
    cp "$modules/$package/$file" "$out/$copy"
    echo "vendor: $out/$copy ← $package $locked $file"
  fi
done
exit $status
