#!/usr/bin/env bash
# `make demo`: the whole story on loopback. jitgate and the example orders service start with a fresh data
# directory; alice asks for write access, two approvers approve, she gets a token, calls succeed, a stream is
# open, her grant is revoked, the stream ends with PERMISSION_DENIED and new calls are refused.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Starts a server in the background (in this shell, so cleanup can stop it) and sets $addr to the
# host:port it reports.
start() {
  local log=$1; shift
  "$@" 2>"$log" >/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do
    addr=$(grep -oE 'listening on [^ ]+' "$log" | head -n1 | cut -d' ' -f3 || true)
    [ -n "$addr" ] && return
    sleep 0.1
  done
  cat "$log" >&2; echo "demo: $* did not start" >&2; exit 1
}

jg=./bin/jitgate
export JITGATE_DATA_DIR=$work/data
step "start jitgate (dev mode) and the example orders service"
start "$work/jitgate.log" "$jg" serve --dev --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$JITGATE_DATA_DIR"
export JITGATE_ADDRESS=$addr
start "$work/orders.log" node examples/orders/server.ts --listen 127.0.0.1:0 --jitgate "$JITGATE_ADDRESS" --data-dir "$JITGATE_DATA_DIR"
ORDERS=$addr
echo "jitgate on $JITGATE_ADDRESS, orders service on $ORDERS"

as() { local who=$1 groups=$2; shift 2; JITGATE_TOKEN=$("$jg" login --as "$who" --groups "$groups" --print) "$jg" "$@"; }
orders() { node examples/orders/client.ts "$@" --address "$ORDERS"; }

step "alice asks for write access to the orders database"
id=$(as alice engineering request db/orders --actions read,write --duration 30m --ticket INC-123 \
  --justification "repair orders stuck in the PAYING state" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).id))')
as alice engineering requests "$id"

step "without a token the service refuses her"
orders get && { echo "demo: an unauthenticated call succeeded" >&2; exit 1; } || true

step "bob (dba) and carol (security) approve"
as bob dba review "$id" --approve --comment "ok" >/dev/null
as carol security review "$id" --approve --comment "lgtm"
grant=$(as alice engineering requests "$id" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).grant.id))')

step "alice gets a token and her calls succeed"
token=$(as alice engineering token "$grant")
orders update --token "$token" --state SHIPPED
orders get --token "$token"

step "a stream is open while an admin revokes her grant"
orders tail --token "$token" >"$work/tail.out" 2>&1 &
tail_pid=$!
for _ in $(seq 1 50); do grep -q tailing "$work/tail.out" && break; sleep 0.1; done
cat "$work/tail.out"
as secops jitgate-admins revoke "$grant" --reason "incident INC-9: rotate credentials"
if wait "$tail_pid"; then echo "demo: the stream did not end" >&2; exit 1; fi
grep orders: "$work/tail.out"

step "new calls with the same token are refused"
if orders get --token "$token"; then echo "demo: a revoked token was accepted" >&2; exit 1; fi
echo
echo "demo: done"
