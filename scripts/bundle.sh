#!/usr/bin/env bash
# `make bundle`: the installable packages, built offline: a .deb and an .rpm (on Linux). The same
# src-tauri/tauri.conf.json carries what the .dmg (macOS) builder needs; run this on
# those systems with the matching --bundles. AppImage needs a download from GitHub, so it is not built here.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
[ -d node_modules/@tauri-apps/cli ] || npm ci --no-audit --no-fund
npx tauri build --bundles "${BUNDLES:-deb,rpm}"
# Tauri's .deb compresses its files with gzip; Debian's own packages use xz, which makes the two programs
# (the tray and its window) about a third smaller. Same files, same control data, rebuilt by dpkg-deb.
for deb in target/release/bundle/deb/*.deb; do
  [ -f "$deb" ] || continue
  unpacked=$(mktemp -d)
  dpkg-deb -R "$deb" "$unpacked"
  dpkg-deb --root-owner-group -Zxz -b "$unpacked" "$deb" >/dev/null
  rm -rf "$unpacked"
done
echo
echo "bundles:"
find target/release/bundle -maxdepth 2 -type f \( -name '*.deb' -o -name '*.rpm' \) -exec ls -l {} \;
