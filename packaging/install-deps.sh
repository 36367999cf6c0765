#!/usr/bin/env bash
# Installs from the distribution (Debian 12+ / Ubuntu 22.04+) what Dockyard
# needs. The one list, in two parts:
#   install-deps.sh --run   building Dockyard from this checkout and running it
#                           (the quick start); nothing of the test toolchain
#   install-deps.sh         that, plus everything `make check` needs (CI)
# Packages already installed are skipped; nothing is fetched when all are
# there, so it works offline on a prepared host. A failure is one line: what
# could not be installed, apt-get's own last error, and where its full output
# is. Rust itself (stable, >= 1.80) comes from rustup or the distribution and
# is checked, not installed, here.
set -euo pipefail

run_packages=(
    # build
    gcc make pkg-config
    # runtime: what the helpers call and what the units need
    iptables nftables iproute2 passwd util-linux kmod
)
test_packages=(
    # tests: systemd-analyze verify, man page lint, setpriv; a terminal for
    # the completion test (cli/tests/completion_terminal.rs)
    systemd groff-base man-db tmux
    # lifecycle suite: a booted systemd in a container with real dockerd
    debootstrap systemd-container dnsmasq-base busybox-static python3
    # installer tests (.deb fixtures via dpkg-deb, tmpfs via unshare, a private
    # CA via openssl, a terminal via script) and its benchmark's
    # baseline pipeline (curl | sha256sum, tar)
    dpkg curl coreutils tar openssl
    # packages and the fleet role: lintian, rpmbuild, rpmlint, ansible
    lintian rpm rpmlint ansible-core openssh-client file
)

say() { printf 'install-deps.sh: %s\n' "$*"; }
die() { printf 'install-deps.sh: error: %s\n' "$*" >&2; exit 1; }

case ${1:-} in
--run) packages=("${run_packages[@]}") what="building and running Dockyard" ;;
"") packages=("${run_packages[@]}" "${test_packages[@]}") what="building, running and testing Dockyard" ;;
*) die "unknown argument ${1}; use --run (build and run) or nothing (also the tests)" ;;
esac

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
    [ "$(id -u)" -eq 0 ] || die "${missing[*]} not installed; run as root to install them with apt-get"
    command -v apt-get >/dev/null 2>&1 ||
        die "${missing[*]} not installed and there is no apt-get; install them by other means"
    log=$(mktemp /tmp/dockyard-install-deps.XXXXXX.log)
    export DEBIAN_FRONTEND=noninteractive
    say "installing ${missing[*]} (apt-get output: $log)"
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        last=$(grep -E '^(E|Err):' "$log" | tail -n 1 || true)
        die "apt-get could not install ${missing[*]}: ${last:-see $log}; with no reachable package archive, install them by other means (or from local .debs with apt-get install ./PKG.deb) and run again (full output: $log)"
    fi
    rm -f "$log"
fi

command -v cargo >/dev/null 2>&1 ||
    die "cargo not found; install Rust >= 1.80 (https://rustup.rs or your distribution)"
say "$(cargo --version) and the ${#packages[@]} packages for $what in place (${#missing[@]} installed now)"
