#!/usr/bin/env bash
# Builds target/debian/dockyard_DEBVERSION_ARCH.deb from this repository and
# checks it with lintian:
#   packaging/deb/build.sh
# DEBVERSION is VERSION+gitN-1 in a git checkout (N: the commit count, so a
# later build upgrades an earlier one), else VERSION-1; the script prints the
# file as "build-deb: PATH".
# The package holds exactly what `make install PREFIX=/usr` installs, with
# binaries stripped and man pages compressed (packaging/stage.sh), and
# maintainer scripts that reload systemd, never restart running instances on
# install or upgrade, and stop them on removal (packaging/deb/prerm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "build-deb: no version in Cargo.toml" >&2; exit 1; }
# Builds from a git checkout carry the commit count, so a later build is an
# upgrade of an earlier one (the upgrade test installs both).
# DOCKYARD_DEB_VERSION overrides it (the upgrade test's fallback).
if [ -n "${DOCKYARD_DEB_VERSION:-}" ]; then
    debversion=$DOCKYARD_DEB_VERSION
elif commits=$(git -C "$repo" rev-list --count HEAD 2>/dev/null); then
    debversion="$version+git$commits-1"
else
    debversion="$version-1"
fi
arch=$(dpkg --print-architecture)
out=$repo/target/debian
work=$(mktemp -d /tmp/dockyard-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

"$repo/packaging/stage.sh" "$root"

doc=$root/usr/share/doc/dockyard
{
    echo "dockyard ($debversion) unstable; urgency=medium"
    echo
    echo "  * Package built from the Dockyard repository; see git history."
    echo
    echo " -- Dockyard developers <dev@dockyard.invalid>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$doc/changelog.Debian.gz"
install -d "$root/usr/share/lintian/overrides"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/dockyard"

# Shared-library dependencies, computed as debhelper would.
mkdir -p "$work/shlibs/debian"
printf 'Source: dockyard\n\nPackage: dockyard\nArchitecture: any\n' >"$work/shlibs/debian/control"
elfs=$(find "$root/usr" -type f -perm -0100 -exec sh -c '[ "$(head -c4 "$1" | od -An -c | tr -d " ")" = "177ELF" ] && echo "$1"' _ {} \;)
# shellcheck disable=SC2086
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O $elfs 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build-deb: dpkg-shlibdeps found no libraries" >&2; exit 1; }

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$debversion/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
    "$here/control.in" >"$root/DEBIAN/control"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
(cd "$root" && find usr -type f -exec md5sum {} + | sort -k2) >"$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/dockyard_${debversion}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "build-deb: $deb"
if command -v lintian >/dev/null 2>&1; then
    lintian --fail-on error,warning --info "$deb"
    echo "build-deb: lintian reports no errors or warnings"
fi
