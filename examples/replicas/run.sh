#!/usr/bin/env bash
# Two jitgate replicas on one PostgreSQL, all on loopback, for trying replication by hand:
#   examples/replicas/run.sh            # PostgreSQL on 127.0.0.1:55432, replicas on 127.0.0.1:7443 and :7444
#   PG_PORT=... REPLICA_PORTS="a b" METRICS_PORTS="c d" examples/replicas/run.sh   # other loopback ports
# PostgreSQL comes from scripts/ensure-postgres.sh and lives in a temporary directory (removed on exit), run as
# the `postgres` user when this script runs as root. Both replicas run in dev mode (--dev) with their own data
# directories and one shared signing-keys directory. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/../.."

pg_port=${PG_PORT:-55432}
ports=(${REPLICA_PORTS:-7443 7444})
metrics_ports=(${METRICS_PORTS:-9464 9465})
bin=$(scripts/ensure-postgres.sh)
work=$(mktemp -d "${TMPDIR:-/tmp}/jitgate-replicas-XXXXXX")
pids=()

as_pg() {
  # runuser lives in /usr/sbin, which a plain user's PATH may leave out.
  if [ "$(id -u)" -eq 0 ]; then "$(command -v runuser || echo /usr/sbin/runuser)" -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  as_pg "$bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] && chown postgres "$work"
as_pg "$bin/initdb" -D "$work/pg" -U jitgate --auth=trust -E UTF8 --no-locale >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work" start >/dev/null
store="postgres://jitgate@127.0.0.1:$pg_port/postgres"
echo "postgres: $store (log $work/pg.log)"

mkdir -m 0700 "$work/keys"
for i in "${!ports[@]}"; do
  port=${ports[$i]}
  ./bin/jitgate serve --dev --store "$store" --signing-keys "$work/keys" \
    --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:${metrics_ports[$i]}" \
    --data-dir "$work/replica-$i" --workers 1 --log-level warn &
  pids+=($!)
done

for i in "${!ports[@]}"; do
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/${ports[$i]}") 2>/dev/null && continue 2
    kill -0 "${pids[$i]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "replicas: the replica on 127.0.0.1:${ports[$i]} did not start (its error is above)" >&2
  exit 1
done
cat <<INFO

replicas: 127.0.0.1:${ports[0]} (data $work/replica-0) and 127.0.0.1:${ports[1]} (data $work/replica-1)
try it (each replica has its own dev issuer: a caller token is made against each data directory):
  A=\$(./bin/jitgate login --print --data-dir $work/replica-0 --as alice --groups engineering)
  B=\$(./bin/jitgate login --print --data-dir $work/replica-1 --as alice --groups engineering)
  JITGATE_TOKEN=\$A ./bin/jitgate request db/orders --address 127.0.0.1:${ports[0]} --actions read --duration 10m \\
      --ticket INC-1 --justification "reading stuck orders"
  JITGATE_TOKEN=\$B ./bin/jitgate grants --address 127.0.0.1:${ports[1]}
Ctrl-C stops both replicas and PostgreSQL.
INFO
wait
