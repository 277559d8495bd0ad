#!/usr/bin/env bash
# interop/run.sh — `make interop`: proves that real RocketMQ peers work with Meridian.
#
# It installs the rocketmq-rust 1.0.0 broker (cached under target/peers), builds the interop client
# (interop/client, cached in target/peers-build) and Meridian (release), then on loopback only:
#   1. starts Meridian with RUST_LOG=debug and waits for its "listening on" line;
#   2. starts one broker registered with Meridian and waits for REGISTER_BROKER (103) in Meridian's log;
#   3. runs the client: cluster info (106), topic route (105, creating the topic through the broker
#      if needed), 100 messages produced and consumed by the real producer and push consumer;
#   4. stops the broker with SIGTERM and checks that Meridian saw UNREGISTER_BROKER (104);
#   5. stops Meridian and prints the request codes it received (per peer: broker or client), and
#      PASS or FAIL.
# Every process it starts is stopped by PID from an EXIT trap. Each wait has its own deadline, so a
# run is bounded (builds by INTEROP_BUILD_TIMEOUT_S, the rest by about 10 minutes; a passing run
# takes about 20 s once everything is built).
#
# Knobs (environment): INTEROP_MESSAGES (default 100), INTEROP_REGISTRATIONS (REGISTER_BROKER requests
# to see before the client runs, default 2), INTEROP_COMPRESSED_REGISTER=1 (broker sends compressed
# registrations), INTEROP_KEEP_WORKDIR=1 (keep the temporary directory, broker store included),
# INTEROP_BUILD_TIMEOUT_S (default 5400: a cold broker build takes about 45 minutes on two busy
# cores), INTEROP_CLIENT_LOG (tracing filter for the client's own logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The broker install line must stay byte-for-byte the same as the one used to warm the cache
# (same CARGO_TARGET_DIR and --root), or cargo rebuilds it from scratch.
PEERS_ROOT=$ROOT/target/peers
PEERS_TARGET_DIR=$ROOT/target/peers-build
BROKER_CRATE=rocketmq-broker
BROKER_VERSION=1.0.0
BROKER_BIN=$PEERS_ROOT/bin/rocketmq-broker-rust
CLIENT_DIR=$ROOT/interop/client
CLIENT_BIN=$PEERS_TARGET_DIR/release/meridian-interop-client
MERIDIAN_BIN=$ROOT/target/release/meridian

MESSAGE_COUNT=${INTEROP_MESSAGES:-100}
# Registrations to see before the client runs: the second one (~10 s after start) exercises
# Meridian's update of an already known broker, which every later heartbeat takes.
REGISTRATIONS_MIN=${INTEROP_REGISTRATIONS:-2}
# 1 makes the broker send raw-deflate registration bodies (compressed:"true").
COMPRESSED_REGISTER=${INTEROP_COMPRESSED_REGISTER:-0}
BUILD_TIMEOUT_S=${INTEROP_BUILD_TIMEOUT_S:-5400}
TOPIC=MeridianInteropTopic
CONSUMER_GROUP=meridian-interop-cg-$$
CLUSTER_NAME=MeridianInteropCluster
BROKER_NAME=meridian-interop-broker-a

# Deadlines, each with its reason.
MERIDIAN_READY_WAIT_S=20     # Meridian binds at once; 20 s covers a loaded 2-core machine.
BROKER_REGISTER_WAIT_S=90    # The broker registers at start (first 103); its store setup takes seconds.
REREGISTER_WAIT_S=45         # Re-registration comes ~10 s after start, then every 30 s.
CLIENT_TIMEOUT_S=240         # The client bounds itself (40 s route + 120 s consume + sends); this is a backstop.
BROKER_STOP_WAIT_S=40        # The broker unregisters (104) and flushes its store on SIGTERM.
UNREGISTER_SEEN_WAIT_S=10    # 104 reaches Meridian before the broker exits; allow log flushing.
MERIDIAN_STOP_WAIT_S=15
POLL_INTERVAL_S=0.2

# Ports come from below the kernel's ephemeral range (32768+ by default), so outgoing connections
# cannot be holding them.
PORT_MIN=20000
PORT_MAX=32000

log() { printf 'interop: %s\n' "$*" >&2; }

FAILURES=()
# fail records a failed check and carries on; die records it and ends the run (the trap reports).
fail() {
    FAILURES+=("$*")
    log "FAIL: $*"
}
die() {
    fail "$*"
    exit 1
}

WORK=""
MERIDIAN_PID=""
BROKER_PID=""
MERIDIAN_EXIT=""
BROKER_EXIT=""
# is_running PID: the process exists and has not exited. An exited child that is not reaped yet is
# a zombie and would still pass `kill -0`, so the state is read from /proc.
is_running() {
    local state
    [[ -n $1 ]] || return 1
    state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# stop_pid PID SIGNAL WAIT_S: sends SIGNAL, waits up to WAIT_S for the exit, then SIGKILLs.
# Sets STOPPED_STATUS to the exit status, or to "killed". Runs in the shell that started PID
# (never in a $(...) subshell), because only the parent can reap a child and read its status.
STOPPED_STATUS=""
stop_pid() {
    local pid=$1 signal=$2 wait_s=$3 deadline
    kill "-$signal" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + wait_s))
    while is_running "$pid" && ((SECONDS < deadline)); do
        sleep "$POLL_INTERVAL_S"
    done
    if is_running "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        STOPPED_STATUS=killed
        return 0
    fi
    STOPPED_STATUS=0
    wait "$pid" 2>/dev/null || STOPPED_STATUS=$?
}

code_name() {
    case $1 in
        100) echo PUT_KV_CONFIG ;;
        101) echo GET_KV_CONFIG ;;
        102) echo DELETE_KV_CONFIG ;;
        103) echo REGISTER_BROKER ;;
        104) echo UNREGISTER_BROKER ;;
        105) echo GET_ROUTEINFO_BY_TOPIC ;;
        106) echo GET_BROKER_CLUSTER_INFO ;;
        205) echo WIPE_WRITE_PERM_OF_BROKER ;;
        206) echo GET_ALL_TOPIC_LIST_FROM_NAMESERVER ;;
        216) echo DELETE_TOPIC_IN_NAMESRV ;;
        217) echo REGISTER_TOPIC_IN_NAMESRV ;;
        219) echo GET_KVLIST_BY_NAMESPACE ;;
        224) echo GET_TOPICS_BY_CLUSTER ;;
        304) echo GET_SYSTEM_TOPIC_LIST_FROM_NS ;;
        318) echo UPDATE_NAMESRV_CONFIG ;;
        319) echo GET_NAMESRV_CONFIG ;;
        322) echo QUERY_DATA_VERSION ;;
        327) echo ADD_WRITE_PERM_OF_BROKER ;;
        901) echo GET_BROKER_MEMBER_GROUP ;;
        904) echo BROKER_HEARTBEAT ;;
        905) echo NOTIFY_MIN_BROKER_ID_CHANGE ;;
        *) echo "?" ;;
    esac
}

# strip_ansi FILE: FILE without ANSI colour codes (the broker colours its log whatever NO_COLOR says).
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }

# Meridian's log without ANSI colour codes.
meridian_log() {
    [[ -n $WORK && -f $WORK/meridian.log ]] || return 0
    strip_ansi "$WORK/meridian.log"
}

# How many requests with code $1 Meridian logged.
codes_seen() { meridian_log | grep -c "request code=$1\b" || true; }

# Prints one row per request code: code, broker count, client count, unattributed count, total.
# Meridian logs "request code=N from ADDR"; a peer address that ever sent REGISTER_BROKER,
# UNREGISTER_BROKER or REGISTER_TOPIC_IN_NAMESRV is the broker's, every other one the client's.
# Lines without "from ADDR" are counted as unattributed.
code_table() {
    meridian_log | awk '
        match($0, /request code=[0-9]+/) {
            code = substr($0, RSTART + 13, RLENGTH - 13)
            addr = ""
            if (match($0, /request code=[0-9]+ from [^ ]+/)) {
                addr = substr($0, RSTART, RLENGTH)
                sub(/.* from /, "", addr)
            }
            count[code SUBSEP addr]++
            codes[code] = 1
            if (code == 103 || code == 104 || code == 217) broker[addr] = 1
        }
        END {
            for (key in count) {
                split(key, part, SUBSEP)
                if (part[2] == "") unattributed[part[1]] += count[key]
                else if (part[2] in broker) from_broker[part[1]] += count[key]
                else from_client[part[1]] += count[key]
                total[part[1]] += count[key]
            }
            for (code in codes)
                printf "%d %d %d %d %d\n", code, from_broker[code], from_client[code], unattributed[code], total[code]
        }' | sort -n
}

print_summary() {
    [[ -n $WORK && -f $WORK/meridian.log ]] || return 0
    echo
    echo "== request codes Meridian received (from its debug log) =="
    local rows code broker client unattributed total
    rows=$(code_table)
    if [[ -z $rows ]]; then
        echo "(no 'request code=' lines: is RUST_LOG=debug per-request logging in place?)"
    else
        printf '%-38s%8s%8s%14s%8s\n' code broker client unattributed total
        while read -r code broker client unattributed total; do
            printf '%-38s%8s%8s%14s%8s\n' "$code $(code_name "$code")" "$broker" "$client" "$unattributed" "$total"
        done <<<"$rows"
    fi
    local problems
    problems=$(meridian_log | grep -E ' (WARN|ERROR) ' | head -n 20)
    if [[ -n $problems ]]; then
        echo
        echo "== Meridian WARN/ERROR lines (first 20) =="
        echo "$problems"
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Reporting must not stop half-way because a grep found nothing.
    set +e
    if is_running "$BROKER_PID"; then
        log "stopping broker (pid $BROKER_PID)"
        stop_pid "$BROKER_PID" TERM "$BROKER_STOP_WAIT_S"
        BROKER_EXIT=$STOPPED_STATUS
    fi
    if is_running "$MERIDIAN_PID"; then
        log "stopping meridian (pid $MERIDIAN_PID)"
        stop_pid "$MERIDIAN_PID" TERM "$MERIDIAN_STOP_WAIT_S"
        MERIDIAN_EXIT=$STOPPED_STATUS
    fi
    print_summary
    if ((rc != 0 && ${#FAILURES[@]} == 0)); then
        FAILURES+=("harness exited with status $rc (see messages above)")
    fi
    echo
    if ((${#FAILURES[@]} == 0)); then
        echo "interop: PASS (meridian exit ${MERIDIAN_EXIT:-?}, broker exit ${BROKER_EXIT:-?})"
    else
        echo "interop: FAIL"
        local failure
        for failure in "${FAILURES[@]}"; do echo "  - $failure"; done
        if [[ -n $WORK ]]; then
            echo "  logs: $WORK/{meridian,broker,client}.log"
        fi
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ ${INTEROP_KEEP_WORKDIR:-0} == 1 ]]; then
            log "kept work dir $WORK"
        elif ((${#FAILURES[@]} == 0)); then
            rm -rf "$WORK"
        else
            # Keep the logs for diagnosis; the broker store is ~170 MB and says nothing useful.
            rm -rf "$WORK/broker-store"
        fi
    fi
    if ((${#FAILURES[@]} != 0)); then
        exit 1
    fi
    exit 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Reports whether something accepts connections on 127.0.0.1:$1 (bash's /dev/tcp, no extra tools).
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port_base SPAN: prints a base port B such that B..B+SPAN-1 are all free.
pick_port_base() {
    local span=$1 base offset busy
    for _ in $(seq 1 50); do
        base=$((PORT_MIN + RANDOM % (PORT_MAX - PORT_MIN - span)))
        busy=0
        for offset in $(seq 0 $((span - 1))); do
            if port_busy $((base + offset)); then busy=1 && break; fi
        done
        if ((busy == 0)); then
            echo "$base"
            return 0
        fi
    done
    return 1
}

# error_lines FILE: the first ERROR lines of a peer's log, ANSI stripped, for failure messages.
error_lines() {
    [[ -f $1 ]] || return 0
    strip_ansi "$1" | grep -E '\bERROR\b' | head -n 5 | cut -c1-400 || true
}

# broker_log_line PATTERN: the first line of the broker's log matching PATTERN, ANSI stripped.
broker_log_line() {
    strip_ansi "$WORK/broker.log" | grep -m1 -E "$1" | cut -c1-400 || true
}

# The broker logs every registration that is not answered with SUCCESS, and every failed
# unregistration, at ERROR with these words.
REGISTER_FAILED_PATTERN='Register broker to name remoting_server failed'
UNREGISTER_FAILED_PATTERN='Unregister broker from name remoting_server error'

# wait_for_log FILE PATTERN WAIT_S PID WHAT [ERROR_LOG]: waits until FILE (ANSI stripped) matches
# PATTERN; fails early if PID exits. On failure it quotes the first ERROR lines of ERROR_LOG.
wait_for_log() {
    local file=$1 pattern=$2 wait_s=$3 pid=$4 what=$5 error_log=${6:-$1} deadline
    deadline=$((SECONDS + wait_s))
    while ((SECONDS < deadline)); do
        # grep -c reads the whole input: grep -q would exit early and fail the pipe under pipefail.
        if [[ -f $file && $(strip_ansi "$file" | grep -cE "$pattern") -gt 0 ]]; then
            return 0
        fi
        if ! is_running "$pid"; then
            die "$what: process $pid exited before '$pattern' appeared in $file; first errors of $error_log:
$(error_lines "$error_log")"
        fi
        sleep "$POLL_INTERVAL_S"
    done
    die "$what: '$pattern' did not appear in $file within ${wait_s} s; first errors of $error_log:
$(error_lines "$error_log")"
}

# ---- 1. Builds (cached) ----------------------------------------------------------------------

broker_installed_version() { "$BROKER_BIN" --version 2>/dev/null | sed -n 's/^version=//p'; }

if [[ -x $BROKER_BIN && $(broker_installed_version) == "$BROKER_VERSION" ]]; then
    log "broker: $BROKER_CRATE $BROKER_VERSION already installed at $BROKER_BIN"
else
    log "broker: installing $BROKER_CRATE $BROKER_VERSION (cold build ~45 min on 2 cores; cached afterwards)"
    CARGO_TARGET_DIR=$PEERS_TARGET_DIR timeout "$BUILD_TIMEOUT_S" nice -n 10 \
        cargo install "$BROKER_CRATE" --version "$BROKER_VERSION" --locked --root "$PEERS_ROOT" ||
        die "cargo install $BROKER_CRATE $BROKER_VERSION failed or exceeded ${BUILD_TIMEOUT_S} s"
    [[ $(broker_installed_version) == "$BROKER_VERSION" ]] ||
        die "$BROKER_BIN --version does not report $BROKER_VERSION after install"
fi

log "client: building interop/client (shares $PEERS_TARGET_DIR with the broker)"
(cd "$CLIENT_DIR" && CARGO_TARGET_DIR=$PEERS_TARGET_DIR timeout "$BUILD_TIMEOUT_S" nice -n 10 \
    cargo build --release --locked --quiet) || die "building interop/client failed"

log "meridian: building release"
(cd "$ROOT" && timeout "$BUILD_TIMEOUT_S" nice -n 10 cargo build --release --quiet) ||
    die "cargo build --release of meridian failed"
[[ -x $MERIDIAN_BIN ]] || die "$MERIDIAN_BIN missing after cargo build --release"

# ---- 2. Meridian ----------------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/meridian-interop.XXXXXX")
mkdir -p "$WORK/meridian-data" "$WORK/rocketmq-home" "$WORK/broker-store"
log "work dir: $WORK"

# One span covers both peers: Meridian at base, the broker's fast port (main-2), main port and HA
# port (main+1) at base+4..base+7, so no two listeners are closer than the broker's own spacing.
PORT_BASE=$(pick_port_base 8) || die "no free block of 8 loopback ports in $PORT_MIN..$PORT_MAX"
NAMESRV_PORT=$PORT_BASE
BROKER_PORT=$((PORT_BASE + 6))
BROKER_HA_PORT=$((BROKER_PORT + 1))
NAMESRV_ADDR_LOCAL=127.0.0.1:$NAMESRV_PORT

# NO_COLOR keeps escape codes out of the log (the parsers strip them anyway).
NO_COLOR=1 RUST_LOG=debug "$MERIDIAN_BIN" --listen "$NAMESRV_ADDR_LOCAL" --data-dir "$WORK/meridian-data" \
    >"$WORK/meridian.log" 2>&1 &
MERIDIAN_PID=$!
log "meridian: started pid $MERIDIAN_PID on $NAMESRV_ADDR_LOCAL"
wait_for_log "$WORK/meridian.log" "listening on" "$MERIDIAN_READY_WAIT_S" "$MERIDIAN_PID" "meridian start"
log "meridian: ready"

# ---- 3. Broker ------------------------------------------------------------------------------

cat >"$WORK/broker.toml" <<EOF
# Generated by interop/run.sh: one loopback broker registered with Meridian only.
[broker]
namesrvAddr = "$NAMESRV_ADDR_LOCAL"
# Both advertised IPs default to a non-loopback address, which would then appear in routes.
brokerIp1 = "127.0.0.1"
brokerIp2 = "127.0.0.1"
listenPort = $BROKER_PORT
storePathRootDir = "$WORK/broker-store"
autoCreateTopicEnable = true
compressedRegister = $([[ $COMPRESSED_REGISTER == 1 ]] && echo true || echo false)

[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[broker.brokerIdentity]
brokerName = "$BROKER_NAME"
brokerClusterName = "$CLUSTER_NAME"
brokerId = 0

[store]
storeType = "LocalFile"
brokerRole = "ASYNC_MASTER"
storePathRootDir = "$WORK/broker-store"
haListenAddress = "127.0.0.1"
haListenPort = $BROKER_HA_PORT
# Small files: the default commit log preallocates 1 GiB on the first message.
mappedFileSizeCommitLog = 134217728
mappedFileSizeConsumeQueue = 600000
maxHashSlotNum = 500000
maxIndexNum = 2000000
EOF

# An empty NAMESRV_ADDR would override the TOML, so it is removed from the broker's environment.
# The development-insecure-loopback profile makes the broker refuse any non-loopback listener.
env -u NAMESRV_ADDR NO_COLOR=1 ROCKETMQ_HOME="$WORK/rocketmq-home" \
    ROCKETMQ_SECURITY_PROFILE=development-insecure-loopback \
    "$BROKER_BIN" -c "$WORK/broker.toml" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
log "broker: started pid $BROKER_PID on 127.0.0.1:$BROKER_PORT (HA $BROKER_HA_PORT)"
wait_for_log "$WORK/meridian.log" "request code=103\b" "$BROKER_REGISTER_WAIT_S" "$BROKER_PID" \
    "broker registration (REGISTER_BROKER 103 in Meridian's log)" "$WORK/broker.log"
# The broker aborts its start-up when its first registration is not answered with success, so
# "ready" proves Meridian accepted the registration, not only that it received one.
wait_for_log "$WORK/broker.log" 'Broker lifecycle transition.*state="ready"' "$BROKER_REGISTER_WAIT_S" \
    "$BROKER_PID" "broker start-up (state=\"ready\" in broker.log)"
is_running "$MERIDIAN_PID" || die "meridian exited while the broker registered"
log "broker: registered with Meridian and ready"
deadline=$((SECONDS + REREGISTER_WAIT_S))
while (($(codes_seen 103) < REGISTRATIONS_MIN)); do
    is_running "$BROKER_PID" || die "broker exited after registering; first errors: $(error_lines "$WORK/broker.log")"
    ((SECONDS < deadline)) ||
        die "only $(codes_seen 103) of $REGISTRATIONS_MIN REGISTER_BROKER requests within ${REREGISTER_WAIT_S} s"
    sleep "$POLL_INTERVAL_S"
done
if [[ -n $(broker_log_line "$REGISTER_FAILED_PATTERN") ]]; then
    die "the broker reports a failed registration: $(broker_log_line "$REGISTER_FAILED_PATTERN")"
fi
log "broker: $(codes_seen 103) registrations seen"

# ---- 4. Client ------------------------------------------------------------------------------

log "client: $MESSAGE_COUNT messages on $TOPIC, group $CONSUMER_GROUP"
set +e
env -u NAMESRV_ADDR -u RUST_LOG timeout --kill-after=10 "$CLIENT_TIMEOUT_S" \
    "$CLIENT_BIN" "$NAMESRV_ADDR_LOCAL" "$TOPIC" "$MESSAGE_COUNT" "$CONSUMER_GROUP" 2>&1 |
    tee "$WORK/client.log"
client_status=${PIPESTATUS[0]}
set -e
if ((client_status == 124 || client_status == 137)); then
    fail "client did not finish within ${CLIENT_TIMEOUT_S} s"
elif ((client_status != 0)); then
    fail "client exited with status $client_status ($(grep -m1 'FAIL:' "$WORK/client.log" 2>/dev/null || echo 'see client.log'))"
fi
is_running "$MERIDIAN_PID" || fail "meridian exited during the client run"
is_running "$BROKER_PID" || fail "broker exited during the client run (see broker.log)"

# ---- 5. Broker shutdown: UNREGISTER_BROKER --------------------------------------------------

unregisters_before=$(codes_seen 104)
if is_running "$BROKER_PID"; then
    log "broker: SIGTERM"
    stop_pid "$BROKER_PID" TERM "$BROKER_STOP_WAIT_S"
    BROKER_EXIT=$STOPPED_STATUS
    if [[ $BROKER_EXIT == killed ]]; then
        fail "broker did not exit within ${BROKER_STOP_WAIT_S} s of SIGTERM"
    elif [[ -n $(broker_log_line "$UNREGISTER_FAILED_PATTERN") ]]; then
        fail "broker reports a failed UNREGISTER_BROKER: $(broker_log_line "$UNREGISTER_FAILED_PATTERN")"
    fi
fi
deadline=$((SECONDS + UNREGISTER_SEEN_WAIT_S))
until (($(codes_seen 104) > unregisters_before)) || ((SECONDS >= deadline)); do
    sleep "$POLL_INTERVAL_S"
done
if (($(codes_seen 104) > unregisters_before)); then
    log "meridian: saw UNREGISTER_BROKER (104)"
else
    fail "Meridian did not log UNREGISTER_BROKER (request code=104) after the broker's SIGTERM"
fi

if [[ -n $(broker_log_line "$REGISTER_FAILED_PATTERN") ]]; then
    fail "the broker reports a failed registration during the run: $(broker_log_line "$REGISTER_FAILED_PATTERN")"
fi

# ---- 6. Meridian shutdown -------------------------------------------------------------------

if is_running "$MERIDIAN_PID"; then
    log "meridian: SIGTERM"
    stop_pid "$MERIDIAN_PID" TERM "$MERIDIAN_STOP_WAIT_S"
    MERIDIAN_EXIT=$STOPPED_STATUS
    if [[ $MERIDIAN_EXIT == killed ]]; then
        fail "meridian did not exit within ${MERIDIAN_STOP_WAIT_S} s of SIGTERM"
    fi
else
    fail "meridian was not running at the end"
fi
