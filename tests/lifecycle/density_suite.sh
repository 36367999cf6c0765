#!/usr/bin/env bash
# Issue 11's density test in a booted host (README.md here for the harness): DENSITY_N
# instances made with `dockyard new` (no CIDR typed anywhere), started concurrently, a
# container run in each, then a reboot after which every autostart instance answers
# again; at every step each instance's firewall lines are there exactly once and no two
# instances' networks overlap, in the confs or on the live bridges.
#
#   sudo bash tests/lifecycle/density_suite.sh              (or: sudo make lifecycle-density)
#   sudo DENSITY_N=100 bash tests/lifecycle/density_suite.sh
#
# DENSITY_N defaults to 10 for CI (`make check`): 100 instances take about 8 GiB and
# several minutes to start on a 2-core machine; the 100-instance run is part of the
# density benchmark (tests/lifecycle/density_bench.sh, `make bench`).
# Docker comes from the cached rootfs's pre-laid binaries; Dockyard from the .deb.
# Env: LC_VERBOSE=1 prints every test's output; LC_KEEP_WORK=1 keeps the working copy;
# LC_DEB=FILE installs that .deb instead of building one.
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"
# shellcheck source-path=SCRIPTDIR source=density_lib.sh
source "$HERE/density_lib.sh"

N=${DENSITY_N:-10}
[[ $N =~ ^[1-9][0-9]*$ ]] && ((N <= 999)) || { echo "DENSITY_N must be 1 to 999" >&2; exit 2; }
mapfile -t NAMES < <(density_names "$N")

t01_new_concurrently() {
    local n pids=() rc=0 out
    # All at once: the lock in `dockyard new` serialises them.
    for n in "${NAMES[@]}"; do
        lc_exec timeout 600 dockyard new "$n" --runtime runc --docker-version "$LC_DOCKER_VERSION" \
            </dev/null >/dev/null &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    ((rc == 0)) || lc_fail "a concurrent dockyard new failed"
    out=$(dy check 2>&1) || lc_fail "dockyard check failed: $out"
    grep -q "^$N instance unit(s) would be generated; 0 conf(s) would get none; 0 error(s)" <<<"$out" ||
        lc_fail "dockyard check does not accept all $N: $out"
    confs_disjoint "$N"
}

t02_start_concurrently() {
    local n
    lc_exec systemctl daemon-reload
    # One job per unit, all queued at once: systemd starts them in parallel.
    lc_exec timeout $((120 + 6 * N)) systemctl start "${NAMES[@]/%/_docker.service}" ||
        lc_fail "systemctl start of the $N instances failed"
    for n in "${NAMES[@]}"; do
        active "${n}_docker.service" || lc_fail "${n}_docker.service is not active: $(unit_state "${n}_docker.service")"
    done
    all_answer "${NAMES[@]}"
    live_disjoint "${NAMES[@]}"
    none_restarted "${NAMES[@]}"
}

t03_container_in_each() {
    # Ten at a time: each imports the busybox image and runs a container.
    in_batches 10 container_in "${NAMES[@]}"
}

t04_rules_once() {
    local n
    for n in "${NAMES[@]}"; do rules_exactly_once "$n"; done
    no_duplicate_lines
}

t05_reboot_all_back() {
    local n
    lc_reboot
    lc__wait_for $((120 + 6 * N)) all_active "${NAMES[@]}" ||
        lc_fail "not every autostart instance is back after the reboot: $(not_active "${NAMES[@]}")"
    all_answer "${NAMES[@]}"
    # Each came up at its first start of this boot.
    none_restarted "${NAMES[@]}"
    for n in "${NAMES[@]}"; do rules_exactly_once "$n"; done
    no_duplicate_lines
    live_disjoint "${NAMES[@]}"
    # The containers' images are still there: the data roots came back as they were.
    in_batches 10 container_in "${NAMES[@]}"
}

lc_init
lc_rootfs
lc_boot density
install_deb_only

lc_test "1. dockyard new x$N concurrently: check accepts all, no two networks overlap" t01_new_concurrently
lc_test "2. all $N started at once: active, API answers, live bridges disjoint, none restarted" t02_start_concurrently
lc_test "3. a container runs in each of the $N" t03_container_in_each
lc_test "4. each instance's firewall lines exactly once, no line duplicated" t04_rules_once
lc_test "5. after a reboot all $N autostart instances are back at their first start, rules once, containers run" t05_reboot_all_back
lc_log "density suite (N=$N): boot ${LC_BOOT_SECONDS}s, reboot $(lc__state_get reboot.seconds 2>/dev/null || echo ?)s, total $(lc__elapsed "$SUITE_T0")s before teardown"
lc_summary
