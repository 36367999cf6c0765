#!/usr/bin/env bash
# Issue 9's lifecycle suite: instances are isolated from each other, from the outside and
# from the host's own Docker, with the host's docker.service and containerd.service
# running beside them in the booted host. Same harness and install as suite.sh (the .deb
# of this checkout with apt-get, Docker through `dockyard install`; README.md here).
#
#   sudo bash tests/lifecycle/isolation_suite.sh      (or: sudo make lifecycle-isolation)
#
# What is checked, with real dockerd, containerd and the firewall backend LC_FIREWALL
# (iptables or nftables; lib.sh), under the FORWARD policy DROP a host Docker sets:
#   - each instance runs its own containerd (NAME_containerd.service); the host's
#     containerd sees none of them, and stopping it stops none of their containers;
#   - restarting, kill -9 and destroying instances leave the host's docker0 and its
#     container alone; restarting the host's Docker leaves the instances' rules alone;
#   - default deny: a container of one instance cannot open connections to another's
#     networks (default bridge, a user-defined network from its pool) nor to its bridge
#     address, and nothing upstream can reach an unpublished container port; published
#     ports and replies work; [Network] AllowFrom= (an instance name, a CIDR) opens it;
#   - the conf is the truth for the networks (BridgeCIDR=/PoolBase= changed on a stopped
#     instance); flushing FORWARD/INPUT (nftables: also the shared table's chains) is
#     repaired by one instance's restart;
#   - the host's backend switched with instances running: each keeps its rules until it
#     restarts, then has the new backend's and nothing of the old, isolated as before;
#   - dockyard-network up and down killed with SIGKILL at random points: the next start
#     and stop leave exactly the running instances' rules (nftables: the shared sets);
#   - status/verify/destroy, and nothing of Dockyard left in the firewall at the end.
# Env: LC_FIREWALL=iptables|nftables (default iptables); LC_VERBOSE=1 prints every
# test's output; LC_KEEP_WORK=1 keeps the working copy; LC_DEB=FILE installs that .deb
# instead of building one.
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"

# Instance networks: inside 172.16.0.0/12, none overlapping, and clear of the host
# Docker's docker0 (172.17.0.0/16; no user networks are created on the host Docker, so
# its default pools 172.18-31 stay unused there).
declare -A BRIDGE=([ia]=172.20.21.1/24 [ib]=172.20.22.1/24 [ic]=172.20.23.1/24 [iz]=172.20.24.1/24
    [iq]=172.20.25.1/24 [ik]=172.20.26.1/24)
declare -A POOL=([ia]=172.24.0.0/16 [ib]=172.25.0.0/16 [ic]=172.26.0.0/16 [iz]=172.27.0.0/16
    [iq]=172.29.0.0/16 [ik]=172.30.0.0/16)
# The backend test 9b switches the host to (and back from).
case $LC_FIREWALL in iptables) OTHER_FIREWALL=nftables ;; *) OTHER_FIREWALL=iptables ;; esac
# ic's networks after test 7 changes its conf.
IC_NEW_BRIDGE=172.21.23.1/24
IC_NEW_POOL=172.28.0.0/16
INSTANCES=(ia ib ic iz)
# Each instance's listener on its bridge (gateway) address, in the host's network
# namespace, needs a port of its own.
declare -A GWPORT=([ia]=8091 [ib]=8092 [ic]=8093)
PUBLISHED_PORT=8088
HOST_SOCK=/run/docker.sock
HOST_CONTAINERD=/run/containerd/containerd.sock
# The host Docker's docker0 and container as test 3 found them ("ifindex mac addr" and
# "pid ip"), compared by the later tests; a file in $LC_WORK, set once that exists.
HOST_REF=

# --- helpers -------------------------------------------------------------------------
# hd ARGS...: the docker CLI against the host's own Docker (docker.service), bounded.
hd() { lc_exec timeout 120 env DOCKER_HOST="unix://$HOST_SOCK" "$LC_DOCKER_BIN/docker" "$@"; }
# ctr_ns SOCKET: the containerd namespaces at SOCKET, one per line.
ctr_ns() { lc_exec timeout 30 "$LC_DOCKER_BIN/ctr" -a "$1" namespaces ls -q; }
# conf_get NAME KEY: KEY's value in NAME's conf (the last one), so tests that run after
# test 7 changed ic's conf see its current networks.
conf_get() { lc_exec sed -n "s/^$2=//p" "$CONF_DIR/$1.conf" | tail -n 1; }
gateway() { local c; c=$(conf_get "$1" BridgeCIDR); echo "${c%/*}"; }
# cidr_net CIDR: the network of an interface address (172.20.21.1/24 -> 172.20.21.0/24).
cidr_net() { python3 -c 'import ipaddress, sys; print(ipaddress.ip_interface(sys.argv[1]).network)' "$1"; }
# in_net ADDR NET: ADDR (an address or a network) lies inside NET.
in_net() {
    python3 -c 'import ipaddress, sys
a, n = ipaddress.ip_network(sys.argv[1], strict=False), ipaddress.ip_network(sys.argv[2])
sys.exit(0 if a.subnet_of(n) else 1)' "$1" "$2"
}
# cip NAME CONTAINER: the container's (only) IPv4 address.
cip() { dk "$1" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$2"; }

# upstream_ok LABEL CMD...: CMD (a container talking to the upstream TCP service) gets
# its greeting, and upstream logged exactly one new peer: the masqueraded 192.0.2.2.
# CMD's output is left in UPSTREAM_OUT.
UPSTREAM_OUT=
upstream_ok() {
    local label=$1 before after out peer; shift
    before=$(lc_upstream_peers | wc -l)
    out=$("$@" 2>&1) || lc_fail "$label: could not reach $LC_UP_ADDR:$LC_UPSTREAM_PORT: $out"
    UPSTREAM_OUT=$out
    echo "$label: $out"
    grep -q 'hello from upstream' <<<"$out" || lc_fail "$label: no greeting from upstream: $out"
    after=$(lc_upstream_peers | wc -l)
    ((after == before + 1)) || lc_fail "$label: expected 1 new upstream connection, got $((after - before))"
    peer=$(lc_upstream_peers | tail -n 1 | awk '{print $2}')
    [[ $peer == "$LC_CT_ADDR" ]] || lc_fail "$label: upstream saw $peer, not the masqueraded $LC_CT_ADDR"
}
# The command a container runs to greet upstream (and show its address).
UPSTREAM_CMD="ip -4 -o addr show eth0; nc -w 5 $LC_UP_ADDR $LC_UPSTREAM_PORT </dev/null"
# instance_upstream NAME: a container of NAME reaches upstream, from an address of NAME's
# current bridge network.
instance_upstream() {
    local n=$1 net addr
    upstream_ok "$n container" run_in "$n" sh -c "$UPSTREAM_CMD"
    addr=$(awk '/ inet / {print $4; exit}' <<<"$UPSTREAM_OUT")
    net=$(cidr_net "$(conf_get "$n" BridgeCIDR)")
    in_net "$addr" "$net" || lc_fail "$n: container address $addr is not in its bridge network $net"
}
host_upstream() { upstream_ok "host Docker container" hd run --rm "$LC_IMAGE" sh -c "$UPSTREAM_CMD"; }

# docker0_state: "ifindex mac ipv4-addresses" of the host Docker's bridge.
docker0_state() {
    local j a
    j=$(lc_exec ip -j link show docker0) || { echo "no docker0"; return 0; }
    a=$(lc_exec ip -4 -o addr show docker0 | awk '{print $4}' | sort | tr '\n' ' ')
    python3 -c 'import json, sys; l = json.loads(sys.argv[1])[0]; print(l["ifindex"], l["address"], sys.argv[2].strip())' "$j" "$a"
}
# hostc_state: "pid ip" of the host Docker's long-lived container.
hostc_state() { hd inspect -f '{{.State.Pid}} {{.NetworkSettings.IPAddress}}' hostc 2>&1 || true; }
# host_docker_problems WHEN: one line per difference from what test 3 recorded (docker0,
# the host container's pid and address), and if the host container cannot `docker exec`
# or reach upstream as 192.0.2.2; nothing when all is intact. Never fails itself, so a
# test can look after every step and report all of them.
host_docker_problems() {
    local when=$1 ref0 refc now0 nowc out before after peer
    [[ -s $HOST_REF ]] || { echo "$when: no record of the host Docker (test 3 did not get that far)"; return 0; }
    ref0=$(sed -n 1p "$HOST_REF") refc=$(sed -n 2p "$HOST_REF")
    now0=$(docker0_state) nowc=$(hostc_state)
    [[ $now0 == "$ref0" ]] || echo "$when: the host's docker0 changed (ifindex mac addr): was '$ref0', now '$now0'"
    [[ $nowc == "$refc" ]] || echo "$when: the host Docker's container changed (pid ip): was '$refc', now '$nowc'"
    out=$(hd exec hostc echo exec-ok 2>&1) || true
    [[ $out == exec-ok ]] || echo "$when: docker exec in the host container failed: $out"
    before=$(lc_upstream_peers | wc -l)
    out=$(hd exec hostc sh -c "$UPSTREAM_CMD" 2>&1) || true
    after=$(lc_upstream_peers | wc -l)
    peer=$(lc_upstream_peers | tail -n 1 | awk '{print $2}')
    if ! grep -q 'hello from upstream' <<<"$out" || ((after != before + 1)) || [[ $peer != "$LC_CT_ADDR" ]]; then
        echo "$when: the host container does not reach upstream as $LC_CT_ADDR (last peer '$peer', $((after - before)) new connection(s)): $out"
    fi
    return 0
}
# host_docker_intact WHEN: host_docker_problems finds nothing, or the test fails.
host_docker_intact() {
    local p
    p=$(host_docker_problems "$1")
    [[ -z $p ]] || lc_fail "$(tr '\n' ';' <<<"$p")"
    echo "$1: host Docker intact"
}

# --- listeners and probes ----------------------------------------------------------------
# A busybox httpd answering "listener NAME KIND" on BIND (a port, or addr:port).
httpd_script() { echo "mkdir -p /www && echo 'listener $1 $2' >/www/index.html && exec httpd -f -p $3 -h /www"; }
# listeners NAME: (re)create NAME's three listeners: lb-NAME on its default bridge,
# ln-NAME on the user-defined network NAME-net (allocated from its pool), lg-NAME in the
# host's network namespace on NAME's bridge address. Each answers from the host first.
# Long-lived containers run with --init: docker-init passes SIGTERM on (httpd or sleep as
# PID 1 ignore it), so stopping an instance does not wait 10 s for each of them.
listeners() {
    local n=$1 gw sub
    gw=$(gateway "$n")
    dk "$n" rm -f "lb-$n" "ln-$n" "lg-$n" >/dev/null 2>&1 || true
    # A network made before the pool changed (test 7 looks after that) is made again.
    sub=$(dk "$n" network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$n-net" 2>/dev/null) || sub=""
    if [[ -n $sub ]] && ! in_net "$sub" "$(conf_get "$n" PoolBase)"; then
        echo "$n: $n-net has $sub, outside the pool $(conf_get "$n" PoolBase): made again"
        dk "$n" network rm "$n-net" >/dev/null
        sub=""
    fi
    [[ -n $sub ]] || dk "$n" network create "$n-net" >/dev/null
    sub=$(dk "$n" network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$n-net")
    in_net "$sub" "$(conf_get "$n" PoolBase)" || lc_fail "$n: network $n-net got $sub, not from its pool $(conf_get "$n" PoolBase)"
    dk "$n" run -d --init --name "lb-$n" "$LC_IMAGE" sh -c "$(httpd_script "$n" bridge 80)" >/dev/null
    dk "$n" run -d --init --name "ln-$n" --network "$n-net" "$LC_IMAGE" sh -c "$(httpd_script "$n" net 80)" >/dev/null
    dk "$n" run -d --init --name "lg-$n" --network host "$LC_IMAGE" sh -c "$(httpd_script "$n" gw "$gw:${GWPORT[$n]}")" >/dev/null
    local k addr
    for k in bridge net gw; do
        addr=$(listener_addr "$n" "$k")
        lc__wait_for 10 host_gets "$addr" "listener $n $k" ||
            lc_fail "$n's $k listener does not answer at $addr even from the host: $(host_get "$addr" 2>&1)"
    done
    echo "$n listeners: bridge $(listener_addr "$n" bridge), net $(listener_addr "$n" net) ($sub), gw $(listener_addr "$n" gw)"
}
# listener_addr NAME KIND: IP:PORT of one of NAME's listeners; fails (and the test with
# it) if that listener has no address, so a missing one never passes for "blocked".
listener_addr() {
    local ip="" port=80
    case $2 in
        bridge) ip=$(cip "$1" "lb-$1" 2>/dev/null) || ip="" ;;
        net) ip=$(cip "$1" "ln-$1" 2>/dev/null) || ip="" ;;
        gw) ip=$(gateway "$1") port=${GWPORT[$1]} ;;
    esac
    [[ $ip =~ ^[0-9]+(\.[0-9]+){3}$ ]] || { lc_fail "$1's $2 listener has no address ('$ip'): is it running?"; return 1; }
    echo "$ip:$port"
}
# host_get IP:PORT: an HTTP GET from the booted host itself (bash, no client needed).
host_get() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    lc_exec timeout 3 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' _ "$1"
}
host_gets() { host_get "$1" 2>/dev/null | grep -qxF "$2"; }
# probe FROM IP:PORT...: one container on FROM's default bridge tries all targets at once
# (HTTP, 3 s each); one line per target: "IP:PORT ok REPLY" or "IP:PORT blocked (error)".
probe() {
    local from=$1; shift
    # shellcheck disable=SC2016  # expanded by the container's sh
    run_in "$from" sh -c 'for t in "$@"; do
        ( if r=$(timeout 3 wget -q -O - "http://$t/" 2>&1); then echo "$t ok $r"; else echo "$t blocked ($r)"; fi ) &
    done; wait' sh "$@"
}
# reach_check FROM NAME:KIND:WANT...: WANT is reach (the listener's own reply text must
# come back) or block (no reply within 3 s, or refused). All failures in one message.
reach_check() {
    local from=$1 spec n k want addr line out i=0; shift
    local -a addrs=() bad=()
    for spec in "$@"; do
        IFS=: read -r n k want <<<"$spec"
        addr=$(listener_addr "$n" "$k")
        addrs+=("$addr")
    done
    out=$(probe "$from" "${addrs[@]}") || lc_fail "the probe container on $from failed: $out"
    echo "from $from:"
    echo "$out"
    for spec in "$@"; do
        IFS=: read -r n k want <<<"$spec"
        addr=${addrs[i]} i=$((i + 1))
        line=$(awk -v a="$addr" '$1 == a' <<<"$out")
        case $want in
            reach) [[ $line == "$addr ok listener $n $k" ]] || bad+=("$from did not reach $n's $k listener at $addr (${line:-no line})") ;;
            block) [[ $line == "$addr blocked"* ]] || bad+=("$from reached $n's $k listener at $addr (${line:-no line})") ;;
            *) lc_fail "reach_check: bad spec $spec" ;;
        esac
    done
    ((${#bad[@]} == 0)) || lc_fail "$(printf '%s; ' "${bad[@]}")"
}
# upstream_get IP:PORT: an HTTP GET from the upstream namespace (host busybox), 3 s.
upstream_get() { ip netns exec "$LC_NETNS" timeout 3 busybox wget -q -O - "http://$1/" 2>&1; }

hd_exec_ok() { [[ $(hd exec hostc echo exec-ok 2>/dev/null) == exec-ok ]]; }
pub_ok() { [[ $(upstream_get "$LC_CT_ADDR:$PUBLISHED_PORT") == "listener ia published" ]]; }

restart_instance() {
    lc_exec timeout 120 systemctl restart "$1_docker.service" || lc_fail "systemctl restart $1_docker failed: $(unit_state "$1_docker.service")"
    wait_active "$1_docker.service" 60
}
# dockerd_restarted NAME OLDPID COUNT: systemd restarted NAME's dockerd after a kill.
dockerd_restarted() {
    local p
    p=$(main_pid "$1_docker.service")
    [[ $p -gt 0 && $p != "$2" ]] && active "$1_docker.service" &&
        [[ $(lc_exec systemctl show -p NRestarts --value "$1_docker.service") -gt $3 ]]
}

# --- tests -----------------------------------------------------------------------------
t01_instances() {
    local n pids=() rc=0
    for n in "${INSTANCES[@]}"; do write_conf "$n" 'Runtime=runc'; done
    lc_exec systemctl daemon-reload
    for n in "${INSTANCES[@]}"; do
        lc_exec timeout 180 systemctl start "${n}_docker.service" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    for n in "${INSTANCES[@]}"; do
        active "${n}_docker.service" || lc_fail "${n}_docker.service is not active: $(unit_state "${n}_docker.service")"
    done
    ((rc == 0)) || lc_fail "a systemctl start failed although the units are active"
    for n in "${INSTANCES[@]}"; do
        rules_exactly_once "$n"
        lc_image "$(sock "$n")"
    done
}

t02_beside_host_docker() {
    local u
    # The rootfs masks the distribution's Docker; this host uses it beside Dockyard.
    for u in docker.service docker.socket containerd.service; do
        lc_exec sh -c "[ \"\$(readlink /etc/systemd/system/$u)\" != /dev/null ] || rm -f /etc/systemd/system/$u"
    done
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start containerd.service docker.service ||
        lc_fail "the host's Docker does not start: $(unit_state docker.service; unit_state containerd.service)"
    lc_image "$HOST_SOCK"
    # A host Docker sets FORWARD to DROP when it has to turn forwarding on (20.10),
    # and always from 28.x; here the instances turned it on first. Set it as Docker
    # would, so every test from here on runs under a dropping FORWARD policy.
    lc_exec iptables -P FORWARD DROP
    lc_exec ip -4 -o addr show docker0
    lc_exec iptables -S FORWARD
    local n round
    for round in "before" "after"; do
        echo "--- $round the host Docker's restart"
        host_upstream
        for n in ia ib ic iz; do
            instance_upstream "$n"
            rules_exactly_once "$n"
        done
        [[ $round == after ]] && break
        lc_exec timeout 120 systemctl restart docker.service || lc_fail "systemctl restart docker failed: $(unit_state docker.service)"
        wait_active docker.service 60
    done
}

t03_host_docker_untouched() {
    active docker.service || lc_fail "the host's Docker is not running (test 2)"
    hd rm -f hostc >/dev/null 2>&1 || true
    hd run -d --name hostc "$LC_IMAGE" sleep 100000 >/dev/null
    { docker0_state; hostc_state; } >"$HOST_REF"
    echo "host Docker: docker0 $(sed -n 1p "$HOST_REF"); container (pid ip) $(sed -n 2p "$HOST_REF")"
    host_docker_intact "start"
    # Every step is done and looked after; all differences are reported at the end.
    local problems=()
    restart_instance ia
    problems+=("$(host_docker_problems "after the first restart of ia")")
    restart_instance ia
    problems+=("$(host_docker_problems "after the second restart of ia")")
    local pid restarts
    pid=$(main_pid ia_docker.service)
    restarts=$(lc_exec systemctl show -p NRestarts --value ia_docker.service)
    lc_exec kill -9 "$pid"
    lc__wait_for 60 dockerd_restarted ia "$pid" "$restarts" || lc_fail "systemd did not restart ia after kill -9: $(unit_state ia_docker.service)"
    problems+=("$(host_docker_problems "after kill -9 of ia's dockerd")")
    local out
    out=$(dy destroy iz --yes 2>&1) || lc_fail "destroy iz failed: $out"
    echo "$out"
    problems+=("$(host_docker_problems "after destroying iz")")
    out=$(printf '%s\n' "${problems[@]}" | grep . | tr '\n' ';' || true)
    [[ -z $out ]] || lc_fail "$out"
    no_rules iz
    for n in ia ib; do rules_exactly_once "$n"; done
}

t04_own_containerd() {
    local n ns cmd
    # Whatever happens here, the host's containerd and ic run again afterwards.
    trap 'lc_exec timeout 120 systemctl start containerd.service ic_docker.service >/dev/null 2>&1 || true' EXIT
    # A container on every instance, each (re)started since the host's containerd runs
    # (test 3 restarted ia, this restarts ib and ic): none of them is in the host's
    # containerd, which only gets a namespace once a container is made in it.
    local id pid out
    for n in ib ic; do restart_instance "$n"; done
    for n in ia ib ic; do dk "$n" rm -f "keep-$n" >/dev/null 2>&1 || true; done
    for n in ib ic; do dk "$n" run -d --init --name "keep-$n" "$LC_IMAGE" sleep 100000 >/dev/null; done
    id=$(dk ia run -d --init --name keep-ia "$LC_IMAGE" sleep 100000)
    pid=$(dk ia inspect -f '{{.State.Pid}}' "$id")
    ns=$(ctr_ns "$HOST_CONTAINERD") || lc_fail "ctr cannot talk to the host's containerd: $ns"
    echo "host containerd namespaces: $(tr '\n' ' ' <<<"$ns")"
    for n in ia ib ic iz; do
        if grep -qE "^$n(-plugins)?\$" <<<"$ns"; then lc_fail "the host's containerd has a namespace of instance $n: $(tr '\n' ' ' <<<"$ns")"; fi
    done
    # The host's containerd stops: an instance's container runs on, exec works.
    lc_exec timeout 120 systemctl stop containerd.service
    [[ $(dk ia inspect -f '{{.State.Running}} {{.State.Pid}}' "$id") == "true $pid" ]] ||
        lc_fail "ia's container stopped with the host's containerd: $(dk ia ps -a)"
    lc_exec kill -0 "$pid" || lc_fail "ia's container process $pid is gone with the host's containerd"
    out=$(dk ia exec keep-ia echo exec-ok 2>&1) || lc_fail "docker exec on ia fails with the host's containerd stopped: $out"
    lc_exec timeout 120 systemctl start containerd.service
    lc__wait_for 60 hd_exec_ok || lc_fail "the host's Docker does not exec again after its containerd came back"
    for n in ia ib ic; do dk "$n" rm -f "keep-$n" >/dev/null; done
    # An instance stops: the host Docker's container runs on.
    lc_exec timeout 120 systemctl stop ic_docker.service
    inactive ic_docker.service || lc_fail "ic did not stop: $(unit_state ic_docker.service)"
    host_docker_intact "after stopping ic"
    if active ic_containerd.service; then lc_fail "ic_containerd.service still runs after ic stopped"; fi
    lc_exec timeout 120 systemctl start ic_docker.service
    wait_active ic_docker.service 60
    # Each instance's own containerd: its unit, socket and namespace; dockerd uses it.
    for n in ia ib ic; do
        active "${n}_containerd.service" || lc_fail "${n}_containerd.service is not active: $(unit_state "${n}_containerd.service")"
        lc_exec test -S "/run/${n}_containerd/containerd.sock" || lc_fail "no socket /run/${n}_containerd/containerd.sock"
        cmd=$(lc_exec cat "/proc/$(main_pid "${n}_docker.service")/cmdline" | tr '\0' ' ')
        grep -qE -- "--containerd[ =]/run/${n}_containerd/containerd.sock( |\$)" <<<"$cmd" ||
            lc_fail "$n's dockerd does not use /run/${n}_containerd/containerd.sock: $cmd"
        ns=$(ctr_ns "/run/${n}_containerd/containerd.sock") || lc_fail "ctr cannot talk to ${n}'s containerd: $ns"
        grep -qx "$n" <<<"$ns" || lc_fail "${n}'s containerd has no namespace $n: $ns"
    done
    trap - EXIT
}

# Restarting an instance's own containerd keeps its containers (KillMode=process: the
# shims outlive it) and its dockerd, which reconnects.
t04b_containerd_restart() {
    local id pid dpid out
    dk ia rm -f keep-ia >/dev/null 2>&1 || true
    id=$(dk ia run -d --init --name keep-ia "$LC_IMAGE" sleep 100000)
    pid=$(dk ia inspect -f '{{.State.Pid}}' "$id")
    dpid=$(main_pid ia_docker.service)
    lc_exec timeout 120 systemctl restart ia_containerd.service ||
        lc_fail "systemctl restart ia_containerd failed: $(unit_state ia_containerd.service)"
    wait_active ia_containerd.service 60
    [[ $(main_pid ia_docker.service) == "$dpid" ]] || lc_fail "ia's dockerd was restarted with its containerd"
    lc_exec kill -0 "$pid" || lc_fail "ia's container process $pid did not survive its containerd's restart"
    ok() { [[ $(dk ia exec keep-ia echo exec-ok 2>/dev/null) == exec-ok ]]; }
    lc__wait_for 30 ok || lc_fail "docker exec on ia fails after its containerd restarted: $(dk ia exec keep-ia echo exec-ok 2>&1)"
    [[ $(dk ia inspect -f '{{.State.Running}} {{.State.Pid}}' "$id") == "true $pid" ]] ||
        lc_fail "ia no longer sees its container as running: $(dk ia ps -a)"
    dk ia rm -f keep-ia >/dev/null
}

# A reboot with the host's Docker enabled beside the instances: all come back, the
# instances' rules exactly once, docker0 there, both reach upstream.
t09_reboot_beside_host_docker() {
    local n
    lc_exec systemctl is-enabled docker.service || lc_fail "the host's docker.service is not enabled"
    lc_reboot
    wait_active docker.service 120
    lc_exec iptables -P FORWARD DROP
    for n in ia ib ic; do
        wait_active "${n}_docker.service" 120
        rules_exactly_once "$n"
        instance_upstream "$n"
    done
    lc_exec ip -4 -o addr show docker0 | grep -q ' inet 172\.17\.' || lc_fail "no docker0 after the reboot"
    host_upstream
    # Isolation and the opening are back as the confs say (ib: AllowFrom=ia, test 5).
    listeners ib
    listeners ic
    reach_check ia ib:bridge:reach ic:bridge:block ic:net:block ic:gw:block
    reach_check ic ib:bridge:block ib:net:block
    # The reboot made a new docker0 and stopped the host's container: what test 10
    # compares against is taken anew.
    hd rm -f hostc >/dev/null 2>&1 || true
    hd run -d --name hostc "$LC_IMAGE" sleep 100000 >/dev/null
    { docker0_state; hostc_state; } >"$HOST_REF"
    host_docker_intact "after the reboot"
}

t05_default_deny_allow_from() {
    local n
    for n in ia ib ic; do listeners "$n"; done
    # Default: nobody gets into another instance's networks or to its bridge address.
    reach_check ia ib:bridge:block ib:net:block ib:gw:block
    reach_check ib ia:bridge:block ia:net:block ia:gw:block
    reach_check ic ib:bridge:block ib:net:block ib:gw:block
    # AllowFrom=ia in ib's conf: ia gets into ib's networks; ic still does not, and ib
    # still not into ia's.
    write_conf ib 'Runtime=runc' '' '[Network]' 'AllowFrom=ia'
    lc_exec systemctl daemon-reload
    restart_instance ib
    rules_exactly_once ib
    listeners ib
    # (A peer may also reach the gateway addresses: dockyard.conf(5), ISOLATION.)
    reach_check ia ib:bridge:reach ib:net:reach ib:gw:reach
    reach_check ic ib:bridge:block ib:net:block ib:gw:block
    reach_check ib ia:bridge:block ia:net:block ia:gw:block
}

t05b_allow_from_unknown() {
    local out rc=0
    write_conf iq 'Runtime=runc' '' '[Network]' 'AllowFrom=nosuch'
    lc_exec systemctl daemon-reload
    # Not a unit that runs: the one that fails with the message.
    refused_unit iq "iq.conf:8: error: AllowFrom=nosuch: there is no instance nosuch"
    out=$(lc_exec /usr/lib/systemd/system-generators/dockyard-generator --dry-run 2>&1 >/dev/null || true)
    echo "$out"
    # Line 8: [Instance] + three keys + Runtime=, a blank line, [Network], AllowFrom=.
    grep -q 'iq\.conf:8: error' <<<"$out" || lc_fail "dockyard-generator --dry-run gives no iq.conf:8 error: $out"
    out=$(dy check 2>&1) || rc=$?
    echo "$out"
    ((rc != 0)) || lc_fail "dockyard check exits 0 with AllowFrom=nosuch: $out"
    grep -q 'iq\.conf:8' <<<"$out" || lc_fail "dockyard check gives no iq.conf:8 error: $out"
    lc_exec rm -f "$CONF_DIR/iq.conf"
    lc_exec systemctl daemon-reload
    for n in ia ib ic; do active "${n}_docker.service" || lc_fail "$n stopped"; done
}

t06_from_upstream() {
    local net pool addr k out
    listeners ia
    net=$(cidr_net "$(conf_get ia BridgeCIDR)") pool=$(conf_get ia PoolBase)
    # Upstream routes ia's networks to the test host, as a LAN router could.
    # shellcheck disable=SC2064  # the values now: the trap may run outside this function
    trap "ip -n '$LC_NETNS' route del '$net' 2>/dev/null; ip -n '$LC_NETNS' route del '$pool' 2>/dev/null" EXIT
    ip -n "$LC_NETNS" route replace "$net" via "$LC_CT_ADDR"
    ip -n "$LC_NETNS" route replace "$pool" via "$LC_CT_ADDR"
    ip -n "$LC_NETNS" route
    for k in bridge net; do
        addr=$(listener_addr ia "$k")
        if out=$(upstream_get "$addr"); then lc_fail "upstream reached ia's unpublished $k listener at $addr: $out"; fi
        echo "upstream -> ia $k $addr: blocked ($out)"
    done
    # A published port (docker-proxy on the host) is reachable at the host's address.
    dk ia rm -f pub-ia >/dev/null 2>&1 || true
    dk ia run -d --init --name pub-ia -p "$PUBLISHED_PORT:80" "$LC_IMAGE" sh -c "$(httpd_script ia published 80)" >/dev/null
    lc__wait_for 10 pub_ok || lc_fail "upstream does not reach ia's published port $LC_CT_ADDR:$PUBLISHED_PORT: $(upstream_get "$LC_CT_ADDR:$PUBLISHED_PORT")"
    echo "upstream -> $LC_CT_ADDR:$PUBLISHED_PORT: $(upstream_get "$LC_CT_ADDR:$PUBLISHED_PORT")"
    # AllowFrom= with a network: upstream's address may now open connections to ia's
    # containers (which also proves the routes above work).
    write_conf ia 'Runtime=runc' '' '[Network]' "AllowFrom=$LC_UP_ADDR/32"
    lc_exec systemctl daemon-reload
    restart_instance ia
    rules_exactly_once ia
    listeners ia
    for k in bridge net; do
        addr=$(listener_addr ia "$k")
        out=$(upstream_get "$addr") || true
        [[ $out == "listener ia $k" ]] || lc_fail "with AllowFrom=$LC_UP_ADDR/32 upstream does not reach ia's $k listener at $addr: $out"
        echo "upstream -> ia $k $addr: $out"
    done
    ip -n "$LC_NETNS" route del "$net"
    ip -n "$LC_NETNS" route del "$pool"
    trap - EXIT
}

t07_networks_follow_conf() {
    local old_net old_pool new_net out sub addr
    old_net=$(cidr_net "${BRIDGE[ic]}") old_pool=${POOL[ic]}
    new_net=$(cidr_net "$IC_NEW_BRIDGE")
    # The old networks in use: a user-defined network from the old pool (test 5 made
    # ic-net; made here if it did not), a container on it and one on the bridge.
    dk ic network inspect ic-net >/dev/null 2>&1 || dk ic network create ic-net >/dev/null
    sub=$(dk ic network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' ic-net)
    in_net "$sub" "$old_pool" || lc_fail "ic-net has $sub, not from ic's pool $old_pool"
    dk ic rm -f old-b old-n >/dev/null 2>&1 || true
    dk ic run -d --init --name old-b "$LC_IMAGE" sleep 100000 >/dev/null
    dk ic run -d --init --name old-n --network ic-net "$LC_IMAGE" sleep 100000 >/dev/null
    echo "before: ic_docker0 $(lc_exec ip -4 -o addr show dev ic_docker0 | awk '{print $4}'), ic-net $sub"
    lc_exec timeout 120 systemctl stop ic_docker.service
    BRIDGE[ic]=$IC_NEW_BRIDGE POOL[ic]=$IC_NEW_POOL
    write_conf ic 'Runtime=runc'
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start ic_docker.service
    wait_active ic_docker.service 60
    out=$(lc_exec ip -4 -o addr show dev ic_docker0 | awk '{print $4}')
    [[ $out == "$IC_NEW_BRIDGE" ]] || lc_fail "ic_docker0 has '$(tr '\n' ' ' <<<"$out")', expected exactly $IC_NEW_BRIDGE"
    out=$(dk ic network inspect bridge -f '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{end}}')
    echo "docker network inspect bridge: $out"
    grep -qF "$new_net" <<<"$out" || lc_fail "ic's bridge network is '$out', not $new_net"
    if grep -qF "${old_net%.*}." <<<"$out"; then lc_fail "ic's bridge network still has the old $old_net: $out"; fi
    rules_exactly_once ic
    # New containers: new addresses, upstream reached masqueraded, on the default bridge
    # and on a network allocated from the new pool.
    instance_upstream ic
    dk ic network inspect ic-new >/dev/null 2>&1 || dk ic network create ic-new >/dev/null
    sub=$(dk ic network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' ic-new)
    in_net "$sub" "$IC_NEW_POOL" || lc_fail "a new network of ic got $sub, not from the new pool $IC_NEW_POOL"
    upstream_ok "ic container on ic-new" dk ic run --rm --network ic-new "$LC_IMAGE" sh -c "$UPSTREAM_CMD"
    addr=$(awk '/ inet / {print $4; exit}' <<<"$UPSTREAM_OUT")
    in_net "$addr" "$sub" || lc_fail "a container on ic-new got $addr, not in $sub"
    dk ic network ls
    # Nothing of the old networks: no address, no rule, no route.
    local o=${old_net%.*}. p=${old_pool%.0.0/16}.
    out=$(lc_exec ip -4 -o addr show | grep -F -e " $o" -e " $p" || true)
    [[ -z $out ]] || lc_fail "addresses of ic's old networks left: $out"
    out=$({ lc_exec iptables-save; lc_exec nft list ruleset; } | grep -F -e "$o" -e "$p" || true)
    [[ -z $out ]] || lc_fail "firewall lines with ic's old networks left: $out"
    out=$(lc_exec ip -4 route show table all | grep -F -e "$o" -e "$p" || true)
    [[ -z $out ]] || lc_fail "routes to ic's old networks left: $out"
}

t08_flushed_chains() {
    # The host Docker's own rules in FORWARD and INPUT go too; they are put back at the
    # end (also on failure), so its container keeps working whatever the FORWARD policy.
    local saved=$LC_WORK/host-forward-input.rules
    lc_exec iptables -S FORWARD | grep -- '^-A ' | grep -v 'dockyard' >"$saved" || true
    lc_exec iptables -S INPUT | grep -- '^-A ' | grep -v 'dockyard' >>"$saved" || true
    echo "host rules set aside: $(wc -l <"$saved")"
    # shellcheck disable=SC2064  # the path now
    trap "while read -r r; do lc_exec sh -c \"iptables \$r\" </dev/null; done <'$saved'" EXIT
    lc_exec iptables -F FORWARD
    lc_exec iptables -F INPUT
    if [[ $LC_FIREWALL == nftables ]]; then
        # The shared table's chains too (its drop rules: the isolation of every instance).
        lc_exec nft flush chain inet dockyard forward
        lc_exec nft flush chain inet dockyard input
    fi
    restart_instance ic
    local n
    for n in ia ib ic; do
        rules_exactly_once "$n"
        instance_upstream "$n"
    done
    # Fresh listeners (ic was restarted, and changed in test 7), so this test does not
    # depend on how far the earlier ones got.
    for n in ia ib ic; do listeners "$n"; done
    # ib allows ia; ia allows only upstream's address; ic allows nobody.
    reach_check ia ib:bridge:reach ib:net:reach ic:bridge:block ic:net:block ic:gw:block
    reach_check ib ia:bridge:block ia:net:block ia:gw:block ic:bridge:block ic:net:block ic:gw:block
    reach_check ic ia:bridge:block ia:net:block ia:gw:block ib:bridge:block ib:net:block ib:gw:block
}

# status_backend NAME: the backend `dockyard status NAME --json` says NAME's rules are in.
status_backend() {
    local json
    json=$(dy status "$1" --json 2>&1) || { lc_fail "dockyard status $1 --json failed: $json"; return 1; }
    python3 -c 'import json, sys; print(json.loads(sys.argv[1])[0]["firewall"]["backend"])' "$json"
}
# firewall_instances: the instances anything in the firewall is tagged for, in either
# backend (iptables-save, and Dockyard's nftables objects), one per line.
firewall_instances() {
    { lc_exec iptables-save; nft_lines ""; } | grep -oE 'dockyard:[a-z0-9-]+' | sed 's/^dockyard://' | sort -u
}
# shared_sets_exact NAME...: exactly NAME... (the running instances) have anything in
# the firewall; with nftables in use, every element of the shared sets carries the tag of
# one of them.
shared_sets_exact() {
    local want have j untagged
    want=$(printf '%s\n' "$@" | sort -u)
    have=$(firewall_instances)
    [[ $have == "$want" ]] || lc_fail "the firewall has things of '$(tr '\n' ' ' <<<"$have")', expected exactly '$(tr '\n' ' ' <<<"$want")': $(nft_lines "" | grep '^element' | awk '{print $NF}' | sort | uniq -c | tr '\n' ' ')"
    j=$(lc_exec nft -j list table inet dockyard 2>/dev/null) || return 0
    # shellcheck disable=SC2016  # python, not shell
    untagged=$(python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    for e in item.get("set", {}).get("elem", []):
        if not (isinstance(e, dict) and "elem" in e and str(e["elem"].get("comment", "")).startswith("dockyard:")):
            print(item["set"]["name"], json.dumps(e))' <<<"$j")
    [[ -z $untagged ]] || lc_fail "elements of the shared sets without an instance's tag: $untagged"
}

# The host's backend is switched with instances running: each keeps the rules it has
# (status: present, the old backend) until it stops; a restart (ib), and a stop then a
# start (ic), bring it up with the new backend and nothing of the old; isolation holds
# between instances on different backends, under FORWARD's DROP policy. The setting
# goes back afterwards; ib and ic stay on the other backend (a mixed host, for 9c and 10).
t09b_switch_backend() {
    local n
    for n in ia ib ic; do rules_exactly_once "$n" "$LC_FIREWALL"; done
    # shellcheck disable=SC2064  # the value now
    trap "set_firewall_backend '$LC_FIREWALL'" EXIT
    set_firewall_backend "$OTHER_FIREWALL"
    lc_exec systemctl daemon-reload
    lc_exec cat "$HOST_CONF"
    for n in ia ib ic; do rules_exactly_once "$n" "$LC_FIREWALL"; done
    restart_instance ib
    rules_exactly_once ib "$OTHER_FIREWALL"
    for n in ia ic; do rules_exactly_once "$n" "$LC_FIREWALL"; done
    lc_exec timeout 120 systemctl stop ic_docker.service
    no_rules ic
    rules_exactly_once ia "$LC_FIREWALL"
    rules_exactly_once ib "$OTHER_FIREWALL"
    lc_exec timeout 120 systemctl start ic_docker.service
    wait_active ic_docker.service 60
    rules_exactly_once ic "$OTHER_FIREWALL"
    rules_exactly_once ia "$LC_FIREWALL"
    for n in ia ib ic; do
        listeners "$n"
        instance_upstream "$n"
    done
    # ib allows ia; ia allows only upstream's address; ic allows nobody.
    reach_check ia ib:bridge:reach ib:net:reach ic:bridge:block ic:net:block ic:gw:block
    reach_check ib ia:bridge:block ia:net:block ia:gw:block ic:bridge:block ic:net:block ic:gw:block
    reach_check ic ia:bridge:block ia:net:block ia:gw:block ib:bridge:block ib:net:block ib:gw:block
    host_docker_intact "after switching the backend"
}

# dockyard-network up and down of a stopped instance (ik), run by hand the way its unit
# runs them, each killed with SIGKILL after 0-80 ms, 30 times each: then one start and one
# stop of the unit leave exactly what the running instances need (status present for
# each, nothing of ik, every shared-set element tagged by a running instance).
t09c_helper_killed() {
    local tally out running=() n
    for n in ia ib ic; do active "${n}_docker.service" && running+=("$n"); done
    write_conf ik 'Runtime=runc'
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start ik_docker.service
    wait_active ik_docker.service 60
    rules_exactly_once ik
    lc_exec timeout 120 systemctl stop ik_docker.service
    no_rules ik
    # shellcheck disable=SC2016  # expanded by the container's bash
    tally=$(lc_exec bash -c 'killed=0 finished=0
        for i in $(seq 1 30); do
            for verb in up down; do
                /usr/libexec/dockyard/dockyard-network "$verb" "$@" >/dev/null 2>&1 &
                p=$!
                sleep "0.$(printf %03d $((RANDOM % 80)))"
                kill -9 "$p" 2>/dev/null || true
                rc=0; wait "$p" 2>/dev/null || rc=$?
                if [ "$rc" = 137 ]; then killed=$((killed + 1)); else finished=$((finished + 1)); fi
            done
        done
        echo "$killed $finished"' _ --instance ik --bridge-cidr "${BRIDGE[ik]}" --fixed-cidr "$(cidr_net "${BRIDGE[ik]}")" \
        --pool "${POOL[ik]}" --data-root /var/lib/dockyard/ik/docker)
    echo "helpers killed mid-way: ${tally% *}, finished before the kill: ${tally#* }"
    ((${tally% *} > 0)) || lc_fail "no helper was killed before it finished ($tally): the test tested nothing"
    lc_exec timeout 120 systemctl start ik_docker.service || lc_fail "ik does not start after the kills: $(unit_state ik_docker.service)"
    wait_active ik_docker.service 60
    rules_exactly_once ik
    for n in "${running[@]}"; do rules_exactly_once "$n" "$(status_backend "$n")"; done
    shared_sets_exact "${running[@]}" ik
    lc_image "$(sock ik)"
    instance_upstream ik
    lc_exec timeout 120 systemctl stop ik_docker.service
    no_rules ik
    for n in "${running[@]}"; do rules_exactly_once "$n" "$(status_backend "$n")"; done
    shared_sets_exact "${running[@]}"
    out=$(dy destroy ik --yes 2>&1) || lc_fail "destroy ik failed: $out"
    no_rules ik
}

t10_status_verify_destroy() {
    local json n out problems=()
    # Status and verify are looked at first, but destroy and its checks run whatever
    # they found; everything is reported at the end.
    # 3: some instance is not active (as systemctl is-active); the table says which.
    json=$(dy status --json) || (($? == 3))
    echo "$json" >"$LC_WORK/logs/status.json"
    out=$(python3 -c '
import json, sys
s = {x["name"]: x for x in json.loads(sys.argv[1])}
for n in ("ia", "ib", "ic"):
    if n not in s:
        print(n + " is not in dockyard status --json")
        continue
    fw = s[n]["firewall"]
    if fw["state"] != "present":
        print(n + ": status firewall.state " + repr(fw["state"]) + ": " + json.dumps(fw))
    if "containerd" not in s[n]:
        print(n + ": status has no containerd field")
' "$json") || out="cannot read dockyard status --json: $json"
    [[ -z $out ]] || problems+=("$out")
    for n in ia ib ic; do
        out=$(dy verify "$n" 2>&1) || problems+=("dockyard verify $n failed: $(grep '^FAIL' <<<"$out" | tr '\n' ' ')")
    done
    # iz too, in case test 3 did not get as far as destroying it (then it says so).
    for n in ia ib ic iz ik; do
        out=$(dy destroy "$n" --yes 2>&1) || lc_fail "destroy $n failed: $out"
        no_rules "$n"
        if link_exists "${n}_docker0"; then lc_fail "bridge ${n}_docker0 left after destroy"; fi
        if lc_exec test -e "/run/${n}_containerd"; then lc_fail "/run/${n}_containerd left after destroy"; fi
    done
    no_dockyard_firewall
    # Bridges: only the host Docker's docker0 is left.
    out=$(lc_exec ip -o link show type bridge | awk -F': ' '{print $2}' | sed 's/@.*//')
    [[ $out == docker0 ]] || lc_fail "bridges left besides docker0: $(tr '\n' ' ' <<<"$out")"
    out=$(lc_exec ip -4 -o addr show | grep -E ' 172\.(2[0-9]|1[89])\.' || true)
    [[ -z $out ]] || lc_fail "instance addresses left: $out"
    host_docker_intact "after destroying every instance"
    ((${#problems[@]} == 0)) || lc_fail "$(printf '%s; ' "${problems[@]}")"
}

# --- run -------------------------------------------------------------------------------
lc_init
lc_rootfs
lc_boot isolation
HOST_REF=$LC_WORK/host-docker.ref
install_dockyard

lc_test "1. four instances (runc) started concurrently: active, rules present exactly once" t01_instances
lc_test "2. the host's Docker started after them (FORWARD policy DROP): both reach upstream, instance rules exactly once, before and after its restart" t02_beside_host_docker
lc_test "3. restart ia x2, kill -9 its dockerd, destroy iz: the host's docker0 and container unchanged, exec and upstream work" t03_host_docker_untouched
lc_test "4. no instance in the host's containerd; it stopped: instance container runs; instance stopped: host container runs; own containerd per instance" t04_own_containerd
lc_test "4b. restart ia's own containerd: its container and dockerd keep running, exec works" t04b_containerd_restart
lc_test "5. default deny between instances (bridge, user network, bridge address), both ways; AllowFrom=ia lets ia (only) into ib" t05_default_deny_allow_from
lc_test "5b. AllowFrom= naming no instance: a unit that fails with the file:line error, also from the generator and dockyard check" t05b_allow_from_unknown
lc_test "6. from upstream: unpublished ports unreachable, published port reachable; AllowFrom=CIDR opens" t06_from_upstream
lc_test "7. BridgeCIDR=/PoolBase= changed on a stopped instance: only the new networks, nothing of the old" t07_networks_follow_conf
lc_test "8. FORWARD and INPUT flushed, one instance restarted: isolation, outbound and rules of all back" t08_flushed_chains
lc_test "9. reboot with the host's Docker enabled: all back, rules exactly once, docker0, upstream, isolation" t09_reboot_beside_host_docker
lc_test "9b. backend switched to $OTHER_FIREWALL with instances running: rules kept until restart or stop, then $OTHER_FIREWALL and nothing of $LC_FIREWALL; isolation holds" t09b_switch_backend
lc_test "9c. dockyard-network up/down killed with SIGKILL mid-way x60: the next start and stop leave exactly the running instances' rules and set elements" t09c_helper_killed
lc_test "10. status present, verify passes, destroy of all: no Dockyard rule, chain or bridge; host Docker intact" t10_status_verify_destroy

lc_log "timings: rootfs ${LC_ROOTFS_SECONDS}s, boot ${LC_BOOT_SECONDS}s, total $(lc__elapsed "$SUITE_T0")s before teardown"
lc_summary
