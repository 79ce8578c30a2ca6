#!/usr/bin/env bash
# Makes h2load (HTTP/2 load generator, Debian package nghttp2-client) available for bench/overload.ts:
# uses the one on PATH, else installs the package from the machine's own apt sources when run as root,
# else says exactly what to run.
set -euo pipefail

if command -v h2load >/dev/null 2>&1; then
  echo "h2load: $(command -v h2load) ($(h2load --version 2>/dev/null | head -n1))" >&2
  exit 0
fi

install=(apt-get install -y --no-install-recommends nghttp2-client)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-h2load: no h2load on PATH and no apt-get here" >&2
  echo "ensure-h2load: fix: install nghttp2's h2load with your package manager and put it on PATH" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-h2load: no h2load on PATH; as root, run:" >&2
  echo "  apt-get update && ${install[*]}" >&2
  exit 1
fi

echo "ensure-h2load: installing nghttp2-client" >&2
"${install[@]}" >/dev/null || { apt-get update >/dev/null && "${install[@]}" >/dev/null; }
command -v h2load >/dev/null 2>&1 || { echo "ensure-h2load: nghttp2-client installed but no h2load on PATH" >&2; exit 1; }
echo "h2load: $(command -v h2load) ($(h2load --version 2>/dev/null | head -n1))" >&2
