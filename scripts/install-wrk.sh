#!/usr/bin/env bash
# Installs wrk (the HTTP benchmark client) if it is missing: Debian's
# package when apt is available, else builds it from source.
set -euo pipefail
if command -v wrk >/dev/null; then exit 0; fi
if command -v apt-get >/dev/null; then
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if ! command -v wrk >/dev/null; then
  d="$(mktemp -d)"
  git clone --depth 1 https://github.com/wg/wrk "$d/wrk"
  make -C "$d/wrk" -j2 >/dev/null
  install -m 755 "$d/wrk/wrk" /usr/local/bin/wrk
fi
wrk --version 2>&1 | head -1
