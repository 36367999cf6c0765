#!/usr/bin/env bash
# systemd-analyze verify over the units the generator writes for the golden
# fixtures, failing on any message at all (systemd-analyze exits 0 on some
# warnings, so its output is checked, not just its status).
#
# Verification happens in a staging root: `make install DESTDIR` (the real
# generator and helpers at their FHS paths), the host's own systemd units
# (for sysinit.target, network-online.target, …), and stand-in executables
# for the Docker and sysbox binaries, which only `dockyard install` puts on
# a host. systemd-analyze checks that every Exec*= binary exists, so a unit
# pointing anywhere else fails here.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cases=$repo/tests/generator/cases
work=$(mktemp -d /tmp/dockyard-verify.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

make -s -C "$repo" install DESTDIR="$root" PREFIX=/usr >/dev/null
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/bin"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp /bin/kill "$root/bin/kill"

stand_in() {
    mkdir -p "$(dirname "$root$1")"
    printf '#!/bin/sh\necho "stand-in for verification only" >&2\nexit 1\n' >"$root$1"
    chmod 0755 "$root$1"
}
for version in 29.2.1; do
    for bin in dockerd containerd; do
        stand_in "/var/lib/dockyard/artifacts/docker/$version/bin/$bin"
    done
done
for bin in sysbox-mgr sysbox-fs sysbox-runc; do
    stand_in "/var/lib/dockyard/artifacts/sysbox/0.6.7/bin/$bin"
done

failed=0
passed=0
checked=0
# The last case must have dy1: the check below removes its dockerd.
for case in one-instance three-instances runc-only resources autostart-no allow-from refused-conf daemon-and-dropins; do
    units=$work/units/$case
    mkdir -p "$units"
    DOCKYARD_INSTANCES_DIR=$cases/$case/in DOCKYARD_ARTIFACTS_MANIFEST=$work/none \
        SYSTEMD_LOG_TARGET=console "$root/usr/lib/systemd/system-generators/dockyard-generator" "$units" 2>/dev/null || true
    rm -rf "$root/etc/systemd/system"/*
    cp -a "$units"/. "$root/etc/systemd/system/"
    names=$(cd "$units" && ls | grep -E '\.(service|slice)$')
    # shellcheck disable=SC2086
    out=$(systemd-analyze --man=no --generators=no --root="$root" verify $names dockyard.slice 2>&1) || true
    for name in $names; do checked=$((checked + 1)); done
    if [ -n "$out" ]; then
        echo "FAIL - $case: systemd-analyze verify reported:"
        echo "$out" | sed 's/^/    /'
        failed=$((failed + 1))
    else
        echo "ok - $case: $(echo $names | wc -w) unit(s) verify cleanly"
        passed=$((passed + 1))
    fi
done

# The check must be able to fail: a unit whose dockerd is missing is refused.
rm "$root/var/lib/dockyard/artifacts/docker/29.2.1/bin/dockerd"
out=$(systemd-analyze --man=no --generators=no --root="$root" verify dy1_docker.service 2>&1) || true
if echo "$out" | grep -q 'dockerd is not executable'; then
    echo "ok - a missing Docker binary is reported"
    passed=$((passed + 1))
else
    echo "FAIL - a missing Docker binary went unnoticed: $out"
    failed=$((failed + 1))
fi

echo "verify-units: $checked unit(s) checked"
echo "verify-units: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
