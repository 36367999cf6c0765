#!/usr/bin/env bash
# Issue 5's lifecycle tests of the dockyard CLI: new (x3, concurrent) then start, status
# --json against reality, verify, destroy under load, double destroy, nothing left after
# destroy while the other instances keep working, and the last sysbox instance taking the
# shared sysbox state with it. Same harness and install as suite.sh (README.md here).
#
#   sudo bash tests/lifecycle/cli_suite.sh      (or: sudo make lifecycle-cli)
#
# Env: LC_FIREWALL=iptables|nftables (the backend, default iptables);
# LC_VERBOSE=1 prints every test's output; LC_KEEP_WORK=1 keeps the working copy;
# LC_INSTALL_NO_BUILD=1 installs the release binaries already built (make -o build install);
# CLI_SUITE_NEW=0 writes the three confs by hand instead of with `dockyard new` (the
# default uses `dockyard new` when the installed dockyard has it).
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"

NAMES=(ca cb cc)
# `dockyard new` picks inside NEW_RANGE (the lowest free blocks); the hand-written confs (ca, cb, cc
# with CLI_SUITE_NEW=0) stay inside it too, the sysbox instances' outside, so the two
# can never collide.
NEW_RANGE=172.16.0.0/13
# cw sits inside t12's "LAN route" 10.90.0.0/16 (only in the container's own netns).
declare -A BRIDGE=([ca]=172.20.11.1/24 [cb]=172.20.12.1/24 [cc]=172.20.13.1/24
    [sa]=172.28.14.1/24 [sb]=172.28.15.1/24 [ct]=172.28.16.1/24
    [cw]=10.90.1.1/24 [cx]=172.28.17.1/24)
declare -A POOL=([ca]=172.17.0.0/16 [cb]=172.18.0.0/16 [cc]=172.19.0.0/16
    [sa]=172.29.0.0/16 [sb]=172.30.0.0/16 [ct]=172.31.0.0/16
    [cw]=172.26.0.0/16 [cx]=172.25.0.0/16)

# --- helpers (sock, dk, dy, write_conf, rules_exactly_once, ...: instance_lib.sh) ------
# json_check JSON PYTHON-EXPR...: each expression, with `s` the parsed status list and
# `i(name)` one instance's object, must be true.
json_check() {
    local json=$1; shift
    python3 - "$json" "$@" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
def i(name):
    found = [x for x in s if x["name"] == name]
    if not found:
        raise SystemExit(f"no instance {name} in the status")
    return found[0]
bad = [e for e in sys.argv[2:] if not eval(e)]
if bad:
    print("status --json does not satisfy: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}
# Nothing of instance NAME is left: unit, bridge, rules, root, user, group, conf, /run.
nothing_left() {
    local n=$1 ls
    # systemd unloads a unit nothing references at its next garbage collection, not
    # at once: sid's systemd was seen listing it, not-found, for a moment after destroy.
    unit_gone() { [[ -z $(lc_exec systemctl list-units --all --no-legend --plain "${n}_docker.service") ]]; }
    lc__wait_for 10 unit_gone || {
        ls=$(lc_exec systemctl list-units --all --no-legend --plain "${n}_docker.service")
        lc_fail "$n: unit still known 10 s later: $ls
$(lc_exec systemctl show -p LoadState -p ActiveState -p NeedDaemonReload -p SourcePath -p FragmentPath -p RequiredBy -p WantedBy -p ConsistsOf -p TriggeredBy -p Following "${n}_docker.service" 2>&1)
$(lc_exec systemctl list-units --all --no-legend --plain "${n}_*" 2>&1)"
    }
    [[ $(lc_exec systemctl show -p LoadState --value "${n}_docker.service") == not-found ]] ||
        lc_fail "$n: unit still loadable"
    if link_exists "${n}_docker0"; then lc_fail "$n: bridge ${n}_docker0 left"; fi
    no_rules "$n"
    local p
    for p in "/var/lib/dockyard/$n" "$CONF_DIR/$n.conf" "$CONF_DIR/$n.conf.d" "/run/${n}_docker" "/run/dockyard/$n"; do
        if lc_exec test -e "$p"; then lc_fail "$n: $p left"; fi
    done
    if lc_exec getent passwd "${n}_docker" >/dev/null; then lc_fail "$n: user ${n}_docker left"; fi
    if lc_exec getent group "${n}_docker" >/dev/null; then lc_fail "$n: group ${n}_docker left"; fi
    local m
    m=$(lc_exec grep -E " /var/lib/dockyard/${n}[/ ]| /run/${n}_docker[/ ]" /proc/self/mountinfo || true)
    [[ -z $m ]] || lc_fail "$n: mounts left: $m"
}
others_work() {
    local n
    for n in "$@"; do
        active "${n}_docker.service" || lc_fail "$n is not active: $(unit_state "${n}_docker.service")"
        lc_image "$(sock "$n")"
        rules_exactly_once "$n"
        [[ $(run_in "$n" echo "$n works") == "$n works" ]] || lc_fail "$n runs no container"
    done
}

# duplicate_a_rule NAME: one of NAME's rules written a second time, as the backend in use
# writes it (iptables: its jump from POSTROUTING; nftables: its first accept in
# FORWARD, with nft); prints the command that removes the copy again.
duplicate_a_rule() {
    local n=$1 line handle
    case $LC_FIREWALL in
        iptables)
            lc_exec iptables -t nat -I POSTROUTING 1 -m comment --comment "dockyard:$n" -j "DOCKYARD-$n"
            echo "iptables -t nat -D POSTROUTING -m comment --comment dockyard:$n -j DOCKYARD-$n"
            ;;
        nftables)
            line=$(lc_exec nft list chain ip filter FORWARD | grep -F "comment \"dockyard:$n\"" | grep accept | head -n 1)
            [[ -n $line ]] || { lc_fail "$n: no accept of its in ip filter FORWARD"; return 1; }
            handle=$(lc_exec nft -e -a insert rule ip filter FORWARD "$line" | sed -n 's/.*# handle \([0-9]*\)$/\1/p')
            [[ -n $handle ]] || { lc_fail "$n: nft printed no handle for the copy of: $line"; return 1; }
            echo "nft delete rule ip filter FORWARD handle $handle"
            ;;
    esac
}
# remove_bridge_masquerade NAME: NAME's masquerade of its bridge network removed;
# prints the command that puts it back.
remove_bridge_masquerade() {
    local n=$1 masq handle
    case $LC_FIREWALL in
        iptables)
            masq=$(lc_exec iptables-save -t nat | grep -E -- "-A DOCKYARD-$n -s [0-9./]+ ! -o ${n}_docker0 ")
            lc_exec sh -c "iptables -t nat -D ${masq#-A }"
            echo "iptables -t nat -A ${masq#-A }"
            ;;
        nftables)
            masq=$(lc_exec nft -a list chain inet "dockyard-$n" postrouting | grep -E "ip saddr [0-9./]+ oifname != \"${n}_docker0\" .*masquerade" | sed 's/^[[:space:]]*//')
            handle=${masq##*# handle }
            [[ $handle =~ ^[0-9]+$ ]] || { lc_fail "$n: no masquerade of its bridge in table inet dockyard-$n: $masq"; return 1; }
            lc_exec nft delete rule inet "dockyard-$n" postrouting handle "$handle"
            printf 'nft add rule inet %q postrouting %q\n' "dockyard-$n" "${masq% # handle *}"
            ;;
    esac
}

# --- install ---------------------------------------------------------------------------
# Not instance_lib.sh's install_dockyard (the .deb and `dockyard install` from the fixture
# mirror): this suite installs with `make install DESTDIR=<working copy>`, uses the
# rootfs's pre-laid Docker binaries and copies the sysbox doubles in.
install_dockyard() {
    local t0
    t0=$(lc__now)
    local -a make_flags=()
    [[ ${LC_INSTALL_NO_BUILD:-0} == 1 ]] && make_flags=(-o build)
    make -s -C "$REPO" "${make_flags[@]}" install DESTDIR="$LC_ROOT" PREFIX=/usr >/dev/null
    cargo build -q --release --locked -p dockyard-test-doubles --manifest-path "$REPO/Cargo.toml"
    local b
    mkdir -p "$LC_ROOT$SYSBOX_BIN"
    for b in sysbox-mgr sysbox-fs sysbox-runc; do
        install -m 0755 "${CARGO_TARGET_DIR:-$REPO/target}/release/$b-double" "$LC_ROOT$SYSBOX_BIN/$b"
    done
    set_firewall_backend
    lc_exec systemctl daemon-reload
    lc_log "installed into $LC_ROOT in $(lc__elapsed "$t0")s (firewall: $LC_FIREWALL)"
}

use_new() {
    case ${CLI_SUITE_NEW:-auto} in
    0) return 1 ;;
    1) return 0 ;;
    *) lc_exec dockyard new --help >/dev/null 2>&1 ;;
    esac
}

# --- tests -----------------------------------------------------------------------------
t01_new_three_then_start() {
    local n pids=() rc=0
    if use_new; then
        echo "three concurrent 'dockyard new --start'"
        for n in "${NAMES[@]}"; do
            lc_exec timeout 180 dockyard new "$n" --runtime runc --docker-version "$LC_DOCKER_VERSION" \
                --range "$NEW_RANGE" --start </dev/null &
            pids+=($!)
        done
    else
        echo "CLI_SUITE_NEW=0 or no 'dockyard new': hand-written confs, started concurrently"
        for n in "${NAMES[@]}"; do write_conf "$n" 'Runtime=runc'; done
        lc_exec systemctl daemon-reload
        for n in "${NAMES[@]}"; do
            lc_exec timeout 180 systemctl start "${n}_docker.service" &
            pids+=($!)
        done
    fi
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    ((rc == 0)) || lc_fail "a concurrent new/start failed"
    for n in "${NAMES[@]}"; do
        active "${n}_docker.service" || lc_fail "${n}_docker.service is not active: $(unit_state "${n}_docker.service")"
        rules_exactly_once "$n"
    done
    local nets
    nets=$(lc_exec sh -c "grep -h -E '^(BridgeCIDR|PoolBase)=' $CONF_DIR/ca.conf $CONF_DIR/cb.conf $CONF_DIR/cc.conf")
    echo "$nets"
    [[ $(sort <<<"$nets" | uniq -d) == "" && $(grep -c . <<<"$nets") == 6 ]] || lc_fail "the three confs do not have six distinct networks: $nets"
}

t02_status_json() {
    local id json
    lc_image "$(sock ca)"
    id=$(dk ca run -d --name load "$LC_IMAGE" sleep 600)
    echo "ca runs $id"
    json=$(dy status --json)
    echo "$json" >"$LC_WORK/logs/status.json"
    json_check "$json" \
        'sorted(x["name"] for x in s) == ["ca", "cb", "cc"]' \
        'all(i(n)["unit"]["active"] == "active" and i(n)["unit"]["sub"] == "running" for n in ["ca", "cb", "cc"])' \
        'all(i(n)["firewall"]["state"] == "present" and i(n)["firewall"]["present"] == i(n)["firewall"]["expected"] for n in ["ca", "cb", "cc"])' \
        'all(i(n)["bridge"] == "present" and i(n)["socket"]["ok"] for n in ["ca", "cb", "cc"])' \
        'i("ca")["socket"]["group"] == "ca_docker" and i("ca")["socket"]["mode"] == "0660"' \
        'i("ca")["containers"] == 1 and i("cb")["containers"] == 0 and i("cc")["containers"] == 0' \
        "all(i(n)['docker'] == {'version': '$LC_DOCKER_VERSION', 'installed': True} for n in ['ca', 'cb', 'cc'])" ||
        lc_fail "status --json does not match (see above)"
    # Reality changes, status follows: a duplicated rule for cb, then removed again
    # (iptables: its POSTROUTING jump; nftables: one of its accepts in FORWARD).
    local dup
    dup=$(duplicate_a_rule cb)
    json=$(dy status cb --json)
    json_check "$json" 'i("cb")["firewall"]["state"] == "duplicated"' \
        'i("cb")["firewall"]["duplicated"][0]["count"] == 2' \
        'len(s) == 1' || lc_fail "a duplicated rule is not reported: $json"
    lc_exec sh -c "$dup"
    json_check "$(dy status cb --json)" 'i("cb")["firewall"]["state"] == "present"' || lc_fail "cb not back to present"
    # The one-line form and a user without root: no failure, unknowns said so.
    dy status
    local out
    out=$(lc_exec setpriv --reuid=nobody --regid=nogroup --clear-groups dockyard status ca) || lc_fail "status as nobody failed: $out"
    echo "$out"
    grep -q 'unknown (needs root)' <<<"$out" || lc_fail "status as nobody does not say what needs root: $out"
    grep -q '^NAME  *MODE  *GROUP GRANTS  *UNIT  *CONTAINERD' <<<"$out" || lc_fail "status has no header: $out"
    grep -qE '^ca  +rootful  +root on the host  +active/running  ' <<<"$out" || lc_fail "status as nobody lacks the mode or the unit state: $out"
    grep -q '/var/lib/dockyard/ca/docker.sock' <<<"$out" || lc_fail "status does not show the socket's path: $out"
}

t03_verify() {
    local out
    # ca has the busybox image: verify runs `true` in it.
    out=$(dy verify ca) || lc_fail "verify ca failed: $out"
    echo "$out"
    if grep -q '^FAIL' <<<"$out"; then lc_fail "verify ca printed a FAIL: $out"; fi
    # shellcheck disable=SC2016 # the backquotes are literal in verify's output
    grep -q '^ok   container: ran `true` in local image' <<<"$out" || lc_fail "verify ca did not use the local image: $out"
    # cb has no image at all, and no registry: the minimal image from docker-init.
    out=$(dy verify cb) || lc_fail "verify cb (no image) failed: $out"
    echo "$out"
    grep -q '^ok   container: ran docker-init --version in a minimal image' <<<"$out" || lc_fail "verify cb did not use the minimal image: $out"
    [[ -z $(dk cb images -q) ]] || lc_fail "verify left an image on cb: $(dk cb images)"
    [[ -z $(dk cb ps -aq) ]] || lc_fail "verify left a container on cb: $(dk cb ps -a)"
    # A missing outbound NAT rule is a FAIL with a non-zero exit.
    local fixed back
    back=$(remove_bridge_masquerade cc)
    if out=$(dy verify cc); then lc_fail "verify cc passed without its masquerade rule: $out"; fi
    echo "$out"
    grep -qi '^FAIL nat: missing: .*masquerade' <<<"$out" || lc_fail "verify cc did not name the missing rule: $out"
    lc_exec sh -c "$back"
    fixed=$(dy verify cc) || lc_fail "verify cc failed after the rule came back: $fixed"
}

t04_destroy_under_load() {
    local out
    [[ -n $(dk ca ps -q) ]] || lc_fail "ca runs no container before destroy"
    # A stale mount under the root, outside docker/ where the unit's own
    # `dockyard-prepare down` would already detach it: destroy must.
    lc_exec mkdir -p /var/lib/dockyard/ca/stale
    lc_exec mount -t tmpfs stale /var/lib/dockyard/ca/stale
    lc_exec touch /var/lib/dockyard/ca/stale/file
    # Without --yes and without a terminal: refused, nothing changed.
    if out=$(dy destroy ca 2>&1); then lc_fail "destroy without --yes succeeded: $out"; fi
    echo "$out"
    grep -q 'without --yes' <<<"$out" || lc_fail "no --yes refusal message: $out"
    active ca_docker.service || lc_fail "ca stopped by a refused destroy"
    out=$(dy destroy ca --yes 2>&1) || lc_fail "destroy ca failed: $out"
    echo "$out"
    grep -q 'unmounted 1 stale mounts' <<<"$out" || lc_fail "destroy did not unmount the stale mount: $out"
    nothing_left ca
    others_work cb cc
}

t05_double_destroy() {
    local out
    out=$(dy destroy ca --yes 2>&1) || lc_fail "second destroy exited non-zero: $out"
    echo "$out"
    grep -q 'ca: no such instance, nothing to destroy; known: ' <<<"$out" || lc_fail "second destroy did not say there is no such instance: $out"
    out=$(dy destroy ca 2>&1) || lc_fail "destroy without --yes of nothing exited non-zero: $out"
    if out=$(dy status ca 2>&1); then lc_fail "status of a destroyed instance succeeded: $out"; fi
}

t06_keep_data() {
    local out
    out=$(dy destroy cc --yes --keep-data 2>&1) || lc_fail "destroy --keep-data failed: $out"
    echo "$out"
    lc_exec test -d /var/lib/dockyard/cc/docker || lc_fail "--keep-data removed the data"
    if link_exists cc_docker0; then lc_fail "bridge cc_docker0 left"; fi
    no_rules cc
    if lc_exec getent passwd cc_docker >/dev/null; then lc_fail "user cc_docker left"; fi
    lc_exec rm -rf /var/lib/dockyard/cc
    others_work cb
}

t07_last_sysbox_instance() {
    local n u out
    for n in sa sb; do write_conf "$n" 'Runtime=sysbox-runc'; done
    lc_exec systemctl daemon-reload
    for n in sa sb; do lc_exec timeout 120 systemctl start "${n}_docker.service"; done
    for u in "${SYSBOX_UNITS[@]}"; do active "$u" || lc_fail "$u not active: $(unit_state "$u")"; done
    lc_exec test -d "$SYSBOX_DATA" || lc_fail "$SYSBOX_DATA does not exist with sysbox instances running"
    out=$(dy destroy sa --yes 2>&1) || lc_fail "destroy sa failed: $out"
    echo "$out"
    nothing_left sa
    lc_exec test -d "$SYSBOX_DATA" || lc_fail "$SYSBOX_DATA removed while sb still uses sysbox"
    for u in "${SYSBOX_UNITS[@]}"; do active "$u" || lc_fail "$u stopped while sb still runs"; done
    out=$(dy destroy sb --yes 2>&1) || lc_fail "destroy sb failed: $out"
    echo "$out"
    nothing_left sb
    if lc_exec test -e "$SYSBOX_DATA"; then lc_fail "$SYSBOX_DATA left after the last sysbox instance"; fi
    for u in "${SYSBOX_UNITS[@]}"; do inactive "$u" || lc_fail "$u still running: $(unit_state "$u")"; done
    others_work cb
}

t08_conf_gone() {
    local json out
    # cb runs; its conf is removed: status finds it by its bridge and audits its rules
    # with the values `dockyard-network up` recorded; destroy uses the recorded root.
    lc_exec rm -f "$CONF_DIR/cb.conf"
    lc_exec systemctl daemon-reload
    active cb_docker.service || lc_fail "cb stopped when its conf was removed"
    json=$(dy status cb --json)
    echo "$json"
    json_check "$json" 'i("cb")["conf"] is None' 'i("cb")["firewall"]["state"] == "present"' \
        'i("cb")["firewall"]["present"] == i("cb")["firewall"]["expected"]' 'i("cb")["socket"]["ok"]' 'i("cb")["containers"] == 0' ||
        lc_fail "status of a running instance without a conf is wrong"
    out=$(dy destroy cb --yes 2>&1) || lc_fail "destroy of cb without a conf failed: $out"
    echo "$out"
    nothing_left cb
}

t09_refused_root() {
    local out rc=0
    # A broken conf whose Root= the model refuses: destroy changes nothing, exit 6.
    printf '[Instance]\nRoot=/etc\nBridgeCIDR=bogus\n' | lc_exec sh -c "cat >$CONF_DIR/bad.conf"
    out=$(dy destroy bad --yes 2>&1) || rc=$?
    echo "$out"
    ((rc == 6)) || lc_fail "destroy with Root=/etc exited $rc, expected 6: $out"
    grep -q 'refusing to destroy bad' <<<"$out" || lc_fail "no refusal message: $out"
    lc_exec test -f "$CONF_DIR/bad.conf" || lc_fail "the refused destroy removed the conf"
    lc_exec test -f /etc/passwd || lc_fail "/etc/passwd is gone"
    lc_exec rm -f "$CONF_DIR/bad.conf"
}

t10_confirm_on_terminal() {
    local out rc=0
    # On a terminal destroy asks; anything but y/yes keeps everything (exit 6).
    write_conf ct 'Runtime=runc'
    lc_exec systemctl daemon-reload
    out=$(lc_exec script -qec "dockyard destroy ct" /dev/null <<<"n" 2>&1) || rc=$?
    echo "$out"
    ((rc == 6)) || lc_fail "answering n exited $rc, expected 6: $out"
    grep -q 'Destroy instance ct: .*(no data on disk)' <<<"$out" || lc_fail "no (right) question on the terminal: $out"
    lc_exec test -f "$CONF_DIR/ct.conf" || lc_fail "answering n removed the conf"
    out=$(lc_exec script -qec "dockyard destroy ct" /dev/null <<<"y" 2>&1) || lc_fail "answering y failed: $out"
    echo "$out"
    grep -q 'destroyed instance ct' <<<"$out" || lc_fail "answering y did not destroy ct: $out"
    nothing_left ct
}

t11_refused_conf_shows_why() {
    local out
    # A typo an admin makes by hand: the unit exists and says why it cannot run.
    printf '[Instance]\nBridgeCIRD=172.28.18.1/24\nPoolBase=172.24.0.0/16\nRuntime=runc\n' |
        lc_exec sh -c "cat >$CONF_DIR/cr.conf"
    lc_exec systemctl daemon-reload
    refused_unit cr "cr.conf:2: warning: unknown key BridgeCIRD= in [Instance] ignored; did you mean BridgeCIDR=?" \
        "cr.conf: error: BridgeCIDR= is required" "dockyard check $CONF_DIR/cr.conf"
    # The generator's own messages reach the journal (its socket), /dev/kmsg or not.
    if lc_exec test -w /dev/kmsg; then echo "(this container has a writable /dev/kmsg)"; fi
    out=$(lc_exec journalctl -q --no-pager -b -t dockyard-generator 2>&1 || true)
    grep -qF 'cr.conf:2: warning: unknown key BridgeCIRD= in [Instance] ignored; did you mean BridgeCIDR=?' <<<"$out" ||
        lc_fail "the generator's message is not in journalctl -t dockyard-generator: $(tail -n 5 <<<"$out")"
    lc_exec rm -f "$CONF_DIR/cr.conf"
    lc_exec systemctl daemon-reload
    [[ $(lc_exec systemctl show -p LoadState --value cr_docker.service) == not-found ]] ||
        lc_fail "cr_docker.service still loaded after its conf was removed"
}

t12_host_route() {
    local out rc=0
    # A LAN route over cw's bridge network, as the issue found it (the container's netns).
    lc_exec ip route add 10.90.0.0/16 dev "$LC_VETH_CT"
    write_conf cw 'Runtime=runc'
    out=$(dy check 2>&1) || rc=$?
    echo "$out"
    ((rc == 0)) || lc_fail "check failed (it only warns about routes): $out"
    grep -qF "cw.conf:2: warning: host route 10.90.0.0/16 (table main) covers 10.90.1.0/24" <<<"$out" ||
        lc_fail "check does not name the route at BridgeCIDR='s line: $out"
    lc_exec systemctl daemon-reload
    if out=$(lc_exec timeout 120 systemctl start cw_docker.service 2>&1); then lc_fail "cw started inside a host route: $out"; fi
    out=$(lc_exec journalctl -q --no-pager -u cw_docker.service 2>&1 || true)
    grep -qF "host route 10.90.0.0/16 (table main) covers 10.90.1.0/24" <<<"$out" ||
        lc_fail "the failed start does not name the route: $(tail -n 8 <<<"$out")"
    grep -qF "AcceptHostRoute=10.90.0.0/16" <<<"$out" || lc_fail "the failed start does not say how to accept it: $out"
    if link_exists cw_docker0; then lc_fail "the refused start created cw_docker0"; fi
    no_rules cw
    lc_exec systemctl reset-failed cw_docker.service
    # Meant: accepted in the conf, it starts and verify passes its routes check.
    write_conf cw 'Runtime=runc' '' '[Network]' 'AcceptHostRoute=10.90.0.0/16'
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start cw_docker.service || lc_fail "cw with AcceptHostRoute= did not start: $(unit_state cw_docker.service)"
    out=$(dy verify cw) || lc_fail "verify cw failed: $out"
    echo "$out"
    grep -qF 'ok   routes: no host route covers 10.90.1.0/24 or 172.26.0.0/16 (AcceptHostRoute= 10.90.0.0/16)' <<<"$out" ||
        lc_fail "verify's routes line: $out"
    # A route that appears later, in another table: verify fails and names it.
    lc_exec ip route add 172.26.0.0/15 dev "$LC_VETH_CT" table 100
    if out=$(dy verify cw); then lc_fail "verify passed with 172.26.0.0/15 over the pool: $out"; fi
    echo "$out"
    grep -qF 'FAIL routes: host route 172.26.0.0/15 (table 100) covers 172.26.0.0/16' <<<"$out" || lc_fail "verify does not name the route: $out"
    lc_exec ip route del 172.26.0.0/15 dev "$LC_VETH_CT" table 100
    lc_exec ip route del 10.90.0.0/16 dev "$LC_VETH_CT"
    out=$(dy destroy cw --yes 2>&1) || lc_fail "destroy cw failed: $out"
    nothing_left cw
}

t13_removed_conf_left_visible() {
    local out rc=0
    write_conf cx 'Runtime=runc'
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start cx_docker.service || lc_fail "cx did not start: $(unit_state cx_docker.service)"
    # Without root: what needs root is SKIP, not FAIL, and the exit is 0.
    out=$(lc_exec setpriv --reuid=nobody --regid=nogroup --clear-groups dockyard verify cx 2>&1) ||
        lc_fail "verify as nobody exited non-zero: $out"
    echo "$out"
    if grep -q '^FAIL' <<<"$out"; then lc_fail "verify as nobody printed a FAIL: $out"; fi
    grep -q '^SKIP nat: unknown (needs root)' <<<"$out" || lc_fail "verify as nobody does not skip nat: $out"
    grep -q 'skipped (not made without root' <<<"$out" || lc_fail "verify's summary does not count the skipped checks: $out"
    # The conf removed while cx runs: the stop-only unit does not ask for a reload.
    lc_exec rm -f "$CONF_DIR/cx.conf"
    lc_exec systemctl daemon-reload
    [[ $(lc_exec systemctl show -p NeedDaemonReload --value cx_docker.service) == no ]] ||
        lc_fail "cx_docker.service wants a daemon-reload right after one: $(lc_exec systemctl cat cx_docker.service 2>&1 | head -n 12)"
    out=$(lc_exec systemctl status --no-pager cx_docker.service 2>&1 || true)
    if grep -q 'changed on disk' <<<"$out"; then lc_fail "systemctl status says changed on disk: $out"; fi
    lc_exec timeout 120 systemctl stop cx_docker.service
    lc_exec systemctl daemon-reload
    # Stopped, unit gone: its user and data are still shown, with the way out.
    out=$(dy status 2>&1) || rc=$?
    echo "$out"
    ((rc == 3)) || lc_fail "status exited $rc with a removed instance, expected 3 (not active): $out"
    grep -qE '^cx  .*removed, data left: user cx_docker, data /var/lib/dockyard/cx' <<<"$out" ||
        lc_fail "status does not show what cx left: $out"
    grep -q 'run dockyard destroy cx' <<<"$out" || lc_fail "status does not say how to remove it: $out"
    out=$(dy destroy nosuch --yes 2>&1) || lc_fail "destroy nosuch exited non-zero: $out"
    echo "$out"
    grep -qE '^nosuch: no such instance, nothing to destroy; known: .*cx' <<<"$out" || lc_fail "destroy nosuch does not list the known: $out"
    out=$(dy destroy cx --yes 2>&1) || lc_fail "destroy cx failed: $out"
    nothing_left cx
}

t14_without_sysbox() {
    local out rc=0 before after store=${SYSBOX_BIN%/bin}
    # The default runtime (sysbox-runc) on a host whose store has no sysbox: every place
    # an admin looks names what is missing and how to install it (issue 13).
    before=$(lc_exec systemctl is-system-running || true)
    lc_exec mv "$store" "$store.aside"
    out=$(dy new dn --range "$NEW_RANGE" --docker-version "$LC_DOCKER_VERSION" --start 2>&1) || rc=$?
    echo "$out"
    ((rc == 6)) || lc_fail "new --start without sysbox exited $rc, expected 6: $out"
    grep -q "sysbox $SYSBOX_VERSION is not installed ($SYSBOX_BIN/sysbox-runc is missing), and Runtime=sysbox-runc (the default) needs it: run \`dockyard install --no-docker --sysbox $SYSBOX_VERSION\` first, or give --runtime runc" <<<"$out" ||
        lc_fail "new --start does not say what to install: $out"
    if lc_exec test -e "$CONF_DIR/dn.conf"; then lc_fail "the refused new wrote a conf"; fi
    # Without --start the conf is written, with a note.
    out=$(dy new dn --range "$NEW_RANGE" --docker-version "$LC_DOCKER_VERSION" 2>&1) || lc_fail "new dn failed: $out"
    echo "$out"
    grep -q "note: before starting dn: sysbox $SYSBOX_VERSION is not installed" <<<"$out" || lc_fail "new gives no note: $out"
    out=$(dy check 2>&1) || lc_fail "check failed: $out"
    echo "$out"
    grep -q "dn.conf: warning: instance dn: sysbox $SYSBOX_VERSION is not installed" <<<"$out" || lc_fail "check does not warn: $out"
    lc_exec systemctl daemon-reload
    # The unit's own status and journal say it, not "A dependency job ... failed".
    if out=$(lc_exec timeout 60 systemctl start dn_docker.service 2>&1); then lc_fail "dn started without sysbox"; fi
    echo "$out"
    if grep -q 'dependency job' <<<"$out"; then lc_fail "start still fails as a dependency: $out"; fi
    # The unit's own journal, where systemctl's message points (journalctl -xeu), has it.
    # (systemctl status shows only the lines of the unit's last attempt: with
    # Restart=always those are systemd's own once the start limit is hit.)
    lc__wait_for 10 lc_exec sh -c "journalctl -xeu dn_docker.service --no-pager | grep -q 'instance dn cannot start: sysbox $SYSBOX_VERSION is not installed ($SYSBOX_BIN/sysbox-runc is missing)'" ||
        lc_fail "the unit's journal does not say why: $(lc_exec journalctl -q --no-pager -u dn_docker.service | tail -n 5)"
    lc_exec journalctl -q --no-pager -u dn_docker.service | grep 'cannot start' | head -n 1
    out=$(dy status dn 2>&1) || true
    echo "$out"
    grep -q "^dn: sysbox $SYSBOX_VERSION is not installed" <<<"$out" || lc_fail "status does not say what is missing: $out"
    # The watcher never ran, so it cannot have blamed /etc/subuid.
    out=$(lc_exec journalctl -b --no-pager -u dockyard-sysbox-chown.service 2>&1 || true)
    if grep -q 'subuid' <<<"$out"; then lc_fail "the ownership watcher points at /etc/subuid: $out"; fi
    out=$(dy destroy dn --yes 2>&1) || lc_fail "destroy dn failed: $out"
    echo "$out"
    nothing_left dn
    out=$(lc_exec systemctl list-units --failed --all --no-legend --plain)
    if grep -E '^(dn_|dockyard-)' <<<"$out"; then lc_fail "failed units left after destroy: $out"; fi
    after=$(lc_exec systemctl is-system-running || true)
    [[ $before != running || $after == running ]] || lc_fail "host was $before, is $after after destroy: $out"
    lc_exec mv "$store.aside" "$store"
}

# --- run -------------------------------------------------------------------------------
lc_init
lc_rootfs
lc_boot cli
install_dockyard

lc_test "1. dockyard new x3 concurrently (or confs), started: all active, distinct networks" t01_new_three_then_start
lc_test "2. status --json matches reality: units, rules (and a duplicate), containers, socket" t02_status_json
lc_test "3. verify: local image, minimal image without any, FAIL on a missing NAT rule" t03_verify
lc_test "4. destroy under load (container, stale mount): nothing left, others keep working" t04_destroy_under_load
lc_test "5. destroy again exits 0 and says there is no such instance, naming the known ones" t05_double_destroy
lc_test "6. destroy --keep-data keeps the data, removes the rest" t06_keep_data
lc_test "7. destroying the last sysbox instance removes the shared sysbox state" t07_last_sysbox_instance
lc_test "8. conf removed while running: status from the bridge and records, destroy leaves nothing" t08_conf_gone
lc_test "9. destroy refuses a root the model refuses (Root=/etc), exit 6, nothing changed" t09_refused_root
lc_test "10. on a terminal destroy asks: n keeps everything (exit 6), y destroys" t10_confirm_on_terminal
lc_test "11. a refused conf: its unit fails with the file:line messages, did you mean; the journal has them" t11_refused_conf_shows_why
lc_test "12. a conf inside a host route: check warns, start refused naming it, AcceptHostRoute=, verify fails" t12_host_route
lc_test "13. conf removed: no reload nagging; status shows the user and data left; verify without root skips" t13_removed_conf_left_visible
lc_test "14. default runtime without sysbox: new, check, the unit, status say what to install; destroy leaves no failed unit" t14_without_sysbox

lc_log "timings: rootfs ${LC_ROOTFS_SECONDS}s, boot ${LC_BOOT_SECONDS}s, total $(lc__elapsed "$SUITE_T0")s before teardown"
lc_summary
