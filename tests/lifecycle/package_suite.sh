#!/usr/bin/env bash
# Issue 16's package lifecycle tests in a booted host (README.md here for the harness):
# removing the package with instances running must not leave them unable to clean up.
# The .deb's prerm stops every running instance while the helpers that tear it down
# are still installed (packaging/deb/prerm; an upgrade or reinstall stops nothing),
# and afterwards nothing of the instances is left: no rule tagged dockyard:NAME, no
# DOCKYARD-* chain, no NAME_docker0 bridge, no /run/NAME_docker or /run/NAME_containerd,
# both units inactive and not failed, no dockerd.
#
#   sudo bash tests/lifecycle/package_suite.sh     (or: sudo make lifecycle-package)
#
# Docker comes from the cached rootfs, which lays Debian's binaries out at
# /var/lib/dockyard/artifacts/docker/VERSION/bin (no `dockyard install` here).
# Env: LC_FIREWALL=iptables|nftables (the backend, default iptables);
# LC_VERBOSE=1 prints every test's output; LC_KEEP_WORK=1 keeps the working copy;
# LC_DEB=FILE installs that .deb instead of building one.
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"

# Instance networks: inside 172.16.0.0/12 and used by no other suite (read by
# instance_lib.sh's write_conf).
# shellcheck disable=SC2034
declare -A BRIDGE=([pk1]=172.21.190.1/24 [pk2]=172.21.191.1/24)
# shellcheck disable=SC2034
declare -A POOL=([pk1]=172.21.0.0/20 [pk2]=172.21.16.0/20)
INSTANCES=(pk1 pk2)
DEB_IN=/var/cache/dockyard.deb

apt_log() { echo "$LC_WORK/logs/apt-$1.log"; }
apt() {
    local log=$1; shift
    lc_exec env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$(apt_log "$log")" 2>&1 ||
        { tail -n 20 "$(apt_log "$log")"; lc_fail "apt-get $* failed"; }
}

# nothing_left NAME: no trace of the instance's runtime anywhere.
nothing_left() {
    local n=$1 state
    no_rules "$n"
    if link_exists "${n}_docker0"; then lc_fail "$n: bridge ${n}_docker0 left"; fi
    for d in "/run/${n}_docker" "/run/${n}_containerd" "/run/dockyard/$n"; do
        if lc_exec test -e "$d"; then lc_fail "$n: $d left: $(lc_exec ls -la "$d" 2>&1)"; fi
    done
    for u in "${n}_docker.service" "${n}_containerd.service"; do
        state=$(lc_exec systemctl show -p ActiveState --value "$u")
        [[ $state == inactive ]] || lc_fail "$u is $state, not inactive: $(unit_state "$u")"
    done
}

t01_install_and_start() {
    local deb=${LC_DEB:-}
    if [[ -z $deb ]]; then
        "$REPO/packaging/deb/build.sh" >"$LC_WORK/logs/build-deb.log" 2>&1 ||
            { tail -n 20 "$LC_WORK/logs/build-deb.log"; lc_fail "packaging/deb/build.sh failed"; }
        deb=$(sed -n 's/^build-deb: \(.*\.deb\)$/\1/p' "$LC_WORK/logs/build-deb.log")
    fi
    [[ -f $deb ]] || lc_fail "no .deb to install (${deb:-none})"
    lc_copy_in "$deb" "$DEB_IN"
    apt install install -y -q --no-install-recommends "$DEB_IN"
    lc_exec test -x "/var/lib/dockyard/artifacts/docker/$LC_DOCKER_VERSION/bin/dockerd" ||
        lc_fail "the rootfs has no dockerd $LC_DOCKER_VERSION in the store"
    set_firewall_backend
    for n in "${INSTANCES[@]}"; do write_conf "$n" Runtime=runc; done
    lc_exec systemctl daemon-reload
    lc_exec systemctl start "${INSTANCES[@]/%/_docker.service}"
    for n in "${INSTANCES[@]}"; do
        wait_active "${n}_docker.service"
        active "${n}_containerd.service" || lc_fail "${n}_containerd is not active: $(unit_state "${n}_containerd.service")"
        rules_exactly_once "$n"
        link_exists "${n}_docker0" || lc_fail "no bridge ${n}_docker0"
    done
}

t02_reinstall_stops_nothing() {
    # dpkg runs prerm with "upgrade" here, as for any upgrade: nothing may stop.
    local before after
    before=$(for n in "${INSTANCES[@]}"; do main_pid "${n}_docker.service"; done)
    apt reinstall install -y -q --no-install-recommends --reinstall "$DEB_IN"
    if grep -q "stopping the running instances" "$(apt_log reinstall)"; then
        lc_fail "the reinstall stopped instances: $(cat "$(apt_log reinstall)")"
    fi
    after=$(for n in "${INSTANCES[@]}"; do main_pid "${n}_docker.service"; done)
    [[ $after == "$before" ]] || lc_fail "a dockerd was restarted by the reinstall ($before -> $after)"
}

t03_conf_removed_while_running() {
    # pk2's conf goes while it runs: the generator keeps a stop-only unit for it, which
    # the removal must stop as well.
    lc_exec rm -f "$CONF_DIR/pk2.conf"
    lc_exec systemctl daemon-reload
    active pk2_docker.service || lc_fail "pk2 stopped when its conf was removed: $(unit_state pk2_docker.service)"
}

t04_remove_stops_and_cleans_up() {
    apt remove remove -y -q dockyard
    if lc_exec test -e /usr/libexec/dockyard/dockyard-network; then lc_fail "the helpers are still installed"; fi
    # Whatever was still running stops now, after the helpers are gone (a no-op when
    # prerm did its job); then nothing may be left.
    lc_exec systemctl stop "${INSTANCES[@]/%/_docker.service}" 2>/dev/null || true
    for n in "${INSTANCES[@]}"; do nothing_left "$n"; done
    no_dockyard_firewall
    if lc_exec pgrep -x dockerd >/dev/null; then lc_fail "a dockerd still runs: $(lc_exec pgrep -ax dockerd)"; fi
    if lc_exec pgrep -x containerd >/dev/null; then lc_fail "a containerd still runs: $(lc_exec pgrep -ax containerd)"; fi
    # The admin's confs and data stay.
    lc_exec test -f "$CONF_DIR/pk1.conf" || lc_fail "the removal took pk1's conf"
    lc_exec test -d /var/lib/dockyard/pk1/docker || lc_fail "the removal took pk1's data"
    # And the admin was told, naming both instances.
    local log
    log=$(apt_log remove)
    grep -q "stopping the running instances before their helpers are removed:.*pk1_docker.service" "$log" ||
        lc_fail "prerm did not say it stops pk1: $(cat "$log")"
    grep -q "stopping the running instances.*pk2_docker.service" "$log" ||
        lc_fail "prerm did not say it stops pk2 (conf removed): $(cat "$log")"
}

t05_reinstall_brings_it_back() {
    apt again install -y -q --no-install-recommends "$DEB_IN"
    lc_exec systemctl start pk1_docker.service
    wait_active pk1_docker.service
    rules_exactly_once pk1
    lc_exec systemctl stop pk1_docker.service
    nothing_left pk1
}

lc_init
lc_rootfs
lc_boot package

lc_test "1. the .deb installed with apt-get; two instances started (runc, Debian's dockerd)" t01_install_and_start
lc_test "2. reinstalling the package (prerm upgrade) stops and restarts nothing" t02_reinstall_stops_nothing
lc_test "3. an instance whose conf was removed keeps running on its stop-only unit" t03_conf_removed_while_running
lc_test "4. apt-get remove dockyard stops both; no rules, chains, bridges, /run state or daemons left" t04_remove_stops_and_cleans_up
lc_test "5. reinstalled, the instance starts again from its conf and data, and stops cleanly" t05_reinstall_brings_it_back
lc_log "package suite: $(lc__elapsed "$SUITE_T0")s"
lc_summary
