#!/usr/bin/env bash
# soak/soak.sh — runs Meridian under mixed load (lookups, periodic registrations with changes,
# brokers joining and leaving) for DURATION and prints RSS, open fds and loadgen's error count
# over time, then whether RSS stayed flat after warm-up.
#
# Usage: soak/soak.sh [DURATION]   (default 10m; `make soak SOAK_DURATION=...`)
# Knobs: PORT (default 19877), SAMPLE_S (default 10), RSS_GROWTH_MAX_PCT (default 10).
# Loopback only; stops what it started, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${1:-10m}
PORT=${PORT:-19877}
SAMPLE_S=${SAMPLE_S:-10}
RSS_GROWTH_MAX_PCT=${RSS_GROWTH_MAX_PCT:-10}
MERIDIAN=$ROOT/target/release/meridian
LOADGEN=$ROOT/target/release/meridian-loadgen
WORK=$(mktemp -d /tmp/meridian-soak.XXXXXX)
SERVER_PID= LOADGEN_PID=

cleanup() {
  [[ -n $LOADGEN_PID ]] && kill "$LOADGEN_PID" 2>/dev/null || true
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
}
trap cleanup EXIT

[[ -x $MERIDIAN && -x $LOADGEN ]] || { echo "soak: build first (make soak does)" >&2; exit 1; }

"$MERIDIAN" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/meridian.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do grep -q "listening on" "$WORK/meridian.log" && break; sleep 0.1; done
grep -q "listening on" "$WORK/meridian.log" || { echo "soak: meridian did not start" >&2; cat "$WORK/meridian.log" >&2; exit 1; }

# 20 stable broker groups re-registering every 2 s with 1% of topics changed, 2 more that
# join and leave (half by closing, half by unregistering) every second, and 8x4 lookups.
"$LOADGEN" churn -n "127.0.0.1:$PORT" --topics 20000 --brokers 20 --topic-names realistic \
  --register-period 2s --change-fraction 0.01 --churn-brokers 2 --churn-interval 1s \
  -c 8 -k 4 -d "$DURATION" -q --json "$WORK/loadgen.json" >"$WORK/loadgen.out" 2>&1 &
LOADGEN_PID=$!

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
fds() { ls "/proc/$SERVER_PID/fd" | wc -l; }
echo "soak: meridian pid $SERVER_PID, loadgen pid $LOADGEN_PID, $DURATION, work dir $WORK"
printf '%8s %10s %6s\n' "t(s)" "RSS(MiB)" "fds"
start=$(date +%s)
samples=()
while kill -0 "$LOADGEN_PID" 2>/dev/null; do
  sleep "$SAMPLE_S"
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "soak: meridian exited" >&2; exit 1; }
  rss=$(rss_kib)
  samples+=("$rss")
  printf '%8d %10.1f %6d\n' "$(( $(date +%s) - start ))" "$(echo "$rss / 1024" | bc -l)" "$(fds)"
done
wait "$LOADGEN_PID" || true
LOADGEN_PID=
tail -n 15 "$WORK/loadgen.out"

# Flat = the last sample within RSS_GROWTH_MAX_PCT of the sample that ends warm-up (20%).
n=${#samples[@]}
(( n >= 5 )) || { echo "soak: only $n samples; run longer than 5 x ${SAMPLE_S}s" >&2; exit 1; }
warm=${samples[$(( n / 5 ))]}
last=${samples[$(( n - 1 ))]}
growth=$(( (last - warm) * 100 / warm ))
errors=$(python3 -c "import json; print(json.load(open('$WORK/loadgen.json'))['errors_unexpected'])" 2>/dev/null || echo "?")
echo "soak: RSS after warm-up $(( warm / 1024 )) MiB, at the end $(( last / 1024 )) MiB (${growth}%), loadgen errors: $errors"
if [[ $errors != 0 ]]; then
  echo "soak: FAIL: loadgen saw $errors unexpected errors (see $WORK/loadgen.out)"
  exit 1
fi
if (( growth > RSS_GROWTH_MAX_PCT )); then
  echo "soak: FAIL: RSS grew ${growth}% after warm-up (limit ${RSS_GROWTH_MAX_PCT}%)"
  exit 1
fi
echo "soak: PASS"
