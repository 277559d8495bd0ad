#!/usr/bin/env bash
# soak/wakeup.sh — a regression check for lost executor wake-ups (glommio 0.9 can park a
# shard with runnable tasks when its preempt timer fired during CPU contention; Meridian's
# waker thread ends such parks, see ARCHITECTURE.md). Runs Meridian on every CPU, BURNERS
# busy loops competing for the same CPUs, and a closed loop of CONNECTIONS lookup clients
# (1 in flight each, so a parked shard stalls every client it serves), then fails if any
# lookup took longer than MAX_MS or timed out. Timing-based, so not part of `make test`.
#
# Usage: soak/wakeup.sh [DURATION]   (default 30s; `make wakeup-check`)
# Knobs: PORT (19878), CONNECTIONS (1500), BURNERS (3), MAX_MS (1000),
#        MERIDIAN_SETS (extra --set flags, e.g. "executor_poke_interval_us=60000000" to
#        switch the waker off and see the stalls come back).
# Loopback only; stops what it started, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${1:-30s}
PORT=${PORT:-19878}
CONNECTIONS=${CONNECTIONS:-1500}
BURNERS=${BURNERS:-3}
MAX_MS=${MAX_MS:-1000}
MERIDIAN=$ROOT/target/release/meridian
LOADGEN=$ROOT/target/release/meridian-loadgen
WORK=$(mktemp -d /tmp/meridian-wakeup.XXXXXX)
SERVER_PID=
BURNER_PIDS=()

cleanup() {
  for pid in "${BURNER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

[[ -x $MERIDIAN && -x $LOADGEN ]] || { echo "wakeup: build first (make wakeup-check does)" >&2; exit 1; }

sets=()
for kv in ${MERIDIAN_SETS:-}; do sets+=(--set "$kv"); done
"$MERIDIAN" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" "${sets[@]}" >"$WORK/meridian.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do grep -q "listening on" "$WORK/meridian.log" && break; sleep 0.1; done
grep -q "listening on" "$WORK/meridian.log" || { echo "wakeup: meridian did not start" >&2; cat "$WORK/meridian.log" >&2; exit 1; }

# Busy loops bounded by the run (timeout ends them even if this script is killed).
seconds=$(python3 -c "
import re,sys; t='$DURATION'; m=re.fullmatch(r'([0-9.]+)(ms|s|m|h)?', t)
v=float(m.group(1)); u=m.group(2) or 's'; print(int(v*{'ms':0.001,'s':1,'m':60,'h':3600}[u])+30)")
for _ in $(seq "$BURNERS"); do
  timeout "$seconds" sh -c 'while :; do :; done' &
  BURNER_PIDS+=($!)
done

echo "wakeup: meridian pid $SERVER_PID ($(grep -o 'shards [0-9]*' "$WORK/meridian.log")), $BURNERS burners, $CONNECTIONS connections, $DURATION"
"$LOADGEN" lookup -n "127.0.0.1:$PORT" --topics 1000 -c "$CONNECTIONS" -k 1 --timeout "${MAX_MS}ms" \
  -d "$DURATION" -q --pid "$SERVER_PID" --json "$WORK/loadgen.json" 2>&1 | tee "$WORK/loadgen.out" | grep -E "^(metric|lookup )|^errors|^cpu"

python3 - "$WORK/loadgen.json" "$MAX_MS" <<'PY'
import json, sys
run, max_ms = json.load(open(sys.argv[1])), float(sys.argv[2])
lookup = next(r for r in run["lookups"] if r["phase"] == "load")
lat = lookup["latency_us"]
worst_ms = lat["max_us"] / 1000
print(f"wakeup: {lookup['answered']} lookups answered, p99 {lat['p99_us']/1000:.1f} ms, max {worst_ms:.1f} ms, "
      f"errors {lookup['errors_total']} {lookup['errors']}, unexpected {run['errors_unexpected']}")
if run["errors_unexpected"] or lookup["errors_total"] or worst_ms > max_ms:
    print(f"wakeup: FAIL: a lookup took over {max_ms:.0f} ms or failed (a shard stalled)")
    sys.exit(1)
print("wakeup: PASS")
PY
