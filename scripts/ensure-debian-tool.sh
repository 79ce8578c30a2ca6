#!/usr/bin/env bash
# Makes a load generator the benches run available: `ensure-debian-tool.sh <command> <debian-package>` uses the
# command on PATH, else installs the package from the machine's own apt sources when run as root, else says
# exactly what to run. (h2load is in nghttp2-client, wrk in wrk.)
set -euo pipefail

tool=${1:?usage: ensure-debian-tool.sh <command> <debian-package>}
package=${2:?usage: ensure-debian-tool.sh <command> <debian-package>}
version() { "$tool" --version 2>&1 | head -n1 || true; }

if command -v "$tool" >/dev/null 2>&1; then
  echo "$tool: $(command -v "$tool") ($(version))" >&2
  exit 0
fi

install=(apt-get install -y --no-install-recommends "$package")
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-$tool: no $tool on PATH and no apt-get here" >&2
  echo "ensure-$tool: fix: install $package with your package manager and put $tool on PATH" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-$tool: no $tool on PATH; as root, run:" >&2
  echo "  apt-get update && ${install[*]}" >&2
  exit 1
fi

echo "ensure-$tool: installing $package" >&2
"${install[@]}" >/dev/null || { apt-get update >/dev/null && "${install[@]}" >/dev/null; }
command -v "$tool" >/dev/null 2>&1 || { echo "ensure-$tool: $package installed but no $tool on PATH" >&2; exit 1; }
echo "$tool: $(command -v "$tool") ($(version))" >&2
