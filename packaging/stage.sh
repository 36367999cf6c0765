#!/usr/bin/env bash
# Stages what the packages ship into DIR: `make install PREFIX=/usr`,
# binaries stripped, man pages compressed, the copyright file in place.
# Shared by packaging/deb/build.sh and packaging/rpm/build.sh so both
# packages hold exactly the same files.
#   packaging/stage.sh DIR
set -euo pipefail
root=${1:?usage: packaging/stage.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)

make -s -C "$repo" install DESTDIR="$root" PREFIX=/usr >/dev/null

is_elf() { [ "$(head -c4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
while IFS= read -r -d '' f; do
    if is_elf "$f"; then
        # The release profile keeps symbols; packages ship without them.
        strip --strip-unneeded --remove-section=.comment --remove-section=.note "$f"
    fi
done < <(find "$root/usr" -type f -perm -0100 -print0)
find "$root/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} \;
install -m 0644 "$repo/packaging/copyright" "$root/usr/share/doc/dockyard/copyright"
