#!/usr/bin/env bash
# Rootless Docker per instance, measured against a rootful dockerd in one booted host
# (lib.sh; README.md here for the harness). Prints a Markdown table of medians and
# ratios against rootful, then exits 0.
#
#   sudo bash tests/lifecycle/rootless_bench.sh                # bookworm: rootful, slirp4netns
#   sudo LC_SUITE=sid bash tests/lifecycle/rootless_bench.sh   # sid: also pasta (rootlesskit >= 2)
#
# Modes (RB_MODES, default: every one the suite's rootlesskit supports):
#   rootful  dockerd as root, its own containerd, docker0 172.24.5.1/24, iptables
#   slirp    rootlesskit --net=slirp4netns --port-driver=builtin (dockerd-rootless.sh's flags)
#   pasta    rootlesskit --net=pasta --port-driver=implicit (pasta refuses builtin)
# Each is a transient unit started with systemd-run as Dockyard's unit would be:
# Type=notify, NotifyAccess=all, Delegate=yes, KillMode=mixed; the rootless ones run as
# NAME_docker through setpriv, with the exec root /run/NAME_docker and the socket
# /var/lib/dockyard/NAME/docker.sock (`--group root` makes it NAME_docker:NAME_docker 0660).
#
# Measured (medians):
#   1. start: from `systemd-run` to GET /_ping answering (polled from the host every ms
#      by density_ping.py, started before the clock), and to systemd-run returning
#      (READY=1); RB_RUNS starts of each mode, interleaved, after one warm-up each.
#   2. container -> upstream TCP throughput, iperf3 from a container on the default bridge
#      to 192.0.2.1 (upload) and -R (download), RB_SECS seconds each.
#   3. container -> upstream ICMP round trip (busybox ping, 20 x 0.2 s).
#   4. published port: busybox httpd in a container, `-p PORT:80`, `ab` from the upstream
#      namespace to 192.0.2.2:PORT: requests/s at concurrency 8 (RB_REQS requests) and
#      the mean time per request at concurrency 1 (RB_REQS/4 requests).
#   5. idle PSS of the unit's processes (dockerd, containerd, rootlesskit, slirp4netns or
#      pasta), no container running.
# 2-4 run RB_REPS times, the modes interleaved in each round, all instances up at once.
#
# Swapping in Dockyard's own units: RB_HOOKS=FILE is sourced after the defaults below and
# may redefine rb_setup MODE (once, before anything), rb_start MODE (return once started),
# rb_stop MODE, rb_sock MODE (the API socket, a path inside the booted host) and rb_port
# MODE (the host port published in test 4).
#
# Bounded: every wait has a limit, ab and iperf3 run under timeout; about 5 minutes with
# a cached rootfs (the first run of a suite builds its rootfs, about 1-2 minutes more).
# RB_OUT=DIR keeps the raw figures (rb-raw.txt) and the table (rb-table.md) there.
set -euo pipefail
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

# A rootfs of its own (its own cache entry): Debian's rootless pieces and iperf3 inside;
# iperf3 (server) and ab (client) in the upstream namespace, which uses the host's files.
LC_PACKAGES+=(rootlesskit slirp4netns uidmap passt iperf3)
LC_HOST_PACKAGES+=(iperf3 apache2-utils)

RB_RUNS=${RB_RUNS:-5}
RB_REPS=${RB_REPS:-3}
RB_SECS=${RB_SECS:-5}
RB_REQS=${RB_REQS:-2000}
RB_IMAGE=dockyard-test/rb-bench:latest
RB_IPERF_PORT=5201

now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
raw() { printf '%s\n' "$*" >>"$RB_RAW"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# --- the instances (the part RB_HOOKS may replace) ---------------------------------------
rb_name() { case $1 in rootful) echo rbf ;; slirp) echo rbs ;; pasta) echo rbp ;; *) echo "rb$1" ;; esac; }
rb_sock() { echo "/var/lib/dockyard/$(rb_name "$1")/docker.sock"; }
rb_port() { case $1 in rootful) echo 8081 ;; slirp) echo 8082 ;; pasta) echo 8083 ;; *) echo 8089 ;; esac; }

# rb_setup MODE: the account (rootless), the directories, sub-ids.
rb_setup() {
    local n u sub
    n=$(rb_name "$1") u="$(rb_name "$1")_docker"
    case $1 in
        rootful) lc_exec install -d -m 0750 "/var/lib/dockyard/$n" "/var/lib/dockyard/$n/docker" ;;
        *)
            sub=$(( $(lc_exec sh -c 'wc -l </etc/subuid') * 65536 + 200000 ))
            # shellcheck disable=SC2016  # expanded by the inner sh
            lc_exec sh -ec 'n=$1 u=$2 sub=$3
                getent passwd "$u" >/dev/null || useradd --system --user-group --no-create-home \
                    --home-dir "/var/lib/dockyard/$n" --shell /usr/sbin/nologin "$u"
                grep -q "^$u:" /etc/subuid || echo "$u:$sub:65536" >>/etc/subuid
                grep -q "^$u:" /etc/subgid || echo "$u:$sub:65536" >>/etc/subgid
                install -d -o "$u" -g "$u" -m 0750 "/var/lib/dockyard/$n"
                install -d -o "$u" -g "$u" -m 0710 "/var/lib/dockyard/$n/docker"
                install -d -o "$u" -g "$u" -m 0700 "/run/$u"' sh "$n" "$u" "$sub"
            ;;
    esac
}

# The flags Dockyard's units will carry, rootful and rootless alike.
rb_common_props() {
    printf '%s\n' -p Type=notify -p NotifyAccess=all -p Delegate=yes -p KillMode=mixed \
        -p TimeoutStartSec=90 -p "Environment=PATH=$LC_DOCKER_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

start_rootful() {
    local n=$1 props
    mapfile -t props < <(rb_common_props)
    lc_exec systemd-run --quiet --unit="${n}_docker" "${props[@]}" \
        "$LC_DOCKER_BIN/dockerd" --data-root "/var/lib/dockyard/$n/docker" --exec-root "/run/${n}_docker" \
        --pidfile "/run/${n}_docker/dockerd.pid" --host "unix:///var/lib/dockyard/$n/docker.sock" --group root \
        --bip 172.24.5.1/24 --default-address-pool base=172.25.0.0/16,size=24
}

# start_rootless NAME NET PORT_DRIVER
start_rootless() {
    local n=$1 net=$2 pd=$3 u="$1_docker" props netflags
    mapfile -t props < <(rb_common_props)
    case $net in
        slirp4netns) netflags=(--net=slirp4netns --mtu=65520 --slirp4netns-sandbox=auto --slirp4netns-seccomp=auto --disable-host-loopback) ;;
        pasta) netflags=(--net=pasta --mtu=65520 --disable-host-loopback) ;;
    esac
    lc_exec install -d -o "$u" -g "$u" -m 0700 "/run/$u"
    # shellcheck disable=SC2016  # $@ is the child shell's
    lc_exec systemd-run --quiet --unit="$u" "${props[@]}" \
        -p "Environment=XDG_RUNTIME_DIR=/run/$u" -p "Environment=HOME=/var/lib/dockyard/$n" \
        setpriv --reuid="$u" --regid="$u" --init-groups \
        rootlesskit --state-dir="/run/$u/rootlesskit" "${netflags[@]}" --port-driver="$pd" \
        --copy-up=/etc --copy-up=/run --propagation=rslave \
        sh -c 'rm -f /run/docker /run/containerd /run/xtables.lock; exec dockerd "$@"' sh \
        --data-root "/var/lib/dockyard/$n/docker" --exec-root "/run/$u/dockerd" --pidfile "/run/$u/dockerd.pid" \
        --host "unix:///var/lib/dockyard/$n/docker.sock" --group root \
        --bip 172.22.5.1/24 --default-address-pool base=172.23.0.0/16,size=24 \
        --exec-opt native.cgroupdriver=cgroupfs
}

rb_start() {
    case $1 in
        rootful) start_rootful "$(rb_name rootful)" ;;
        slirp) start_rootless "$(rb_name slirp)" slirp4netns builtin ;;
        pasta) start_rootless "$(rb_name pasta)" pasta implicit ;;
        *) lc_die "no start for mode $1"; return 1 ;;
    esac
}

rb_stop() {
    local u
    u="$(rb_name "$1")_docker"
    lc_exec timeout 60 systemctl stop "$u" 2>/dev/null || true
    lc_exec systemctl reset-failed "$u" 2>/dev/null || true
}

rb_unit() { echo "$(rb_name "$1")_docker.service"; }

if [[ -n ${RB_HOOKS:-} ]]; then
    # shellcheck disable=SC1090
    source "$RB_HOOKS"
fi

# --- harness-side helpers -----------------------------------------------------------------
host_path() { echo "/proc/$(lc_leader_pid)/root$1"; }
dk() { local m=$1; shift; lc_docker "$(rb_sock "$m")" "$@"; }
up() { ip netns exec "$LC_NETNS" "$@"; }

# The poller (density_ping.py at) runs before the clock starts: its start is not timed.
poll_start() {
    local out="$LC_WORK/state/rb-ping.out"
    rm -f "$out"
    python3 "$HERE/density_ping.py" at 90 "$1" >"$out" &
    RB_POLLER=$!
    until [[ -s $out ]]; do
        kill -0 "$RB_POLLER" 2>/dev/null || return 1
        sleep 0.01
    done
}

# start_once MODE: prints "API_MS READY_MS", then stops the instance.
start_once() {
    local m=$1 t0 ready api
    poll_start "$(host_path "$(rb_sock "$m")")" || { lc_die "the poller did not start"; return 1; }
    t0=$(now)
    rb_start "$m" || { kill "$RB_POLLER" 2>/dev/null; wait "$RB_POLLER" 2>/dev/null; lc_die "$m did not start: $(lc_exec journalctl -u "$(rb_unit "$m")" -n 5 --no-pager 2>&1)"; return 1; }
    ready=$(ms_since "$t0")
    wait "$RB_POLLER" || { lc_die "$m did not answer /_ping"; return 1; }
    api=$(awk -v t0="$t0" -v ok="$(tail -n 1 "$LC_WORK/state/rb-ping.out")" 'BEGIN { printf "%.1f", (ok - t0) * 1000 }')
    rb_stop "$m"
    echo "$api $ready"
}

bench_start() {
    local i m a r
    for m in "${MODES[@]}"; do start_once "$m" >/dev/null || return 1; done   # warm-up
    for ((i = 1; i <= RB_RUNS; i++)); do
        for m in "${MODES[@]}"; do
            read -r a r < <(start_once "$m") && [[ -n ${r:-} ]] || return 1
            raw "start $m api_ms $a ready_ms $r"
        done
    done
}

# The image: busybox (lc_image's tarball) plus iperf3 and the libraries it loads, from
# the booted host's own iperf3 package.
make_image_tar() {
    local bb
    bb=$(lc__busybox_tar) || return 1
    lc_copy_in "$bb" /var/tmp/rb-busybox.tar || return 1
    # shellcheck disable=SC2016  # expanded by the inner sh
    lc_exec sh -ec 't=$(mktemp -d); trap "rm -rf $t" EXIT
        tar -C "$t" -xf /var/tmp/rb-busybox.tar
        b=$(command -v iperf3); mkdir -p "$t/usr/bin"; cp -L "$b" "$t/usr/bin/iperf3"
        for l in $(ldd "$b" | grep -o "/[^ ]*") /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
            [ -e "$l" ] || continue; mkdir -p "$t$(dirname "$l")"; cp -L "$l" "$t$l"; done
        mkdir -p "$t/www"; head -c 1024 /dev/zero | tr "\0" x >"$t/www/index.html"
        tar --numeric-owner --owner=0 --group=0 -C "$t" -cf /var/tmp/rb-bench.tar .'
}

ensure_image() {
    dk "$1" image inspect "$RB_IMAGE" >/dev/null 2>&1 && return 0
    dk "$1" import --change 'CMD ["/bin/sh"]' /var/tmp/rb-bench.tar "$RB_IMAGE" >/dev/null
}

# web_up MODE: httpd published on rb_port, answering from the upstream namespace.
web_up() {
    local m=$1 port i
    port=$(rb_port "$m")
    dk "$m" rm -f rb-web >/dev/null 2>&1 || true
    dk "$m" run -d --name rb-web -p "$port:80" "$RB_IMAGE" httpd -f -p 80 -h /www >/dev/null || return 1
    # pasta's implicit driver finds new listeners by scanning: wait for the first answer.
    for ((i = 0; i < 100; i++)); do
        up /usr/bin/python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2).read()' \
            "http://$LC_CT_ADDR:$port/" 2>/dev/null && return 0
        sleep 0.1
    done
    lc_die "$m: published port $port does not answer from upstream"
}

iperf() { # MODE [-R] -> Mbit/s received, retransmits
    local m=$1; shift
    dk "$m" run --rm "$RB_IMAGE" timeout $((RB_SECS + 20)) iperf3 -c "$LC_UP_ADDR" -p "$RB_IPERF_PORT" -t "$RB_SECS" -J "$@" 2>/dev/null |
        python3 -c 'import json, sys
d = json.load(sys.stdin)
print("%.1f %s" % (d["end"]["sum_received"]["bits_per_second"] / 1e6, d["end"]["sum_sent"].get("retransmits", "-")))'
}

ping_ms() {
    dk "$1" run --rm "$RB_IMAGE" ping -q -c 20 -i 0.2 -W 2 "$LC_UP_ADDR" 2>/dev/null |
        sed -n 's#.*min/avg/max = [0-9.]*/\([0-9.]*\)/.*#\1#p'
}

ab_run() { # MODE CONCURRENCY REQUESTS -> "rps ms_per_request"
    up timeout 60 ab -q -s 5 -c "$2" -n "$3" "http://$LC_CT_ADDR:$(rb_port "$1")/" 2>/dev/null |
        awk '/^Requests per second:/ { r = $4 } /^Time per request:.*\(mean\)$/ { t = $4 } END { if (r == "") exit 1; print r, t }'
}

pss_of_unit() {
    # shellcheck disable=SC2016  # expanded by the inner sh
    lc_exec sh -c 'cg=$(systemctl show -p ControlGroup --value "$1")
        for p in $(cat "/sys/fs/cgroup$cg/cgroup.procs"); do awk "/^Pss:/ { print \$2 }" "/proc/$p/smaps_rollup" 2>/dev/null; done' sh "$1" |
        awk '{ s += $1 } END { printf "%.1f", s / 1024 }'
}

bench_data() {
    local m r v w
    for m in "${MODES[@]}"; do
        rb_start "$m" || { lc_die "$m did not start"; return 1; }
        lc__wait_for 30 test -S "$(host_path "$(rb_sock "$m")")"
    done
    sleep 5
    for m in "${MODES[@]}"; do raw "pss $m mib $(pss_of_unit "$(rb_unit "$m")")"; done
    for m in "${MODES[@]}"; do ensure_image "$m" && web_up "$m" || return 1; done
    for ((r = 1; r <= RB_REPS; r++)); do
        for m in "${MODES[@]}"; do
            v=$(iperf "$m") || v="0 -"
            raw "up $m mbit ${v% *} retr ${v#* }"
            v=$(iperf "$m" -R) || v="0 -"
            raw "down $m mbit ${v% *} retr ${v#* }"
            v=$(ping_ms "$m") && [[ -n $v ]] || v=nan
            raw "ping $m ms $v"
            w=$(ab_run "$m" 8 "$RB_REQS") || w="0 0"
            raw "ab8 $m rps ${w% *} ms ${w#* }"
            w=$(ab_run "$m" 1 $((RB_REQS / 4))) || w="0 0"
            raw "ab1 $m rps ${w% *} ms ${w#* }"
        done
    done
    for m in "${MODES[@]}"; do dk "$m" rm -f rb-web >/dev/null 2>&1 || true; rb_stop "$m"; done
}

# med KIND MODE FIELD: median of FIELD (the word after its name) over the raw lines.
med() {
    awk -v k="$1" -v m="$2" -v f="$3" '$1 == k && $2 == m { for (i = 3; i < NF; i++) if ($i == f) print $(i + 1) }' "$RB_RAW" |
        grep -v -e nan -e '^-$' | median
}

table() {
    local m row label kind field better
    local -a rows=(
        "start: systemd-run until /_ping answers (ms)|start|api_ms|low"
        "start: systemd-run returns, READY=1 (ms)|start|ready_ms|low"
        "container -> upstream TCP, iperf3 upload (Mbit/s)|up|mbit|high"
        "upstream -> container TCP, iperf3 -R download (Mbit/s)|down|mbit|high"
        "iperf3 upload retransmits|up|retr|none"
        "container -> upstream ping RTT (ms)|ping|ms|low"
        "published port, ab -c 8 (requests/s)|ab8|rps|high"
        "published port, ab -c 1 (ms per request)|ab1|ms|low"
        "idle PSS of the unit's processes (MiB)|pss|mib|low"
    )
    local head="| metric (median) |" sep="|---|"
    for m in "${MODES[@]}"; do
        head+=" $m |"; sep+="---|"
        [[ $m == rootful ]] || { head+=" $m / rootful |"; sep+="---|"; }
    done
    echo "$head"
    echo "$sep"
    for row in "${rows[@]}"; do
        IFS='|' read -r label kind field better <<<"$row"
        local line="| $label |" base v
        base=$(med "$kind" rootful "$field")
        for m in "${MODES[@]}"; do
            v=$(med "$kind" "$m" "$field")
            line+=" $v |"
            if [[ $m != rootful && $better == none ]]; then
                line+=" - |"
            elif [[ $m != rootful ]]; then
                line+=" $(awk -v a="$v" -v b="$base" 'BEGIN { if (b + 0 == 0 || a == "n/a") print "-"; else printf "%.2fx", a / b }') |"
            fi
        done
        echo "$line"
    done
}

# --- run -----------------------------------------------------------------------------------
lc_init
lc_rootfs
lc_boot rlbench
RB_RAW="$LC_WORK/logs/rb-raw.txt"
: >"$RB_RAW"

if [[ -n ${RB_MODES:-} ]]; then
    read -r -a MODES <<<"$RB_MODES"
else
    MODES=(rootful slirp)
    lc_exec rootlesskit --help 2>&1 | grep -q -- 'pasta' && MODES+=(pasta)
fi
[[ ${MODES[0]} == rootful ]] || MODES=(rootful "${MODES[@]/rootful/}")
read -r -a MODES <<<"${MODES[*]}"

# What a real host's udev does for /dev/net/tun (slirp4netns and pasta open it as the
# user); ping sockets for the rootless modes' ICMP (test 3); nothing else is changed.
lc_exec sh -c '[ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }; chmod 0666 /dev/net/tun'
lc_exec sysctl -q -w net.ipv4.ping_group_range="0 2147483647"
for m in "${MODES[@]}"; do rb_setup "$m"; done
make_image_tar

# iperf3 server in the upstream namespace (lc_cleanup ends everything left in it).
setsid ip netns exec "$LC_NETNS" timeout 1800 iperf3 -s -B "$LC_UP_ADDR" -p "$RB_IPERF_PORT" \
    </dev/null >"$LC_WORK/logs/iperf3-server.log" 2>&1 &
disown   # lc_cleanup ends it with the namespace; no job notice at exit
lc__wait_for 10 sh -c "ip netns exec '$LC_NETNS' ss -Htln | grep -qF '$LC_UP_ADDR:$RB_IPERF_PORT'" ||
    lc_die "iperf3 server did not listen"

{
    echo "# rootless benchmark: LC_SUITE=$LC_SUITE, Docker $LC_DOCKER_VERSION, $(lc_exec rootlesskit --version 2>&1 | head -n1),"
    echo "# $(lc_exec dpkg-query -W slirp4netns passt | awk '{ printf "%s %s, ", $1, $2 }')$(nproc) cores, modes: ${MODES[*]}"
} | tee -a "$RB_RAW"
T0=$(now)
bench_start || lc_die "the start benchmark failed"
bench_data || lc_die "the data-path benchmark failed"
echo "# runs: $RB_RUNS starts, $RB_REPS rounds, ${RB_SECS}s iperf3, $RB_REQS requests; took $(ms_since "$T0" | awk '{ printf "%.0f", $1 / 1000 }')s, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RB_RAW"
echo
table | tee "$LC_WORK/logs/rb-table.md"
if [[ -n ${RB_OUT:-} ]]; then
    mkdir -p "$RB_OUT"
    cp "$RB_RAW" "$LC_WORK/logs/rb-table.md" "$RB_OUT/"
fi
exit 0
