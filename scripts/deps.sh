#!/usr/bin/env bash
# Installs what building and testing Poussr needs and is not there yet. Safe to run again: it only
# installs what is missing. Debian packages need root (or sudo).
set -euo pipefail

need_apt=()
command -v cargo >/dev/null || { echo "deps: cargo is missing; install Rust from https://rustup.rs" >&2; exit 1; }
command -v curl >/dev/null || need_apt+=(curl)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: installing ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "deps: Node.js 20 or newer is needed for the client tests (found $(node --version))" >&2
  exit 1
fi
