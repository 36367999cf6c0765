#!/usr/bin/env bash
# Issue 13: the README's first command, `sudo make quickstart`, end to end in a booted
# host with no internet (the harness's only uplink is the documentation network): from a
# checkout, with DOCKYARD_QUICKSTART_FROM holding the Dockyard .deb built from this
# checkout and the distribution's docker.io, containerd, runc and tini packages. Then a
# second run (nothing changes), and the failures an offline admin meets, each one line.
#
#   sudo bash tests/lifecycle/quickstart_suite.sh      (or: sudo make lifecycle-quickstart)
#
# Env: LC_DEB=FILE uses a .deb built beforehand; LC_VERBOSE=1, LC_KEEP_WORK=1 as in lib.sh.
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"

CHECKOUT=/root/dockyard
FROM=/root/from
# The distribution's packages the quick start installs Docker from, and make (the
# minimal rootfs has none), fetched once on this host with apt-get download.
DISTRO_DEBS=(docker.io containerd runc tini)

# --- set-up (on this host) -------------------------------------------------------------
prepare() {
    local t0 deb cache
    t0=$(lc__now)
    [[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == "$LC_SUITE" ]] ||
        { lc_die "this host is not Debian $LC_SUITE: its packages would not fit the test host"; return 1; }
    cache=$LC_CACHE/quickstart-debs-$LC_SUITE-$(dpkg --print-architecture)
    if [[ ! -f $cache/.complete ]]; then
        rm -rf "$cache.partial" && mkdir -p "$cache.partial"
        (cd "$cache.partial" && apt-get download -q -o APT::Sandbox::User=root "${DISTRO_DEBS[@]}" make) \
            >"$LC_WORK/logs/apt-download.log" 2>&1 ||
            { tail -n 5 "$LC_WORK/logs/apt-download.log" >&2; lc_die "apt-get download failed"; return 1; }
        touch "$cache.partial/.complete"
        rm -rf "$cache" && mv "$cache.partial" "$cache"
    fi
    deb=${LC_DEB:-}
    if [[ -z $deb ]]; then
        "$REPO/packaging/deb/build.sh" >"$LC_WORK/logs/build-deb.log" 2>&1 ||
            { tail -n 20 "$LC_WORK/logs/build-deb.log" >&2; lc_die "packaging/deb/build.sh failed"; return 1; }
        deb=$(sed -n 's/^build-deb: \(.*\.deb\)$/\1/p' "$LC_WORK/logs/build-deb.log")
    fi
    [[ -f $deb ]] || { lc_die "no .deb (${deb:-none})"; return 1; }
    # The checkout an admin has: the tracked files (with uncommitted edits), no target/.
    mkdir -p "$LC_ROOT$CHECKOUT" "$LC_ROOT$FROM"
    (cd "$REPO" && git ls-files -z | tar --null -T - -cf -) | tar -C "$LC_ROOT$CHECKOUT" -xf -
    cp "$deb" "$LC_ROOT$FROM/"
    local p
    for p in "${DISTRO_DEBS[@]}"; do cp "$cache/${p}_"*.deb "$LC_ROOT$FROM/"; done
    cp "$cache"/make_*.deb "$LC_ROOT/root/"
    lc_exec sh -c 'dpkg -i /root/make_*.deb' >"$LC_WORK/logs/make-deb.log" 2>&1 ||
        { tail -n 5 "$LC_WORK/logs/make-deb.log" >&2; lc_die "dpkg -i make failed"; return 1; }
    lc_log "prepared in $(lc__elapsed "$t0")s"
}

# quickstart [ENV...]: `make quickstart` in the checkout, as root; stdout and stderr kept
# apart in $LC_WORK/logs/qs.{out,err}; returns its exit status.
quickstart() {
    local rc=0
    lc_exec env "$@" make -s -C "$CHECKOUT" quickstart >"$LC_WORK/logs/qs.out" 2>"$LC_WORK/logs/qs.err" </dev/null || rc=$?
    echo "--- stdout"; cat "$LC_WORK/logs/qs.out"; echo "--- stderr"; cat "$LC_WORK/logs/qs.err"
    return "$rc"
}

# --- tests -----------------------------------------------------------------------------
t01_offline_quickstart() {
    quickstart DOCKYARD_QUICKSTART_FROM="$FROM" || lc_fail "make quickstart failed (exit $?)"
    local version sock=/var/lib/dockyard/dy1/docker.sock
    version=$(lc_exec sh -c "ls $FROM/docker.io_*.deb" | sed -n 's/.*docker\.io_\([^-]*\)-.*/\1/p')
    [[ -n $version ]] || lc_fail "no docker.io version in $FROM"
    [[ ! -s $LC_WORK/logs/qs.err ]] || lc_fail "the quick start wrote to stderr: $(cat "$LC_WORK/logs/qs.err")"
    local want
    want=$(printf '%s\n' \
        "quickstart: installing Dockyard from $FROM/$(basename "$(ls "$LC_ROOT$FROM"/dockyard_*.deb)")" \
        "quickstart: installing Docker from the distribution's packages in $FROM" \
        "quickstart: wrote $CONF_DIR/dy1.conf" \
        "quickstart: dy1_docker.service is active" \
        "quickstart: dockerd $version answers on unix://$sock" \
        "quickstart: use it with: DOCKER_HOST=unix://$sock /var/lib/dockyard/artifacts/docker/$version-debian/bin/docker ps   (members of group dy1_docker need no sudo)")
    [[ $(cat "$LC_WORK/logs/qs.out") == "$want" ]] || lc_fail "the quick start printed something else than:
$want"
    active dy1_docker.service || lc_fail "dy1 is not active: $(unit_state dy1_docker.service)"
    lc_exec grep -qx "DockerVersion=$version-debian" "$CONF_DIR/dy1.conf" || lc_fail "dy1.conf does not pin $version-debian"
    lc_exec dockyard install --list | awk -v v="$version-debian" '$1 == "docker" && $2 == v && $3 == "installed" && $4 == "dy1" { ok = 1 } END { exit !ok }' ||
        lc_fail "install --list does not show the distribution's build: $(lc_exec dockyard install --list)"
    # A container runs on it (the busybox image, imported: there is no registry).
    lc_image "$sock"
    [[ $(run_in dy1 echo quick) == quick ]] || lc_fail "no container runs on dy1"
}

t02_second_run_changes_nothing() {
    local pid
    pid=$(main_pid dy1_docker.service)
    quickstart DOCKYARD_QUICKSTART_FROM="$FROM" || lc_fail "the second make quickstart failed"
    grep -qx "quickstart: $CONF_DIR/dy1.conf exists; leaving it as it is" "$LC_WORK/logs/qs.out" ||
        lc_fail "the second run did not leave the conf alone"
    [[ $(main_pid dy1_docker.service) == "$pid" ]] || lc_fail "the second run restarted dy1"
}

t03_offline_without_docker_files_is_one_line() {
    local rc=0 err
    lc_exec sh -c "mkdir -p /root/only-deb && cp $FROM/dockyard_*.deb /root/only-deb/"
    quickstart DOCKYARD_QUICKSTART_FROM=/root/only-deb DOCKYARD_QUICKSTART_NAME=dy2 || rc=$?
    ((rc != 0)) || lc_fail "make quickstart succeeded without any Docker files"
    err=$(grep -v '^make: \*\*\*' "$LC_WORK/logs/qs.err")
    [[ $(grep -c . <<<"$err") == 1 ]] || lc_fail "not one line of error: $err"
    grep -q "^quickstart: error: dockyard install --from /root/only-deb failed: .*; DIR must hold the files named as in the manifest's URLs (dockyard install --help) (full output: /tmp/dockyard-quickstart\.[^ ]*\.log)$" <<<"$err" ||
        lc_fail "the one line does not say what failed and what to do: $err"
    if lc_exec test -e "$CONF_DIR/dy2.conf"; then lc_fail "a failed quick start wrote dy2.conf"; fi
}

t04_build_deps_offline_is_one_line() {
    local rc=0 out
    # Building from the checkout (no .deb given) needs gcc and cargo; offline, apt fails.
    out=$(lc_exec bash "$CHECKOUT/packaging/install-deps.sh" --run 2>&1 </dev/null) || rc=$?
    echo "$out"
    ((rc == 1)) || lc_fail "install-deps.sh --run exited $rc offline"
    [[ $(grep -c . <<<"$out") == 2 ]] || lc_fail "more than two lines: $out"
    grep -q '^install-deps.sh: installing gcc .*pkg-config.* (apt-get output: ' <<<"$out" || lc_fail "does not say what it installs: $out"
    grep -q '^install-deps.sh: error: apt-get could not install gcc .*: E: .*; with no reachable package archive, install them by other means' <<<"$out" ||
        lc_fail "the error does not say what failed and what to do: $out"
    if grep -q 'lintian\|ansible\|debootstrap' <<<"$out"; then lc_fail "--run wants the test toolchain: $out"; fi
}

# --- run -------------------------------------------------------------------------------
lc_init
lc_rootfs
lc_boot quickstart
prepare

lc_test "1. make quickstart offline from a .deb and the distribution's packages: dy1 runs containers" t01_offline_quickstart
lc_test "2. make quickstart again: the conf and the running instance are left alone" t02_second_run_changes_nothing
lc_test "3. offline without Docker files: one line, what failed and what to do, nothing written" t03_offline_without_docker_files_is_one_line
lc_test "4. install-deps.sh --run offline: one line with apt's error, no test toolchain" t04_build_deps_offline_is_one_line

lc_log "timings: rootfs ${LC_ROOTFS_SECONDS}s, boot ${LC_BOOT_SECONDS}s, total $(lc__elapsed "$SUITE_T0")s before teardown"
lc_summary
