#!/usr/bin/env bash
# Package upgrade with an instance running (issue 6): the previous build's
# .deb is installed in a booted host, an instance is started with a
# container in it, then the .deb of this checkout is installed over it.
# The instance must keep running: same dockerd, same container, and the new
# generator's units in place for its next restart.
#
#   sudo bash tests/lifecycle/upgrade.sh        (part of: sudo make lifecycle)
#
# Env: DOCKYARD_UPGRADE_FROM=REV builds the old package from that git
# revision (default HEAD~1); the old build's cargo target directory is kept
# under /var/cache/dockyard-tests to make reruns quick. LC_FIREWALL=iptables|nftables:
# the host's [Firewall] Backend=, set before the old package starts the instance (a
# package from before the nftables backend ignores it and writes iptables rules, which
# the restart on the new package must then move).
set -euo pipefail
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=instance_lib.sh
source "$HERE/instance_lib.sh"

NAME=up1
UNIT=${NAME}_docker.service
SOCK=/var/lib/dockyard/$NAME/docker.sock

lc_init
if from_rev=$(git -C "$REPO" rev-parse --verify -q "${DOCKYARD_UPGRADE_FROM:-HEAD~1}^{commit}"); then
    old_src=$LC_WORK/old-src
    git -C "$REPO" worktree add --detach -q "$old_src" "$from_rev"
    remove_worktree() { git -C "$REPO" worktree remove --force "$old_src" 2>/dev/null || true; git -C "$REPO" worktree prune; }
    trap 'remove_worktree; lc_cleanup' EXIT
    lc_log "building the old package from $(git -C "$REPO" log -1 --format='%h %s' "$from_rev")"
    CARGO_TARGET_DIR=$LC_CACHE/upgrade-old-target "$old_src/packaging/deb/build.sh" >"$LC_WORK/logs/build-old.log" 2>&1 ||
        { tail -n 20 "$LC_WORK/logs/build-old.log"; lc_die "building the old .deb failed"; }
else
    # A shallow clone has no previous commit: the upgrade path (maintainer
    # scripts, a running instance) is still tested, from this tree packaged
    # as an older version ('~' sorts before any release).
    lc_log "no ${DOCKYARD_UPGRADE_FROM:-HEAD~1} in this clone (shallow?): upgrading from this tree packaged as an older version"
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)
    DOCKYARD_DEB_VERSION="$version~previous-1" "$REPO/packaging/deb/build.sh" >"$LC_WORK/logs/build-old.log" 2>&1 ||
        { tail -n 20 "$LC_WORK/logs/build-old.log"; lc_die "building the old .deb failed"; }
    # The new build below writes another file name; keep this one apart.
    mv "$(sed -n 's/^build-deb: \(.*\.deb\)$/\1/p' "$LC_WORK/logs/build-old.log")" "$LC_WORK/dockyard-previous.deb"
    printf 'build-deb: %s\n' "$LC_WORK/dockyard-previous.deb" >>"$LC_WORK/logs/build-old.log"
fi
"$REPO/packaging/deb/build.sh" >"$LC_WORK/logs/build-new.log" 2>&1 ||
    { tail -n 20 "$LC_WORK/logs/build-new.log"; lc_die "building the new .deb failed"; }
old_deb=$(sed -n 's/^build-deb: \(.*\.deb\)$/\1/p' "$LC_WORK/logs/build-old.log" | tail -n1)
new_deb=$(sed -n 's/^build-deb: \(.*\.deb\)$/\1/p' "$LC_WORK/logs/build-new.log")
old_version=$(dpkg-deb -f "$old_deb" Version)
new_version=$(dpkg-deb -f "$new_deb" Version)
dpkg --compare-versions "$new_version" gt "$old_version" ||
    lc_die "the new package ($new_version) does not upgrade the old one ($old_version)"
lc_log "upgrade $old_version -> $new_version"

lc_rootfs
lc_boot upgrade

apt_install() {
    lc_copy_in "$1" "/var/cache/$(basename "$1")"
    lc_exec env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "/var/cache/$(basename "$1")"
}

t_old_package_runs_an_instance() {
    apt_install "$old_deb" >/dev/null
    set_firewall_backend
    lc_exec sh -c "mkdir -p /etc/dockyard/instances.d && cat >/etc/dockyard/instances.d/$NAME.conf" <<CONF
[Instance]
BridgeCIDR=172.22.190.1/24
PoolBase=172.29.0.0/16
Runtime=runc
DockerVersion=$LC_DOCKER_VERSION
CONF
    lc_exec systemctl daemon-reload
    lc_exec systemctl start "$UNIT"
    [[ $(lc_exec systemctl is-active "$UNIT") == active ]] || lc_fail "$UNIT is not active on the old package"
    lc_image "$SOCK" >/dev/null
    lc_docker "$SOCK" run -d --name keeper "$LC_IMAGE" sleep 3600 >/dev/null
}

t_upgrade_keeps_instance_running() {
    local pid_before pid_after container_before container_after
    pid_before=$(lc_exec systemctl show -p MainPID --value "$UNIT")
    container_before=$(lc_docker "$SOCK" inspect -f '{{.State.Pid}}' keeper)
    apt_install "$new_deb" >"$LC_WORK/logs/apt-upgrade.log" 2>&1 ||
        { tail -n 20 "$LC_WORK/logs/apt-upgrade.log"; lc_fail "apt-get install of the new package failed"; }
    [[ $(lc_exec dpkg-query -W -f '${Version}' dockyard) == "$new_version" ]] || lc_fail "dpkg does not report $new_version"
    [[ $(lc_exec systemctl is-active "$UNIT") == active ]] || lc_fail "$UNIT is not active after the upgrade"
    pid_after=$(lc_exec systemctl show -p MainPID --value "$UNIT")
    [[ $pid_after == "$pid_before" ]] || lc_fail "dockerd was restarted by the upgrade (pid $pid_before -> $pid_after)"
    container_after=$(lc_docker "$SOCK" inspect -f '{{.State.Pid}}' keeper)
    [[ $container_after == "$container_before" && $container_after != 0 ]] ||
        lc_fail "the container did not survive the upgrade (pid $container_before -> $container_after)"
}

t_units_regenerated_by_new_generator() {
    # postinst reloaded systemd: nothing is waiting for a daemon-reload, and the
    # unit on disk is exactly what the new generator writes.
    [[ $(lc_exec systemctl show -p NeedDaemonReload --value "$UNIT") == no ]] || lc_fail "systemd still needs a daemon-reload"
    local expected
    # shellcheck disable=SC2016  # expanded by the inner sh
    expected=$(lc_exec sh -c 'd=$(mktemp -d) && /usr/lib/systemd/system-generators/dockyard-generator "$d" 2>/dev/null; cat "$d/$1"; rm -rf "$d"' sh "$UNIT")
    [[ -n $expected ]] || lc_fail "the new generator produced no $UNIT"
    [[ "$(lc_exec cat "/run/systemd/generator/$UNIT")" == "$expected" ]] || lc_fail "the unit in /run/systemd/generator is not the new generator's"
}

t_restart_on_new_package() {
    lc_exec systemctl restart "$UNIT"
    [[ $(lc_exec systemctl is-active "$UNIT") == active ]] || lc_fail "$UNIT does not restart on the new package"
    rules_exactly_once "$NAME"
    lc_docker "$SOCK" run --rm "$LC_IMAGE" echo upgraded | grep -x upgraded >/dev/null || lc_fail "docker run fails after the restart"
}

lc_test "upgrade: the previous build's package runs an instance with a container" t_old_package_runs_an_instance
lc_test "upgrade: installing this build keeps dockerd and its container running" t_upgrade_keeps_instance_running
lc_test "upgrade: the new generator's unit is in place, no reload pending" t_units_regenerated_by_new_generator
lc_test "upgrade: the instance restarts cleanly on the new package, its rules exactly once ($LC_FIREWALL)" t_restart_on_new_package
lc_summary
