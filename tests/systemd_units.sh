#!/bin/sh
# systemd units: `systemd-analyze verify --man=no` must print nothing on
# stderr, and the security exposure score is printed (docs/systemd.md).
# Never starts systemd itself.
set -eu
command -v systemd-analyze >/dev/null || { echo "systemd-analyze missing: skip"; exit 77; }
srcdir=${srcdir:-.}
build=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The units as installed, pointing at this build's binaries (verify checks
# that ExecStart= programs exist).
sed -e "s|@bindir@|$build|g" -e "s|@sysconfdir@|$tmp/etc|g" "$srcdir/etc/ringmaster.service.in" >"$tmp/ringmaster.service"
cp "$srcdir/etc/ringmaster.socket" "$tmp/ringmaster.socket"
systemd-analyze verify --man=no "$tmp/ringmaster.service" "$tmp/ringmaster.socket" 2>"$tmp/verify.err" || true
if [ -s "$tmp/verify.err" ]; then
    echo "systemd-analyze verify printed:"; cat "$tmp/verify.err"; exit 1
fi
echo "systemd-analyze verify: clean"
systemd-analyze security --offline=yes "$tmp/ringmaster.service" >"$tmp/security.out" 2>&1 || true
score=$(grep -E "Overall exposure level" "$tmp/security.out" || true)
if [ -z "$score" ]; then
    echo "no exposure score:"; cat "$tmp/security.out"; exit 1
fi
echo "security: $score"
