#!/usr/bin/env bash
# Issue 11's density benchmarks in a booted host (README.md here for the harness), each
# against bare Docker daemons started by hand in the same run; Markdown for
# PERFORMANCE.md on stdout.
#
#   sudo bash tests/lifecycle/density_bench.sh     (also run by `make bench`)
#
# 1. Start: `systemctl start NAME_docker.service` (its containerd, dockyard-prepare,
#    dockyard-network, dockerd) until GET /_ping answers OK, against the same by hand:
#    the bridge with `ip`, then containerd and dockerd with exactly the units' command
#    lines (read from `systemctl show`), until GET /_ping answers; also until `systemctl
#    start` returns (its ExecStartPost= runs after dockerd's READY=1). The poller is
#    started before either side's clock: its own start is not timed. DENSITY_BENCH_RUNS
#    (default 7) of each, interleaved, after one warm-up of each.
# 2. Boot: from starting the container (systemd-nspawn -b) to every one of K autostart
#    instances answering GET /_ping, K in DENSITY_BENCH_COUNTS (default "10 50 100");
#    against booting with the instances masked, then K bare dockerds (each with the
#    containerd it starts itself, `--bridge none`) started at once by hand until all
#    answer: boot to multi-user plus the hand start.
# 3. Memory: PSS and RSS of dockerd + containerd per idle instance (no container), at the
#    largest K, against the K bare dockerds with their containerds.
# The socket is polled from the host every millisecond (density_ping.py). The machine's
# load is printed with the results: the figures are only comparable within one run.
set -euo pipefail
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"
# shellcheck source-path=SCRIPTDIR source=density_lib.sh
source "$HERE/density_lib.sh"

RUNS=${DENSITY_BENCH_RUNS:-7}
read -r -a COUNTS <<<"${DENSITY_BENCH_COUNTS:-10 50 100}"
BIN=/var/lib/dockyard/artifacts/docker
# In the working copy, which lc_cleanup removes (its EXIT trap must stay the only one).
RESULTS() { echo "$LC_WORK/logs/density-bench.md"; }
out() { printf '%s\n' "$*" | tee -a "$(RESULTS)"; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# argv UNIT: the unit's ExecStart= command line (no argument holds a space).
argv() {
    lc_exec systemctl show -p ExecStart --value "$1" | sed -n 's/.*argv\[\]=\([^;]*\) ;.*/\1/p' | head -n 1
}

# median and p90 of the numbers on stdin.
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%.1f %.1f %.1f", v[1], v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.999)] }'; }

# --- 1. start ----------------------------------------------------------------------------
# poll_from SOCK: starts the poller (density_ping.py at) in the background, its output in
# $LC_WORK/state/ping.out, and returns once it says it polls: its interpreter's start
# must not be timed on either side. POLLER is its PID.
poll_from() {
    local out="$LC_WORK/state/ping.out"
    rm -f "$out"
    density_ping at 60 "$1" >"$out" &
    POLLER=$!
    until [[ -s $out ]]; do
        kill -0 "$POLLER" 2>/dev/null || return 1
        sleep 0.01
    done
}

# answered_ms T0: ms from T0 to the poller's first OK (its last line), once it has exited
# (`wait` in the caller: a command substitution cannot wait for its parent's child).
answered_ms() {
    awk -v t0="$1" -v ok="$(tail -n 1 "$LC_WORK/state/ping.out")" 'BEGIN { printf "%.1f\n", (ok - t0) * 1000 }'
}

# start_dockyard NAME: prints "API_MS RETURN_MS": from `systemctl start` to the API's
# first OK, and to `systemctl start` returning (after ExecStartPost=).
start_dockyard() {
    local t0 back ms
    # Many starts in a row would trip the units' StartLimitBurst=3.
    lc_exec systemctl reset-failed "$1_docker.service" "$1_containerd.service" 2>/dev/null || true
    poll_from "$(host_sock "$1")" || { lc_die "the poller did not start"; return 1; }
    t0=$(now)
    lc_exec systemctl start "$1_docker.service"
    back=$(since "$t0")
    wait "$POLLER" || { lc_die "$1 did not answer after systemctl start"; return 1; }
    ms=$(answered_ms "$t0")
    lc_exec systemctl stop "$1_docker.service"
    echo "$ms $back"
}

start_bare() {
    local n=$1 t0 ms bridge
    bridge=$(lc_exec sed -n 's/^BridgeCIDR=//p' "$CONF_DIR/$n.conf")
    lc_exec mkdir -p "/run/${n}_docker" "/run/${n}_containerd"
    lc_exec cp /var/tmp/density-daemon.json "/run/${n}_docker/daemon.json"
    poll_from "$(host_sock "$n")" || { lc_die "the poller did not start"; return 1; }
    t0=$(now)
    # shellcheck disable=SC2016,SC2086  # expanded by the inner sh; the argvs are split on purpose
    lc_exec sh -c 'ip link add "$1" type bridge && ip addr add "$2" dev "$1" && ip link set "$1" up &&
        { setsid $3 </dev/null >/var/tmp/bare-containerd.log 2>&1 & } &&
        { setsid $4 </dev/null >/var/tmp/bare-dockerd.log 2>&1 & }' sh \
        "${n}_docker0" "$bridge" "$CONTAINERD_ARGV" "$DOCKERD_ARGV"
    wait "$POLLER" ||
        { lc_die "the dockerd started by hand did not answer: $(lc_exec tail -n 5 /var/tmp/bare-dockerd.log)"; return 1; }
    ms=$(answered_ms "$t0")
    # shellcheck disable=SC2016
    lc_exec sh -c 'kill $(cat "/run/$1_docker/dockerd.pid"); while [ -e "/run/$1_docker/dockerd.pid" ]; do sleep 0.05; done
        pkill -f -- "--address /run/$1_containerd/containerd.sock"; while pgrep -f -- "--address /run/$1_containerd/" >/dev/null; do sleep 0.05; done
        ip link del "$1_docker0"; rm -rf "/run/$1_docker" "/run/$1_containerd"' sh "$n"
    echo "$ms"
}

bench_start() {
    local n=dn1 i a r b ours=() back=() theirs=()
    lc_exec timeout 300 dockyard new "$n" --runtime runc --docker-version "$LC_DOCKER_VERSION" </dev/null >/dev/null
    lc_exec systemctl daemon-reload
    lc_exec systemctl start "${n}_docker.service"
    lc_exec cp "/run/${n}_docker/daemon.json" /var/tmp/density-daemon.json
    DOCKERD_ARGV=$(argv "${n}_docker.service")
    CONTAINERD_ARGV=$(argv "${n}_containerd.service")
    [[ $DOCKERD_ARGV == *dockerd* && $CONTAINERD_ARGV == *containerd* ]] ||
        { lc_die "cannot read the units' command lines: '$DOCKERD_ARGV' '$CONTAINERD_ARGV'"; return 1; }
    lc_exec systemctl stop "${n}_docker.service"
    for ((i = 0; i <= RUNS; i++)); do
        read -r a r < <(start_dockyard "$n") && [[ -n ${r:-} ]] || return 1
        b=$(start_bare "$n") || return 1
        if ((i > 0)); then ours+=("$a"); back+=("$r"); theirs+=("$b"); fi
    done
    read -r amin amed ap90 < <(printf '%s\n' "${ours[@]}" | stats)
    read -r rmin rmed rp90 < <(printf '%s\n' "${back[@]}" | stats)
    read -r bmin bmed bp90 < <(printf '%s\n' "${theirs[@]}" | stats)
    out ""
    out "Start until the API answers, $RUNS runs each, interleaved (1-minute load $(cut -d' ' -f1 /proc/loadavg)):"
    out ""
    out "| case | min ms | median ms | p90 ms | median vs by hand |"
    out "|---|---|---|---|---|"
    out "| by hand: \`ip\` bridge, containerd and dockerd with the units' flags | $bmin | $bmed | $bp90 | 1.00x |"
    out "| \`systemctl start ${n}_docker.service\`: until the API answers | $amin | $amed | $ap90 | $(awk -v a="$amed" -v b="$bmed" 'BEGIN { printf "%.2fx", a / b }') |"
    out "| \`systemctl start ${n}_docker.service\`: until it returns | $rmin | $rmed | $rp90 | $(awk -v a="$rmed" -v b="$bmed" 'BEGIN { printf "%.2fx", a / b }') |"
    out ""
    out "Dockyard's overhead at the median (goal: at most 50 ms): $(awk -v a="$amed" -v b="$bmed" 'BEGIN { printf "%.1f", a - b }') ms until the API answers, $(awk -v a="$rmed" -v b="$bmed" 'BEGIN { printf "%.1f", a - b }') ms until \`systemctl start\` returns."
}

# --- 2 and 3. boot and memory --------------------------------------------------------------
# boot_to_answers NAME...: power off, boot, print ms from the container's start to every
# instance answering.
boot_to_answers() {
    local socks=() n t0 s
    lc_poweroff
    t0=$(now)
    lc__start_container >/dev/null
    for n in "$@"; do socks+=("/proc/$(lc_leader_pid)/root$(sock "$n")"); done
    s=$(density_ping wait $((300 + 6 * $#)) "$t0" "${socks[@]}") || return 1
    awk -v s="$s" 'BEGIN { printf "%.0f\n", s * 1000 }'
}

# memory MAINPID...: "PSS RSS" in MiB summed over the processes and their children.
memory_of() {
    # shellcheck disable=SC2016
    lc_exec sh -c 'for p in "$@"; do echo "$p"; pgrep -P "$p"; done | while read -r q; do
        [ -r "/proc/$q/smaps_rollup" ] && awk "/^(Pss|Rss):/ { print \$1, \$2 }" "/proc/$q/smaps_rollup"; done' sh "$@" |
        awk '$1 == "Pss:" { p += $2 } $1 == "Rss:" { r += $2 } END { printf "%.1f %.1f", p / 1024, r / 1024 }'
}

instance_memory() {
    local pids=() n
    for n in "$@"; do
        pids+=("$(main_pid "${n}_docker.service")" "$(main_pid "${n}_containerd.service")")
    done
    memory_of "${pids[@]}"
}

# bare_fleet NAME...: boot with the instances masked, then one bare dockerd per NAME
# started at once (own containerd, no bridge); prints "boot_ms start_ms PSS RSS".
bare_fleet() {
    local n t0 boot s socks=() pids
    lc_exec systemctl mask "${@/%/_docker.service}" >/dev/null 2>&1
    lc_poweroff
    t0=$(now)
    lc__start_container >/dev/null
    boot=$(since "$t0")
    t0=$(now)
    for n in "$@"; do socks+=("/proc/$(lc_leader_pid)/root/var/tmp/bare/$n/docker.sock"); done
    # shellcheck disable=SC2016
    lc_exec sh -c 'b=$1; shift; for n in "$@"; do mkdir -p "/var/tmp/bare/$n"
        setsid "$b/dockerd" --data-root "/var/tmp/bare/$n/docker" --exec-root "/run/bare-$n" \
            --pidfile "/run/bare-$n/dockerd.pid" --host "unix:///var/tmp/bare/$n/docker.sock" \
            --bridge none --iptables=false --ip6tables=false --ip-masq=false \
            </dev/null >"/var/tmp/bare/$n.log" 2>&1 & done' sh "$BIN/$LC_DOCKER_VERSION/bin" "$@"
    s=$(density_ping wait $((300 + 6 * $#)) "$t0" "${socks[@]}") ||
        { lc_die "the bare dockerds did not all answer"; return 1; }
    sleep 10 # idle, as the instances are when measured
    # shellcheck disable=SC2016
    pids=$(lc_exec sh -c 'for n in "$@"; do cat "/run/bare-$n/dockerd.pid"; echo; done' sh "$@")
    # shellcheck disable=SC2086
    read -r pss rss < <(memory_of $pids)
    lc_exec sh -c 'for f in /run/bare-*/dockerd.pid; do kill "$(cat "$f")"; done; sleep 5' || true
    lc_exec systemctl unmask "${@/%/_docker.service}" >/dev/null 2>&1
    echo "$boot $(awk -v s="$s" 'BEGIN { printf "%.0f", s * 1000 }') $pss $rss"
}

bench_boot() {
    local have=1 k n names=() ms pss rss bare bboot bstart bpss brss
    out ""
    out "Boot to every autostart instance answering, against booting with them masked and"
    out "starting as many bare dockerds at once by hand (1-minute load $(cut -d' ' -f1 /proc/loadavg)):"
    out ""
    out "| instances | Dockyard: boot to all answering, ms | bare: boot ms + hand start ms = total | Dockyard vs bare |"
    out "|---|---|---|---|"
    for k in "${COUNTS[@]}"; do
        mapfile -t names < <(density_names "$k")
        for ((n = have + 1; n <= k; n++)); do
            lc_exec timeout 300 dockyard new "dn$n" --runtime runc --docker-version "$LC_DOCKER_VERSION" </dev/null >/dev/null
        done
        have=$k
        lc_exec systemctl daemon-reload
        # The first start makes accounts and data roots; boots after it are steady state.
        lc_exec timeout $((120 + 6 * k)) systemctl start "${names[@]/%/_docker.service}"
        ms=$(boot_to_answers "${names[@]}") || return 1
        sleep 10
        read -r pss rss < <(instance_memory "${names[@]}")
        bare=$(bare_fleet "${names[@]}") || return 1
        read -r bboot bstart bpss brss <<<"$bare"
        out "| $k | $ms | $bboot + $bstart = $(awk -v a="$bboot" -v b="$bstart" 'BEGIN { printf "%.0f", a + b }') | $(awk -v m="$ms" -v a="$bboot" -v b="$bstart" 'BEGIN { printf "%.2fx", m / (a + b) }') |"
        MEMORY_ROW="| $k | $(awk -v p="$pss" -v k="$k" 'BEGIN { printf "%.1f", p / k }') | $(awk -v p="$rss" -v k="$k" 'BEGIN { printf "%.1f", p / k }') | $(awk -v p="$bpss" -v k="$k" 'BEGIN { printf "%.1f", p / k }') | $(awk -v p="$brss" -v k="$k" 'BEGIN { printf "%.1f", p / k }') | $(awk -v a="$pss" -v b="$bpss" 'BEGIN { printf "%.2fx", a / b }') |"
        # The next round boots the instances again.
        lc_reboot >/dev/null
    done
    out ""
    out "Memory per idle instance at the largest count (dockerd + containerd, MiB):"
    out ""
    out "| instances | Dockyard PSS | Dockyard RSS | bare PSS | bare RSS | PSS vs bare |"
    out "|---|---|---|---|---|---|"
    out "$MEMORY_ROW"
}

lc_init
lc_rootfs
lc_boot density
install_deb_only
lc_exec systemctl daemon-reload
echo "# density benchmark: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Docker $LC_DOCKER_VERSION" | tee -a "$(RESULTS)"
bench_start || lc_die "the start benchmark failed"
bench_boot || lc_die "the boot benchmark failed"
echo
echo "==== results ===="
cat "$(RESULTS)"
