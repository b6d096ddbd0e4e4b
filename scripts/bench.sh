#!/usr/bin/env bash
# `make bench`: release builds, then every benchmark; the results (machine, date, every figure, the
# baseline each is compared with) are written to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
# Benchmark hubs are never announced over mDNS.
export POUSSR_NO_MDNS=1
# The .deb and .rpm (and with them the release build of the desktop app), and the release hub.
./scripts/bundle.sh
cargo build --release -p poussr -p poussr-bench
# The Windows build and its installer (make windows), whose hub is then measured under Wine.
./scripts/windows.sh >/dev/null
eval "$(./scripts/wine.sh target/wine-prefix)"
if [ ! -d bench/node_modules ] || [ bench/package-lock.json -nt bench/node_modules/.package-lock.json ]; then
  (cd bench && npm ci --no-audit --no-fund)
fi
# bench/desktop.py closes the window with python-xlib, in a virtual environment of its own (Debian's Python
# refuses packages installed system-wide with pip).
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c 'import Xlib' 2>/dev/null; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet python-xlib==0.33
fi

out=$(mktemp)
{
  echo "# Benchmark results"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%d): $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,"
  echo "$(. /etc/os-release && echo "$PRETTY_NAME"), $(rustc --version). Every run starts its own processes on 127.0.0.1."
  echo
  target/release/poussr-bench run --hub target/release/poussr
  echo
  target/release/poussr-bench cluster --hub target/release/poussr
  echo
  echo "## Windows"
  echo
  echo "Built by \`make windows\` (x86_64-pc-windows-gnu, mingw-w64, release; the installer's programs stripped):"
  echo
  echo "| file | bytes |"
  echo "|---|---|"
  for f in target/windows/Poussr-*-setup.exe target/windows/stage/poussr.exe target/windows/stage/poussr-desktop.exe \
    target/windows/stage/poussr-window.exe; do
    echo "| \`${f#target/}\` | $(stat -c %s "$f") |"
  done
  echo
  target/release/poussr-bench wine --hub target/release/poussr --windows-hub target/x86_64-pc-windows-gnu/release/poussr.exe
  echo
  bench/.venv/bin/python bench/desktop.py target/release/poussr-desktop
  echo
  node bench/dashboard.mjs target/release/poussr
  echo
  python3 bench/search.py target/release/poussr
  # The written analysis is kept from the previous file; update it by hand when the figures move.
  if [ -f bench/RESULTS.md ]; then
    echo
    sed -n '/^## Reading these figures/,$p' bench/RESULTS.md
  fi
} > "$out"
mv "$out" bench/RESULTS.md
cat bench/RESULTS.md
