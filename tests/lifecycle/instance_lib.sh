# shellcheck shell=bash
# Helpers shared by the lifecycle suites that drive Dockyard instances in the booted host
# (suite.sh, cli_suite.sh, isolation_suite.sh). Source it after lib.sh:
#
#   source "$HERE/lib.sh"
#   source "$HERE/instance_lib.sh"
#
# The suite keeps its own network tables: associative arrays BRIDGE and POOL (instance
# name -> BridgeCIDR= / PoolBase=), read by write_conf. REPO is the checkout (default:
# two levels above this file). Every function here returns non-zero or calls lc_fail on
# failure, so it can be used both from tests and from the suite's set-up code.

: "${REPO:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

CONF_DIR=/etc/dockyard/instances.d
# shellcheck disable=SC2034  # the SYSBOX_ names are used by the sourcing suites
{
    SYSBOX_VERSION=0.6.7
    SYSBOX_BIN=/var/lib/dockyard/artifacts/sysbox/$SYSBOX_VERSION/bin
    SYSBOX_DATA=/var/lib/dockyard-sysbox
    SYSBOX_UNITS=(dockyard-sysbox-mgr.service dockyard-sysbox-fs.service dockyard-sysbox-chown.service)
}
# The fixture mirror in the upstream namespace (serve_artifacts).
MIRROR=http://192.0.2.1:8081

# --- instances -------------------------------------------------------------------------
sock() { echo "/var/lib/dockyard/$1/docker.sock"; }
# dk NAME ARGS...: the bundled docker CLI against instance NAME, bounded.
dk() {
    local n=$1; shift
    lc_exec timeout 120 env DOCKER_HOST="unix://$(sock "$n")" "$LC_DOCKER_BIN/docker" "$@"
}
# dy ARGS...: the installed dockyard command, as root, stdin not a terminal.
dy() { lc_exec timeout 300 dockyard "$@" </dev/null; }
# write_conf NAME [extra [Instance] lines...]: a conf as an admin would write it, with
# the suite's BRIDGE[NAME] and POOL[NAME].
write_conf() {
    local n=$1; shift
    # shellcheck disable=SC2154  # BRIDGE and POOL are the sourcing suite's tables
    {
        printf '[Instance]\nBridgeCIDR=%s\nPoolBase=%s\nDockerVersion=%s\n' \
            "${BRIDGE[$n]}" "${POOL[$n]}" "$LC_DOCKER_VERSION"
        printf '%s\n' "$@"
    } | lc_exec sh -c "mkdir -p $CONF_DIR && cat >$CONF_DIR/$n.conf"
}
active() { [[ $(lc_exec systemctl is-active "$1" 2>/dev/null || true) == active ]]; }
inactive() { [[ $(lc_exec systemctl is-active "$1" 2>/dev/null || true) == inactive ]]; }
wait_active() { lc__wait_for "${2:-60}" active "$1" || lc_fail "$1 not active after ${2:-60}s: $(unit_state "$1")"; }
unit_state() {
    lc_exec systemctl show -p LoadState -p ActiveState -p SubState -p Result "$1" 2>&1 | tr '\n' ' '
    echo
    lc_exec journalctl -q --no-pager -n 15 -u "$1" 2>&1 || true
}
main_pid() { lc_exec systemctl show -p MainPID --value "$1"; }
# refused_unit NAME TEXT...: the generator refused NAME's conf and wrote the unit that says
# why: loaded, "conf refused" in its description, its start fails, and its status (what an
# admin reads) shows each TEXT.
refused_unit() {
    local n=$1 out; shift
    [[ $(lc_exec systemctl show -p LoadState --value "${n}_docker.service") == loaded ]] ||
        lc_fail "${n}_docker.service is not loaded for the refused ${n}.conf"
    lc_exec systemctl show -p Description --value "${n}_docker.service" | grep -q 'conf refused' ||
        lc_fail "${n}_docker.service is not the refused-conf unit: $(lc_exec systemctl cat "${n}_docker.service" 2>&1 | head -n 5)"
    if out=$(lc_exec timeout 60 systemctl start "${n}_docker.service" 2>&1); then
        lc_fail "${n}_docker.service (refused conf) started: $out"
    fi
    echo "$out"
    out=$(lc_exec systemctl status --no-pager --full -n 30 "${n}_docker.service" 2>&1 || true)
    echo "$out"
    local t
    for t in "$@"; do
        grep -qF -- "$t" <<<"$out" || lc_fail "systemctl status ${n}_docker does not show '$t':
$out"
    done
    # The test started it: leave no failed unit behind (as `dockyard destroy` does).
    lc_exec systemctl reset-failed "${n}_docker.service" 2>/dev/null || true
}
link_exists() { lc_exec ip link show "$1" >/dev/null 2>&1; }
# A busybox container run on instance NAME, bounded.
run_in() { local n=$1; shift; dk "$n" run --rm "$LC_IMAGE" "$@"; }

# --- firewall --------------------------------------------------------------------------
# The suites run Dockyard with the backend LC_FIREWALL names (lib.sh), chosen the way an
# admin chooses it: [Firewall] Backend= in the booted host's /etc/dockyard/dockyard.conf.
# Every function below takes the backend as an optional last argument (default
# LC_FIREWALL), so a test can look at an instance under the other one.
HOST_CONF=/etc/dockyard/dockyard.conf
# set_firewall_backend [BACKEND]: the host's policy file chooses BACKEND (atomically).
set_firewall_backend() {
    printf '# Written by tests/lifecycle/instance_lib.sh (LC_FIREWALL).\n[Firewall]\nBackend=%s\n' "${1:-$LC_FIREWALL}" |
        lc_exec sh -c "mkdir -p ${HOST_CONF%/*} && cat >$HOST_CONF.tmp && mv $HOST_CONF.tmp $HOST_CONF"
}
# What Dockyard's nftables objects look like to the tests, one line each, from `nft -j
# list ruleset` on stdin: for instance NAME (argv[1]) every set element and every rule
# tagged dockyard:NAME (in any table, counters left out), and its table inet
# dockyard-NAME with its chains and rules; with NAME empty, everything of Dockyard's
# (tables named dockyard or dockyard-*, anything whose comment is dockyard or
# dockyard:*). Rules iptables-nft wrote carry their comment as an xt match, not as an
# nftables comment, so they are iptables-save's to show.
NFT_LINES_PY='
import json, sys
name = sys.argv[1]
tag = "dockyard:" + name
def ours(comment, table):
    if name:
        return comment == tag or table == "dockyard-" + name
    return comment is not None and (comment == "dockyard" or comment.startswith("dockyard:")) \
        or table == "dockyard" or table.startswith("dockyard-")
for item in json.load(sys.stdin).get("nftables", []):
    kind, o = next(iter(item.items()))
    table = o.get("name", "") if kind == "table" else o.get("table", "")
    where = " ".join([o.get("family", ""), table])
    if kind in ("table", "chain") and ours(None, table):
        print(kind, where, o.get("name", "") if kind == "chain" else "")
    elif kind == "set":
        if not name and ours(None, table):
            print("set", where, o["name"])
        for e in o.get("elem", []):
            e = e.get("elem", {"val": e}) if isinstance(e, dict) else {"val": e}
            if ours(e.get("comment"), ""):
                print("element", where, o["name"], json.dumps(e["val"], sort_keys=True), e.get("comment"))
    elif kind == "rule" and ours(o.get("comment"), table):
        expr = [x for x in o.get("expr", []) if "counter" not in x]
        print("rule", where, o["chain"], json.dumps(expr, sort_keys=True), o.get("comment"))
'
# nft_lines [NAME]: NFT_LINES_PY over the booted host's live ruleset.
nft_lines() {
    local j
    j=$(lc_exec nft -j list ruleset) || { lc_fail "nft -j list ruleset failed: $j"; return 1; }
    python3 -c "$NFT_LINES_PY" "${1:-}" <<<"$j"
}
# rules NAME [BACKEND]: the instance's firewall lines as that backend writes them:
# iptables-save's lines tagged dockyard:NAME (its jumps and rules carry the comment), or
# NFT_LINES_PY's for NAME.
rules() {
    case ${2:-$LC_FIREWALL} in
        iptables) lc_exec iptables-save | grep -E "dockyard:$1(\"| |\$)" || true ;;
        nftables) nft_lines "$1" ;;
        *) lc_fail "rules: unknown backend ${2:-$LC_FIREWALL}" ;;
    esac
}
# iptables_lines NAME: everything of NAME in iptables-save: tagged lines, and its chains
# DOCKYARD-NAME and DOCKYARD-NAME-IN (declared, jumped to or filled) in any table.
iptables_lines() { lc_exec iptables-save | grep -E "dockyard:$1(\"| |\$)|DOCKYARD-$1(-IN)?( |\$)" || true; }
# The four accepts the nftables backend writes into iptables' FORWARD (past the DROP
# policy a host Docker sets) read, in iptables-save, like this and nothing else.
NFT_HOST_ACCEPT='^-A FORWARD( -[sd] [0-9./]+| -i [^ ]+)+ -m comment --comment "?dockyard:%s"? -j ACCEPT$'
# rules_exactly_once NAME [BACKEND]: the instance's firewall is complete, nothing of it
# is there twice, and nothing of it is left in the other backend. Derived from the
# project rather than counted here: no line occurs twice, and `dockyard status NAME
# --json` (which compares the live rules with exactly what `dockyard-network up`
# writes and reports missing, duplicated and stray ones) says "present" and names
# BACKEND. Plus the backend's own mark of the instance: a jump to its chain DOCKYARD-NAME
# (iptables); its table inet dockyard-NAME and its networks in the shared set @nets
# (nftables).
rules_exactly_once() {
    local n=$1 b=${2:-$LC_FIREWALL} r dups json state other
    r=$(rules "$n" "$b")
    dups=$(sort <<<"$r" | uniq -d)
    [[ -z $dups ]] || lc_fail "$n: duplicated firewall lines: $dups"
    json=$(dy status "$n" --json 2>&1) || lc_fail "$n: dockyard status $n --json failed: $json"
    state=$(python3 -c 'import json, sys; f = json.loads(sys.argv[1])[0]["firewall"]; print(f["state"], f.get("backend"))' "$json") ||
        lc_fail "$n: no firewall.state in dockyard status $n --json: $json"
    [[ $state == "present $b" ]] || lc_fail "$n: dockyard status says firewall (state backend) '$state', not 'present $b': $json
$b lines:
$r"
    case $b in
        iptables)
            grep -qE -- "-j DOCKYARD-$n( |\$)" <<<"$r" || lc_fail "$n: no jump to chain DOCKYARD-$n among its lines:
$r"
            # What the nftables backend would have written: its own tables' objects (in
            # iptables-nft's tables, rules are iptables-save's to show, in whichever form
            # that iptables-nft stores comments) and its accepts in FORWARD, which the
            # iptables backend never writes there.
            # shellcheck disable=SC2059  # the pattern is the format
            other=$(nft_lines "$n" | grep -vE '^rule ip6? (filter|nat|mangle|raw|security) ' || true)
            other+=$(iptables_lines "$n" | grep -E "$(printf "$NFT_HOST_ACCEPT" "$n")" || true)
            [[ -z $other ]] || lc_fail "$n runs with iptables, but there is of the nftables backend's: $other"
            ;;
        nftables)
            grep -qxF "table inet dockyard-$n " <<<"$r" || lc_fail "$n: no table inet dockyard-$n:
$r"
            grep -qE "^element inet dockyard nets " <<<"$r" || lc_fail "$n: none of its networks in the set @nets:
$r"
            # shellcheck disable=SC2059  # the pattern is the format
            other=$(iptables_lines "$n" | grep -vE "$(printf "$NFT_HOST_ACCEPT" "$n")" || true)
            [[ -z $other ]] || lc_fail "$n runs with nftables, but iptables has (besides its accepts in FORWARD): $other"
            ;;
    esac
}
# no_rules NAME: nothing of the instance in either backend: no line tagged dockyard:NAME
# and no chain DOCKYARD-NAME or DOCKYARD-NAME-IN in iptables-save, no element or rule
# tagged dockyard:NAME and no table inet dockyard-NAME in nftables.
no_rules() {
    local r
    r=$(iptables_lines "$1"; nft_lines "$1")
    [[ -z $r ]] || lc_fail "$1: firewall lines left: $r"
}
# no_dockyard_firewall: nothing of Dockyard's in either backend (after the last
# instance went): no dockyard/DOCKYARD line in iptables-save, no table, set, element or
# rule of Dockyard's in nftables.
no_dockyard_firewall() {
    local r
    r=$({ lc_exec iptables-save | grep -E 'dockyard|DOCKYARD' || true; } && nft_lines "")
    [[ -z $r ]] || lc_fail "firewall lines of Dockyard left: $r"
}

# --- install ---------------------------------------------------------------------------
# install_deb: the .deb built from this checkout installed the way an admin installs it
# (packaging/deb/build.sh, lintian-checked), with apt-get inside the booted host, so
# every test also tests the package. LC_DEB=FILE uses a .deb built beforehand.
install_deb() {
    local deb=${LC_DEB:-}
    if [[ -z $deb ]]; then
        "$REPO/packaging/deb/build.sh" >"$LC_WORK/logs/build-deb.log" 2>&1 ||
            { tail -n 20 "$LC_WORK/logs/build-deb.log" >&2; lc_die "packaging/deb/build.sh failed"; return 1; }
        deb=$(sed -n 's/^build-deb: \(.*\.deb\)$/\1/p' "$LC_WORK/logs/build-deb.log")
    fi
    [[ -f $deb ]] || { lc_die "no .deb to install (${deb:-none})"; return 1; }
    lc_copy_in "$deb" /var/cache/dockyard.deb
    lc_exec env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /var/cache/dockyard.deb >"$LC_WORK/logs/apt-install.log" 2>&1 ||
        { tail -n 20 "$LC_WORK/logs/apt-install.log" >&2; lc_die "apt-get install of the .deb failed"; return 1; }
}

# install_dockyard: the .deb built from this checkout, installed with apt-get in the
# booted host, then Docker and sysbox from the fixture mirror with `dockyard install`.
install_dockyard() {
    local t0
    t0=$(lc__now)
    install_deb || return 1
    install_artifacts
    set_firewall_backend
    lc_exec systemctl daemon-reload
    lc_log "installed into $LC_ROOT in $(lc__elapsed "$t0")s (firewall: $LC_FIREWALL)"
}

# Docker and sysbox reach the host as in production: `dockyard install` fetches them,
# sha256-verified, from the URLs of an artifacts manifest. Here the "mirror" is a
# fixture HTTP server in the upstream namespace (http://192.0.2.1:8081) serving a Docker
# static tarball in Docker's layout, made from the rootfs's Debian binaries, Docker's
# rootless extras (rootlesskit) from the rootfs's Debian package, and a
# sysbox .deb holding the test doubles of tests/doubles (real sysbox cannot be
# downloaded here; the doubles speak sd_notify like the real daemons, and the runc
# double execs runc, so containers on a sysbox instance really run).
serve_artifacts() {
    local dir=$LC_WORK/mirror stage=$LC_WORK/mirror-stage v=$LC_DOCKER_VERSION arch b
    arch=$(uname -m)
    mkdir -p "$dir" "$stage/docker" "$stage/sysbox/usr/bin" "$stage/sysbox/DEBIAN"
    cp "$LC_ROOTFS/var/lib/dockyard/artifacts/docker/$v/bin/"* "$stage/docker/"
    tar -C "$stage" -czf "$dir/docker-$v.tgz" docker
    rootless_extras_artifact "$dir" "$stage" || return 1
    cargo build -q --release --locked -p dockyard-test-doubles --manifest-path "$REPO/Cargo.toml"
    for b in sysbox-mgr sysbox-fs sysbox-runc; do
        install -m 0755 "${CARGO_TARGET_DIR:-$REPO/target}/release/$b-double" "$stage/sysbox/usr/bin/$b"
    done
    printf 'Package: sysbox-ce\nVersion: %s-0\nArchitecture: %s\nMaintainer: Dockyard tests <dev@dockyard.invalid>\nDescription: Dockyard test doubles standing in for sysbox (not sysbox)\n' \
        "$SYSBOX_VERSION" "$(dpkg --print-architecture)" >"$stage/sysbox/DEBIAN/control"
    local sysbox_deb
    sysbox_deb=sysbox-ce_$SYSBOX_VERSION-0.linux_$(dpkg --print-architecture).deb
    dpkg-deb --root-owner-group -Zxz --build "$stage/sysbox" "$dir/$sysbox_deb" >/dev/null
    # Compose v2, released as one bare binary: the suite's own (sid's docker-compose
    # package is the real plugin), else the test double (bookworm has only Compose 1).
    compose_artifact "$dir" || return 1
    cat >"$LC_WORK/artifacts.toml" <<TOML
# Written by tests/lifecycle/instance_lib.sh: the fixture mirror's artifacts.
[defaults]
docker = "$v"
sysbox = "$SYSBOX_VERSION"
compose = "$COMPOSE_VERSION"

[[artifact]]
kind = "docker"
version = "$v"
arch = "$arch"
url = "$MIRROR/docker-$v.tgz"
sha256 = "$(sha256sum "$dir/docker-$v.tgz" | cut -d' ' -f1)"

[[artifact]]
kind = "docker-rootless-extras"
version = "$v"
arch = "$arch"
url = "$MIRROR/docker-rootless-extras-$v.tgz"
sha256 = "$(sha256sum "$dir/docker-rootless-extras-$v.tgz" | cut -d' ' -f1)"

[[artifact]]
kind = "sysbox"
version = "$SYSBOX_VERSION"
arch = "$arch"
url = "$MIRROR/$sysbox_deb"
sha256 = "$(sha256sum "$dir/$sysbox_deb" | cut -d' ' -f1)"

[[artifact]]
kind = "compose"
version = "$COMPOSE_VERSION"
arch = "$arch"
url = "$MIRROR/docker-compose-linux-$arch"
sha256 = "$(sha256sum "$dir/docker-compose-linux-$arch" | cut -d' ' -f1)"
TOML
    # Bound to the upstream address only; ended with the namespace by lc_cleanup.
    ip netns exec "$LC_NETNS" setsid python3 -m http.server 8081 --bind 192.0.2.1 --directory "$dir" \
        >"$LC_WORK/logs/mirror.log" 2>&1 </dev/null &
    disown
    local deadline=$((SECONDS + 15))
    until ip netns exec "$LC_NETNS" bash -c 'exec 3<>/dev/tcp/192.0.2.1/8081' 2>/dev/null; do
        ((SECONDS < deadline)) || { lc_die "the fixture mirror did not start: $(tail -n 3 "$LC_WORK/logs/mirror.log")"; return 1; }
        sleep 0.2
    done
}

# rootless_extras_artifact DIR STAGE: DIR/docker-rootless-extras-VERSION.tgz in the
# layout of Docker's release (a top-level docker-rootless-extras/), made from the
# rootfs's Debian rootlesskit package: rootlesskit, and rootlesskit-docker-proxy where
# the package has it (a 20.10 dockerd publishes ports through it in rootless mode).
# `dockyard install` unpacks it into docker/VERSION/bin, where a Rootless=yes unit runs
# rootlesskit from.
rootless_extras_artifact() {
    local dir=$1 stage=$2/docker-rootless-extras b
    mkdir -p "$stage"
    for b in rootlesskit rootlesskit-docker-proxy; do
        [[ -f $LC_ROOTFS/usr/bin/$b ]] || continue
        install -m 0755 "$LC_ROOTFS/usr/bin/$b" "$stage/$b"
    done
    [[ -x $stage/rootlesskit ]] || { lc_die "the rootfs has no /usr/bin/rootlesskit (LC_PACKAGES in lib.sh)"; return 1; }
    tar -C "${stage%/*}" -czf "$dir/docker-rootless-extras-$LC_DOCKER_VERSION.tgz" docker-rootless-extras
}

# compose_artifact DIR: DIR/docker-compose-linux-ARCH, as Compose releases it; sets
# COMPOSE_VERSION and COMPOSE_REAL (1: the real plugin, 0: the test double).
compose_artifact() {
    local dir=$1 arch real=$LC_ROOTFS/usr/libexec/docker/cli-plugins/docker-compose pkg
    arch=$(uname -m)
    if [[ -f $real ]]; then
        pkg=$(dpkg-query --admindir="$LC_ROOTFS/var/lib/dpkg" -W -f '${Version}' docker-compose) ||
            { lc_die "docker-compose is in the rootfs but dpkg does not know its version"; return 1; }
        COMPOSE_VERSION=${pkg%%-*}   # 2.40.3-3 -> 2.40.3
        COMPOSE_VERSION=${COMPOSE_VERSION#*:}
        COMPOSE_REAL=1
        cp "$real" "$dir/docker-compose-linux-$arch"
    else
        COMPOSE_VERSION=$(cargo metadata -q --no-deps --format-version 1 --manifest-path "$REPO/Cargo.toml" |
            python3 -c 'import json,sys; print([p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "dockyard-test-doubles"][0])')
        COMPOSE_REAL=0
        install -m 0755 "${CARGO_TARGET_DIR:-$REPO/target}/release/docker-compose-double" "$dir/docker-compose-linux-$arch"
    fi
    export COMPOSE_VERSION COMPOSE_REAL
}

install_artifacts() {
    serve_artifacts
    # The cached rootfs has Debian's binaries pre-laid out for the harness's own smoke
    # test; the installer refuses a version directory it did not make.
    lc_exec rm -rf /var/lib/dockyard/artifacts
    lc_copy_in "$LC_WORK/artifacts.toml" /etc/dockyard/artifacts.toml
    lc_exec dockyard install >"$LC_WORK/logs/dockyard-install.log" 2>&1 ||
        { tail -n 20 "$LC_WORK/logs/dockyard-install.log" >&2; lc_die "dockyard install from the fixture mirror failed"; return 1; }
    lc_log "dockyard install: $(grep -c 'GET' "$LC_WORK/logs/mirror.log" || true) download(s) from the fixture mirror"
}
