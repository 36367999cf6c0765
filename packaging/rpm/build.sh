#!/usr/bin/env bash
# Builds target/rpm/dockyard-VERSION-1.ARCH.rpm from this repository and
# checks it with rpmlint:
#   packaging/rpm/build.sh
# Same staged files as the .deb (packaging/stage.sh); dockyard.spec holds
# the metadata and scriptlets. rpm's own post-install scripts (strip,
# compress) are switched off: stage.sh already did both, and on Debian they
# run under dash and fail.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
[ -n "$version" ] || { echo "build-rpm: no version in Cargo.toml" >&2; exit 1; }
work=$(mktemp -d /tmp/dockyard-rpm.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage=$work/stage

# Fedora's zsh looks for completions in site-functions.
ZSHCOMPDIR=/usr/share/zsh/site-functions "$repo/packaging/stage.sh" "$stage"

out=$repo/target/rpm
mkdir -p "$out"
rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "_rpmdir $out" \
    --define "_build_id_links none" \
    --define "__os_install_post %{nil}" \
    --define "stage $stage" \
    --define "version $version" \
    "$here/dockyard.spec"
rpm=$(find "$out" -name "dockyard-$version-1.*.rpm" -newer "$here/dockyard.spec" -print -quit)
rpm=${rpm:-$(find "$out" -name "dockyard-$version-1.*.rpm" -print -quit)}
echo "build-rpm: $rpm"
if command -v rpmlint >/dev/null 2>&1; then
    rpmlint -c "$here/rpmlint.toml" "$rpm"
fi
