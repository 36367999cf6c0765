#!/usr/bin/env bash
# Tests the Ansible role against a real booted systemd host (the lifecycle
# harness's nspawn container), the way a fleet uses it: ansible-playbook
# runs on the controller and reaches the host over SSH (from the harness's
# upstream network namespace to 192.0.2.2), installs the .deb built from
# this checkout, templates two instances, reloads systemd, starts them; a
# second run must report no changes.
#   bash packaging/ansible/test.sh        (as root; prints "N passed, M failed")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../../tests/lifecycle/lib.sh
source "$repo/tests/lifecycle/lib.sh"

# The role's host needs Python (Ansible modules), python3-apt (the apt
# module; the container is offline, so it cannot fetch it) and sshd.
LC_PACKAGES+=(python3 python3-apt openssh-server)

lc_init
command -v ansible-playbook >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible-core openssh-client >/dev/null
}
"$repo/packaging/deb/build.sh" >"$LC_WORK/logs/build-deb.log" 2>&1 || {
    tail -n 20 "$LC_WORK/logs/build-deb.log"
    lc_die "packaging/deb/build.sh failed"
}
# The file build.sh just wrote (an older build's may sort first by name).
deb=$(sed -n 's/^build-deb: \(.*\.deb\)$/\1/p' "$LC_WORK/logs/build-deb.log")
lc_rootfs
lc_boot ansible

ssh-keygen -q -t ed25519 -N '' -f "$LC_WORK/id_ed25519"
lc_exec install -d -m 0700 /root/.ssh
lc_copy_in "$LC_WORK/id_ed25519.pub" /root/.ssh/authorized_keys
lc_exec systemctl start ssh.service

cat >"$LC_WORK/inventory.ini" <<INV
[dockyard_hosts]
dockyard-test ansible_host=192.0.2.2 ansible_user=root ansible_python_interpreter=/usr/bin/python3 ansible_ssh_private_key_file=$LC_WORK/id_ed25519 ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'
INV
cat >"$LC_WORK/play.yml" <<PLAY
---
- name: Dockyard test host
  hosts: dockyard_hosts
  roles:
    - role: dockyard
      vars:
        dockyard_deb: $deb
        dockyard_instances:
          - name: ans1
            bridge_cidr: 172.22.147.1/24
            pool_base: 172.23.0.0/16
            runtime: runc
            docker_version: "$LC_DOCKER_VERSION"
          - name: ans2
            root: /srv/ans2
            bridge_cidr: 172.22.148.1/24
            pool_base: 172.24.0.0/16
            runtime: runc
            docker_version: "$LC_DOCKER_VERSION"
            autostart: false
            allow_from: [ans1]
            resources:
              MemoryMax: 2G
              TasksMax: 4096
            daemon:
              log-driver: journald
PLAY

playbook() {
    ip netns exec "$LC_NETNS" env LC_ALL=C.UTF-8 ANSIBLE_ROLES_PATH="$here/roles" ANSIBLE_NOCOLOR=1 \
        ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_LOCAL_TEMP="$LC_WORK/ansible-tmp" \
        ansible-playbook -i "$LC_WORK/inventory.ini" "$LC_WORK/play.yml" "$@"
}

recap_changed() { sed -n 's/.*changed=\([0-9]*\).*/\1/p' "$1" | tail -n1; }

t_first_run() {
    playbook >"$LC_WORK/logs/run1.log" 2>&1 || { tail -n 30 "$LC_WORK/logs/run1.log"; lc_fail "first ansible-playbook run failed"; }
    local changed
    changed=$(recap_changed "$LC_WORK/logs/run1.log")
    [[ ${changed:-0} -gt 0 ]] || lc_fail "first run reported no changes"
    echo "first run: changed=$changed"
}

t_package_and_units() {
    lc_exec dpkg -s dockyard | grep '^Status: install ok installed' >/dev/null || lc_fail "package not installed"
    for n in ans1 ans2; do
        lc_exec systemctl cat "${n}_docker.service" >/dev/null || lc_fail "${n}_docker.service was not generated"
        [[ $(lc_exec systemctl is-active "${n}_docker.service") == active ]] || lc_fail "${n}_docker.service is not active"
    done
    lc_exec grep -qx 'log-driver="journald"' /etc/dockyard/instances.d/ans2.conf || lc_fail "[Daemon] option not templated"
    lc_exec grep -qx 'AllowFrom=ans1' /etc/dockyard/instances.d/ans2.conf || lc_fail "allow_from not templated as [Network] AllowFrom="
    lc_exec grep -qx 'MemoryMax=2G' /etc/dockyard/instances.d/ans2.conf || lc_fail "resources not templated as [Resources]"
    [[ $(lc_exec systemctl show -P TasksMax dockyard-ans2.slice) == 4096 ]] || lc_fail "[Resources] TasksMax= did not reach dockyard-ans2.slice"
    [[ $(lc_exec readlink /run/systemd/generator/multi-user.target.wants/ans1_docker.service) == ../ans1_docker.service ]] ||
        lc_fail "ans1 (autostart) is not wanted by multi-user.target"
    if lc_exec test -e /run/systemd/generator/multi-user.target.wants/ans2_docker.service; then
        lc_fail "ans2 has autostart: false but is wanted at boot"
    fi
    lc_docker /var/lib/dockyard/ans1/docker.sock version --format '{{.Server.Version}}' | grep . >/dev/null || lc_fail "ans1's dockerd does not answer"
}

t_second_run_changes_nothing() {
    playbook >"$LC_WORK/logs/run2.log" 2>&1 || { tail -n 30 "$LC_WORK/logs/run2.log"; lc_fail "second ansible-playbook run failed"; }
    local changed
    changed=$(recap_changed "$LC_WORK/logs/run2.log")
    [[ $changed == 0 ]] || { grep -E '^changed:' "$LC_WORK/logs/run2.log" || true; lc_fail "second run reported changed=$changed, expected 0"; }
}

t_bad_instance_is_refused_before_changes() {
    sed -i 's/name: ans2/name: Ans-2/' "$LC_WORK/play.yml"
    if playbook >"$LC_WORK/logs/run3.log" 2>&1; then lc_fail "an invalid instance name was accepted"; fi
    grep -q 'name must be a' "$LC_WORK/logs/run3.log" || lc_fail "the refusal does not say why"
    if lc_exec test -e /etc/dockyard/instances.d/Ans-2.conf; then lc_fail "a conf was written for the invalid name"; fi
}

lc_test "role: first run installs the .deb, writes confs, starts instances" t_first_run
lc_test "role: package installed, units generated and active, autostart honoured" t_package_and_units
lc_test "role: second run is idempotent (changed=0)" t_second_run_changes_nothing
lc_test "role: an invalid instance is refused before anything changes" t_bad_instance_is_refused_before_changes
lc_summary
