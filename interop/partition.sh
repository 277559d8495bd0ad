#!/usr/bin/env bash
# interop/partition.sh — a staged divergence between NameServers, seen by `meridian admin routeDiff`
# and by the peer watch, with real RocketMQ peers (not part of `make test`; needs the rocketmq-rust
# broker and NameServer that `make interop` caches under target/peers).
#
# On loopback only:
#   NameServers A and B are Meridian, C is rocketmq-namesrv-rust 1.0.0 (A watches B and C with
#   peerNamesrvAddrs);
#   broker X registers with A, B and C; broker Y registers with A only (the "partition");
#   then the write permission of X is wiped on B only (`meridian admin wipeWritePerm -n B`).
# It prints `routeDiff -n 'A;B;C'` (tables, exit code, JSON) and A's /routediff, then stops every
# process it started by PID. Expected: Y missing on B and C, X's topics without write permission on
# B, nothing else. Bounded: each wait has a deadline; a run takes about 40 s.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MERIDIAN=$ROOT/target/release/meridian
BROKER_BIN=$ROOT/target/peers/bin/rocketmq-broker-rust
NAMESRV_RS=$ROOT/target/peers/bin/rocketmq-namesrv-rust
for bin in "$MERIDIAN" "$BROKER_BIN" "$NAMESRV_RS"; do
    [[ -x $bin ]] || { echo "partition: $bin missing (cargo build --release; make interop caches the peers)" >&2; exit 2; }
done

BASE=${PARTITION_PORT_BASE:-23400} # A, B, C at BASE..BASE+2; brokers at BASE+10 and BASE+20
A=127.0.0.1:$BASE
B=127.0.0.1:$((BASE + 1))
C=127.0.0.1:$((BASE + 2))
METRICS_A=127.0.0.1:$((BASE + 3))
REGISTER_WAIT_S=90 # a broker's store set-up takes seconds; it registers at start
PEER_CHECK_MS=2000

WORK=$(mktemp -d "${TMPDIR:-/tmp}/meridian-partition.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ ${PARTITION_KEEP_WORKDIR:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf 'partition: %s\n' "$*" >&2; }

"$MERIDIAN" --listen "$A" --data-dir "$WORK/a" --set metricsListen="$METRICS_A" \
    --set peerNamesrvAddrs="$A;$B;$C" --set peerCheckIntervalMs=$PEER_CHECK_MS >"$WORK/a.log" 2>&1 &
PIDS+=($!)
"$MERIDIAN" --listen "$B" --data-dir "$WORK/b" --set metricsListen=off >"$WORK/b.log" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/c-home"
cat >"$WORK/namesrv.toml" <<EOF
rocketmqHome = "$WORK/c-home"
EOF
env NO_COLOR=1 ROCKETMQ_HOME="$WORK/c-home" "$NAMESRV_RS" -c "$WORK/namesrv.toml" \
    --listenPort $((BASE + 2)) --bindAddress 127.0.0.1 >"$WORK/c.log" 2>&1 &
PIDS+=($!)

# broker NAME PORT NAMESRV_ADDR
broker() {
    local name=$1 port=$2 namesrv=$3 dir=$WORK/$1
    mkdir -p "$dir/store" "$dir/home"
    cat >"$dir/broker.toml" <<EOF
[broker]
namesrvAddr = "$namesrv"
brokerIp1 = "127.0.0.1"
brokerIp2 = "127.0.0.1"
listenPort = $port
storePathRootDir = "$dir/store"

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[broker.brokerIdentity]
brokerName = "$name"
brokerClusterName = "PartitionCluster"
brokerId = 0

[store]
storeType = "LocalFile"
brokerRole = "ASYNC_MASTER"
storePathRootDir = "$dir/store"
haListenAddress = "127.0.0.1"
haListenPort = $((port + 1))
mappedFileSizeCommitLog = 134217728
mappedFileSizeConsumeQueue = 600000
maxHashSlotNum = 500000
maxIndexNum = 2000000
EOF
    env -u NAMESRV_ADDR NO_COLOR=1 ROCKETMQ_HOME="$dir/home" ROCKETMQ_SECURITY_PROFILE=development-insecure-loopback \
        "$BROKER_BIN" -c "$dir/broker.toml" >"$dir/broker.log" 2>&1 &
    PIDS+=($!)
}

# registered ADDR BROKER: the NameServer at ADDR lists BROKER.
registered() { "$MERIDIAN" admin -n "$1" clusterList 2>/dev/null | grep -q " $2 "; }
wait_registered() {
    local deadline=$((SECONDS + REGISTER_WAIT_S))
    until registered "$1" "$2"; do
        ((SECONDS < deadline)) || { log "$2 not registered with $1 within ${REGISTER_WAIT_S} s"; exit 1; }
        sleep 0.5
    done
}

broker broker-x $((BASE + 10)) "$A;$B;$C"
broker broker-y $((BASE + 20)) "$A"
for ns in "$A" "$B" "$C"; do wait_registered "$ns" broker-x; done
wait_registered "$A" broker-y
log "broker-x registered with A, B, C; broker-y with A only"

"$MERIDIAN" admin -n "$B" wipeWritePerm -b broker-x >&2
log "write permission of broker-x wiped on B only"

echo "\$ meridian admin routeDiff -n '$A;$B;$C'"
set +e
"$MERIDIAN" admin routeDiff -n "$A;$B;$C"
echo "(exit code $?)"
echo
echo "\$ meridian admin routeDiff -n '$A;$B;$C' --json"
"$MERIDIAN" admin routeDiff -n "$A;$B;$C" --json
echo "(exit code $?)"
set -e
# The peer watch of A compares every PEER_CHECK_MS; two intervals cover a check after the wipe.
sleep $((2 * PEER_CHECK_MS / 1000 + 1))
echo
echo "\$ curl -s $METRICS_A/metrics | grep meridian_peer_route_differences"
curl -s "$METRICS_A/metrics" | grep '^meridian_peer_route_differences'
echo "\$ curl -s $METRICS_A/routediff"
curl -s "$METRICS_A/routediff"
echo
