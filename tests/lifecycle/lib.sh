# shellcheck shell=bash
# Dockyard lifecycle test library.
#
# Boots a real systemd (Debian bookworm, docker.io) in a systemd-nspawn container with
# a private network whose only uplink is a veth into an "upstream" network namespace
# (192.0.2.1, documentation range) that runs a DNS server and a peer-logging TCP service.
#
# Usage (as root):
#   source tests/lifecycle/lib.sh
#   lc_init                 # work dir, traps, host packages
#   lc_rootfs               # cached rootfs (exports LC_ROOTFS, LC_DOCKER_VERSION, LC_DOCKER_BIN)
#   lc_boot NAME            # fresh copy + uplink + upstream services + boot (exports LC_PID, LC_ROOT)
#   lc_test "name" func     # run one test
#   lc_summary              # "N passed, M failed"; non-zero if M > 0
#
# Mutable state (leader PID, nspawn PID, upstream PIDs) lives in files under $LC_WORK/state,
# so functions also work from the subshells that lc_test runs tests in (even across
# lc_reboot inside a test). See README.md in this directory for the contracts.

# ---------------------------------------------------------------------------------------
# configuration (override in the environment before sourcing)
: "${LC_CACHE:=/var/cache/dockyard-tests}"
: "${LC_WORK_BASE:=/var/tmp}"               # working copies go to $LC_WORK_BASE/dockyard-lc.XXXXXX
: "${LC_MIRROR:=http://deb.debian.org/debian}"
: "${LC_SUITE:=bookworm}"
: "${LC_BOOT_TIMEOUT:=120}"                 # seconds to wait for is-system-running
: "${LC_POWEROFF_TIMEOUT:=60}"              # seconds to wait for nspawn to exit after poweroff
: "${LC_UPSTREAM_TTL:=7200}"                # upstream TCP service exits by itself after this
: "${LC_UPSTREAM_PORT:=8080}"
: "${LC_VERBOSE:=0}"
: "${LC_ROOT_FS:=disk}"                     # working copy on disk (ext4, realistic) or tmpfs
: "${LC_TMPFS_SIZE:=12g}"

# Packages inside the rootfs. Changing this list (or LC_ROOTFS_RECIPE) changes the cache key.
# The engine under test is the suite's docker.io: bookworm 20.10.24 (CLI included), sid
# 28.5.2 (containerd 2.1, runc 1.3; its CLI is the separate docker-cli package, and
# docker-compose is Compose v2, the plugin the Compose tests run). See README.md.
LC_PACKAGES=(systemd systemd-sysv dbus iptables iproute2 docker.io procps util-linux passwd login tar)
# What a rootless instance (Rootless=yes, issue 21) needs on the host besides Dockyard:
# rootlesskit (also laid into the store by the fixture mirror's rootless extras,
# instance_lib.sh), slirp4netns, newuidmap/newgidmap (uidmap), and passt for the
# instances that will use it.
LC_PACKAGES+=(rootlesskit slirp4netns uidmap passt)
case $LC_SUITE in
    bookworm) ;;
    sid | unstable) LC_PACKAGES+=(docker-cli docker-compose) ;;
    *) printf 'lifecycle: warning: LC_SUITE=%s is not one the suites are run on (bookworm, sid)\n' "$LC_SUITE" >&2 ;;
esac
# Bump when the customisation below changes, so stale caches are not reused.
LC_ROOTFS_RECIPE=3
# Host tools (Debian package names) the library needs.
LC_HOST_PACKAGES=(debootstrap systemd-container iptables iproute2 dnsmasq-base busybox-static python3 util-linux)
# The firewall backend the instance suites run Dockyard with (instance_lib.sh writes it to
# the booted host's /etc/dockyard/dockyard.conf as [Firewall] Backend=): iptables or
# nftables. Every rootfs has both programs, so a suite can switch between them.
: "${LC_FIREWALL:=iptables}"
case $LC_FIREWALL in
    iptables | nftables) ;;
    *) printf 'lifecycle: error: LC_FIREWALL=%s: use iptables or nftables\n' "$LC_FIREWALL" >&2; return 1 2>/dev/null || exit 1 ;;
esac
LC_PACKAGES+=(nftables)

LC_UP_ADDR=192.0.2.1
LC_CT_ADDR=192.0.2.2
LC_UP_PREFIX=24
LC_UPSTREAM_NAME=upstream.test
LC_ARTIFACTS=/var/lib/dockyard/artifacts/docker
# Names of the eight binaries Dockyard's installer lays out per docker version.
LC_DOCKER_BINARIES=(dockerd docker containerd containerd-shim-runc-v2 ctr runc docker-proxy docker-init)

LC_PASSED=0
LC_FAILED=0
LC_FAILED_NAMES=()

# ---------------------------------------------------------------------------------------
# small helpers
lc_log() { printf '# %s\n' "$*" >&2; }
lc_die() { printf 'lifecycle: error: %s\n' "$*" >&2; return 1; }
lc__now() { date +%s.%N; }
lc__elapsed() { awk -v a="$1" -v b="$(lc__now)" 'BEGIN { printf "%.1f", b - a }'; }

lc__require_root() {
    [[ $(id -u) -eq 0 ]] || lc_die "must run as root (systemd-nspawn, netns, debootstrap)"
}

# Write a state value (key -> file) and read it back.
lc__state_set() { printf '%s\n' "$2" >"$LC_WORK/state/$1"; }
lc__state_get() {
    local f="$LC_WORK/state/$1"
    [[ -s $f ]] || return 1
    cat "$f"
}

# Unmount everything mounted at or below DIR (deepest first). Lazy unmount as a last resort.
lc__umount_under() {
    local dir m
    dir=$(realpath -m "$1")
    local -a mounts=()
    # /proc/self/mountinfo field 5 is the mount point (octal-escaped).
    while IFS= read -r m; do
        m=$(printf '%b' "$m")
        [[ $m == "$dir" || $m == "$dir"/* ]] && mounts+=("$m")
    done < <(awk '{print $5}' /proc/self/mountinfo)
    ((${#mounts[@]})) || return 0
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
    done
}

# rm -rf, refusing anything that is not strictly below one of our own roots.
lc__safe_rm() {
    local target root ok=0
    target=$(realpath -m "$1")
    for root in "$LC_CACHE" "${LC_WORK:-/nonexistent}"; do
        root=$(realpath -m "$root")
        [[ $target == "$root"/?* ]] && ok=1
    done
    ((ok)) || lc_die "refusing to remove '$target': not below $LC_CACHE or \$LC_WORK"
    [[ -e $target ]] || return 0
    lc__umount_under "$target"
    rm -rf --one-file-system "$target"
}

# Poll CMD... every 0.2 s for up to SECS seconds; return 0 as soon as it succeeds.
lc__wait_for() {
    local secs=$1; shift
    local deadline=$((SECONDS + secs))
    while ((SECONDS < deadline)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    "$@" >/dev/null 2>&1
}

# lc__pid_alive PID [COMM]: PID exists, is not a zombie (a reparented, unreaped nspawn
# must count as gone) and, if COMM is given, runs that program (a recorded PID that was
# reused by an unrelated process is never signalled).
lc__pid_alive() {
    [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null || return 1
    local st comm
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $st != Z ]] || return 1
    if [[ -n ${2:-} ]]; then
        comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 1
        [[ $comm == "$2" ]] || return 1
    fi
}

# Current leader PID (LC_PID in a caller may be stale after an lc_reboot in a subshell).
lc_leader_pid() { lc__state_get leader.pid; }

# ---------------------------------------------------------------------------------------
# lc_init: work dir, state dir, traps, host packages. Idempotent.
lc_init() {
    lc__require_root || return 1
    if [[ -n ${LC_WORK:-} && -d ${LC_WORK:-} ]]; then return 0; fi
    lc_host_deps || return 1
    mkdir -p "$LC_WORK_BASE" "$LC_CACHE"
    lc__reap_stale
    LC_WORK=$(mktemp -d "$LC_WORK_BASE/dockyard-lc.XXXXXX")
    export LC_WORK
    mkdir -p "$LC_WORK/state" "$LC_WORK/logs"
    LC_OWNER_PID=$BASHPID
    # (Not "$BASHPID" inside the $(): that would be the command substitution's PID.)
    lc__state_set owner "$LC_OWNER_PID $(lc__starttime "$LC_OWNER_PID")"
    lc__state_set boot_id "$(cat /proc/sys/kernel/random/boot_id)"
    LC_T0=$(lc__now)
    export LC_T0 LC_OWNER_PID
    trap 'lc_cleanup' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    lc_log "work dir $LC_WORK"
}

lc__starttime() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# A suite killed with SIGKILL (or a CI timeout) cannot run its trap. The next lc_init
# tears down every work dir whose owner process is gone, from its state files. PIDs
# recorded before a host reboot are ignored (processes and netns did not survive it).
lc__reap_stale() {
    local d owner opid ostart boot
    for d in "$LC_WORK_BASE"/dockyard-lc.??????; do
        [[ -d $d/state ]] || continue
        owner=$(cat "$d/state/owner" 2>/dev/null) || owner=""
        read -r opid ostart <<<"$owner" || true
        if [[ -n ${opid:-} && $(lc__starttime "$opid") == "${ostart:-x}" ]]; then
            continue   # its suite is still running
        fi
        lc_log "reaping stale work dir $d (owner ${opid:-?} gone)"
        boot=$(cat "$d/state/boot_id" 2>/dev/null) || boot=""
        if [[ $boot != "$(cat /proc/sys/kernel/random/boot_id)" ]]; then
            rm -f "$d"/state/*.pid "$d/state/udev.idx"
        fi
        # shellcheck disable=SC2030,SC2031  # deliberately local to the subshell
        (
            LC_WORK=$d
            LC_OWNER_PID=$BASHPID
            lc_cleanup
        ) || true
    done
}

# Install missing host packages with apt-get (CI runs on a fresh machine).
lc_host_deps() {
    local p missing=()
    for p in "${LC_HOST_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    lc_log "installing host packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
        lc_die "apt-get update failed" || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        lc_die "apt-get install ${missing[*]} failed" || return 1
}

# ---------------------------------------------------------------------------------------
# lc_rootfs: build (once) the cached rootfs. Exports LC_ROOTFS, LC_DOCKER_VERSION, LC_DOCKER_BIN.
lc_rootfs() {
    lc__require_root || return 1
    mkdir -p "$LC_CACHE"
    local key
    key=$( { printf '%s\n' "$LC_SUITE" "$LC_MIRROR" "recipe=$LC_ROOTFS_RECIPE"; printf '%s\n' "${LC_PACKAGES[@]}" | sort; } |
        sha256sum | cut -c1-16)
    local dir="$LC_CACHE/rootfs-$key"
    local marker="$dir/.dockyard-test-complete"
    local t0
    t0=$(lc__now)
    # One builder at a time; others wait (bounded) and reuse.
    exec {lc_lock_fd}>"$LC_CACHE/.rootfs.lock"
    flock -w 1800 "$lc_lock_fd" || { exec {lc_lock_fd}>&-; lc_die "timed out waiting for $LC_CACHE/.rootfs.lock"; return 1; }
    if [[ ! -f $marker ]]; then
        lc_log "building rootfs $dir (packages: ${LC_PACKAGES[*]})"
        if ! lc__build_rootfs "$dir"; then
            exec {lc_lock_fd}>&-
            lc_die "rootfs build failed; log: $LC_CACHE/rootfs-$key.log"
            return 1
        fi
        LC_ROOTFS_BUILT=1
    else
        LC_ROOTFS_BUILT=0
    fi
    exec {lc_lock_fd}>&-
    LC_ROOTFS=$dir
    LC_DOCKER_VERSION=$(cat "$dir/usr/local/share/dockyard-test/docker-version")
    LC_DOCKER_BIN=$LC_ARTIFACTS/$LC_DOCKER_VERSION/bin
    LC_ROOTFS_SECONDS=$(lc__elapsed "$t0")
    export LC_ROOTFS LC_DOCKER_VERSION LC_DOCKER_BIN LC_ROOTFS_SECONDS LC_ROOTFS_BUILT
    lc_log "rootfs ready in ${LC_ROOTFS_SECONDS}s (built=$LC_ROOTFS_BUILT, docker $LC_DOCKER_VERSION)"
}

lc__build_rootfs() {
    local dir=$1 log="$1.log" tmp="$1.partial"
    # An incomplete tree (no marker) is never trusted: start over.
    lc__safe_rm "$tmp" || return 1
    lc__safe_rm "$dir" || return 1
    local include
    include=$(IFS=,; echo "${LC_PACKAGES[*]}")
    if ! timeout 1500 debootstrap --variant=minbase --include="$include" "$LC_SUITE" "$tmp" "$LC_MIRROR" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        lc__umount_under "$tmp"
        return 1
    fi
    lc__umount_under "$tmp"
    lc__customise_rootfs "$tmp" >>"$log" 2>&1 || { tail -n 20 "$log" >&2; return 1; }
    # Marker last, then publish atomically.
    date -u +%FT%TZ >"$tmp/.dockyard-test-complete"
    mv -T "$tmp" "$dir"
}

lc__customise_rootfs() {
    local r=$1 u
    set -x
    # Distro docker must never start: Dockyard runs its own dockerd per instance.
    for u in docker.service docker.socket containerd.service; do
        ln -sfn /dev/null "$r/etc/systemd/system/$u"
    done
    # Root console without password, fixed hostname.
    chroot "$r" passwd -d root
    echo dockyard-test >"$r/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tdockyard-test\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
    # The container resolves through the upstream namespace only.
    rm -f "$r/etc/resolv.conf"
    printf 'nameserver %s\n' "$LC_UP_ADDR" >"$r/etc/resolv.conf"
    # No apt cache needed in the image.
    rm -rf "$r/var/cache/apt/archives/"*.deb
    # Lay Debian's docker binaries out in the layout Dockyard's installer produces.
    local version
    version=$(chroot "$r" /usr/sbin/dockerd --version | sed -n 's/^Docker version \([^, ]*\).*/\1/p')
    [[ -n $version ]] || { echo "cannot parse dockerd --version" >&2; return 1; }
    local bin="$LC_ARTIFACTS/$version/bin" b src
    mkdir -p "$r$bin" "$r/usr/local/share/dockyard-test"
    : >"$r/usr/local/share/dockyard-test/binaries"
    for b in "${LC_DOCKER_BINARIES[@]}"; do
        src=$(lc__find_docker_binary "$r" "$b") || { echo "no binary for $b in the rootfs" >&2; return 1; }
        # Copies (symlinks dereferenced inside the rootfs, not on the host), never symlinks.
        chroot "$r" cp -L --preserve=mode "$src" "$bin/$b"
        printf '%s <- %s -> %s\n' "$b" "$src" "$(chroot "$r" readlink -f "$src")" >>"$r/usr/local/share/dockyard-test/binaries"
    done
    echo "$version" >"$r/usr/local/share/dockyard-test/docker-version"
    set +x
}

# Print the in-rootfs path of the Debian binary that plays role NAME.
lc__find_docker_binary() {
    local r=$1 name=$2 c
    local -a cands
    case $name in
        docker-init) cands=(/usr/sbin/docker-init /usr/bin/docker-init /usr/libexec/docker/docker-init /usr/bin/tini-static /usr/bin/tini) ;;
        docker-proxy) cands=(/usr/sbin/docker-proxy /usr/bin/docker-proxy /usr/libexec/docker/docker-proxy) ;;
        *) cands=(/usr/sbin/"$name" /usr/bin/"$name" /usr/libexec/docker/"$name") ;;
    esac
    for c in "${cands[@]}"; do
        # -e follows symlinks; resolve relative to the rootfs, not the host.
        if [[ -L $r$c ]]; then
            local t
            t=$(readlink "$r$c")
            [[ $t == /* ]] || t=$(dirname "$c")/$t
            [[ -f $r$t && -x $r$t ]] && { echo "$c"; return 0; }
        elif [[ -f $r$c && -x $r$c ]]; then
            echo "$c"; return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------------------------------
# Upstream network namespace: bridge "upbr" carrying 192.0.2.1/24 (so the address, the DNS
# server and the TCP service survive the veth being destroyed by a container reboot),
# dnsmasq and a peer-logging TCP service.

# lc__short NAME: 6 hex chars unique per (NAME, suite process) for netns/veth names.
lc__short() { printf '%s.%s' "$1" "$LC_OWNER_PID" | sha256sum | cut -c1-6; }

lc__upstream_up() {
    local ns=$LC_NETNS
    ip netns add "$ns" || { lc_die "ip netns add $ns failed"; return 1; }
    ip -n "$ns" link set lo up
    ip -n "$ns" link add upbr type bridge
    ip -n "$ns" addr add "$LC_UP_ADDR/$LC_UP_PREFIX" dev upbr
    ip -n "$ns" link set upbr up
    # Bridge with no ports is "down" until a port comes up; the address is usable locally
    # anyway (bind works), which is all dnsmasq and the TCP service need before boot.
    lc__dns_start || return 1
    lc__tcp_start || return 1
}

lc__dns_start() {
    local log="$LC_WORK/logs/dnsmasq.log" pidf="$LC_WORK/state/dnsmasq.pid"
    : >"$log"
    # Exact answer for upstream.test only (host-record, not address=/…/ which would also
    # answer every subdomain). --local makes its AAAA an empty answer rather than REFUSED
    # (busybox nslookup fails on REFUSED). Every other name is REFUSED: no upstream
    # servers, no /etc/hosts, no DHCP.
    ip netns exec "$LC_NETNS" dnsmasq \
        --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
        --bind-interfaces --listen-address="$LC_UP_ADDR" --except-interface=lo \
        --host-record="$LC_UPSTREAM_NAME,$LC_UP_ADDR" --local="/$LC_UPSTREAM_NAME/" \
        --log-queries --log-facility="$log" \
        --pid-file="$pidf" --user=root --group=root \
        >>"$LC_WORK/logs/dnsmasq.stderr" 2>&1 ||
        { lc_die "dnsmasq failed to start: $(tail -n 5 "$LC_WORK/logs/dnsmasq.stderr" "$log")"; return 1; }
    lc__wait_for 5 test -s "$pidf" || { lc_die "dnsmasq wrote no pid file"; return 1; }
}

# Log lines: "<unix time> <peer address> <peer port>" per accepted connection.
lc__tcp_start() {
    local log="$LC_WORK/logs/upstream-peers.log"
    : >"$log"
    cat >"$LC_WORK/upstream-tcp.py" <<'PY'
import socket, sys, threading, time
addr, port, log, ttl = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
deadline = time.monotonic() + ttl
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(64)
srv.settimeout(1.0)
lock = threading.Lock()
def serve(conn, peer):
    try:
        with lock, open(log, "a") as f:
            f.write("%d %s %d\n" % (time.time(), peer[0], peer[1]))
        conn.settimeout(5)
        conn.sendall(b"hello from upstream\n")
    except OSError:
        pass
    finally:
        conn.close()
while time.monotonic() < deadline:
    try:
        conn, peer = srv.accept()
    except socket.timeout:
        continue
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
PY
    # setsid: its own session, so nothing we do to the test's process group hits it, and we
    # stop it by PID in lc_cleanup. It also exits by itself after LC_UPSTREAM_TTL seconds.
    setsid ip netns exec "$LC_NETNS" /usr/bin/python3 "$LC_WORK/upstream-tcp.py" \
        "$LC_UP_ADDR" "$LC_UPSTREAM_PORT" "$log" "$LC_UPSTREAM_TTL" \
        </dev/null >>"$LC_WORK/logs/upstream-tcp.stderr" 2>&1 &
    lc__state_set tcp.pid $!
    if ! lc__wait_for 10 lc__tcp_listening; then
        lc_die "upstream TCP service is not listening: $(cat "$LC_WORK/logs/upstream-tcp.stderr")"
        return 1
    fi
}

lc__tcp_listening() {
    ip netns exec "$LC_NETNS" ss -Htln | grep -qF "$LC_UP_ADDR:$LC_UPSTREAM_PORT"
}

# Peers logged by the upstream TCP service (one "<time> <addr> <port>" line each).
lc_upstream_peers() { cat "$LC_WORK/logs/upstream-peers.log"; }
# Queries seen by the upstream DNS server (dnsmasq log).
lc_upstream_dns_log() { cat "$LC_WORK/logs/dnsmasq.log"; }

# (Re)create the veth: upstream end in the bridge, container end on the host ready for
# nspawn --network-interface (which refuses interfaces udev has not initialised; there is
# no udev here, so write the udev database entry ourselves).
lc__veth_up() {
    ip link del "$LC_VETH_CT" 2>/dev/null || true
    ip -n "$LC_NETNS" link del "$LC_VETH_UP" 2>/dev/null || true
    ip link add "$LC_VETH_CT" type veth peer name "$LC_VETH_UP" netns "$LC_NETNS" ||
        { lc_die "cannot create veth $LC_VETH_CT/$LC_VETH_UP"; return 1; }
    ip -n "$LC_NETNS" link set "$LC_VETH_UP" master upbr up
    local idx
    idx=$(cat "/sys/class/net/$LC_VETH_CT/ifindex")
    if [[ ! -d /run/udev/data ]]; then
        # Remember what we created so lc_cleanup can remove it again.
        [[ -d /run/udev ]] || lc__state_set udev.created-run-udev 1
        lc__state_set udev.created-data 1
        mkdir -p /run/udev/data
    fi
    printf 'I:%s\n' "$(($(date +%s%N) / 1000))" >"/run/udev/data/n$idx"
    lc__state_set udev.idx "$idx"
}

lc__udev_marker_rm() {
    local idx
    idx=$(lc__state_get udev.idx 2>/dev/null) || return 0
    rm -f "/run/udev/data/n$idx"
}

# ---------------------------------------------------------------------------------------
# lc_boot NAME: fresh working copy of the cached rootfs, uplink, upstream services, boot.
# Exports LC_NAME, LC_ROOT (working copy), LC_NETNS, LC_PID (container's systemd, host PID),
# LC_BOOT_SECONDS (nspawn start -> running/degraded), LC_COPY_SECONDS.
lc_boot() {
    local name=${1:?lc_boot NAME}
    [[ $name =~ ^[a-z0-9][a-z0-9-]{0,30}$ ]] || { lc_die "lc_boot: bad name '$name' (a-z0-9-)"; return 1; }
    [[ -n ${LC_WORK:-} ]] || { lc_die "lc_boot: call lc_init first"; return 1; }
    [[ -n ${LC_ROOTFS:-} ]] || lc_rootfs || return 1
    [[ ! -e $LC_WORK/state/booted ]] || { lc_die "lc_boot: a container is already booted in this suite"; return 1; }
    LC_NAME=$name
    local short
    short=$(lc__short "$name")
    LC_NETNS=dy-up-$short
    LC_VETH_CT=dyc$short           # container end (keeps its name inside the container)
    LC_VETH_UP=dyu$short           # upstream end
    LC_ROOT=$LC_WORK/root
    export LC_NAME LC_NETNS LC_VETH_CT LC_VETH_UP LC_ROOT
    lc__state_set netns "$LC_NETNS"
    lc__state_set veth "$LC_VETH_CT"

    local t0
    t0=$(lc__now)
    # Plain copy: reflinks where the filesystem has them. An overlay would be instant but
    # dockerd's overlay2 cannot mount on an overlayfs root (measured: it falls back to
    # vfs). LC_ROOT_FS=tmpfs copies into a tmpfs instead (faster to make and to
    # remove; dockerd's overlay2 works on tmpfs) at the cost of realism (sysbox refuses
    # tmpfs, real hosts use a disk).
    case $LC_ROOT_FS in
        disk) mkdir -p "$LC_ROOT" ;;
        tmpfs)
            mkdir -p "$LC_ROOT"
            mount -t tmpfs -o "mode=755,size=$LC_TMPFS_SIZE" dockyard-lc "$LC_ROOT" ||
                { lc_die "cannot mount a tmpfs on $LC_ROOT"; return 1; }
            ;;
        *) lc_die "LC_ROOT_FS must be disk or tmpfs, not '$LC_ROOT_FS'"; return 1 ;;
    esac
    cp -a --reflink=auto "$LC_ROOTFS/." "$LC_ROOT/" || { lc_die "copying the rootfs failed"; return 1; }
    LC_COPY_SECONDS=$(lc__elapsed "$t0")
    export LC_COPY_SECONDS
    lc__install_uplink_unit || return 1
    lc__install_tun_unit || return 1

    lc__upstream_up || return 1
    lc__start_container || return 1
    lc__state_set booted 1
}

# A oneshot unit in the working copy configures the container end of the veth at every
# boot, before network.target, so instance units ordered after network-online.target find
# their uplink (including after lc_reboot).
lc__install_uplink_unit() {
    local r=$LC_ROOT
    cat >"$r/etc/systemd/system/dockyard-test-uplink.service" <<UNIT
[Unit]
Description=Dockyard test uplink ($LC_VETH_CT -> $LC_UP_ADDR)
DefaultDependencies=no
After=systemd-sysctl.service
Before=network.target network-online.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link set lo up
ExecStart=/usr/sbin/ip link set $LC_VETH_CT up
ExecStart=/usr/sbin/ip addr replace $LC_CT_ADDR/$LC_UP_PREFIX dev $LC_VETH_CT
ExecStart=/usr/sbin/ip route replace default via $LC_UP_ADDR dev $LC_VETH_CT

[Install]
WantedBy=network-online.target multi-user.target
UNIT
    mkdir -p "$r/etc/systemd/system/multi-user.target.wants" "$r/etc/systemd/system/network-online.target.wants"
    ln -sfn ../dockyard-test-uplink.service "$r/etc/systemd/system/multi-user.target.wants/dockyard-test-uplink.service"
    ln -sfn ../dockyard-test-uplink.service "$r/etc/systemd/system/network-online.target.wants/dockyard-test-uplink.service"
    # Nothing inside should try to reach the outside on its own.
    local t
    for t in apt-daily.timer apt-daily-upgrade.timer; do
        ln -sfn /dev/null "$r/etc/systemd/system/$t"
    done
}

# /dev/net/tun, mode 0666, at every boot before any service: what udev does on a real
# host (systemd's 50-udev-default.rules: KERNEL=="tun", MODE="0666"). There is no udev
# here, and nspawn copies the node with the machine's own mode (0600 on this one), so a
# rootless instance's slirp4netns, run as the instance's user, could not open it.
lc__install_tun_unit() {
    local r=$LC_ROOT
    cat >"$r/etc/systemd/system/dockyard-test-tun.service" <<'UNIT'
[Unit]
Description=Dockyard test: /dev/net/tun mode 0666, as udev makes it on a real host
DefaultDependencies=no
Before=sysinit.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'mkdir -p /dev/net && { [ -c /dev/net/tun ] || mknod /dev/net/tun c 10 200; } && chmod 0666 /dev/net/tun'

[Install]
WantedBy=sysinit.target
UNIT
    mkdir -p "$r/etc/systemd/system/sysinit.target.wants"
    ln -sfn ../dockyard-test-tun.service "$r/etc/systemd/system/sysinit.target.wants/dockyard-test-tun.service"
}

# lc__cgroup: prints the cgroup2 directory this run's container lives in, made on first use.
# --keep-unit boots the container in nspawn's own cgroup. Where that is the cgroup2 root
# (systemd is not PID 1 here), two runs would boot two systemds on one tree: each takes
# the other's system.slice for its own and they fail each other's units (219/CGROUP,
# daemons killed by the other's stop). So each run gets a child of the root of its own.
# Where nspawn already sits in a cgroup of its own (a unit or scope of the host's
# systemd), that one is left as it is: it is not ours to divide.
lc__cgroup() {
    local mnt own dir
    for mnt in /sys/fs/cgroup/unified /sys/fs/cgroup; do
        [[ $(stat -fc %T "$mnt" 2>/dev/null) == cgroup2fs ]] && break
        mnt=""
    done
    [[ -n $mnt ]] || return 0
    own=$(sed -n 's/^0:://p' /proc/self/cgroup)
    [[ $own == / ]] || return 0
    dir="$mnt/dockyard-lc.${LC_WORK##*.}"
    mkdir -p "$dir" || { lc_die "cannot make the container's cgroup $dir"; return 1; }
    lc__state_set cgroup "$dir"
    echo "$dir"
}

# lc__cgroup_rm: removes this run's cgroup and whatever the container's systemd left in
# it (children first: rmdir only takes empty leaves). Idempotent.
lc__cgroup_rm() {
    local dir
    dir=$(lc__state_get cgroup 2>/dev/null) || return 0
    [[ -d $dir ]] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    [[ -d $dir ]] && lc_log "cgroup $dir is not empty yet; left in place"
    rm -f "$LC_WORK/state/cgroup"
    return 0
}

# Start nspawn in the background on $LC_ROOT and wait for running/degraded.
lc__start_container() {
    lc__veth_up || return 1
    local log="$LC_WORK/logs/nspawn.log" t0 cgroup
    cgroup=$(lc__cgroup) || return 1
    printf '\n==== boot %s ====\n' "$(date -u +%FT%TZ)" >>"$log"
    t0=$(lc__now)
    # SYSTEMD_SECCOMP=0: docker/runc inside need syscalls nspawn's filter blocks.
    # SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1: pure cgroup2 inside although the host is hybrid.
    # --register=no --keep-unit: systemd is not PID 1 on the host (no machined, no scope).
    # The subshell joins the run's cgroup, then becomes nspawn (exec keeps its PID).
    (
        [[ -z $cgroup ]] || echo "$BASHPID" >"$cgroup/cgroup.procs" || exit 1
        SYSTEMD_SECCOMP=0 SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 exec setsid systemd-nspawn \
            --quiet --register=no --keep-unit \
            -D "$LC_ROOT" -M dockyard-test -b \
            --network-interface="$LC_VETH_CT" \
            --capability=all --resolv-conf=off --timezone=off --link-journal=no \
            --setenv=SYSTEMD_COLORS=0
    ) </dev/null >>"$log" 2>&1 &
    local npid=$!
    lc__state_set nspawn.pid "$npid"
    # Find the container's init: a descendant of nspawn that is PID 1 in its PID namespace.
    local pid="" deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        # Alive, whatever its name: right after the fork the child may still be bash or
        # setsid, not yet systemd-nspawn (seen on a loaded machine: the boot was declared
        # failed while nspawn went on to boot a container nobody tracked).
        lc__pid_alive "$npid" || break
        pid=$(lc__find_leader "$npid") && break
        sleep 0.1
    done
    if [[ -z $pid ]]; then
        lc_die "systemd-nspawn did not start a container (pid $npid); log tail:
$(tail -n 30 "$log")"
        return 1
    fi
    lc__state_set leader.pid "$pid"
    LC_PID=$pid
    export LC_PID
    lc__wait_running "$t0" || return 1
}

lc__find_leader() {
    local npid=$1 p st ppid nspid
    for st in /proc/[0-9]*/status; do
        p=${st#/proc/}; p=${p%/status}
        ppid=$(awk '/^PPid:/ {print $2}' "$st" 2>/dev/null) || continue
        [[ $ppid == "$npid" ]] || continue
        nspid=$(awk '/^NSpid:/ {print $NF}' "$st" 2>/dev/null) || continue
        if [[ $nspid == 1 && $(awk '/^NSpid:/ {print NF}' "$st") -gt 2 ]]; then
            echo "$p"; return 0
        fi
    done
    return 1
}

lc__wait_running() {
    local t0=$1 state="" deadline=$((SECONDS + LC_BOOT_TIMEOUT))
    local npid
    npid=$(lc__state_get nspawn.pid)
    while ((SECONDS < deadline)); do
        if ! lc__pid_alive "$npid" systemd-nspawn; then
            lc_die "container exited during boot; nspawn log tail:
$(tail -n 40 "$LC_WORK/logs/nspawn.log")"
            return 1
        fi
        state=$(lc_exec systemctl is-system-running 2>/dev/null) || true
        case $state in
            running | degraded) break ;;
        esac
        sleep 0.2
    done
    case $state in
        running | degraded) ;;
        *)
            lc_die "container not running after ${LC_BOOT_TIMEOUT}s (is-system-running: '${state:-?}')
--- systemctl --failed:
$(lc_exec systemctl --failed --no-legend 2>&1 | head -n 20)
--- jobs:
$(lc_exec systemctl list-jobs --no-legend 2>&1 | head -n 20)
--- nspawn log tail:
$(tail -n 40 "$LC_WORK/logs/nspawn.log")"
            return 1
            ;;
    esac
    LC_BOOT_SECONDS=$(lc__elapsed "$t0")
    LC_SYSTEM_STATE=$state
    export LC_BOOT_SECONDS LC_SYSTEM_STATE
    lc__state_set boot.seconds "$LC_BOOT_SECONDS"
    lc_log "container $LC_NAME up in ${LC_BOOT_SECONDS}s (leader $LC_PID, $state)"
    if [[ $state == degraded ]]; then
        lc_log "degraded; failed units: $(lc_exec systemctl --failed --no-legend --plain 2>&1 | awk '{print $1}' | tr '\n' ' ')"
    fi
}

# ---------------------------------------------------------------------------------------
# lc_exec CMD...: run CMD in all the container's namespaces with a clean environment.
# Exit status, stdout and stderr are CMD's. Stdin is passed through.
lc_exec() {
    local pid
    pid=$(lc__state_get leader.pid) || { lc_die "lc_exec: no container booted"; return 1; }
    lc__pid_alive "$pid" systemd || { lc_die "lc_exec: container leader $pid is gone"; return 1; }
    nsenter -t "$pid" -a -- /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

# lc_docker SOCKET ARGS...: the bundled docker CLI against one daemon's socket.
lc_docker() {
    local sock=${1:?lc_docker SOCKET ARGS...}; shift
    lc_exec env DOCKER_HOST="unix://$sock" "$LC_DOCKER_BIN/docker" "$@"
}

# lc_copy_in SRC DST: copy a host file or directory to path DST inside the running
# container (through its mount namespace, so tmpfs paths like /run work). A file lands at
# exactly DST (parents created, mode kept); a directory's contents land in DST.
lc_copy_in() {
    local src=${1:?lc_copy_in SRC DST} dst=${2:?lc_copy_in SRC DST}
    [[ $dst == /* ]] || { lc_die "lc_copy_in: DST must be absolute: $dst"; return 1; }
    if [[ -d $src ]]; then
        # shellcheck disable=SC2016  # expanded by the inner sh
        tar -C "$src" -cf - . | lc_exec sh -c 'mkdir -p "$1" && tar -C "$1" -xpf -' sh "$dst"
    elif [[ -f $src ]]; then
        local mode
        mode=$(stat -c %a "$src")
        # shellcheck disable=SC2016  # expanded by the inner sh
        lc_exec sh -c 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"' sh "$dst" "$mode" <"$src"
    else
        lc_die "lc_copy_in: no such file or directory: $src"
    fi
}

# ---------------------------------------------------------------------------------------
# lc_poweroff: clean shutdown, bounded; SIGKILL after LC_POWEROFF_TIMEOUT. Idempotent.
lc_poweroff() {
    local npid pid
    npid=$(lc__state_get nspawn.pid 2>/dev/null) || return 0
    pid=$(lc__state_get leader.pid 2>/dev/null) || pid=""
    if lc__pid_alive "$npid" systemd-nspawn; then
        # A boot that failed before its leader was recorded: find it now, or SIGKILL to
        # nspawn alone would leave the container running without an owner.
        lc__pid_alive "$pid" systemd || pid=$(lc__find_leader "$npid") || pid=""
        [[ -z $pid ]] || lc__state_set leader.pid "$pid"
        if lc__pid_alive "$pid" systemd; then
            lc_exec systemctl poweroff >/dev/null 2>&1 || kill -s SIGRTMIN+4 "$pid" 2>/dev/null || true
        fi
        local deadline=$((SECONDS + LC_POWEROFF_TIMEOUT))
        while lc__pid_alive "$npid" systemd-nspawn && ((SECONDS < deadline)); do sleep 0.2; done
        if lc__pid_alive "$npid" systemd-nspawn; then
            lc_log "container did not power off in ${LC_POWEROFF_TIMEOUT}s; killing"
            # Killing the leader kills the whole PID namespace.
            lc__pid_alive "$pid" systemd && kill -KILL "$pid" 2>/dev/null
            kill -KILL "$npid" 2>/dev/null || true
            local d2=$((SECONDS + 10))
            while lc__pid_alive "$npid" systemd-nspawn && ((SECONDS < d2)); do sleep 0.2; done
        fi
    fi
    # Reap if it is our child (ignore otherwise).
    wait "$npid" 2>/dev/null || true
    rm -f "$LC_WORK/state/leader.pid" "$LC_WORK/state/nspawn.pid"
    lc__udev_marker_rm
    lc__cgroup_rm
}

# lc_reboot: power off, boot again on the same working copy and uplink; exports LC_PID,
# LC_REBOOT_SECONDS (poweroff start -> running again).
lc_reboot() {
    [[ -e $LC_WORK/state/booted ]] || { lc_die "lc_reboot: nothing booted"; return 1; }
    local t0
    t0=$(lc__now)
    lc_poweroff || return 1
    # The container's network namespace died with it and took the veth pair along; the
    # upstream bridge, DNS and TCP service live on in the upstream namespace.
    lc__start_container || return 1
    LC_REBOOT_SECONDS=$(lc__elapsed "$t0")
    export LC_REBOOT_SECONDS
    lc__state_set reboot.seconds "$LC_REBOOT_SECONDS"
}

# ---------------------------------------------------------------------------------------
# lc_image SOCKET: import dockyard-test/busybox:latest into the daemon at SOCKET (a path
# inside the container). The busybox-static rootfs tarball is built once and cached.
LC_IMAGE=dockyard-test/busybox:latest
lc_image() {
    local sock=${1:?lc_image SOCKET}
    local tarball
    tarball=$(lc__busybox_tar) || return 1
    if lc_docker "$sock" image inspect "$LC_IMAGE" >/dev/null 2>&1; then return 0; fi
    lc_docker "$sock" import --change 'CMD ["/bin/sh"]' - "$LC_IMAGE" <"$tarball" >/dev/null ||
        { lc_die "docker import into $sock failed"; return 1; }
}

lc__busybox_tar() {
    local bb key out
    bb=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/busybox$') || true
    [[ -n $bb && -x $bb ]] || { lc_die "busybox-static binary not found (apt-get install busybox-static)"; return 1; }
    key=$(sha256sum "$bb" | cut -c1-16)
    out="$LC_CACHE/busybox-$key.tar"
    if [[ ! -s $out ]]; then
        local t
        t=$(mktemp -d "$LC_WORK/busybox.XXXXXX")
        mkdir -p "$t"/{bin,etc,tmp,proc,sys,dev,root,var}
        chmod 1777 "$t/tmp"
        cp "$bb" "$t/bin/busybox"
        local a
        for a in $("$bb" --list); do
            [[ $a == busybox ]] || ln -s busybox "$t/bin/$a"
        done
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$t/etc/passwd"
        printf 'root:x:0:\nnogroup:x:65534:\n' >"$t/etc/group"
        tar --numeric-owner --owner=0 --group=0 -C "$t" -cf "$out.tmp.$$" . &&
            mv -f "$out.tmp.$$" "$out"
        lc__safe_rm "$t"
    fi
    echo "$out"
}

# ---------------------------------------------------------------------------------------
# lc_cleanup: idempotent teardown (the EXIT trap). Safe to call at any point.
lc_cleanup() {
    local rc=$?
    [[ -n ${LC_WORK:-} && -d ${LC_WORK:-} ]] || return "$rc"
    # Only the process that created the work dir tears it down (not test subshells).
    [[ ${LC_OWNER_PID:-} == "$BASHPID" ]] || return "$rc"
    set +e
    lc_poweroff
    local p pid comm
    for p in tcp:python3 dnsmasq:dnsmasq; do
        comm=${p#*:} p=${p%%:*}
        pid=$(lc__state_get "$p.pid" 2>/dev/null) || continue
        if lc__pid_alive "$pid" "$comm"; then
            kill -TERM "$pid" 2>/dev/null
            local d=$((SECONDS + 5))
            while lc__pid_alive "$pid" "$comm" && ((SECONDS < d)); do sleep 0.1; done
            lc__pid_alive "$pid" "$comm" && kill -KILL "$pid" 2>/dev/null
        fi
        rm -f "$LC_WORK/state/$p.pid"
    done
    local ns veth
    if ns=$(lc__state_get netns 2>/dev/null); then
        # Anything still inside the upstream namespace is ours; end it by PID.
        local pids
        pids=$(ip netns pids "$ns" 2>/dev/null)
        # shellcheck disable=SC2086  # one PID per word
        [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    fi
    if veth=$(lc__state_get veth 2>/dev/null); then
        ip link del "$veth" 2>/dev/null
    fi
    lc__udev_marker_rm
    if lc__state_get udev.created-data >/dev/null 2>&1; then
        rmdir /run/udev/data 2>/dev/null
        lc__state_get udev.created-run-udev >/dev/null 2>&1 && rmdir /run/udev 2>/dev/null
    fi
    if [[ -n ${LC_KEEP_WORK:-} ]]; then
        lc_log "LC_KEEP_WORK set: leaving $LC_WORK"
    elif [[ $LC_WORK == "$LC_WORK_BASE"/dockyard-lc.?????? ]]; then
        lc__umount_under "$LC_WORK"
        rm -rf --one-file-system "$LC_WORK"
    else
        lc_log "not removing unexpected work dir '$LC_WORK'"
    fi
    LC_WORK=
    return "$rc"
}

# ---------------------------------------------------------------------------------------
# Test runner. lc_test "name" func [args...]: runs func in a subshell with errexit and an
# ERR trap, output captured; prints "ok - name" or "FAIL - name: reason" plus the captured
# output indented. Tests cannot change the caller's variables (use files / lc state).
lc_fail() { printf 'lc-fail-reason: %s\n' "$*" >&2; return 1; }

lc__err_trap() {
    [[ -z ${LC__ERR_SEEN:-} ]] || return 0
    LC__ERR_SEEN=1
    local i where="" test_frame=""
    for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
        where+=" < ${FUNCNAME[i]}:${BASH_LINENO[i - 1]}"
        # The first frame that is not the library's is the test's own line.
        if [[ -z $test_frame && ${FUNCNAME[i]} != lc_* ]]; then
            local src=${BASH_SOURCE[i]} line=${BASH_LINENO[i - 1]} text
            text=$(sed -n "${line}p" "$src" 2>/dev/null | sed 's/^[[:space:]]*//')
            test_frame="${text:-$BASH_COMMAND} (exit $1; ${FUNCNAME[i]} at ${src##*/}:$line)"
        fi
    done
    printf 'lc-failed-command: %s\n' "${test_frame:-$BASH_COMMAND (exit $1)}" >&2
    printf 'lc-failed-stack: %s (exit %s)%s\n' "$BASH_COMMAND" "$1" "$where" >&2
}

lc_test() {
    local name=${1:?lc_test NAME FUNC}; shift
    local out rc t0 had_e=0 tmp_out=""
    if [[ -n ${LC_WORK:-} && -d $LC_WORK/logs ]]; then
        out="$LC_WORK/logs/test.$((LC_PASSED + LC_FAILED + 1)).out"
    else
        # After lc_cleanup (e.g. a residue check): a throw-away file.
        out=$(mktemp /tmp/dockyard-lc-test.XXXXXX) tmp_out=$out
    fi
    [[ $- == *e* ]] && had_e=1
    t0=$(lc__now)
    set +e
    (
        set -eEuo pipefail
        # First (innermost) failure only: with errtrace the trap fires again in every
        # function frame the failure unwinds through.
        trap 'lc__err_trap "$?"' ERR
        "$@"
    ) >"$out" 2>&1 </dev/null
    rc=$?
    local dt
    dt=$(lc__elapsed "$t0")
    if ((rc == 0)); then
        LC_PASSED=$((LC_PASSED + 1))
        printf 'ok - %s (%ss)\n' "$name" "$dt"
        if [[ $LC_VERBOSE == 1 ]]; then sed 's/^/#   /' "$out"; fi
    else
        LC_FAILED=$((LC_FAILED + 1))
        LC_FAILED_NAMES+=("$name")
        local reason
        # lc_fail's message if the test gave one, else the failing command and its stack.
        reason=$(grep -m1 '^lc-fail-reason: ' "$out" | sed 's/^lc-fail-reason: //')
        [[ -n $reason ]] || reason=$(grep -m1 '^lc-failed-command: ' "$out" | sed 's/^lc-failed-command: //')
        [[ -n $reason ]] || reason=$(grep -v '^lc-fail' "$out" | tail -n 1)
        printf 'FAIL - %s: %s\n' "$name" "${reason:-exit $rc}"
        { grep -v '^lc-fail' "$out" | tail -n 40 | sed 's/^/#   /'; } || true
        grep -m1 '^lc-failed-stack: ' "$out" | sed 's/^lc-failed-stack: /#   at: /' || true
    fi
    [[ -z $tmp_out ]] || rm -f "$tmp_out"
    ((had_e)) && set -e
    return 0
}

lc_summary() {
    ((LC_FAILED == 0)) || lc_log "failed: ${LC_FAILED_NAMES[*]}"
    printf '%d passed, %d failed\n' "$LC_PASSED" "$LC_FAILED"
    ((LC_FAILED == 0))
}
