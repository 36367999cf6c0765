#!/usr/bin/env bash
# Installs what building, running and testing Dockyard needs from the
# distribution (Debian 12+ / Ubuntu 22.04+). The one list, used by the
# README's quick start and by CI. Rust itself (stable, >= 1.80) comes from
# rustup or the distribution and is checked, not installed, here.
set -euo pipefail

packages=(
    # build
    gcc make pkg-config
    # runtime: what the helpers call and what the units need
    iptables nftables iproute2 passwd util-linux kmod
    # tests: systemd-analyze verify, man page lint, setpriv; a terminal for
    # the completion test (cli/tests/completion_terminal.rs)
    systemd groff-base man-db tmux
    # lifecycle suite: a booted systemd in a container with real dockerd
    debootstrap systemd-container dnsmasq-base busybox-static python3
    # installer tests (.deb fixtures via dpkg-deb, tmpfs via unshare, a private
    # CA via openssl, a terminal via script) and its benchmark's baseline
    # pipeline (curl | sha256sum, tar)
    dpkg curl coreutils tar openssl
    # packages and the fleet role: lintian, rpmbuild, rpmlint, ansible
    lintian rpm rpmlint ansible-core openssh-client file
)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (it calls apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps.sh: cargo not found; install Rust >= 1.80 (https://rustup.rs or your distribution)" >&2
    exit 1
fi
echo "install-deps.sh: $(cargo --version) and ${#packages[@]} packages in place"
