#!/usr/bin/env bash
# `make run`: the desktop app when there is a display, else the headless hub. Extra arguments go to
# `poussr serve` (headless) or to the app (e.g. --config-dir DIR, --hidden).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  ./scripts/deps.sh
  cargo build -p poussr-desktop
  exec ./target/debug/poussr-desktop "$@"
fi
echo "run: no display (DISPLAY and WAYLAND_DISPLAY are unset), so no window can open:"
echo "run: starting the headless hub instead (poussr serve). The dashboard comes with the desktop app."
./scripts/deps.sh hub
cargo build --release --bin poussr
exec ./target/release/poussr serve "$@"
