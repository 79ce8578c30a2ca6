#!/usr/bin/env bash
# Makes a PostgreSQL server available for the tests and the replica example: prints the directory holding its
# `postgres`, `initdb` and `pg_ctl`. Order: $JITGATE_PG_BIN, then Debian's /usr/lib/postgresql/<version>/bin
# (newest first), else Debian's postgresql package installed from the machine's own apt sources when run as
# root, else says exactly what to run. The tests start their own server on loopback in a temporary directory;
# the machine's own cluster (if any) is never touched.
set -euo pipefail

fail() {
  echo "ensure-postgres: $1" >&2
  echo "ensure-postgres: fix: $2" >&2
  exit 1
}

has_server() { [ -x "$1/postgres" ] && [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ]; }

found() {
  echo "postgres: $1 ($("$1/postgres" --version 2>/dev/null | head -n1))" >&2
  echo "$1"
  exit 0
}

newest_debian() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if has_server "$dir"; then echo "$dir"; return 0; fi
  done
  return 1
}

if [ -n "${JITGATE_PG_BIN:-}" ]; then
  has_server "$JITGATE_PG_BIN" || fail "\$JITGATE_PG_BIN is '$JITGATE_PG_BIN', which has no postgres, initdb and pg_ctl" \
    "point \$JITGATE_PG_BIN at a PostgreSQL server's bin directory, or unset it"
  found "$JITGATE_PG_BIN"
fi
if dir=$(newest_debian); then found "$dir"; fi

command -v apt-get >/dev/null 2>&1 ||
  fail "no PostgreSQL server under /usr/lib/postgresql and no apt-get here" \
    "install a PostgreSQL 13+ server and set \$JITGATE_PG_BIN to its bin directory"
install=(apt-get install -y --no-install-recommends postgresql)
if [ "$(id -u)" -ne 0 ]; then
  fail "no PostgreSQL server under /usr/lib/postgresql" "as root, run: apt-get update && ${install[*]}"
fi
echo "ensure-postgres: installing Debian's postgresql package" >&2
# Debian's package would create and start a cluster of its own; the tests need only the binaries.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/jitgate-no-main-cluster.conf
DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1 ||
  { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; } ||
  fail "apt-get could not install postgresql" "run: apt-get update && ${install[*]}"
dir=$(newest_debian) || fail "postgresql installed but no server under /usr/lib/postgresql" "check: dpkg -L postgresql-15"
found "$dir"
