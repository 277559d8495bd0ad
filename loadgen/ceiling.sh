#!/usr/bin/env bash
# loadgen/ceiling.sh — measures meridian-loadgen's own ceiling against its built-in echo server
# (a trivial server answering every lookup with one pre-encoded route), for several placements.
# The numbers in loadgen/README.md come from this script.
#
# Usage: loadgen/ceiling.sh [DURATION]   (default 5s per run; needs a release build:
#        `make loadgen` or `cargo build --release -p meridian-loadgen`)
# Knobs (environment): PORT (default 19876), CONNECTIONS (default 32), INFLIGHTS (default "4 16").
# Loopback only; every process it starts is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/meridian-loadgen}
DURATION=${1:-5s}
PORT=${PORT:-19876}
CONNECTIONS=${CONNECTIONS:-32}
INFLIGHTS=${INFLIGHTS:-4 16}
CPUS=$(nproc)

[[ -x $BIN ]] || { echo "missing $BIN: run make loadgen first" >&2; exit 1; }

ECHO_PID=
cleanup() { [[ -n $ECHO_PID ]] && kill "$ECHO_PID" 2>/dev/null || true; }
trap cleanup EXIT

# One placement: echo-server flags, loadgen flags, label [, connections, in-flight list].
run() {
  local echo_flags=$1 loadgen_flags=$2 label=$3 connections=${4:-$CONNECTIONS} inflights=${5:-$INFLIGHTS}
  cleanup
  # shellcheck disable=SC2086
  "$BIN" echo-server --listen "127.0.0.1:$PORT" --duration 10m $echo_flags 2>/dev/null &
  ECHO_PID=$!
  sleep 0.5
  for k in $inflights; do
    # shellcheck disable=SC2086
    local out
    out=$("$BIN" lookup -n "127.0.0.1:$PORT" --brokers 0 --duration "$DURATION" -c "$connections" -k "$k" \
      --pid "$ECHO_PID" -q $loadgen_flags)
    local rate p50 p99 cpu
    rate=$(awk '$1=="lookup"{print $3}' <<<"$out")
    p50=$(awk '$1=="lookup"{print $4}' <<<"$out")
    p99=$(awk '$1=="lookup"{print $6}' <<<"$out")
    cpu=$(grep '^cpu:' <<<"$out" | sed 's/^cpu: //')
    printf '%-44s  %3s x %-3s  %9s/s  p50 %-7s p99 %-8s  %s\n' "$label" "$connections" "$k" "$rate" "$p50" "$p99" "$cpu"
  done
}

echo "meridian-loadgen ceiling: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $CPUS CPUs," \
  "kernel $(uname -r), $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "each line: echo-server placement / loadgen placement, connections x in flight, answered lookups/s, p99, CPU"
if (( CPUS >= 2 )); then
  run "--cpus 0" "--cpus 1" "echo CPU0 / loadgen 1 thread CPU1"
  run "--cpus 0" "--cpus 0" "echo CPU0 / loadgen 1 thread CPU0 (shared)"
  run "--cpus 0" "--threads 2 --cpus 0,1" "echo CPU0 / loadgen 2 threads CPU0,1"
fi
run "" "" "echo unpinned / loadgen 1 thread unpinned"
# One request in flight on one connection: p50 is the round trip, i.e. what a wake-up of the
# other side costs when it runs on the same CPU or on the other one.
if (( CPUS >= 2 )); then
  run "--cpus 0" "--cpus 1" "round trip, echo CPU0 / loadgen CPU1" 1 1
  run "--cpus 0" "--cpus 0" "round trip, echo CPU0 / loadgen CPU0" 1 1
fi
