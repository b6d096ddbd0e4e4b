#!/usr/bin/env bash
# `make windows`: Poussr for Windows x86-64, cross-built on Linux with mingw-w64, and its installer.
#   scripts/windows.sh      installs what it needs, builds poussr.exe (the headless hub: serve, service) and
#                           poussr-desktop.exe (the tray app) and poussr-window.exe (its window) in release, then the installer
#                           <target>/windows/Poussr-<version>-setup.exe with Debian's makensis
# Prints the installer's path on its last line. See docs/windows.md.
set -euo pipefail
cd "$(dirname "$0")/.."
triple=x86_64-pc-windows-gnu

./scripts/deps.sh windows

echo "== cargo build --release --target $triple (poussr.exe, poussr-desktop.exe, poussr-window.exe)"
cargo build --release --target "$triple" -p poussr -p poussr-desktop --bin poussr --bin poussr-desktop \
  --bin poussr-window --color never

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).target_directory))')
version=$(cargo metadata --format-version 1 --no-deps \
  | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).packages.find((p) => p.name === "poussr-desktop").version))')
built=$target_dir/$triple/release
out=$target_dir/windows
stage=$out/stage
rm -rf "$stage"
mkdir -p "$stage"
# The installer carries the programs without their debugging symbols (about half their size).
x86_64-w64-mingw32-strip -o "$stage/poussr.exe" "$built/poussr.exe"
x86_64-w64-mingw32-strip -o "$stage/poussr-desktop.exe" "$built/poussr-desktop.exe"
x86_64-w64-mingw32-strip -o "$stage/poussr-window.exe" "$built/poussr-window.exe"
cp "$built/WebView2Loader.dll" "$stage/"
cp icons/icon.ico "$stage/poussr.ico"
# Windows' Notepad and the installer's licence page want CRLF line ends.
sed 's/$/\r/' LICENSE >"$stage/LICENSE.txt"

setup=$out/Poussr-$version-setup.exe
echo "== makensis: $setup"
makensis -V2 -DVERSION="$version" -DSTAGE="$stage" -DOUTFILE="$setup" src-tauri/windows/poussr.nsi
ls -l "$stage"/*.exe "$setup" | awk '{ printf "%10d  %s\n", $5, $NF }'
echo "$setup"
