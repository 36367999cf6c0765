#!/usr/bin/env bash
# Quick start: build and install Dockyard on this host, give it Docker
# binaries, and start one instance, dy1. Run from the repository as root:
#   sudo make quickstart
#
# Until the installer (`dockyard install`, fetching Docker's static builds
# pinned by sha256) lands, the Docker binaries come from the distribution's
# docker.io package, laid out in Dockyard's versioned store exactly as the
# installer will lay them out. The distribution's own docker and containerd
# services are masked first when docker.io was not already installed, so
# this script never starts a host-wide dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${DOCKYARD_QUICKSTART_NAME:-dy1}
bridge_cidr=${DOCKYARD_QUICKSTART_BRIDGE:-172.22.147.1/24}
pool_base=${DOCKYARD_QUICKSTART_POOL:-172.23.0.0/16}
conf=/etc/dockyard/instances.d/$name.conf

say() { printf 'quickstart: %s\n' "$*"; }
die() { printf 'quickstart: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: sudo make quickstart"
[ -d /run/systemd/system ] || die "systemd is not running on this host; Dockyard needs it"

packaging/install-deps.sh

# Refuse networks that overlap a route the host already has, in any routing
# table, compared as networks (not as strings).
overlap=$(ip -4 -o route show table all | python3 -c '
import ipaddress, sys
wanted = [ipaddress.ip_network(n, strict=False) for n in sys.argv[1:]]
for line in sys.stdin:
    dest = line.split()[0]
    if dest in ("default", "broadcast", "local", "unreachable", "blackhole", "prohibit"):
        dest = line.split()[1] if dest != "default" else ""
    try:
        net = ipaddress.ip_network(dest, strict=False)
    except ValueError:
        continue
    for w in wanted:
        if net.prefixlen > 0 and net.overlaps(w):
            print(f"{w} overlaps the route {line.strip()}")
' "$bridge_cidr" "$pool_base")
[ -z "$overlap" ] || die "$overlap; choose free ranges with DOCKYARD_QUICKSTART_BRIDGE / DOCKYARD_QUICKSTART_POOL"

make build
make install PREFIX=/usr

if ! dpkg -s docker.io >/dev/null 2>&1; then
    say "masking the distribution's docker/containerd services before installing docker.io for its binaries"
    systemctl mask docker.service docker.socket containerd.service >/dev/null
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null

version=$(/usr/sbin/dockerd --version | sed -n 's/^Docker version \([^,]*\),.*/\1/p')
[ -n "$version" ] || die "cannot read the dockerd version"
store=/var/lib/dockyard/artifacts/docker/$version/bin
if [ ! -x "$store/dockerd" ]; then
    staging=$(mktemp -d /var/lib/dockyard/artifacts/.staging.XXXXXX 2>/dev/null || { mkdir -p /var/lib/dockyard/artifacts && mktemp -d /var/lib/dockyard/artifacts/.staging.XXXXXX; })
    mkdir -p "$staging/bin"
    for bin in dockerd docker containerd containerd-shim-runc-v2 ctr runc docker-proxy docker-init; do
        src=$(PATH=/usr/sbin:/usr/bin:/usr/libexec/docker:/usr/libexec/docker/cli-plugins command -v "$bin" || true)
        [ -n "$src" ] || src=$(ls /usr/libexec/docker/*/"$bin" 2>/dev/null | head -n1 || true)
        [ -n "$src" ] || die "docker.io provides no $bin"
        cp -L "$src" "$staging/bin/$bin"
    done
    mkdir -p "$(dirname "$store")"
    mv -T "$staging/bin" "$store"
    rmdir "$staging"
    say "Docker $version binaries laid out in $store"
fi

if [ -e "$conf" ]; then
    say "$conf exists; leaving it as it is"
else
    mkdir -p "$(dirname "$conf")"
    tmp=$(mktemp "$conf.XXXXXX")
    cat >"$tmp" <<CONF
# Written by Dockyard's quick start. See dockyard.conf(5).
[Instance]
BridgeCIDR=$bridge_cidr
PoolBase=$pool_base
Runtime=runc
DockerVersion=$version
CONF
    chmod 0644 "$tmp"
    mv "$tmp" "$conf"
    say "wrote $conf"
fi

systemctl daemon-reload
if ! systemctl cat "${name}_docker.service" >/dev/null 2>&1; then
    /usr/lib/systemd/system-generators/dockyard-generator --dry-run >/dev/null || true
    die "${name}_docker.service was not generated; see the messages above"
fi
systemctl start "${name}_docker.service"
socket=$(systemctl show -p ExecStart "${name}_docker.service" | grep -o 'unix://[^ ;]*' | head -n1)
say "${name}_docker.service is $(systemctl is-active "${name}_docker.service")"
DOCKER_HOST=$socket docker version --format 'quickstart: dockerd {{.Server.Version}} answers on '"$socket"
say "use it with: export DOCKER_HOST=$socket   (members of group ${name}_docker need no sudo)"
