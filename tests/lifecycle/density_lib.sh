# shellcheck shell=bash
# Helpers of the density suite and benchmark (density_suite.sh, density_bench.sh): many
# instances at once. Source after lib.sh and instance_lib.sh.

# density_names N: dn1 … dnN, one per line.
density_names() { local i; for ((i = 1; i <= $1; i++)); do echo "dn$i"; done; }

# install_deb_only: the .deb built from this checkout (or LC_DEB), installed with apt-get
# in the booted host; Docker is the rootfs's pre-laid Debian binaries, so no mirror.
install_deb_only() {
    install_deb || return 1
    lc_exec test -x "/var/lib/dockyard/artifacts/docker/$LC_DOCKER_VERSION/bin/dockerd" ||
        { lc_die "the rootfs has no dockerd $LC_DOCKER_VERSION in the store"; return 1; }
    # The backend the firewall checks (instance_lib.sh) look in.
    set_firewall_backend
}

# host_sock NAME: instance NAME's API socket as the host reaches it (through the
# container leader's root, so /run and bind mounts are seen as inside).
host_sock() { echo "/proc/$(lc_leader_pid)/root$(sock "$1")"; }

# density_ping ARGS...: tests/lifecycle/density_ping.py (GET /_ping on unix sockets).
density_ping() { python3 "$HERE/density_ping.py" "$@"; }

# all_answer NAME...: every instance's API answers GET /_ping with OK.
all_answer() {
    local n socks=() out
    for n in "$@"; do socks+=("$(host_sock "$n")"); done
    out=$(density_ping check "${socks[@]}" 2>&1) || lc_fail "not every API answers: $out"
}

all_active() {
    local n
    for n in "$@"; do active "${n}_docker.service" || return 1; done
}
not_active() {
    local n
    for n in "$@"; do active "${n}_docker.service" || printf '%s ' "$n"; done
}

# none_restarted NAME...: no instance's dockerd or containerd was restarted (NRestarts=0
# since boot). Restart=always would bring a failed start back and hide it from
# all_active; the journal of the first one that restarted says why.
none_restarted() {
    local n units=() restarted
    for n in "$@"; do units+=("${n}_docker.service" "${n}_containerd.service"); done
    # One block per unit, blank-line separated, its properties in systemd's order.
    restarted=$(lc_exec systemctl show -p Id -p NRestarts "${units[@]}" |
        awk -v RS= '{ id = ""; r = 0
            for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "Id") id = kv[2]; if (kv[1] == "NRestarts") r = kv[2] }
            if (r != 0) printf "%s (%s) ", id, r }')
    [[ -z $restarted ]] ||
        lc_fail "restarted: $restarted: $(unit_state "${restarted%% *}")"
}

# in_batches K FUNCTION ARG...: FUNCTION ARG for every ARG, K at a time; fails (naming
# the ARGs) if any call failed.
in_batches() {
    local k=$1 fn=$2 pids=() names=() failed=() i a
    shift 2
    for a in "$@"; do
        "$fn" "$a" >"$LC_WORK/logs/batch-$fn-$a.log" 2>&1 &
        pids+=($!)
        names+=("$a")
        if ((${#pids[@]} == k)); then
            for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
            pids=() names=()
        fi
    done
    for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
    ((${#failed[@]} == 0)) || lc_fail "$fn failed for: ${failed[*]} ($(tail -n 3 "$LC_WORK/logs/batch-$fn-${failed[0]}.log" | tr '\n' ' '))"
}

# container_in NAME: the busybox image in instance NAME, and a container run to the end.
container_in() {
    lc_image "$(sock "$1")" || return 1
    local out
    out=$(run_in "$1" echo "hello from $1") || { echo "$out"; return 1; }
    [[ $out == "hello from $1" ]] || { echo "unexpected output: $out"; return 1; }
}

# confs_disjoint N: exactly N confs, and no two of their networks (bridge network or
# pool, of any two instances or of one) overlap.
confs_disjoint() {
    local text
    # shellcheck disable=SC2016  # expanded by the inner sh
    text=$(lc_exec sh -c 'for f in "$1"/*.conf; do echo "== $f"; cat "$f"; done' sh "$CONF_DIR")
    python3 - "$1" "$text" <<'PY' || lc_fail "the confs' networks are not what they should be"
import ipaddress, sys
want, text = int(sys.argv[1]), sys.argv[2]
nets, conf = [], None
for line in text.splitlines():
    if line.startswith("== "):
        conf = line[3:]
    elif line.startswith(("BridgeCIDR=", "PoolBase=")):
        key, value = line.split("=", 1)
        nets.append((ipaddress.ip_network(value, strict=False), f"{key} of {conf}"))
confs = {what.split(" of ")[1] for _, what in nets}
if len(confs) != want or len(nets) != 2 * want:
    sys.exit(f"{len(confs)} confs with {len(nets)} networks, expected {want} and {2 * want}")
nets.sort(key=lambda n: (int(n[0].network_address), -int(n[0].broadcast_address)))
for (a, wa), (b, wb) in zip(nets, nets[1:]):
    if b.network_address <= a.broadcast_address:
        sys.exit(f"{wa} {a} overlaps {wb} {b}")
print(f"{want} confs, {len(nets)} networks, none overlapping")
PY
}

# live_disjoint NAME...: each instance's bridge carries its conf's BridgeCIDR, and no
# two interfaces of the host have overlapping IPv4 networks.
live_disjoint() {
    local addrs text
    addrs=$(lc_exec ip -4 -o addr show)
    # shellcheck disable=SC2016  # expanded by the inner sh
    text=$(lc_exec sh -c 'for f in "$1"/*.conf; do echo "== $f"; cat "$f"; done' sh "$CONF_DIR")
    python3 - "$addrs" "$text" "$@" <<'PY' || lc_fail "the live bridges are not what the confs say"
import ipaddress, sys
addrs, text, names = sys.argv[1], sys.argv[2], sys.argv[3:]
live = {}
for line in addrs.splitlines():
    f = line.split()
    live.setdefault(f[1], []).append(ipaddress.ip_interface(f[3]))
want, conf = {}, None
for line in text.splitlines():
    if line.startswith("== "):
        conf = line[3:].rsplit("/", 1)[1][: -len(".conf")]
    elif line.startswith("BridgeCIDR="):
        want[conf] = ipaddress.ip_interface(line.split("=", 1)[1])
for n in names:
    got = live.get(f"{n}_docker0", [])
    if got != [want[n]]:
        sys.exit(f"{n}_docker0 has {got}, its conf says {want[n]}")
nets = sorted(
    ((i.network, dev) for dev, ifs in live.items() for i in ifs if not i.network.is_loopback),
    key=lambda n: (int(n[0].network_address), -int(n[0].broadcast_address)),
)
for (a, da), (b, db) in zip(nets, nets[1:]):
    if b.network_address <= a.broadcast_address:
        sys.exit(f"{da} {a} overlaps {db} {b}")
print(f"{len(names)} bridges as their confs say; {len(nets)} interface networks, none overlapping")
PY
}

# no_duplicate_lines: no rule of any table appears twice in the whole firewall.
no_duplicate_lines() {
    local dups
    dups=$(lc_exec iptables-save | awk '/^\*/ { t = $1 } /^-A/ { print t, $0 }' | sort | uniq -d)
    [[ -z $dups ]] || lc_fail "firewall lines present twice: $dups"
}
