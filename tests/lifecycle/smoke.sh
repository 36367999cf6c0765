#!/usr/bin/env bash
# Smoke test of the lifecycle infrastructure (lib.sh), with a hand-written dockerd unit
# shaped like the ones Dockyard will generate (design-notes §2, §3), not the generator.
#
#   bash tests/lifecycle/smoke.sh        (as root, from anywhere)
#
# Env: LC_VERBOSE=1 prints every test's output; LC_KEEP_WORK=1 keeps the working copy.
set -euo pipefail
LC_SMOKE_T0=$(date +%s.%N)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

SOCK=/dt/docker.sock
BRIDGE=dt_docker0
CIDR=172.22.147.0/24
GW=172.22.147.1
POOL=172.23.0.0/16

lc_init
lc_rootfs
lc_boot smoke

# --- the hand-written instance --------------------------------------------------------
# Bridge, forwarding and the seven rules of design-notes §3, idempotent (-C before -A),
# waiting for the xtables lock (-w), each rule commented with its instance.
instance_network() {
    lc_exec sh -eu -s "$BRIDGE" "$GW" "$CIDR" "$POOL" <<'SH'
br=$1 gw=$2 cidr=$3 pool=$4
ip link show "$br" >/dev/null 2>&1 || ip link add "$br" type bridge
ip addr replace "$gw/24" dev "$br"
ip link set "$br" up
sysctl -qw net.ipv4.ip_forward=1
rule() {  # rule TABLE CHAIN SPEC...
    t=$1 c=$2; shift 2
    iptables -w 10 -t "$t" -C "$c" "$@" -m comment --comment dockyard:dt 2>/dev/null ||
        iptables -w 10 -t "$t" -A "$c" "$@" -m comment --comment dockyard:dt
}
rule filter FORWARD -i "$br" -o "$br" -j ACCEPT
rule filter FORWARD -i "$br" ! -o "$br" -j ACCEPT
rule filter FORWARD -o "$br" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
rule nat POSTROUTING -s "$cidr" ! -o "$br" -j MASQUERADE
rule filter FORWARD -s "$pool" -j ACCEPT
rule filter FORWARD -d "$pool" -j ACCEPT
rule nat POSTROUTING -s "$pool" ! -d "$pool" -j MASQUERADE
SH
}

instance_unit() {
    local bin=$LC_DOCKER_BIN
    lc_exec sh -c 'cat >/etc/systemd/system/dt_docker.service' <<UNIT
[Unit]
Description=Docker daemon of instance dt (hand-written smoke-test unit)
After=network-online.target nss-lookup.target time-set.target
Wants=network-online.target

[Service]
Type=notify
Environment=PATH=$bin:/usr/sbin:/usr/bin:/sbin:/bin
ExecStartPre=/bin/mkdir -p /dt /run/dt_docker
ExecStartPre=/bin/sh -c 'echo {} >/run/dt_docker/daemon.json'
ExecStart=$bin/dockerd --data-root /dt/docker --exec-root /run/dt_docker --pidfile /run/dt_docker/dockerd.pid -H unix://$SOCK --bridge $BRIDGE --fixed-cidr $CIDR --default-address-pool base=$POOL,size=24 --iptables=false --config-file /run/dt_docker/daemon.json --containerd-namespace dt
Delegate=yes
KillMode=mixed
TimeoutStartSec=90
LimitNOFILE=infinity
LimitNPROC=infinity
TasksMax=infinity
UNIT
    lc_exec systemctl daemon-reload
}

# Run a command in a throw-away busybox container, bounded.
dt_run() { lc_exec timeout 60 env DOCKER_HOST="unix://$SOCK" "$LC_DOCKER_BIN/docker" run --rm "$@"; }

# --- tests ----------------------------------------------------------------------------
t_instance_starts() {
    instance_network
    instance_unit
    lc_exec timeout 120 systemctl start dt_docker.service
    [[ $(lc_exec systemctl is-active dt_docker.service) == active ]]
    lc_exec test -S "$SOCK"
    lc_exec stat -c '%a %U:%G' "$SOCK"
    lc_docker "$SOCK" version --format '{{.Server.Version}} {{.Server.Os}}'
    lc_docker "$SOCK" info --format 'driver={{.Driver}} cgroup={{.CgroupDriver}} v{{.CgroupVersion}}'
    # The distro daemons stay masked and off.
    for u in docker.service docker.socket containerd.service; do
        [[ $(lc_exec systemctl is-enabled "$u" 2>&1 || true) == masked ]] || lc_fail "$u not masked"
        if lc_exec systemctl -q is-active "$u"; then lc_fail "$u is active"; fi
    done
    lc_exec iptables-save | grep -c 'dockyard:dt' | grep -qx 7
}

t_image_import() {
    lc_image "$SOCK"
    lc_docker "$SOCK" image inspect --format '{{.Id}}' "$LC_IMAGE"
}

t_run_echo() {
    local out
    out=$(dt_run "$LC_IMAGE" echo hi)
    [[ $out == hi ]] || lc_fail "expected 'hi', got '$out'"
}

t_masquerade() {
    local before after out
    before=$(lc_upstream_peers | wc -l)
    out=$(dt_run "$LC_IMAGE" sh -c "ip -4 -o addr show eth0; nc -w 5 $LC_UP_ADDR $LC_UPSTREAM_PORT </dev/null") ||
        lc_fail "container could not connect: $out"
    echo "$out"
    grep -q 'hello from upstream' <<<"$out" || lc_fail "no greeting from upstream: $out"
    grep -q ' inet 172\.22\.147\.' <<<"$out" || lc_fail "container not on $CIDR: $out"
    after=$(lc_upstream_peers | wc -l)
    ((after == before + 1)) || lc_fail "expected 1 new upstream connection, got $((after - before))"
    lc_upstream_peers | tail -n 1
    [[ $(lc_upstream_peers | tail -n 1 | awk '{print $2}') == "$LC_CT_ADDR" ]] ||
        lc_fail "peer is not $LC_CT_ADDR (not masqueraded?)"
}

t_dns() {
    local out
    # Daemon default: the host's /etc/resolv.conf (nameserver 192.0.2.1, not loopback) is
    # copied into containers on the default bridge.
    out=$(dt_run "$LC_IMAGE" sh -c 'cat /etc/resolv.conf; nslookup upstream.test') ||
        lc_fail "nslookup failed: $out"
    echo "$out"
    grep -q "^nameserver $LC_UP_ADDR" <<<"$out" || lc_fail "container resolv.conf does not point at $LC_UP_ADDR"
    grep -A3 'Name:[[:space:]]*upstream.test' <<<"$out" | grep -q "Address:[[:space:]]*$LC_UP_ADDR" ||
        lc_fail "upstream.test did not resolve to $LC_UP_ADDR"
    # Explicit --dns works as well.
    out=$(dt_run --dns "$LC_UP_ADDR" "$LC_IMAGE" nslookup upstream.test) || lc_fail "--dns nslookup failed: $out"
    grep -q "Address:[[:space:]]*$LC_UP_ADDR" <<<"$out" || lc_fail "--dns: no answer: $out"
    # Nothing else resolves (no upstream servers, no hosts file).
    if dt_run "$LC_IMAGE" nslookup example.org; then lc_fail "example.org resolved"; fi
    lc_upstream_dns_log | grep -q "query\[A\] upstream.test from $LC_CT_ADDR" ||
        lc_fail "dnsmasq log shows no query from $LC_CT_ADDR"
}

# A user-defined network is allocated from the pool and NATed by the pool-scoped rules.
t_pool_network() {
    local subnet out
    lc_docker "$SOCK" network create dtnet >/dev/null
    subnet=$(lc_docker "$SOCK" network inspect --format '{{(index .IPAM.Config 0).Subnet}}' dtnet)
    echo "dtnet subnet: $subnet"
    [[ $subnet == 172.23.* ]] || lc_fail "dtnet subnet $subnet not from pool $POOL"
    out=$(dt_run --network dtnet "$LC_IMAGE" sh -c "nc -w 5 $LC_UP_ADDR $LC_UPSTREAM_PORT </dev/null; nslookup upstream.test") ||
        lc_fail "dtnet container: $out"
    echo "$out"
    grep -q 'hello from upstream' <<<"$out" || lc_fail "no greeting on dtnet"
    # Embedded DNS (127.0.0.11) forwards to the daemon's resolv.conf servers.
    grep -q "Address:[[:space:]]*$LC_UP_ADDR" <<<"$out" || lc_fail "no DNS on dtnet"
    [[ $(lc_upstream_peers | tail -n 1 | awk '{print $2}') == "$LC_CT_ADDR" ]] || lc_fail "dtnet not masqueraded"
    lc_docker "$SOCK" network rm dtnet >/dev/null
}

# Containers under a per-instance slice (what the real units will want).
t_cgroup_parent() {
    lc_exec sh -c 'mkdir -p /etc/systemd/system/dt_docker.service.d && cat >/etc/systemd/system/dt_docker.service.d/slice.conf' <<UNIT
[Service]
ExecStart=
ExecStart=$LC_DOCKER_BIN/dockerd --data-root /dt/docker --exec-root /run/dt_docker --pidfile /run/dt_docker/dockerd.pid -H unix://$SOCK --bridge $BRIDGE --fixed-cidr $CIDR --default-address-pool base=$POOL,size=24 --iptables=false --config-file /run/dt_docker/daemon.json --containerd-namespace dt --cgroup-parent dockyard-dt.slice
UNIT
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl restart dt_docker.service
    local out id pid
    out=$(dt_run "$LC_IMAGE" echo hi)
    [[ $out == hi ]] || lc_fail "expected 'hi' under --cgroup-parent, got '$out'"
    id=$(lc_docker "$SOCK" run -d "$LC_IMAGE" sleep 30)
    pid=$(lc_docker "$SOCK" inspect --format '{{.State.Pid}}' "$id")
    echo "container cgroup: $(lc_exec cat "/proc/$pid/cgroup")"
    lc_exec cat "/proc/$pid/cgroup" | grep -q 'dockyard-dt.slice' || lc_fail "container not under dockyard-dt.slice"
    lc_exec systemctl is-active dockyard-dt.slice
    lc_docker "$SOCK" rm -f "$id" >/dev/null
    # Leave the instance as it was.
    lc_exec rm -rf /etc/systemd/system/dt_docker.service.d
    lc_exec systemctl daemon-reload
}

t_stop() {
    lc_exec timeout 60 systemctl stop dt_docker.service
    # ("! cmd" would not trip errexit, hence the explicit ifs.)
    if lc_exec systemctl -q is-active dt_docker.service; then lc_fail "still active"; fi
    if lc_exec pgrep -a dockerd; then lc_fail "dockerd left running"; fi
    if lc_exec pgrep -a containerd; then lc_fail "containerd left running"; fi
}

t_reboot() {
    lc_reboot
    local st
    st=$(lc_exec systemctl is-system-running || true)
    [[ $st == running || $st == degraded ]] || lc_fail "after reboot: $st"
    echo "reboot took ${LC_REBOOT_SECONDS}s, state $st"
    # Uplink re-created and configured by the in-container oneshot.
    lc_exec ip -4 -o addr show | grep -q " $LC_CT_ADDR/" || lc_fail "uplink address missing after reboot"
    lc_exec getent hosts upstream.test | grep -q "^$LC_UP_ADDR " || lc_fail "no DNS after reboot"
    # Hostname and masks survive.
    [[ $(lc_exec hostname) == dockyard-test ]]
    [[ $(lc_exec systemctl is-enabled docker.service 2>&1 || true) == masked ]]
}

lc_test "instance dt_docker starts (Type=notify, bridge, 7 rules)" t_instance_starts
lc_test "import busybox image" t_image_import
lc_test "docker run echo hi" t_run_echo
lc_test "outbound traffic arrives masqueraded as $LC_CT_ADDR" t_masquerade
lc_test "DNS upstream.test -> $LC_UP_ADDR (and nothing else)" t_dns
lc_test "user-defined network from the pool, NATed, embedded DNS" t_pool_network
lc_test "containers run with --cgroup-parent dockyard-dt.slice" t_cgroup_parent
lc_test "instance stops cleanly" t_stop
lc_test "reboot: systemd running again" t_reboot

# Teardown now (the EXIT trap would do it too) and prove it leaves nothing behind.
R_NETNS=$LC_NETNS R_VETH=$LC_VETH_CT R_WORK=$LC_WORK
R_PIDS="$(lc__state_get nspawn.pid || true) $(lc_leader_pid || true) $(lc__state_get dnsmasq.pid || true) $(lc__state_get tcp.pid || true)"
R_UDEV=$(lc__state_get udev.idx || true)
R_REBOOT=$(lc__state_get reboot.seconds || echo '?')
LC_TOTAL_SECONDS=$(lc__elapsed "$LC_SMOKE_T0")
lc_cleanup
t_no_residue() {
    if ip netns list | grep -qw "$R_NETNS"; then lc_fail "netns $R_NETNS left"; fi
    if ip link show "$R_VETH" >/dev/null 2>&1; then lc_fail "veth $R_VETH left"; fi
    if [[ -e $R_WORK ]]; then lc_fail "work dir $R_WORK left"; fi
    if grep -qF "$R_WORK" /proc/self/mountinfo; then lc_fail "mounts below $R_WORK left"; fi
    if [[ -e /run/udev/data/n$R_UDEV ]]; then lc_fail "udev marker n$R_UDEV left"; fi
    local p
    for p in $R_PIDS; do
        if lc__pid_alive "$p"; then lc_fail "process $p left: $(tr '\0' ' ' <"/proc/$p/cmdline")"; fi
    done
}
lc_test "teardown leaves no netns, veth, mounts, processes or files" t_no_residue

lc_log "timings: rootfs ${LC_ROOTFS_SECONDS}s (built=$LC_ROOTFS_BUILT), working copy ${LC_COPY_SECONDS}s," \
    "boot ${LC_BOOT_SECONDS}s, reboot ${R_REBOOT}s," \
    "total ${LC_TOTAL_SECONDS}s before teardown, $(lc__elapsed "$LC_SMOKE_T0")s with it"
lc_summary
