#!/usr/bin/env bash
# Installs what building and testing Poussr needs and is not there yet; safe to run again (it installs
# only what is missing). Debian packages need root or sudo.
#   scripts/deps.sh          the hub, the desktop app and every test
#   scripts/deps.sh hub      only what the headless hub and its tests need
#   scripts/deps.sh windows  only what `make windows` needs (the cross-compiler, makensis)
set -euo pipefail
what=${1:-all}

command -v cargo >/dev/null || { echo "deps: cargo is missing; install Rust from https://rustup.rs" >&2; exit 1; }

# chromium: the dashboard tests drive Debian's Chromium (test tools must not download their own browser).
# redis-server: the cluster tests run two hubs on a real Redis.
# python3-venv: the pysher and python-zeroconf tests run in a virtual environment of their own.
# zbar-tools: zbarimg reads the QR code in the desktop window.
# nginx: the reverse-proxy tests put Debian's nginx in front of the hub; iproute2: they give their
# non-loopback client a network namespace of its own. libnss3-tools: certutil, with which the browser tests
# trust the test CA in Chromium's NSS database.
packages=(curl nodejs npm pkg-config chromium redis-server python3-venv nginx iproute2 libnss3-tools zbar-tools)
# The Windows build (`make windows`): mingw-w64 compiles and links for x86_64-pc-windows-gnu, makensis builds
# the installer. Its tests (`make test`) run it under Wine (64-bit) and read the installer with 7-Zip.
windows_packages=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 binutils-mingw-w64-x86-64 nsis)
if [ "$what" = windows ]; then
  packages=(nodejs npm "${windows_packages[@]}")
elif [ "$what" = all ]; then
  packages+=("${windows_packages[@]}" wine wine64 p7zip-full)
fi
if [ "$what" = all ]; then
  # Building the Tauri app (WebKitGTK, GTK, the tray) and testing its real window (Xvfb, WebKitWebDriver).
  packages+=(build-essential file libssl-dev libwebkit2gtk-4.1-dev libjavascriptcoregtk-4.1-dev
    libsoup-3.0-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
    xvfb xauth webkit2gtk-driver dbus-x11 at-spi2-core)
fi

missing=()
for p in "${packages[@]}"; do
  # nodejs/npm may come from elsewhere than Debian: a working command is enough.
  case $p in nodejs) command -v node >/dev/null && continue ;; npm) command -v npm >/dev/null && continue ;; esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "deps: Node.js 20 or newer is needed for the client tests (found $(node --version))" >&2
  exit 1
fi

# The Rust target of the Windows build (mingw-w64's), for `make windows`, its tests and the lints of the
# Windows-only code.
if [ "$what" != hub ] && command -v rustup >/dev/null && ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
  echo "deps: adding the Rust target x86_64-pc-windows-gnu"
  rustup target add x86_64-pc-windows-gnu
fi

if [ "$what" = all ] && ! command -v tauri-driver >/dev/null; then
  echo "deps: installing tauri-driver (the WebDriver bridge to the desktop window)"
  cargo install tauri-driver --version 2.1.0 --locked --quiet
fi
