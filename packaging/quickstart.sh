#!/usr/bin/env bash
# Quick start: build and install Dockyard on this host, fetch the pinned
# Docker build with `dockyard install` (sha256-verified, from the URLs in the
# artifacts manifest), and start one instance, dy1. Run from the
# repository as root:
#   sudo make quickstart
# Offline hosts: DOCKYARD_QUICKSTART_FROM=DIR installs from files in DIR
# named as in the manifest's URLs (`dockyard install --from`).
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

# Docker for this instance; runc, so sysbox is not needed for the quick start.
install_args=(--no-sysbox)
[ -z "${DOCKYARD_QUICKSTART_FROM:-}" ] || install_args+=(--from "$DOCKYARD_QUICKSTART_FROM")
dockyard install "${install_args[@]}"

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
exec_start=$(systemctl show -p ExecStart "${name}_docker.service")
socket=$(printf '%s\n' "$exec_start" | grep -o 'unix://[^ ;]*' | head -n1)
# The Docker CLI of the same build, from Dockyard's store.
docker_cli=$(dirname "$(printf '%s\n' "$exec_start" | sed -n 's/.*path=\([^ ;]*dockerd\).*/\1/p')")/docker
say "${name}_docker.service is $(systemctl is-active "${name}_docker.service")"
DOCKER_HOST=$socket "$docker_cli" version --format 'quickstart: dockerd {{.Server.Version}} answers on '"$socket"
say "use it with: DOCKER_HOST=$socket $docker_cli ps   (members of group ${name}_docker need no sudo)"
