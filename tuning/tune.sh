#!/usr/bin/env bash
# Host tuning for Meridian: check (default, read-only), apply, undo. See tuning/README.md.
#
#   tuning/tune.sh [AREA] [ACTION]
#     AREA:   all (default) | cpu | sysctl | memlock | thp
#     ACTION: check (default) | apply | undo
#
# check  changes nothing and needs no root. Exit 0 = fine or only recommendations,
#        1 = a real problem (Meridian would fail or silently lose something), 2 = usage.
# apply  needs root. Saves every previous value under $MERIDIAN_TUNING_STATE_DIR before
#        changing it (an already-saved original is kept, so applying twice is harmless),
#        and prints every change. Runtime only: nothing is written to /etc/sysctl.d.
# undo   needs root. Restores exactly what apply saved, prints each restore, and removes
#        the saved state.
#
# Environment (all optional):
#   MERIDIAN_SHARDS            shards Meridian runs (default: CPUs available here, as Meridian)
#   MERIDIAN_IO_MEMORY_BYTES   ioMemoryBytesPerShard (default 262144, Meridian's default)
#   MERIDIAN_LISTEN_BACKLOG    listen_backlog_len (default 1024, Meridian's default)
#   MERIDIAN_IRQ_CPUS          CPU list for NIC interrupts (default: the CPUs after the shards)
#   MERIDIAN_BUSY_POLL_US      if set, apply sets net.core.busy_poll/busy_read to it
#   MERIDIAN_MEMLOCK_KIB       memlock apply target (default 65536 = 64 MiB)
#   MERIDIAN_USER              user the limits.d entry is for (default: *)
#   MERIDIAN_UNIT              systemd unit that gets LimitMEMLOCK (default meridian.service)
#   MERIDIAN_TUNING_STATE_DIR  saved values (default /var/lib/meridian-tuning)
#   MERIDIAN_SYSFS / MERIDIAN_PROCFS / MERIDIAN_ETC  roots, for tests (default /sys /proc /etc)

set -euo pipefail

SYSFS=${MERIDIAN_SYSFS:-/sys}
PROCFS=${MERIDIAN_PROCFS:-/proc}
ETC=${MERIDIAN_ETC:-/etc}
STATE_DIR=${MERIDIAN_TUNING_STATE_DIR:-/var/lib/meridian-tuning}
CPUS_ONLINE=$(nproc)
SHARDS=${MERIDIAN_SHARDS:-$CPUS_ONLINE}
IO_MEMORY_BYTES=${MERIDIAN_IO_MEMORY_BYTES:-262144}
LISTEN_BACKLOG=${MERIDIAN_LISTEN_BACKLOG:-1024}
MEMLOCK_TARGET_KIB=${MERIDIAN_MEMLOCK_KIB:-65536}
LIMITS_USER=${MERIDIAN_USER:-*}
UNIT=${MERIDIAN_UNIT:-meridian.service}

# Socket buffer ceiling: a 100k-topic registration is ~21 MB of JSON in one frame.
SOCKET_BUFFER_BYTES_MAX=16777216
# Accept-queue and SYN-queue length for a reconnect storm of a few thousand clients.
ACCEPT_QUEUE_LEN=4096

problems=0

say() { printf '%s\n' "$*"; }
ok() { printf '  ok       %s\n' "$*"; }
recommend() { printf '  RECOMMEND %s\n' "$*"; }
problem() {
    printf '  PROBLEM  %s\n' "$*"
    problems=$((problems + 1))
}
change() { printf '  CHANGE   %s\n' "$*"; }
restore() { printf '  RESTORE  %s\n' "$*"; }
die() {
    printf 'tune.sh: %s\n' "$*" >&2
    exit 2
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "'$1' changes the host and needs root; 'check' does not"
}

# Saves $2 as the previous value of key $1 of area $3 unless an original is already saved.
save_once() {
    local file="$STATE_DIR/$3/$1"
    mkdir -p "$STATE_DIR/$3"
    if [ -e "$file" ]; then
        say "  (original of $1 already saved: $(tr '\t' ' ' <"$file"))"
    else
        printf '%s\n' "$2" >"$file"
    fi
}

# ---------------------------------------------------------------------------------------
# sysctl
# ---------------------------------------------------------------------------------------

sysctl_path() { printf '%s/sys/%s' "$PROCFS" "${1//.//}"; }
sysctl_get() { tr '\t' ' ' <"$(sysctl_path "$1")"; }

# Third field of tcp_rmem/tcp_wmem (min default max).
third_field() { awk '{print $3}' <<<"$1"; }

# key minimum: "raise to at least" targets; apply never lowers a value.
SYSCTL_MINIMUMS=(
    "net.core.somaxconn $ACCEPT_QUEUE_LEN"
    "net.ipv4.tcp_max_syn_backlog $ACCEPT_QUEUE_LEN"
    "net.core.rmem_max $SOCKET_BUFFER_BYTES_MAX"
    "net.core.wmem_max $SOCKET_BUFFER_BYTES_MAX"
)

sysctl_check() {
    say "sysctl"
    local entry key minimum value
    for entry in "${SYSCTL_MINIMUMS[@]}"; do
        read -r key minimum <<<"$entry"
        value=$(sysctl_get "$key")
        if [ "$value" -ge "$minimum" ]; then
            ok "$key = $value (>= $minimum)"
        else
            recommend "$key = $value; raise to $minimum (tune.sh sysctl apply)"
        fi
    done
    local somaxconn
    somaxconn=$(sysctl_get net.core.somaxconn)
    if [ "$somaxconn" -lt "$LISTEN_BACKLOG" ]; then
        problem "net.core.somaxconn $somaxconn < Meridian's listen_backlog_len $LISTEN_BACKLOG: the kernel silently truncates the accept queue"
    fi
    for key in net.ipv4.tcp_rmem net.ipv4.tcp_wmem; do
        value=$(sysctl_get "$key")
        if [ "$(third_field "$value")" -ge "$SOCKET_BUFFER_BYTES_MAX" ]; then
            ok "$key = $value (max >= $SOCKET_BUFFER_BYTES_MAX)"
        else
            recommend "$key = $value; raise its max to $SOCKET_BUFFER_BYTES_MAX so autotuning can take a large registration in fewer round trips"
        fi
    done
    for key in net.core.busy_poll net.core.busy_read; do
        value=$(sysctl_get "$key")
        if [ "$value" -eq 0 ]; then
            ok "$key = 0 (off; see README before enabling: it spins a core per waiting socket)"
        else
            say "  info     $key = $value us (busy polling on; only worth it with dedicated cores)"
        fi
    done
}

sysctl_set() {
    local key=$1 value=$2 current
    current=$(sysctl_get "$key")
    if [ "$current" = "$value" ]; then
        ok "$key = $current (unchanged)"
        return
    fi
    save_once "$key" "$(cat "$(sysctl_path "$key")")" sysctl
    printf '%s\n' "$value" >"$(sysctl_path "$key")"
    change "$key: $current -> $(sysctl_get "$key")"
}

sysctl_apply() {
    say "sysctl apply"
    local entry key minimum value
    for entry in "${SYSCTL_MINIMUMS[@]}"; do
        read -r key minimum <<<"$entry"
        value=$(sysctl_get "$key")
        if [ "$value" -ge "$minimum" ]; then
            ok "$key = $value (already >= $minimum)"
        else
            sysctl_set "$key" "$minimum"
        fi
    done
    for key in net.ipv4.tcp_rmem net.ipv4.tcp_wmem; do
        value=$(sysctl_get "$key")
        if [ "$(third_field "$value")" -ge "$SOCKET_BUFFER_BYTES_MAX" ]; then
            ok "$key = $value (max already >= $SOCKET_BUFFER_BYTES_MAX)"
        else
            sysctl_set "$key" "$(awk -v max="$SOCKET_BUFFER_BYTES_MAX" '{print $1, $2, max}' <<<"$value")"
        fi
    done
    if [ -n "${MERIDIAN_BUSY_POLL_US:-}" ]; then
        sysctl_set net.core.busy_poll "$MERIDIAN_BUSY_POLL_US"
        sysctl_set net.core.busy_read "$MERIDIAN_BUSY_POLL_US"
    else
        say "  skip     net.core.busy_poll/busy_read (set MERIDIAN_BUSY_POLL_US=50 to enable)"
    fi
    say "  note     runtime values only: a reboot returns to the distribution's values"
}

sysctl_undo() {
    say "sysctl undo"
    local dir="$STATE_DIR/sysctl" file key current
    if [ ! -d "$dir" ]; then
        say "  nothing saved in $dir"
        return
    fi
    for file in "$dir"/*; do
        [ -e "$file" ] || continue
        key=$(basename "$file")
        current=$(sysctl_get "$key")
        cat "$file" >"$(sysctl_path "$key")"
        restore "$key: $current -> $(sysctl_get "$key")"
        rm -- "$file"
    done
    rmdir -- "$dir"
}

# ---------------------------------------------------------------------------------------
# cpu: CPU sets and NIC interrupt affinity
# ---------------------------------------------------------------------------------------

# Expands "0-2,5" to "0 1 2 5".
expand_cpus() {
    local part out=()
    local IFS=,
    for part in $1; do
        if [[ $part == *-* ]]; then
            mapfile -t -O "${#out[@]}" out < <(seq "${part%-*}" "${part#*-}")
        elif [ -n "$part" ]; then
            out+=("$part")
        fi
    done
    printf '%s ' "${out[@]}"
}

# IRQ numbers of every network interface backed by a device, one "irq iface" per line.
nic_irqs() {
    local iface_dir iface device pci name irq
    for iface_dir in "$SYSFS"/class/net/*; do
        [ -e "$iface_dir/device" ] || continue
        iface=$(basename "$iface_dir")
        device=$(readlink -f "$iface_dir/device")
        name=$(basename "$device")
        # A PCI NIC lists its MSI vectors itself; a virtio NIC's sit on its PCI parent.
        pci=$device
        [ -d "$pci/msi_irqs" ] || pci=$(dirname "$device")
        if [ -d "$pci/msi_irqs" ]; then
            for irq in "$pci"/msi_irqs/*; do
                [ -e "$irq" ] && printf '%s %s\n' "$(basename "$irq")" "$iface"
            done
        else
            # Legacy interrupts: match the device or interface name in /proc/interrupts.
            awk -v a="$name" -v b="$iface" '$NF ~ a || $NF ~ b { sub(":", "", $1); print $1 }' \
                "$PROCFS/interrupts" | while read -r irq; do printf '%s %s\n' "$irq" "$iface"; done
        fi
    done
}

serving_cpus() {
    local cpu out=()
    for ((cpu = 0; cpu < SHARDS; cpu++)); do out+=($((cpu % CPUS_ONLINE))); done
    printf '%s ' "${out[@]}"
}

default_irq_cpus() {
    if [ "$SHARDS" -ge "$CPUS_ONLINE" ]; then
        return
    fi
    if [ $((SHARDS + 1)) -eq "$CPUS_ONLINE" ]; then
        printf '%s' "$SHARDS"
    else
        printf '%s-%s' "$SHARDS" $((CPUS_ONLINE - 1))
    fi
}

cpu_check() {
    say "cpu (shards $SHARDS on CPUs $(serving_cpus)of $CPUS_ONLINE online)"
    local allowed cmdline
    allowed=$(awk '/^Cpus_allowed_list/ {print $2}' "$PROCFS/self/status")
    say "  info     this shell may run on CPUs $allowed; Meridian pins shard i to CPU i (mod the CPUs it may use)"
    cmdline=$(cat "$PROCFS/cmdline")
    if [[ $cmdline == *isolcpus=* || $cmdline == *nohz_full=* ]]; then
        say "  info     kernel command line isolates CPUs: $(grep -oE '(isolcpus|nohz_full)=[^ ]+' <<<"$cmdline" | tr '\n' ' ')"
    fi
    if [ "$SHARDS" -gt "$CPUS_ONLINE" ]; then
        recommend "MERIDIAN_SHARDS $SHARDS > $CPUS_ONLINE CPUs: two shards would share a core"
    fi
    if pgrep -x irqbalance >/dev/null 2>&1; then
        recommend "irqbalance is running and will move interrupts back; stop it or give it IRQBALANCE_BANNED_CPULIST=$(serving_cpus | tr ' ' ',' | sed 's/,$//')"
    fi
    local irqs irq iface affinity cpu overlap=0
    irqs=$(nic_irqs)
    if [ -z "$irqs" ]; then
        ok "no NIC interrupts found (loopback-only host)"
        return
    fi
    local serving
    serving=" $(serving_cpus)"
    while read -r irq iface; do
        affinity=$(cat "$PROCFS/irq/$irq/smp_affinity_list" 2>/dev/null || printf '?')
        local hits=""
        for cpu in $(expand_cpus "$affinity"); do
            [[ $serving == *" $cpu "* ]] && hits+="$cpu "
        done
        if [ -n "$hits" ]; then
            overlap=$((overlap + 1))
            say "  irq $irq ($iface) -> CPUs $affinity (serving CPUs ${hits% })"
        else
            ok "irq $irq ($iface) -> CPUs $affinity (off the serving CPUs)"
        fi
    done <<<"$irqs"
    if [ "$overlap" -gt 0 ]; then
        if [ -n "$(default_irq_cpus)" ] || [ -n "${MERIDIAN_IRQ_CPUS:-}" ]; then
            recommend "$overlap NIC interrupt(s) can land on serving CPUs; tune.sh cpu apply moves them to CPUs ${MERIDIAN_IRQ_CPUS:-$(default_irq_cpus)}"
        else
            recommend "$overlap NIC interrupt(s) share the serving CPUs and no CPU is spare: run Meridian with --shards $((CPUS_ONLINE - 1)) and MERIDIAN_SHARDS=$((CPUS_ONLINE - 1)) tune.sh cpu apply"
        fi
    fi
}

cpu_apply() {
    say "cpu apply"
    local target=${MERIDIAN_IRQ_CPUS:-$(default_irq_cpus)}
    if [ -z "$target" ]; then
        say "  refuse   no CPU is free of shards ($SHARDS shards, $CPUS_ONLINE CPUs): run Meridian with"
        say "           --shards $((CPUS_ONLINE - 1)) and MERIDIAN_SHARDS=$((CPUS_ONLINE - 1)), or set MERIDIAN_IRQ_CPUS"
        return 1
    fi
    if pgrep -x irqbalance >/dev/null 2>&1; then
        say "  warning  irqbalance is running and may move these interrupts again"
    fi
    local irq iface current
    while read -r irq iface; do
        [ -n "$irq" ] || continue
        current=$(cat "$PROCFS/irq/$irq/smp_affinity_list")
        if [ "$current" = "$target" ]; then
            ok "irq $irq ($iface) -> CPUs $current (unchanged)"
            continue
        fi
        save_once "irq-$irq" "$current" cpu
        # Managed interrupts (many multi-queue drivers) refuse a new affinity: say so, go on.
        if printf '%s\n' "$target" >"$PROCFS/irq/$irq/smp_affinity_list" 2>/dev/null; then
            change "irq $irq ($iface) affinity: CPUs $current -> $(cat "$PROCFS/irq/$irq/smp_affinity_list")"
        else
            say "  skip     irq $irq ($iface): the kernel refused a new affinity (managed interrupt)"
            rm -f -- "$STATE_DIR/cpu/irq-$irq"
        fi
    done <<<"$(nic_irqs)"
}

cpu_undo() {
    say "cpu undo"
    local dir="$STATE_DIR/cpu" file irq current
    if [ ! -d "$dir" ]; then
        say "  nothing saved in $dir"
        return
    fi
    for file in "$dir"/irq-*; do
        [ -e "$file" ] || continue
        irq=${file##*/irq-}
        current=$(cat "$PROCFS/irq/$irq/smp_affinity_list")
        cat "$file" >"$PROCFS/irq/$irq/smp_affinity_list"
        restore "irq $irq affinity: CPUs $current -> $(cat "$PROCFS/irq/$irq/smp_affinity_list")"
        rm -- "$file"
    done
    rmdir -- "$dir"
}

# ---------------------------------------------------------------------------------------
# memlock: io_uring registered buffers are locked memory
# ---------------------------------------------------------------------------------------

LIMITS_FILE_NAME=90-meridian-memlock.conf

# glommio 0.9 refuses to create a shard's reactor below this RLIMIT_MEMLOCK.
GLOMMIO_MEMLOCK_MIN_KIB=512

memlock_need_kib() {
    # glommio registers each shard's io_memory buffer in three rings (main, poll, latency),
    # and io_uring charges every registration; 512 KiB on top covers page rounding.
    # Measured here: 2 shards x 256 KiB start cleanly at 2048 KiB and warn at 1536 KiB.
    printf '%s' $((SHARDS * 3 * IO_MEMORY_BYTES / 1024 + 512))
}

# RLIMIT_MEMLOCK of a process in KiB, or "unlimited".
process_memlock_kib() {
    awk '/^Max locked memory/ { if ($4 == "unlimited") print "unlimited"; else print int($4 / 1024) }' \
        "$PROCFS/$1/limits"
}

# Whether a process holds CAP_IPC_LOCK (bit 14), which exempts it from RLIMIT_MEMLOCK.
has_ipc_lock() {
    local caps
    caps=$(awk '/^CapEff/ {print $2}' "$PROCFS/$1/status")
    (((16#$caps >> 14) & 1))
}

memlock_verdict() {
    local what=$1 kib=$2 exempt=${3:-no} need
    need=$(memlock_need_kib)
    if [ "$kib" = unlimited ]; then
        ok "$what memlock unlimited"
    elif [ "$kib" -ge "$need" ]; then
        ok "$what memlock $kib KiB (>= $need KiB for $SHARDS shards x $IO_MEMORY_BYTES B in 3 rings)"
    elif [ "$exempt" = yes ]; then
        ok "$what memlock $kib KiB, but CAP_IPC_LOCK (root) exempts it; an unprivileged service user needs $need KiB"
    elif [ "$kib" -lt "$GLOMMIO_MEMLOCK_MIN_KIB" ]; then
        problem "$what memlock $kib KiB < $GLOMMIO_MEMLOCK_MIN_KIB KiB: glommio cannot create the shards' io_uring reactors, and no shard serves (tune.sh memlock apply)"
    else
        recommend "$what memlock $kib KiB < $need KiB: shards start but run without registered buffers (glommio logs 'registering buffers ... Skipping'); tune.sh memlock apply"
    fi
}

memlock_check() {
    say "memlock (io_uring registered buffers)"
    local pid exempt=no
    has_ipc_lock self && exempt=yes
    memlock_verdict "this shell's" "$(process_memlock_kib self)" "$exempt"
    for pid in $(pgrep -x meridian 2>/dev/null || true); do
        exempt=no
        has_ipc_lock "$pid" && exempt=yes
        memlock_verdict "running meridian (pid $pid)" "$(process_memlock_kib "$pid")" "$exempt"
    done
    if [ -e "$ETC/security/limits.d/$LIMITS_FILE_NAME" ]; then
        ok "$ETC/security/limits.d/$LIMITS_FILE_NAME present (applies to new logins)"
    fi
    if command -v systemctl >/dev/null 2>&1 && systemctl cat "$UNIT" >/dev/null 2>&1; then
        local limit
        limit=$(systemctl show -p LimitMEMLOCK --value "$UNIT")
        if [ "$limit" = infinity ]; then
            ok "$UNIT LimitMEMLOCK=infinity"
        else
            memlock_verdict "$UNIT LimitMEMLOCK" $((limit / 1024))
        fi
    fi
}

# Writes $2 to file $1, saving what was there (or that nothing was) first.
write_saved_file() {
    local target=$1 content=$2 key
    key=$(printf '%s' "$target" | tr '/' '%')
    mkdir -p "$STATE_DIR/memlock"
    if [ ! -e "$STATE_DIR/memlock/$key" ]; then
        if [ -e "$target" ]; then
            cp -p -- "$target" "$STATE_DIR/memlock/$key"
        else
            : >"$STATE_DIR/memlock/$key.absent"
            touch -- "$STATE_DIR/memlock/$key"
        fi
        # Only a directory apply creates is removed again by undo.
        [ -d "$(dirname "$target")" ] || : >"$STATE_DIR/memlock/$key.dir-absent"
    fi
    mkdir -p "$(dirname "$target")"
    printf '%s' "$content" >"$target"
    change "wrote $target:"
    sed 's/^/             /' "$target"
}

memlock_apply() {
    say "memlock apply"
    local kib
    kib=$(process_memlock_kib self)
    if [ "$kib" != unlimited ] && [ "$kib" -ge "$MEMLOCK_TARGET_KIB" ]; then
        ok "this shell's memlock $kib KiB already >= $MEMLOCK_TARGET_KIB KiB; nothing to write"
        return
    fi
    write_saved_file "$ETC/security/limits.d/$LIMITS_FILE_NAME" \
        "# Meridian: io_uring registered buffers are locked memory (tuning/README.md).
$LIMITS_USER soft memlock $MEMLOCK_TARGET_KIB
$LIMITS_USER hard memlock $MEMLOCK_TARGET_KIB
"
    say "  note     limits.d applies to new PAM logins; a running shell keeps 'ulimit -l' $kib"
    if command -v systemctl >/dev/null 2>&1 && systemctl cat "$UNIT" >/dev/null 2>&1; then
        write_saved_file "$ETC/systemd/system/$UNIT.d/memlock.conf" \
            "[Service]
LimitMEMLOCK=$((MEMLOCK_TARGET_KIB * 1024))
"
        systemctl daemon-reload
        change "systemctl daemon-reload (restart $UNIT to take the new limit)"
    else
        say "  skip     no systemd unit $UNIT (set MERIDIAN_UNIT); for a unit add LimitMEMLOCK=$((MEMLOCK_TARGET_KIB * 1024))"
    fi
}

memlock_undo() {
    say "memlock undo"
    local dir="$STATE_DIR/memlock" file target reload=0
    if [ ! -d "$dir" ]; then
        say "  nothing saved in $dir"
        return
    fi
    for file in "$dir"/*; do
        [ -e "$file" ] || continue
        [[ $file == *.absent || $file == *.dir-absent ]] && continue
        target=$(basename "$file" | tr '%' '/')
        if [ -e "$file.absent" ]; then
            rm -f -- "$target" "$file" "$file.absent"
            restore "removed $target (it did not exist before apply)"
            if [ -e "$file.dir-absent" ]; then
                rmdir -- "$(dirname "$target")"
                rm -- "$file.dir-absent"
                restore "removed directory $(dirname "$target") (created by apply)"
            fi
        else
            cp -p -- "$file" "$target"
            rm -- "$file"
            restore "$target back to its saved content"
        fi
        [[ $target == */systemd/* ]] && reload=1
    done
    rmdir -- "$dir"
    if [ "$reload" -eq 1 ]; then
        systemctl daemon-reload
        restore "systemctl daemon-reload (restart $UNIT to take the old limit)"
    fi
}

# ---------------------------------------------------------------------------------------
# thp: transparent huge pages
# ---------------------------------------------------------------------------------------

thp_selected() { grep -oE '\[[a-z+]+\]' "$SYSFS/kernel/mm/transparent_hugepage/$1" | tr -d '[]'; }

thp_check() {
    say "thp (transparent huge pages)"
    if [ ! -e "$SYSFS/kernel/mm/transparent_hugepage/enabled" ]; then
        ok "THP not available in this kernel"
        return
    fi
    local enabled defrag
    enabled=$(thp_selected enabled)
    defrag=$(thp_selected defrag)
    if [ "$enabled" = always ]; then
        recommend "enabled=always: Meridian turns THP off for itself while io_uring registers buffers, so this is safe for memlock, but 'madvise' avoids khugepaged work on the route table's heap"
    else
        ok "enabled=$enabled"
    fi
    if [ "$defrag" = always ]; then
        recommend "defrag=always can stall allocations in direct compaction; 'defer+madvise' or 'madvise' avoids it"
    else
        ok "defrag=$defrag"
    fi
}

thp_set() {
    local knob=$1 value=$2 current
    current=$(thp_selected "$knob")
    save_once "$knob" "$current" thp
    printf '%s\n' "$value" >"$SYSFS/kernel/mm/transparent_hugepage/$knob"
    change "transparent_hugepage/$knob: $current -> $(thp_selected "$knob")"
}

thp_apply() {
    say "thp apply"
    if [ ! -e "$SYSFS/kernel/mm/transparent_hugepage/enabled" ]; then
        ok "THP not available in this kernel"
        return
    fi
    if [ "$(thp_selected enabled)" = always ]; then thp_set enabled madvise; else ok "enabled=$(thp_selected enabled) (unchanged)"; fi
    if [ "$(thp_selected defrag)" = always ]; then thp_set defrag defer+madvise; else ok "defrag=$(thp_selected defrag) (unchanged)"; fi
}

thp_undo() {
    say "thp undo"
    local dir="$STATE_DIR/thp" file knob current
    if [ ! -d "$dir" ]; then
        say "  nothing saved in $dir"
        return
    fi
    for file in "$dir"/*; do
        [ -e "$file" ] || continue
        knob=$(basename "$file")
        current=$(thp_selected "$knob")
        cat "$file" >"$SYSFS/kernel/mm/transparent_hugepage/$knob"
        restore "transparent_hugepage/$knob: $current -> $(thp_selected "$knob")"
        rm -- "$file"
    done
    rmdir -- "$dir"
}

# ---------------------------------------------------------------------------------------

AREAS=(cpu sysctl memlock thp)
area=${1:-all}
action=${2:-check}
[ $# -le 2 ] || die "usage: tune.sh [all|cpu|sysctl|memlock|thp] [check|apply|undo]"
case "$action" in check | apply | undo) ;; *) die "unknown action '$action' (check, apply, undo)" ;; esac
if [ "$area" = all ]; then
    selected=("${AREAS[@]}")
elif [[ " ${AREAS[*]} " == *" $area "* ]]; then
    selected=("$area")
else
    die "unknown area '$area' (all, ${AREAS[*]})"
fi
[ "$action" = check ] || need_root "$action"

# Spelled out (not "${area}_${action}") so shellcheck sees every function called.
run() {
    case "$1 $2" in
        "cpu check") cpu_check ;;
        "cpu apply") cpu_apply ;;
        "cpu undo") cpu_undo ;;
        "sysctl check") sysctl_check ;;
        "sysctl apply") sysctl_apply ;;
        "sysctl undo") sysctl_undo ;;
        "memlock check") memlock_check ;;
        "memlock apply") memlock_apply ;;
        "memlock undo") memlock_undo ;;
        "thp check") thp_check ;;
        "thp apply") thp_apply ;;
        "thp undo") thp_undo ;;
    esac
}

status=0
for a in "${selected[@]}"; do
    run "$a" "$action" || status=1
done
[ "$action" != undo ] || rmdir -- "$STATE_DIR" 2>/dev/null || true
if [ "$action" = check ]; then
    if [ "$problems" -gt 0 ]; then
        say "$problems problem(s) found"
        exit 1
    fi
    say "no problems (recommendations, if any, are optional)"
fi
exit "$status"
