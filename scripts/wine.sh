#!/usr/bin/env bash
# Prepares a Wine prefix in which the tests run Poussr's Windows build, and prints the environment that
# uses it: `eval "$(scripts/wine.sh PREFIX)"`. Made once (about 15 s), then reused.
#
# The prefix keeps to itself: Wine's menu builder (which writes .desktop files, icons and MIME types into
# the user's home) is off, and the Windows user's Desktop, Documents and other folders are folders of the
# prefix instead of Wine's default links into the home folder, so that an installer run there leaves nothing
# on the machine.
#
# Wine 8.0 (Debian 12) lacks bcryptprimitives.dll, from which Rust's standard library (1.78 and later) takes
# its random numbers (ProcessPrng); every Windows 10 and 11 has it. The test setup builds a stand-in from
# scripts/wine/bcryptprimitives.c with mingw-w64 into the prefix's system32, where Windows keeps the real one.
# It is never shipped: the installer is for real Windows.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:?usage: scripts/wine.sh PREFIX}
prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd)
# No Mono, no Gecko (nothing here needs .NET or Wine's HTML engine, and both would be downloaded), no menu builder.
overrides="mscoree,mshtml=;winemenubuilder.exe=d"
export WINEPREFIX=$prefix WINEDEBUG=-all WINEDLLOVERRIDES=$overrides

if [ ! -f "$prefix/system.reg" ]; then
  echo "wine: making the prefix $prefix" >&2
  DISPLAY='' wineboot --init >/dev/null 2>&1
  wineserver --wait
fi
for link in "$prefix"/drive_c/users/*/*; do
  if [ -L "$link" ]; then
    rm "$link"
    mkdir "$link"
  fi
done
shim=$prefix/drive_c/windows/system32/bcryptprimitives.dll
if [ ! -f "$shim" ] || [ "$here/wine/bcryptprimitives.c" -nt "$shim" ]; then
  x86_64-w64-mingw32-gcc -O2 -shared -o "$shim" "$here/wine/bcryptprimitives.c" "$here/wine/bcryptprimitives.def" -ladvapi32
fi
printf 'export WINEPREFIX=%q WINEDEBUG=-all WINEDLLOVERRIDES=%q\n' "$prefix" "$overrides"
