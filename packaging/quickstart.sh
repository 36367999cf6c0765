#!/usr/bin/env bash
# Quick start: install Dockyard on this host, give it a Docker build, and
# start one instance, dy1 (Runtime=runc: sysbox is not needed). Run from the
# repository as root:
#   sudo make quickstart
#
# Dockyard itself: the .deb in $DOCKYARD_QUICKSTART_FROM when there is one
# (dockyard_*.deb, installed with apt-get from the file), else built from
# this checkout (packaging/install-deps.sh --run: the build and runtime
# packages only, those missing; then make build install).
#
# Docker, the first of these that applies:
#   DOCKYARD_QUICKSTART_FROM=DIR holding docker.io_*.deb (and containerd,
#     runc, tini): `dockyard install --distro --debs DIR`
#   DOCKYARD_QUICKSTART_FROM=DIR otherwise: `dockyard install --from DIR`
#     (files named as in the manifest's URLs)
#   no DIR: Docker's pinned static build (`dockyard install`), and when
#     download.docker.com cannot be reached, the distribution's packages
#     (`dockyard install --distro`, through apt).
# With DIR holding both .debs, nothing is fetched: it works offline.
#
# Every step's output goes to a log; a failure is one line saying which step
# failed, its last message, what to do and where the log is.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${DOCKYARD_QUICKSTART_NAME:-dy1}
from=${DOCKYARD_QUICKSTART_FROM:-}
conf=/etc/dockyard/instances.d/$name.conf

say() { printf 'quickstart: %s\n' "$*"; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: sudo make quickstart"
[ -d /run/systemd/system ] || die "systemd is not running on this host; Dockyard needs it"
[ -z "$from" ] || [ -d "$from" ] || die "DOCKYARD_QUICKSTART_FROM=$from is not a directory"

log=$(mktemp /tmp/dockyard-quickstart.XXXXXX.log)
# step WHAT FIX COMMAND...: runs COMMAND with its output in the log; on
# failure, one line: WHAT failed, the command's last message, FIX.
step() {
    local what=$1 fix=$2 last
    shift 2
    printf '\n== %s: %s\n' "$what" "$*" >>"$log"
    if "$@" >>"$log" 2>&1; then return 0; fi
    last=$(grep -v '^[[:space:]]*$' "$log" | grep -v '^make' | tail -n 1)
    die "$what failed: ${last:-no message}; $fix (full output: $log)"
}

# --- Dockyard ------------------------------------------------------------------------
deb=""
if [ -n "$from" ]; then
    deb=$(find "$from" -maxdepth 1 -name 'dockyard_*.deb' | sort | tail -n 1)
fi
if [ -n "$deb" ]; then
    say "installing Dockyard from $deb"
    step "installing $deb" "its dependencies must be installed or reachable through apt" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$(readlink -f "$deb")"
else
    say "building Dockyard from this checkout (log: $log)"
    # It says itself, in one line, what could not be installed and what to do.
    packaging/install-deps.sh --run || exit 1
    step "building Dockyard (make build)" \
        "offline, cargo needs the crates of Cargo.lock in ~/.cargo (cargo fetch on a host with network), or put a dockyard_*.deb in DOCKYARD_QUICKSTART_FROM" \
        make build
    step "installing Dockyard (make install)" "see the log" make install PREFIX=/usr
fi
command -v dockyard >/dev/null || die "dockyard is not on PATH after the install"

# --- Docker ----------------------------------------------------------------------------
docker_version=""
distro() {
    local out
    out=$(dockyard install --distro "$@" 2>>"$log") || return 1
    printf '%s\n' "$out" >>"$log"
    docker_version=$(printf '%s\n' "$out" | sed -n 's/.*DockerVersion=\([^ ]*\)$/\1/p' | tail -n 1)
    if [ -z "$docker_version" ]; then
        # Already installed: the same name, from the record's line.
        docker_version=$(printf '%s\n' "$out" | sed -n 's/^docker \([^ ]*\) is already installed.*/\1/p')
    fi
    [ -n "$docker_version" ]
}
if [ -n "$from" ] && compgen -G "$from/docker.io_*.deb" >/dev/null; then
    say "installing Docker from the distribution's packages in $from"
    distro --debs "$from" ||
        die "dockyard install --distro --debs $from failed: $(tail -n 1 "$log"); it needs docker.io, containerd, runc and tini .debs of this architecture (full output: $log)"
elif [ -n "$from" ]; then
    say "installing Docker from the files in $from"
    # Compose only when its file is there too: the instance runs without it.
    compose=(--no-compose)
    if compgen -G "$from/docker-compose-*" >/dev/null; then compose=(); fi
    step "dockyard install --from $from" "DIR must hold the files named as in the manifest's URLs (dockyard install --help)" \
        dockyard install --no-sysbox "${compose[@]}" --from "$from"
else
    say "installing Docker's pinned static build"
    if ! dockyard install --no-sysbox >>"$log" 2>&1; then
        say "download.docker.com failed ($(tail -n 1 "$log")); trying the distribution's packages"
        distro ||
            die "no Docker build could be installed: $(tail -n 1 "$log"); give DOCKYARD_QUICKSTART_FROM=DIR holding the files of the manifest or the docker.io, containerd, runc and tini .debs (full output: $log)"
    fi
fi

# --- the instance ----------------------------------------------------------------------
if [ -e "$conf" ]; then
    say "$conf exists; leaving it as it is"
    step "systemctl daemon-reload" "see the log" systemctl daemon-reload
    step "starting ${name}_docker.service" "see systemctl status ${name}_docker.service and dockyard check" \
        systemctl start "${name}_docker.service"
else
    new_args=(new "$name" --runtime runc --start)
    [ -z "$docker_version" ] || new_args+=(--docker-version "$docker_version")
    [ -z "${DOCKYARD_QUICKSTART_BRIDGE:-}" ] || new_args+=(--bridge-cidr "$DOCKYARD_QUICKSTART_BRIDGE")
    [ -z "${DOCKYARD_QUICKSTART_POOL:-}" ] || new_args+=(--pool-base "$DOCKYARD_QUICKSTART_POOL")
    # dockyard new picks networks no route or address of the host overlaps.
    step "dockyard ${new_args[*]}" "see systemctl status ${name}_docker.service and dockyard check" \
        dockyard "${new_args[@]}"
    say "wrote $conf"
fi

exec_start=$(systemctl show -p ExecStart "${name}_docker.service")
socket=$(printf '%s\n' "$exec_start" | grep -o 'unix://[^ ;]*' | head -n1)
# The Docker CLI of the same build, from Dockyard's store.
docker_cli=$(dirname "$(printf '%s\n' "$exec_start" | sed -n 's/.*path=\([^ ;]*dockerd\).*/\1/p')")/docker
say "${name}_docker.service is $(systemctl is-active "${name}_docker.service")"
server=$(DOCKER_HOST=$socket "$docker_cli" version --format '{{.Server.Version}}' 2>>"$log") ||
    die "dockerd of $name does not answer on $socket: $(tail -n 1 "$log") (full output: $log)"
say "dockerd $server answers on $socket"
say "use it with: DOCKER_HOST=$socket $docker_cli ps   (members of group ${name}_docker need no sudo)"
rm -f "$log"
