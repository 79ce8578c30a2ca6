#!/usr/bin/env bash
# Makes wrk (HTTP/1.1 load generator, Debian package wrk) available for bench/speed.ts, which drives OPA's own
# server over HTTP/1.1 with it: uses the one on PATH, else installs the package from the machine's own apt
# sources when run as root, else says exactly what to run.
set -euo pipefail

version() { wrk --version 2>&1 | head -n1 || true; }

if command -v wrk >/dev/null 2>&1; then
  echo "wrk: $(command -v wrk) ($(version))" >&2
  exit 0
fi

install=(apt-get install -y --no-install-recommends wrk)
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-wrk: no wrk on PATH and no apt-get here" >&2
  echo "ensure-wrk: fix: install wrk with your package manager and put it on PATH" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-wrk: no wrk on PATH; as root, run:" >&2
  echo "  apt-get update && ${install[*]}" >&2
  exit 1
fi

echo "ensure-wrk: installing wrk" >&2
"${install[@]}" >/dev/null || { apt-get update >/dev/null && "${install[@]}" >/dev/null; }
command -v wrk >/dev/null 2>&1 || { echo "ensure-wrk: wrk installed but no wrk on PATH" >&2; exit 1; }
echo "wrk: $(command -v wrk) ($(version))" >&2
