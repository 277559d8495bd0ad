#!/usr/bin/env bash
# soak/restart.sh — what one NameServer restart costs route lookups, with warmRestart off and
# then on. Not part of `make test`; about 2 x (AFTER_S + 15) seconds; loopback only; stops
# what it started, by PID.
#
# Per mode, on a fresh data dir:
#   1. meridian starts (warmRestart=MODE);
#   2. loadgen A ("brokers": -b BROKERS groups registering TOPICS topics, re-registering every
#      REGISTER_PERIOD_S like Java brokers, plus a trickle of lookups) runs through the restart;
#   3. once A's brokers are registered, meridian is stopped (SIGTERM: with warm restart on it
#      saves its routes) and started again on the same port and data dir;
#   4. as soon as it listens, loadgen B ("clients": lookups only, -b 0, the same topic names)
#      looks the topics up at RATE/s for AFTER_S seconds, which spans A's next registrations.
# B's lookup error counts per mode are the result: TOPIC_NOT_EXIST while the brokers have not
# re-registered (warm restart off), none with warm restart on.
#
# Two loadgens so that B's lookups start the moment the restarted server listens (the window
# measured is the same in both modes). A's simulated brokers see the close before their next
# call and reconnect for it, like a Java broker: they are back within one period of the
# restart; the script prints when each came back.
#
# Usage: soak/restart.sh        Knobs: PORT (19878), BROKERS (4), TOPICS (2000),
#   REGISTER_PERIOD_S (30), RATE (2000), AFTER_S (2 x REGISTER_PERIOD_S + 10), MODES ("false true").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-19878}
BROKERS=${BROKERS:-4}
TOPICS=${TOPICS:-2000}
REGISTER_PERIOD_S=${REGISTER_PERIOD_S:-30}
RATE=${RATE:-2000}
AFTER_S=${AFTER_S:-$((2 * REGISTER_PERIOD_S + 10))}
MODES=${MODES:-"false true"}
MERIDIAN=$ROOT/target/release/meridian
LOADGEN=$ROOT/target/release/meridian-loadgen
WORK=$(mktemp -d /tmp/meridian-restart.XXXXXX)
SERVER_PID= BROKERS_PID= CLIENTS_PID=

cleanup() {
  for pid in $CLIENTS_PID $BROKERS_PID $SERVER_PID; do
    kill "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

[[ -x $MERIDIAN && -x $LOADGEN ]] || { echo "restart: cargo build --release first" >&2; exit 1; }
command -v python3 >/dev/null || { echo "restart: needs python3 (to read loadgen's --json)" >&2; exit 1; }

# start_server MODE DIR LOG: starts meridian in the background, waits for its listening line.
# Broker events at debug too: a provisional broker's re-registration is an unchanged one.
start_server() {
  RUST_LOG=info,meridian_server::route::events=debug "$MERIDIAN" --listen "127.0.0.1:$PORT" --data-dir "$2" --shards 1 --set metricsListen=off \
    --set "warmRestart=$1" >"$3" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$3" && return 0; sleep 0.05; done
  echo "restart: meridian did not start:" >&2; cat "$3" >&2; exit 1
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || { echo "restart: meridian did not exit 0" >&2; exit 1; }
  SERVER_PID=
}

# lookup_errors JSON: answered, ok, errors_total, {errors by kind}, {other errors}, tab-separated.
lookup_errors() {
  python3 - "$1" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
l = doc["lookups"][0] if doc["lookups"] else {"answered": 0, "ok": 0, "errors_total": 0, "errors": {}}
other = {k: v for k, v in doc.get("errors", {}).items()}
print("\t".join(str(v) for v in (l["answered"], l["ok"], l["errors_total"],
                                   json.dumps(l["errors"], sort_keys=True), json.dumps(other, sort_keys=True))))
EOF
}

# back_after LOG: seconds from the listening line to each broker's first registration.
back_after() {
  python3 - "$1" <<'EOF'
import re, sys, datetime
def at(line):
    return datetime.datetime.fromisoformat(line.split()[0].rstrip("Z")[:26])
start, back = None, {}
for line in open(sys.argv[1]):
    if start is None and "listening on" in line:
        start = at(line)
    m = re.search(r"broker (?:registered|re-registered)\S*.* broker=(\S+)", line)
    if start and m and m.group(1) not in back:
        back[m.group(1)] = (at(line) - start).total_seconds()
print(" ".join(f"{v:.1f}s" for v in sorted(back.values())) or "none")
EOF
}

common=(-n "127.0.0.1:$PORT" -t "$TOPICS" -q)
declare -A RESULT
for mode in $MODES; do
  dir=$WORK/warm-$mode
  mkdir -p "$dir"
  start_server "$mode" "$dir/data" "$dir/meridian-1.log"
  # The brokers: the whole run and then some; a trickle of lookups of their own.
  "$LOADGEN" lookup "${common[@]}" -b "$BROKERS" --register-period "${REGISTER_PERIOD_S}s" -c 1 --rate 10 \
    -d "$((AFTER_S + 15))s" --json "$dir/brokers.json" >"$dir/brokers.out" 2>&1 &
  BROKERS_PID=$!
  for _ in $(seq 200); do
    (( $(grep -c "broker registered" "$dir/meridian-1.log" || true) >= BROKERS )) && break
    sleep 0.05
  done
  (( $(grep -c "broker registered" "$dir/meridian-1.log" || true) >= BROKERS )) \
    || { echo "restart: the brokers did not register" >&2; cat "$dir/brokers.out" >&2; exit 1; }
  sleep 2 # their lookups run a moment against the first server

  stopped=$(date +%s.%N)
  stop_server
  start_server "$mode" "$dir/data" "$dir/meridian-2.log"
  listening=$(date +%s.%N)
  "$LOADGEN" lookup "${common[@]}" -b 0 -c 4 -k 4 --rate "$RATE" -d "${AFTER_S}s" \
    --json "$dir/clients.json" >"$dir/clients.out" 2>&1 &
  CLIENTS_PID=$!
  wait "$CLIENTS_PID" || true # non-zero when it counted errors
  CLIENTS_PID=
  kill "$BROKERS_PID" 2>/dev/null || true
  wait "$BROKERS_PID" 2>/dev/null || true
  BROKERS_PID=
  stop_server

  IFS=$'\t' read -r answered ok errors kinds other < <(lookup_errors "$dir/clients.json")
  loaded=$(grep -o "loaded provisionally: brokers [0-9]*, broker groups [0-9]*, clusters [0-9]*, topics [0-9]*" "$dir/meridian-2.log" || echo "nothing loaded")
  back=$(back_after "$dir/meridian-2.log")
  RESULT[$mode]=$(printf '%-19s down %4.2fs  lookups %7d  ok %7d  errors %6d  %s\n%19s %s; brokers back after %s' \
    "warmRestart=$mode" "$(echo "$listening - $stopped" | bc -l)" "$answered" "$ok" "$errors" "$kinds" "" "$loaded" "$back")
  echo "${RESULT[$mode]}"
  [[ $other == "{}" ]] || echo "  other client errors: $other"
done

echo
echo "restart: $BROKERS broker groups, $TOPICS topics, lookups at $RATE/s for ${AFTER_S}s from the moment the"
echo "restarted server listens; brokers re-register every ${REGISTER_PERIOD_S}s (logs and JSON in $WORK)"
for mode in $MODES; do echo "${RESULT[$mode]}"; done
