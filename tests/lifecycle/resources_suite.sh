#!/usr/bin/env bash
# Issue 14's lifecycle suite: [Resources] limit a whole instance, its dockerd, containerd,
# shims and containers, through the generated dockyard-NAME.slice; `dockyard status`
# reports the slice's figures; set-property, drop-ins and daemon-reload behave as
# dockyard.conf(5) RESOURCES says. Same harness as cli_suite.sh (booted systemd, real
# dockerd 20.10 from the rootfs, Dockyard installed with `make install DESTDIR=`).
#
#   sudo bash tests/lifecycle/resources_suite.sh      (or: sudo make lifecycle-resources)
#
# Two instances: rl with limits, rf without. What is checked:
#   1. placement: both daemons of rl, the shim and a container's processes are in
#      dockyard.slice/dockyard-rl.slice (the container in a docker-ID.scope: dockerd's
#      systemd cgroup driver), the slice carries the conf's limits;
#   2. `status --json` reports the slice's live figures, also without root, and its CPU
#      time grows with a busy container; the text line has them too;
#   3. set-property and a drop-in win over the generated slice, also after daemon-reload;
#   4. daemon-reload with a changed limit in the conf applies it to the running slice;
#   5-7. enforcement (needs the memory, pids and cpu controllers in the booted host's
#      cgroup v2): a container allocating beyond MemoryMax= is OOM-killed while rf's keeps
#      running; a fork loop stops at TasksMax= while rf still starts containers; CPUQuota=
#      holds within 20% under a busy loop, measured from the slice's own cpu.stat.
# On a host whose cgroup v2 has none of those controllers (this CI's: a hybrid cgroup v1
# host, tests/lifecycle/README.md), 5-7 print "skip - …" with the reason and are not
# counted; they run wherever the controllers exist.
# Env: LC_VERBOSE=1, LC_KEEP_WORK=1, LC_INSTALL_NO_BUILD=1 (as cli_suite.sh).
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"

declare -A BRIDGE=([rl]=172.20.41.1/24 [rf]=172.20.42.1/24)
declare -A POOL=([rl]=172.24.64.0/18 [rf]=172.24.128.0/18)
SLICE_DIR=/sys/fs/cgroup/dockyard.slice/dockyard-rl.slice
# rl's limits. TasksMax counts dockerd's, containerd's and the shims' threads too (about
# 60 idle on this engine), so it leaves room for them and a few containers.
MEM_MAX=64M
MEM_MAX_BYTES=67108864
TASKS_MAX=160
CPU_QUOTA=50

# --- install (as cli_suite.sh: make install into the working copy) --------------------
install_dockyard() {
    local -a make_flags=()
    [[ ${LC_INSTALL_NO_BUILD:-0} == 1 ]] && make_flags=(-o build)
    make -s -C "$REPO" "${make_flags[@]}" install DESTDIR="$LC_ROOT" PREFIX=/usr >/dev/null
    lc_exec systemctl daemon-reload
}

# --- helpers -----------------------------------------------------------------------------
# cgroup_of PID: its cgroup v2 path ("0::/a/b" -> /a/b).
cgroup_of() { lc_exec sed -n 's/^0:://p' "/proc/$1/cgroup"; }
# status_json NAME [RUNUSER]: `dockyard status NAME --json`, as root or as that user.
status_json() {
    if [[ -n ${2:-} ]]; then
        lc_exec timeout 60 runuser -u "$2" -- dockyard status "$1" --json </dev/null
    else
        dy status "$1" --json
    fi
}
# jq_py JSON EXPR: EXPR evaluated on the parsed JSON as `j` (python3, no jq here).
jq_py() { python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"; }
# usage_usec: the slice's own CPU time.
usage_usec() { lc_exec awk '$1 == "usage_usec" {print $2}' "$SLICE_DIR/cpu.stat"; }
# has_controllers NAME...: rl's slice has these controllers (its parent passes them down,
# so their files, memory.max and the like, exist in the slice).
has_controllers() {
    local c have
    have=$(lc_exec cat "$SLICE_DIR/cgroup.controllers" 2>/dev/null || true)
    for c in "$@"; do
        [[ " $have " == *" $c "* ]] || return 1
    done
}
# enforcing LABEL FUNC CONTROLLERS...: lc_test when the controllers exist, else a skip line.
enforcing() {
    local label=$1 func=$2; shift 2
    if has_controllers "$@"; then
        lc_test "$label" "$func"
    else
        printf 'skip - %s: the booted host has no %s controller in its cgroup v2 (root offers: %s)\n' \
            "$label" "$*" "$(lc_exec cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null | grep . || echo none)"
    fi
}

# --- tests -----------------------------------------------------------------------------
t01_placement() {
    write_conf rl 'Runtime=runc' '[Resources]' "MemoryMax=$MEM_MAX" 'MemorySwapMax=0' \
        "TasksMax=$TASKS_MAX" "CPUQuota=$CPU_QUOTA%" 'CPUWeight=50'
    write_conf rf 'Runtime=runc'
    lc_exec dockyard check >/dev/null || lc_fail "dockyard check refuses the confs: $(lc_exec dockyard check 2>&1)"
    lc_exec systemctl daemon-reload
    lc_exec timeout 180 systemctl start rl_docker.service rf_docker.service ||
        lc_fail "rl and rf do not start: $(unit_state rl_docker.service; unit_state rf_docker.service)"
    wait_active rl_docker.service 120
    wait_active rf_docker.service 120
    local p unit cg
    for unit in rl_docker.service rl_containerd.service; do
        p=$(main_pid "$unit")
        cg=$(cgroup_of "$p")
        [[ $cg == "/dockyard.slice/dockyard-rl.slice/$unit" ]] || lc_fail "$unit runs in $cg, not in dockyard-rl.slice"
    done
    [[ $(lc_exec systemctl show -P Slice rf_containerd.service) == dockyard-rf.slice ]] || lc_fail "rf_containerd is not in dockyard-rf.slice"
    [[ $(lc_exec systemctl show -P MemoryMax dockyard-rl.slice) == "$MEM_MAX_BYTES" ]] ||
        lc_fail "dockyard-rl.slice MemoryMax=$(lc_exec systemctl show -P MemoryMax dockyard-rl.slice), not $MEM_MAX_BYTES"
    [[ $(lc_exec systemctl show -P TasksMax dockyard-rl.slice) == "$TASKS_MAX" ]] || lc_fail "dockyard-rl.slice TasksMax not $TASKS_MAX"
    [[ $(lc_exec systemctl show -P CPUQuotaPerSecUSec dockyard-rl.slice) == 500ms ]] || lc_fail "dockyard-rl.slice CPUQuota not $CPU_QUOTA%"
    [[ $(lc_exec systemctl show -P MemoryMax dockyard-rf.slice) == infinity ]] || lc_fail "rf got a memory limit"
    lc_image "$(sock rl)"
    lc_image "$(sock rf)"
    dk rl run -d --name sleeper "$LC_IMAGE" sleep 3600 >/dev/null
    dk rf run -d --name sleeper "$LC_IMAGE" sleep 3600 >/dev/null
    local id pid shim
    id=$(dk rl inspect -f '{{.Id}}' sleeper)
    pid=$(dk rl inspect -f '{{.State.Pid}}' sleeper)
    cg=$(cgroup_of "$pid")
    [[ $cg == "/dockyard.slice/dockyard-rl.slice/docker-$id.scope" ]] || lc_fail "rl's container runs in $cg"
    shim=$(lc_exec ps -o ppid= -p "$pid" | tr -d ' ')
    cg=$(cgroup_of "$shim")
    [[ $cg == /dockyard.slice/dockyard-rl.slice/* ]] || lc_fail "rl's shim (pid $shim) runs in $cg, outside the slice"
    echo "rl: daemons, shim ($cg) and container in dockyard-rl.slice"
}

t02_status_live() {
    local json text before after cg
    json=$(status_json rl) || lc_fail "status rl --json failed: $json"
    cg=$(jq_py "$json" 'j[0]["resources"]["cgroup"]')
    [[ $cg == "$SLICE_DIR" ]] || lc_fail "status names cgroup $cg"
    [[ $(jq_py "$json" 'j[0]["resources"]["present"]') == True ]] || lc_fail "status says the slice is absent: $json"
    before=$(jq_py "$json" 'j[0]["resources"]["cpu"]["usage_usec"]')
    [[ $before =~ ^[0-9]+$ ]] || lc_fail "no cpu.usage_usec in status: $json"
    # Not `timeout` as the container's command: busybox's execs the loop as PID 1, which
    # ignores the SIGTERM; under a shell the loop is PID 2.
    dk rl run --rm "$LC_IMAGE" sh -c 'timeout 2 sh -c "while :; do :; done"; true' >/dev/null 2>&1
    json=$(status_json rl nobody) || lc_fail "status rl --json as nobody failed: $json"
    after=$(jq_py "$json" 'j[0]["resources"]["cpu"]["usage_usec"]')
    ((after - before >= 500000)) || lc_fail "the slice's CPU time grew by $((after - before)) us over a 2 s busy loop"
    # The figures are the kernel's own: compare with the file read right after.
    ((after <= $(usage_usec))) || lc_fail "status's usage_usec $after is ahead of cpu.stat"
    if has_controllers memory pids; then
        [[ $(jq_py "$json" 'j[0]["resources"]["memory"]["max"]') == "$MEM_MAX_BYTES" ]] || lc_fail "memory.max in status: $json"
        [[ $(jq_py "$json" 'j[0]["resources"]["tasks"]["max"]') == "$TASKS_MAX" ]] || lc_fail "tasks.max in status: $json"
        (($(jq_py "$json" 'j[0]["resources"]["memory"]["current"]') > 0)) || lc_fail "memory.current is 0"
    else
        # No controller: no number, and the reason, never a zero.
        [[ $(jq_py "$json" 'j[0]["resources"]["memory"]["current"]') == None ]] || lc_fail "memory.current without a memory controller: $json"
        jq_py "$json" 'j[0]["resources"]["unread"]' | grep -q 'memory.current: no such file' || lc_fail "unread does not name memory.current: $json"
    fi
    text=$(dy status rl)
    local quota='[^;]+'
    has_controllers cpu && quota=$CPU_QUOTA%
    # The table's RESOURCES column.
    grep -qE "^rl .* memory [^;]+/[^;]+; cpu [0-9.]+s/$quota; tasks [^ ]+/[^ ]+ " <<<"$text" || lc_fail "no resources in rl's status row: $text"
    echo "$text"
}

t03_live_changes_win() {
    lc_exec systemctl set-property dockyard-rl.slice TasksMax=150
    [[ $(lc_exec systemctl show -P TasksMax dockyard-rl.slice) == 150 ]] || lc_fail "set-property TasksMax=150 not in effect"
    lc_exec test -d /etc/systemd/system.control/dockyard-rl.slice.d || lc_fail "set-property wrote no drop-in in /etc"
    lc_exec systemctl daemon-reload
    [[ $(lc_exec systemctl show -P TasksMax dockyard-rl.slice) == 150 ]] || lc_fail "daemon-reload undid set-property"
    if has_controllers pids; then
        [[ $(lc_exec cat "$SLICE_DIR/pids.max") == 150 ]] || lc_fail "pids.max is not 150"
    fi
    # What `systemctl edit` writes: a drop-in in /etc/systemd/system.
    printf '[Slice]\nCPUWeight=30\n' | lc_exec sh -c 'mkdir -p /etc/systemd/system/dockyard-rl.slice.d && cat >/etc/systemd/system/dockyard-rl.slice.d/override.conf'
    lc_exec systemctl daemon-reload
    [[ $(lc_exec systemctl show -P CPUWeight dockyard-rl.slice) == 30 ]] || lc_fail "the drop-in's CPUWeight=30 lost to the generated slice"
    lc_exec systemctl revert dockyard-rl.slice >/dev/null 2>&1
    lc_exec systemctl daemon-reload
    [[ $(lc_exec systemctl show -P TasksMax dockyard-rl.slice) == "$TASKS_MAX" ]] || lc_fail "after revert TasksMax is not the conf's $TASKS_MAX"
    [[ $(lc_exec systemctl show -P CPUWeight dockyard-rl.slice) == 50 ]] || lc_fail "after revert CPUWeight is not the conf's 50"
    active rl_docker.service || lc_fail "rl stopped"
}

t04_reload_applies_conf() {
    local pid
    pid=$(main_pid rl_docker.service)
    lc_exec sed -i "s/^TasksMax=.*/TasksMax=170/" "$CONF_DIR/rl.conf"
    lc_exec systemctl daemon-reload
    [[ $(lc_exec systemctl show -P TasksMax dockyard-rl.slice) == 170 ]] || lc_fail "daemon-reload did not load TasksMax=170"
    if has_controllers pids; then
        [[ $(lc_exec cat "$SLICE_DIR/pids.max") == 170 ]] || lc_fail "pids.max of the running slice is not 170 after daemon-reload"
    fi
    [[ $(main_pid rl_docker.service) == "$pid" ]] || lc_fail "daemon-reload restarted rl's dockerd"
    lc_exec sed -i "s/^TasksMax=.*/TasksMax=$TASKS_MAX/" "$CONF_DIR/rl.conf"
    lc_exec systemctl daemon-reload
}

t05_oom_inside() {
    local rf_pid rc oom
    rf_pid=$(dk rf inspect -f '{{.State.Pid}}' sleeper)
    # dd's buffer is one 128 MiB block: twice rl's whole MemoryMax, touched by the read.
    rc=0
    dk rl run --name hog "$LC_IMAGE" dd if=/dev/zero of=/dev/null bs=128M count=1 >/dev/null 2>&1 || rc=$?
    oom=$(dk rl inspect -f '{{.State.OOMKilled}}' hog)
    ((rc == 137)) && [[ $oom == true ]] || lc_fail "the hog exited $rc, OOMKilled=$oom"
    dk rl rm hog >/dev/null
    [[ $(lc_exec cat "$SLICE_DIR/memory.events" | awk '$1 == "oom_kill" {print $2}') -ge 1 ]] || lc_fail "no oom_kill counted in rl's slice"
    [[ $(dk rf inspect -f '{{.State.Pid}} {{.State.Running}}' sleeper) == "$rf_pid true" ]] || lc_fail "rf's container did not keep running"
    active rl_docker.service || lc_fail "rl's dockerd died with its container"
}

t06_fork_loop() {
    local out cur
    out=$(dk rl run --rm "$LC_IMAGE" sh -c 'i=0; while [ $i -lt 400 ]; do sleep 20 & i=$((i+1)); done; echo started; wait' 2>&1 || true)
    grep -qiE "can't fork|resource temporarily unavailable" <<<"$out" || lc_fail "the fork loop never hit a limit: $(tail -n 3 <<<"$out")"
    cur=$(lc_exec cat "$SLICE_DIR/pids.events" | awk '$1 == "max" {print $2}')
    ((cur >= 1)) || lc_fail "pids.events counts no refusal"
    dk rf run --rm "$LC_IMAGE" true || lc_fail "rf cannot start a container while rl is at its task limit"
}

t07_cpu_quota() {
    local t0 t1 u0 u1 ratio
    dk rl run -d --name busy "$LC_IMAGE" sh -c 'while :; do :; done & while :; do :; done' >/dev/null
    sleep 1
    u0=$(usage_usec) t0=$(date +%s%N)
    sleep 5
    u1=$(usage_usec) t1=$(date +%s%N)
    dk rl rm -f busy >/dev/null
    ratio=$(awk -v du="$((u1 - u0))" -v dt="$(((t1 - t0) / 1000))" 'BEGIN { printf "%.3f", du / dt }')
    echo "rl used $ratio CPUs under CPUQuota=$CPU_QUOTA%"
    awk -v r="$ratio" -v q="$CPU_QUOTA" 'BEGIN { exit !(r >= q / 100 * 0.8 && r <= q / 100 * 1.2) }' ||
        lc_fail "CPU use $ratio is not within 20% of $CPU_QUOTA%"
}

# --- run -------------------------------------------------------------------------------
lc_init
lc_rootfs
lc_boot resources
install_dockyard

lc_test "1. rl's dockerd, containerd, shim and container in dockyard-rl.slice with the conf's limits" t01_placement
lc_test "2. status --json: the slice's live figures, also as nobody; CPU time grows with a busy container" t02_status_live
lc_test "3. set-property and a drop-in win over the generated slice, also after daemon-reload; revert restores the conf's" t03_live_changes_win
lc_test "4. daemon-reload with a changed TasksMax= applies it to the running slice, dockerd not restarted" t04_reload_applies_conf
enforcing "5. a container beyond MemoryMax= is OOM-killed inside rl; rf's container keeps running" t05_oom_inside memory
enforcing "6. a fork loop stops at TasksMax=; rf still starts containers" t06_fork_loop pids
enforcing "7. CPUQuota=$CPU_QUOTA% holds within 20% under a busy loop (the slice's cpu.stat)" t07_cpu_quota cpu

lc_log "timings: rootfs ${LC_ROOTFS_SECONDS}s, boot ${LC_BOOT_SECONDS}s, total $(lc__elapsed "$SUITE_T0")s before teardown"
lc_summary
