#!/usr/bin/env bash
# Issue 3's lifecycle suite: the real generator, helpers and units under a booted
# systemd with Debian's dockerd (see README.md in this directory for the harness), on
# the engine of LC_SUITE: bookworm's 20.10 (default) or sid's 28.5.2 (issue 12).
#
#   sudo bash tests/lifecycle/suite.sh      (or: sudo make lifecycle)
#   sudo LC_SUITE=sid bash tests/lifecycle/suite.sh      (or: sudo make lifecycle-sid)
#
# Installs Dockyard into the booted container from the .deb built from this checkout
# (apt-get install, as an admin would), drops confs into /etc/dockyard/instances.d and
# drives everything through systemctl, docker, iptables-save or nft (LC_FIREWALL) and ip.
# Env: LC_FIREWALL=iptables|nftables (the backend, default iptables);
# LC_VERBOSE=1 prints every test's output; LC_KEEP_WORK=1 keeps the working copy;
# LC_DEB=FILE installs that .deb instead of building one.
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# sock, dk, write_conf, rules_exactly_once, install_dockyard, ... (shared with the other suites)
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"

# Instance networks: all inside 172.16.0.0/12, none overlapping.
declare -A BRIDGE=([dy1]=172.20.1.1/24 [dy2]=172.20.2.1/24 [dy3]=172.20.3.1/24 [dy4]=172.20.4.1/24
    [sb1]=172.20.5.1/24 [sb2]=172.20.6.1/24)
declare -A POOL=([dy1]=172.24.0.0/16 [dy2]=172.25.0.0/16 [dy3]=172.26.0.0/16 [dy4]=172.27.0.0/16
    [sb1]=172.28.0.0/16 [sb2]=172.29.0.0/16)
RUNNING=(dy1 dy2 dy3)
# A [Daemon] value full of what systemd's command-line parser would otherwise
# interpret: quotes, spaces, ';', '$', '%' and a backslash.
LABEL='dockyard.test=a "b" c;d $HOME %n \x'

# --- tests -----------------------------------------------------------------------------
t00_artifacts_from_installer() {
    lc_exec test -x "/var/lib/dockyard/artifacts/docker/$LC_DOCKER_VERSION/bin/dockerd" || lc_fail "dockerd is not in the store"
    lc_exec test -x "$SYSBOX_BIN/sysbox-mgr" || lc_fail "sysbox-mgr is not in the store"
    local before after
    before=$(grep -c '"GET ' "$LC_WORK/logs/mirror.log" || true)
    [[ $before -ge 2 ]] || lc_fail "the mirror served $before request(s), expected the Docker tarball and the sysbox .deb"
    lc_exec dockyard install >/dev/null || lc_fail "a second dockyard install failed"
    after=$(grep -c '"GET ' "$LC_WORK/logs/mirror.log" || true)
    [[ $after == "$before" ]] || lc_fail "a second dockyard install downloaded again ($before -> $after requests)"
    lc_exec dockyard install --list | grep -F "$LC_DOCKER_VERSION" >/dev/null || lc_fail "dockyard install --list does not show $LC_DOCKER_VERSION"
}

t01_three_instances() {
    local n
    write_conf dy1 'Runtime=runc' '' '[Daemon]' \
        "labels=$(python3 -c 'import json, sys; print(json.dumps([sys.argv[1]]))' "$LABEL")" \
        'log-opts={"max-size": "1m", "max-file": "2"}'
    write_conf dy2 'Runtime=runc'
    write_conf dy3 'Runtime=runc'
    lc_exec systemctl daemon-reload
    for n in "${RUNNING[@]}"; do
        [[ $(lc_exec systemctl show -p LoadState --value "${n}_docker.service") == loaded ]] ||
            lc_fail "${n}_docker.service not generated: $(lc_exec /usr/lib/systemd/system-generators/dockyard-generator --dry-run 2>&1 >/dev/null)"
        lc_exec test -f "/run/systemd/generator/${n}_docker.service"
    done
    # Three systemctl processes at once: the helpers run concurrently (xtables lock,
    # useradd, netlink), as at boot.
    local pids=() rc=0
    for n in "${RUNNING[@]}"; do
        lc_exec timeout 180 systemctl start "${n}_docker.service" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    for n in "${RUNNING[@]}"; do
        active "${n}_docker.service" || lc_fail "${n}_docker.service is not active: $(unit_state "${n}_docker.service")"
    done
    ((rc == 0)) || lc_fail "a systemctl start failed although the units are active"
    for n in "${RUNNING[@]}"; do
        dk "$n" version --format '{{.Server.Version}}'
        rules_exactly_once "$n"
    done
}

# A [Daemon] value goes conf -> generator -> unit (systemd quoting) -> dockyard-prepare
# -> /run/NAME_docker/daemon.json -> dockerd, byte for byte.
t01b_daemon_options() {
    local json labels
    json=$(lc_exec cat /run/dy1_docker/daemon.json)
    echo "$json"
    python3 - "$json" "$LABEL" "$(engine_major)" <<'PY' || lc_fail "daemon.json of dy1 does not carry the [Daemon] values intact: $json"
import json, sys
d = json.loads(sys.argv[1])
# live-restore is Dockyard's own: off once dockerd runs (dockyard.conf(5)).
want = {"labels": [sys.argv[2]], "log-opts": {"max-size": "1m", "max-file": "2"}, "live-restore": False}
# So is the image store, on engines that have the choice (24 and later): runc
# instances get the containerd store (dockyard.conf(5), IMAGE STORE).
if int(sys.argv[3]) >= 24:
    want["features"] = {"containerd-snapshotter": True}
sys.exit(0 if d == want else 1)
PY
    labels=$(dk dy1 info --format '{{json .Labels}}')
    echo "dockerd labels: $labels"
    python3 -c 'import json,sys; sys.exit(0 if json.loads(sys.argv[1]) == [sys.argv[2]] else 1)' "$labels" "$LABEL" ||
        lc_fail "dockerd reports labels $labels, expected [$LABEL]"
}

t02_run_network_dns() {
    local n out before after peer
    for n in "${RUNNING[@]}"; do
        lc_image "$(sock "$n")"
        out=$(run_in "$n" echo "hello from $n")
        [[ $out == "hello from $n" ]] || lc_fail "$n: docker run printed '$out'"
        before=$(lc_upstream_peers | wc -l)
        out=$(run_in "$n" sh -c "ip -4 -o addr show eth0; nc -w 5 $LC_UP_ADDR $LC_UPSTREAM_PORT </dev/null") ||
            lc_fail "$n: container could not reach $LC_UP_ADDR:$LC_UPSTREAM_PORT: $out"
        echo "$out"
        grep -q 'hello from upstream' <<<"$out" || lc_fail "$n: no greeting from upstream: $out"
        local prefix=${BRIDGE[$n]%.*}
        grep -q " inet ${prefix//./\\.}\." <<<"$out" || lc_fail "$n: container address not in ${BRIDGE[$n]}: $out"
        after=$(lc_upstream_peers | wc -l)
        ((after == before + 1)) || lc_fail "$n: expected 1 new upstream connection, got $((after - before))"
        peer=$(lc_upstream_peers | tail -n 1 | awk '{print $2}')
        [[ $peer == "$LC_CT_ADDR" ]] || lc_fail "$n: upstream saw $peer, not the masqueraded $LC_CT_ADDR"
        out=$(run_in "$n" nslookup "$LC_UPSTREAM_NAME") || lc_fail "$n: nslookup $LC_UPSTREAM_NAME failed: $out"
        grep -A3 "Name:[[:space:]]*$LC_UPSTREAM_NAME" <<<"$out" | grep -q "Address:[[:space:]]*$LC_UP_ADDR" ||
            lc_fail "$n: $LC_UPSTREAM_NAME did not resolve to $LC_UP_ADDR: $out"
    done
}

t03_isolation() {
    local id other
    id=$(dk dy1 run -d --name iso-dy1 "$LC_IMAGE" sleep 600)
    echo "dy1 container $id"
    dk dy1 ps -q --no-trunc | grep -qx "$id" || lc_fail "dy1 does not list its own container"
    for other in dy2 dy3; do
        if dk "$other" ps -aq --no-trunc | grep -q "$id"; then lc_fail "$other lists dy1's container"; fi
        if dk "$other" inspect iso-dy1 >/dev/null 2>&1; then lc_fail "$other can inspect dy1's container"; fi
        if dk "$other" inspect "$id" >/dev/null 2>&1; then lc_fail "$other can inspect dy1's container by id"; fi
    done
    # The container lives in dy1's slice, not in another instance's.
    local pid
    pid=$(dk dy1 inspect --format '{{.State.Pid}}' "$id")
    lc_exec cat "/proc/$pid/cgroup" | grep -q 'dockyard-dy1.slice' ||
        lc_fail "dy1's container is not under dockyard-dy1.slice: $(lc_exec cat "/proc/$pid/cgroup")"
    dk dy1 rm -f "$id" >/dev/null
}

t04_socket_permissions() {
    local n st
    for n in "${RUNNING[@]}"; do
        st=$(lc_exec stat -c '%U:%G %a' "$(sock "$n")")
        [[ $st == "root:${n}_docker 660" ]] || lc_fail "$n: socket is '$st', expected 'root:${n}_docker 660'"
    done
    lc_exec sh -c 'id alice >/dev/null 2>&1 || useradd --create-home alice; id bob >/dev/null 2>&1 || useradd --create-home bob'
    lc_exec usermod -aG dy1_docker alice
    as() {
        local user=$1 n=$2
        lc_exec timeout 60 setpriv --reuid="$user" --regid="$user" --init-groups \
            env HOME=/tmp DOCKER_HOST="unix://$(sock "$n")" "$LC_DOCKER_BIN/docker" version --format '{{.Server.Version}}' 2>&1
    }
    local out
    out=$(as alice dy1) || lc_fail "alice (in dy1_docker) cannot use dy1: $out"
    for n in dy2 dy3; do
        if out=$(as alice "$n"); then lc_fail "alice (dy1_docker only) can use $n: $out"; fi
        grep -qi 'permission denied' <<<"$out" || lc_fail "alice on $n: expected permission denied, got: $out"
    done
    for n in "${RUNNING[@]}"; do
        if out=$(as bob "$n"); then lc_fail "bob (no group) can use $n: $out"; fi
        grep -qi 'permission denied' <<<"$out" || lc_fail "bob on $n: expected permission denied, got: $out"
    done
}

t05_stop_start() {
    lc_exec timeout 120 systemctl stop dy2_docker.service
    inactive dy2_docker.service || lc_fail "dy2 not inactive after stop: $(unit_state dy2_docker.service)"
    no_rules dy2
    if link_exists dy2_docker0; then lc_fail "bridge dy2_docker0 left after stop"; fi
    if lc_exec test -e /run/dy2_docker; then lc_fail "/run/dy2_docker left after stop"; fi
    # The other instances are untouched.
    rules_exactly_once dy1
    rules_exactly_once dy3
    lc_exec timeout 120 systemctl start dy2_docker.service
    active dy2_docker.service || lc_fail "dy2 not active after start: $(unit_state dy2_docker.service)"
    rules_exactly_once dy2
    [[ $(lc_exec ip -o link show type bridge | grep -c ' dy2_docker0:') == 1 ]] || lc_fail "bridge dy2_docker0 not back exactly once"
    [[ $(run_in dy2 echo back) == back ]] || lc_fail "dy2 does not run containers after restart"
}

t06_kill9_restart() {
    local pid1 pid2 restarts
    pid1=$(main_pid dy3_docker.service)
    restarts=$(lc_exec systemctl show -p NRestarts --value dy3_docker.service)
    [[ $pid1 -gt 0 ]] || lc_fail "dy3 has no main PID"
    echo "dockerd $pid1, NRestarts $restarts; kill -9"
    lc_exec kill -9 "$pid1"
    restarted() {
        local p
        p=$(main_pid dy3_docker.service)
        [[ $p -gt 0 && $p != "$pid1" ]] && active dy3_docker.service &&
            [[ $(lc_exec systemctl show -p NRestarts --value dy3_docker.service) -gt $restarts ]]
    }
    lc__wait_for 60 restarted || lc_fail "systemd did not restart dy3 after kill -9: $(unit_state dy3_docker.service)"
    pid2=$(main_pid dy3_docker.service)
    echo "restarted as $pid2"
    rules_exactly_once dy3
    [[ $(run_in dy3 echo alive) == alive ]] || lc_fail "dy3 does not run containers after the restart"
}

t07_autostart_no() {
    write_conf dy4 'Runtime=runc' 'Autostart=no'
    lc_exec systemctl daemon-reload
    [[ $(lc_exec systemctl show -p LoadState --value dy4_docker.service) == loaded ]] || lc_fail "dy4_docker.service not generated"
    if lc_exec test -e /run/systemd/generator/multi-user.target.wants/dy4_docker.service; then
        lc_fail "dy4 is linked into multi-user.target.wants"
    fi
    lc_exec test -e /run/systemd/generator/multi-user.target.wants/dy1_docker.service ||
        lc_fail "dy1 (Autostart default) is not linked into multi-user.target.wants"
    # Not started at boot: boot and look.
    lc_reboot
    inactive dy4_docker.service || lc_fail "dy4 (Autostart=no) is $(lc_exec systemctl is-active dy4_docker.service) after boot"
    if link_exists dy4_docker0; then lc_fail "dy4's bridge exists after boot"; fi
    no_rules dy4
    # It is startable by hand.
    lc_exec timeout 120 systemctl start dy4_docker.service
    active dy4_docker.service || lc_fail "dy4 does not start by hand: $(unit_state dy4_docker.service)"
    lc_exec timeout 120 systemctl stop dy4_docker.service
}

t08_reboot() {
    lc_reboot
    echo "reboot took ${LC_REBOOT_SECONDS}s"
    local n
    for n in "${RUNNING[@]}"; do
        wait_active "${n}_docker.service" 120
        rules_exactly_once "$n"
        [[ $(run_in "$n" echo "$n after reboot") == "$n after reboot" ]] || lc_fail "$n runs no container after reboot"
    done
    inactive dy4_docker.service || lc_fail "dy4 (Autostart=no) came up at boot"
}

t09_conf_removed() {
    lc_exec rm -f "$CONF_DIR/dy3.conf"
    lc_exec systemctl daemon-reload
    # Removing the conf does not stop a running instance.
    active dy3_docker.service || lc_fail "dy3 stopped when its conf was removed: $(unit_state dy3_docker.service)"
    # Its unit is now the generator's stop-only one (dockyard-generator(8)).
    lc_exec systemctl show -p Description --value dy3_docker.service | grep -q 'conf gone' ||
        lc_fail "dy3's unit is not the stop-only unit: $(lc_exec systemctl cat dy3_docker.service 2>&1 | head -n 20)"
    lc_exec timeout 120 systemctl stop dy3_docker.service
    inactive dy3_docker.service || lc_fail "dy3 not stopped: $(unit_state dy3_docker.service)"
    if lc_exec systemctl start dy3_docker.service 2>/dev/null; then lc_fail "the stop-only unit of dy3 could be started"; fi
    lc_exec systemctl daemon-reload
    # systemd unloads units nothing references at its next garbage collection, not
    # within daemon-reload itself: sid's systemd was seen listing both, not-found, for a
    # moment after it. Gone within seconds is the contract.
    unloaded() { [[ -z $(lc_exec systemctl list-units --all --no-legend --plain dy3_docker.service dy3_containerd.service) ]]; }
    lc__wait_for 10 unloaded ||
        lc_fail "dy3's units still known 10 s after stop and reload: $(lc_exec systemctl list-units --all --no-legend --plain dy3_docker.service dy3_containerd.service)"
    if lc_exec test -e /run/systemd/generator/dy3_docker.service; then lc_fail "unit file of dy3 still generated"; fi
    no_rules dy3
    local links
    links=$(lc_exec ip -o link show | grep -E ' (dy3_docker0|br-[0-9a-f]+)[:@]' || true)
    if grep -q dy3_docker0 <<<"$links"; then lc_fail "bridge dy3_docker0 left: $links"; fi
    # Every br-… bridge left must belong to someone else's pool (dy3 made none here).
    local left
    left=$(lc_exec sh -c 'ls -d /run/dy3_docker /run/dy3_containerd /run/dockyard/dy3 /run/containerd/*dy3* 2>/dev/null' || true)
    [[ -z $left ]] || lc_fail "runtime state of dy3 left: $left"
    # Its containerd stopped with it, although its unit too lost the conf.
    if active dy3_containerd.service; then lc_fail "dy3_containerd.service still runs: $(unit_state dy3_containerd.service)"; fi
    [[ -z $(lc_exec ip -4 -o addr show | grep ' 172\.20\.3\.' || true) ]] || lc_fail "dy3's bridge address left"
    # The others are untouched.
    for n in dy1 dy2; do active "${n}_docker.service" || lc_fail "$n stopped"; rules_exactly_once "$n"; done
}

t10_sysbox() {
    local u
    write_conf sb1 'Runtime=sysbox-runc'
    write_conf sb2 'Runtime=sysbox-runc'
    lc_exec systemctl daemon-reload
    for u in "${SYSBOX_UNITS[@]}"; do
        inactive "$u" || lc_fail "$u active before any sysbox instance started"
    done
    lc_exec timeout 120 systemctl start sb1_docker.service
    active sb1_docker.service || lc_fail "sb1 not active: $(unit_state sb1_docker.service)"
    for u in "${SYSBOX_UNITS[@]}"; do active "$u" || lc_fail "$u not active with sb1 running: $(unit_state "$u")"; done
    # The sysbox account and its subordinate ranges, as sysbox's own package and
    # sysbox-mgr set them up (one range of 268435456 ids each).
    local subuid subgid
    subuid=$(lc_exec grep '^sysbox:' /etc/subuid) || lc_fail "no sysbox entry in /etc/subuid"
    subgid=$(lc_exec grep '^sysbox:' /etc/subgid) || lc_fail "no sysbox entry in /etc/subgid"
    echo "subuid $subuid, subgid $subgid"
    [[ ${subuid##*:} == 268435456 && ${subgid##*:} == 268435456 ]] || lc_fail "sysbox ranges are not 268435456 ids: $subuid $subgid"
    # Containers really run through the runtime (the double execs runc).
    lc_image "$(sock sb1)"
    [[ $(dk sb1 info --format '{{.DefaultRuntime}}') == sysbox-runc ]] || lc_fail "sb1's default runtime is not sysbox-runc"
    [[ $(run_in sb1 echo via sysbox-runc) == "via sysbox-runc" ]] || lc_fail "sb1 runs no container through sysbox-runc"
    # The watcher re-owns a new per-container directory to the subuid/subgid offset.
    local first_uid=${subuid#sysbox:} first_gid=${subgid#sysbox:} dir owner
    first_uid=${first_uid%%:*} first_gid=${first_gid%%:*}
    dir=$SYSBOX_DATA/docker/lifecycle-test-$$
    lc_exec mkdir -p "$SYSBOX_DATA/docker"
    lc_exec mkdir "$dir"
    owned() { [[ $(lc_exec stat -c '%u:%g' "$dir") == "$first_uid:$first_gid" ]]; }
    lc__wait_for 5 owned || lc_fail "watcher did not chown $dir to $first_uid:$first_gid (it is $(lc_exec stat -c '%u:%g' "$dir"))"
    owner=$(lc_exec stat -c '%u:%g' "$dir")
    echo "$dir re-owned to $owner"
    lc_exec rmdir "$dir"
    # Second instance shares the units; stopping the first keeps them.
    lc_exec timeout 120 systemctl start sb2_docker.service
    active sb2_docker.service || lc_fail "sb2 not active: $(unit_state sb2_docker.service)"
    local mgr_pid
    mgr_pid=$(main_pid dockyard-sysbox-mgr.service)
    lc_exec timeout 120 systemctl stop sb1_docker.service
    for u in "${SYSBOX_UNITS[@]}"; do active "$u" || lc_fail "$u stopped while sb2 still runs"; done
    [[ $(main_pid dockyard-sysbox-mgr.service) == "$mgr_pid" ]] || lc_fail "sysbox-mgr was restarted while sb2 ran"
    lc_exec timeout 120 systemctl stop sb2_docker.service
    gone() { local x; for x in "${SYSBOX_UNITS[@]}"; do inactive "$x" || return 1; done; }
    lc__wait_for 30 gone || lc_fail "sysbox units still running after the last sysbox instance stopped: $(for x in "${SYSBOX_UNITS[@]}"; do unit_state "$x"; done)"
    no_rules sb1
    no_rules sb2
}

t11_bad_conf() {
    local before n out
    before=$(for n in dy1 dy2; do main_pid "${n}_docker.service"; done)
    # A syntax error, and a conf whose networks collide with running dy1.
    printf '[Instance]\nBridgeCIDR=not-an-address\nPoolBase=172.30.0.0/16\n' | lc_exec sh -c "cat >$CONF_DIR/bad1.conf"
    printf '[Instance]\nBridgeCIDR=%s\nPoolBase=172.31.0.0/16\nRuntime=runc\n' "${BRIDGE[dy1]}" |
        lc_exec sh -c "cat >$CONF_DIR/bad2.conf"
    lc_exec systemctl daemon-reload
    out=$(lc_exec /usr/lib/systemd/system-generators/dockyard-generator --dry-run 2>&1 >/dev/null || true)
    echo "$out"
    grep -q 'bad1.conf:2: error' <<<"$out" || lc_fail "no file:line error for bad1.conf: $out"
    grep -q 'bad2.conf.*dy1.conf' <<<"$out" || lc_fail "bad2.conf refused without naming dy1.conf: $out"
    # Each gets the unit that fails with its file:line messages, not "Unit not found".
    refused_unit bad1 "bad1.conf:2: error: BridgeCIDR=not-an-address" "dockyard check $CONF_DIR/bad1.conf"
    refused_unit bad2 "$CONF_DIR/dy1.conf"
    for n in dy1 dy2; do
        active "${n}_docker.service" || lc_fail "$n not active after the bad confs"
        lc_exec test -f "/run/systemd/generator/${n}_docker.service" || lc_fail "$n's unit vanished"
        rules_exactly_once "$n"
    done
    [[ $(for n in dy1 dy2; do main_pid "${n}_docker.service"; done) == "$before" ]] || lc_fail "a running dockerd was restarted"
    lc_exec rm -f "$CONF_DIR/bad1.conf" "$CONF_DIR/bad2.conf"
    lc_exec systemctl daemon-reload
}

# The engine's major version: 20 (bookworm), 28 (sid).
engine_major() { echo "${LC_DOCKER_VERSION%%.*}"; }
# The image store dockerd NAME reports: "containerd" (a snapshotter) or its graph driver.
image_store_of() {
    local status
    status=$(dk "$1" info --format '{{.Driver}} {{json .DriverStatus}}')
    if grep -q 'io.containerd.snapshotter' <<<"$status"; then echo containerd; else echo "${status%% *}"; fi
}

# What dockyard.conf(5) IMAGE STORE promises, engine by engine: runc instances on the
# containerd store where the engine has it (24+), sysbox-runc on overlay2; 20.10 has no
# choice (overlay2) and gets no such key.
t12_image_store() {
    local want_runc=overlay2 n got
    (($(engine_major) >= 24)) && want_runc=containerd
    for n in dy1 dy2; do
        got=$(image_store_of "$n")
        echo "$n: $got"
        [[ $got == "$want_runc" ]] || lc_fail "$n (runc, Docker $LC_DOCKER_VERSION) uses image store '$got', expected '$want_runc'"
    done
    if (($(engine_major) < 24)); then
        if lc_exec grep -q containerd-snapshotter /run/dy1_docker/daemon.json; then
            lc_fail "Docker $LC_DOCKER_VERSION has no containerd image store, yet daemon.json names it: $(lc_exec cat /run/dy1_docker/daemon.json)"
        fi
    fi
}

# A data root that holds graph-driver data keeps its graph driver, whatever the
# instance would get on a fresh root: dy4 first runs with the graph driver forced by its
# conf and gets an image, then the conf stops forcing it.
t13_prior_graph_driver_kept() {
    write_conf dy4 'Runtime=runc' 'Autostart=no' '' '[Daemon]' 'features={"containerd-snapshotter": false}'
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start dy4_docker.service
    wait_active dy4_docker.service
    lc_image "$(sock dy4)"
    [[ $(image_store_of dy4) == overlay2 ]] || lc_fail "dy4 with the graph driver forced uses $(image_store_of dy4)"
    lc_exec timeout 120 systemctl stop dy4_docker.service
    write_conf dy4 'Runtime=runc' 'Autostart=no'
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start dy4_docker.service
    wait_active dy4_docker.service
    local got
    got=$(image_store_of dy4)
    echo "dy4 after the conf stopped forcing it: $got; daemon.json: $(lc_exec cat /run/dy4_docker/daemon.json)"
    [[ $got == overlay2 ]] || lc_fail "dy4's data root holds overlay2 data but it now uses '$got'"
    dk dy4 image inspect "$LC_IMAGE" >/dev/null || lc_fail "dy4 lost its image with its image store"
    if (($(engine_major) >= 24)); then
        local journal
        journal=$(lc_exec journalctl -q --no-pager -u dy4_docker.service)
        grep -q 'keeping the graph driver' <<<"$journal" ||
            lc_fail "dockyard-prepare did not say it kept dy4's graph driver: $(tail -n 20 <<<"$journal")"
    fi
    lc_exec timeout 120 systemctl stop dy4_docker.service
}

# `dockyard env NAME`: a member of the instance's group, with nothing but its output,
# gets the instance's own docker CLI (client and server of one build) and Compose from
# the store (the real plugin on sid, the test double on bookworm), standalone and as a
# plugin through cliPluginsExtraDirs (dockyard(8) ENVIRONMENT OF USERS).
t14_env_and_compose() {
    local out cdir
    out=$(dy env dy1) || lc_fail "dockyard env dy1 failed: $out"
    echo "$out"
    lc_exec test -x "/var/lib/dockyard/artifacts/compose/$COMPOSE_VERSION/bin/docker-compose" ||
        lc_fail "dockyard install did not put Compose $COMPOSE_VERSION in the store"
    lc_exec sh -c 'id carol >/dev/null 2>&1 || useradd --create-home carol'
    lc_exec usermod -aG dy1_docker carol
    as_carol() {
        # A login shell's PATH; the distribution's docker is in it (and first, before eval).
        lc_exec timeout 120 setpriv --reuid=carol --regid=carol --init-groups \
            env -i HOME=/home/carol PATH=/usr/local/bin:/usr/bin:/bin sh -c "$1" 2>&1
    }
    out=$(as_carol 'eval "$(dockyard env dy1)" && command -v docker && docker version --format "{{.Client.Version}} {{.Server.Version}}" && docker-compose version') ||
        lc_fail "carol's shell after eval: $out"
    echo "$out"
    grep -qx "/var/lib/dockyard/artifacts/docker/$LC_DOCKER_VERSION/bin/docker" <<<"$out" ||
        lc_fail "docker is not the store's $LC_DOCKER_VERSION CLI: $out"
    local server
    server=$(dk dy1 version --format '{{.Server.Version}}')
    grep -qx "$(dk dy1 version --format '{{.Client.Version}}') $server" <<<"$out" ||
        lc_fail "client and server are not the instance's own build ($server): $out"
    grep -q "$COMPOSE_VERSION" <<<"$out" || lc_fail "docker-compose is not Compose $COMPOSE_VERSION: $out"
    # The plugin form: the store's Compose directory in the user's own CLI config.
    cdir=/var/lib/dockyard/artifacts/compose/$COMPOSE_VERSION/bin
    as_carol "mkdir -p ~/.docker && printf '{\"cliPluginsExtraDirs\": [\"$cdir\"]}' >~/.docker/config.json"
    out=$(as_carol 'eval "$(dockyard env dy1)" && docker compose version') || lc_fail "docker compose (plugin) failed: $out"
    echo "$out"
    grep -q "$COMPOSE_VERSION" <<<"$out" || lc_fail "docker compose is not Compose $COMPOSE_VERSION: $out"
    if ((COMPOSE_REAL)); then
        # The real Compose brings a project up on dy1, and only there.
        as_carol "mkdir -p ~/proj && printf 'services:\n  s:\n    image: $LC_IMAGE\n    command: [\"sleep\", \"300\"]\n' >~/proj/compose.yaml"
        out=$(as_carol 'eval "$(dockyard env dy1)" && cd ~/proj && docker compose -p dyc up -d') || lc_fail "docker compose up on dy1 failed: $out"
        echo "$out"
        dk dy1 ps --format '{{.Names}}' | grep -qx 'dyc-s-1' || lc_fail "dy1 does not run the Compose project's container: $(dk dy1 ps)"
        if dk dy2 ps -a --format '{{.Names}}' | grep -q dyc; then lc_fail "dy2 shows dy1's Compose project"; fi
        out=$(as_carol 'eval "$(dockyard env dy1)" && cd ~/proj && docker compose -p dyc down') || lc_fail "docker compose down failed: $out"
        if dk dy1 ps -a --format '{{.Names}}' | grep -q dyc; then lc_fail "docker compose down left containers on dy1"; fi
    else
        grep -q "for unix:///var/lib/dockyard/dy1/docker.sock" <<<"$out" ||
            lc_fail "Compose did not see dy1's DOCKER_HOST: $out"
    fi
    # Not the instance: no conf, no output (exit 1).
    if dy env nosuch >/dev/null 2>&1; then lc_fail "dockyard env nosuch succeeded"; fi
}

# Under --iptables=false every published port goes through docker-proxy, and the
# container sees the proxy's address (the bridge gateway), not the client's
# (dockyard.conf(5) ENGINES, Published ports): on each engine, with a client in the
# upstream namespace.
t15_published_port_through_docker_proxy() {
    local gw=${BRIDGE[dy1]%/*} out
    dk dy1 run -d --name pub -p 18080:8080 "$LC_IMAGE" \
        sh -c 'while true; do nc -l -p 8080 -e netstat -tn; done' >/dev/null
    lc_exec pgrep -f 'docker-proxy.*18080' >/dev/null || lc_fail "no docker-proxy for the published port"
    if lc_exec iptables-save -t nat | grep -q 18080; then lc_fail "a NAT rule for the published port exists"; fi
    reply() {
        ip netns exec "$LC_NETNS" python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 18080), 5)
s.settimeout(5)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode())' "$LC_CT_ADDR"
    }
    lc__wait_for 15 reply || lc_fail "the published port does not answer from upstream"
    out=$(reply)
    echo "$out"
    # busybox netstat shows IPv4 peers of a dual-stack socket as ::ffff:A.B.C.D.
    grep -Eq ":8080 +(::ffff:)?${gw//./\\.}:[0-9]+ +ESTABLISHED" <<<"$out" ||
        lc_fail "the container did not see the bridge gateway $gw as its peer: $out"
    if grep -q "$LC_UP_ADDR" <<<"$out"; then lc_fail "the container saw the client's own address: $out"; fi
    dk dy1 rm -f pub >/dev/null
}

# --- run -------------------------------------------------------------------------------
lc_init
lc_rootfs
lc_boot suite
install_dockyard

lc_test "0. Docker and sysbox installed by dockyard install from the fixture mirror; a rerun downloads nothing" t00_artifacts_from_installer
lc_test "1. three confs, daemon-reload: three units, started concurrently, all active" t01_three_instances
lc_test "1b. a [Daemon] option reaches /run/dy1_docker/daemon.json and dockerd intact" t01b_daemon_options
lc_test "2. each instance: docker run, upstream reached as $LC_CT_ADDR (masqueraded), DNS" t02_run_network_dns
lc_test "3. a container of dy1 is invisible to dy2 and dy3" t03_isolation
lc_test "4. socket root:NAME_docker 0660; dy1_docker member uses dy1 only; others refused" t04_socket_permissions
lc_test "5. stop removes rules and bridge; start restores them exactly once" t05_stop_start
lc_test "6. kill -9 dockerd: systemd restarts it, rules present exactly once" t06_kill9_restart
lc_test "7. Autostart=no: generated, not linked, not started at boot" t07_autostart_no
lc_test "8. reboot: autostart instances come back by themselves and run containers" t08_reboot
lc_test "9. conf removed + daemon-reload + stop: unit gone, no rules, links or /run state" t09_conf_removed
lc_test "10. sysbox units start with the first sysbox instance, stop after the last; watcher chowns" t10_sysbox
lc_test "11. bad confs beside running instances: they keep running, their units stay" t11_bad_conf
lc_test "12. image store per engine and runtime (dockyard.conf(5) IMAGE STORE)" t12_image_store
lc_test "13. a data root with graph-driver data keeps its graph driver and images" t13_prior_graph_driver_kept
lc_test "14. dockyard env: a group member gets the instance's own CLI and Compose" t14_env_and_compose
lc_test "15. a published port goes through docker-proxy; the container sees the gateway, not the client" t15_published_port_through_docker_proxy

lc_log "timings: rootfs ${LC_ROOTFS_SECONDS}s, boot ${LC_BOOT_SECONDS}s, total $(lc__elapsed "$SUITE_T0")s before teardown"
lc_summary
