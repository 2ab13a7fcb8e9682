#!/bin/sh
# run.sh - the fleet rig (tests/fleet/test_fleet.py): three ringmaster hosts
# in network namespaces behind HAProxy, scraped by Prometheus. Needs root
# (ip netns), haproxy and prometheus (setup.sh --check installs them).
# Run from the build directory (make check does); exit 0 pass, 1 fail, 77 skip.
set -u
srcdir=${srcdir:-.}
builddir=$(pwd)
skip() { echo "fleet/run.sh: $*: skipping the fleet rig" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "not root (network namespaces need it)"
command -v python3 >/dev/null 2>&1 || skip "python3 not found (package python3)"
command -v ip >/dev/null 2>&1 || skip "ip not found (package iproute2)"
[ -x "${HAPROXY:-/usr/sbin/haproxy}" ] || skip "${HAPROXY:-/usr/sbin/haproxy} not found (package haproxy)"
[ -x "${PROMETHEUS:-/usr/bin/prometheus}" ] || skip "${PROMETHEUS:-/usr/bin/prometheus} not found (package prometheus)"
probe=rmfl$$-probe
ip netns add "$probe" 2>/dev/null || skip "cannot create a network namespace (ip netns add)"
ip netns del "$probe"
RINGMASTER=${RINGMASTER:-$builddir/ringmaster}
RINGMASTERCTL=${RINGMASTERCTL:-$builddir/ringmasterctl}
PYTHONDONTWRITEBYTECODE=1
PYTHONPATH="$srcdir/tests/pylib${PYTHONPATH:+:$PYTHONPATH}"
export RINGMASTER RINGMASTERCTL srcdir PYTHONDONTWRITEBYTECODE PYTHONPATH
for f in "$RINGMASTER" "$RINGMASTERCTL"; do
    if [ ! -x "$f" ]; then
        echo "fleet/run.sh: $f is not built" >&2
        exit 99
    fi
done
# Bounded: about 45 s on 2 cores; 5 minutes is a hang (SIGTERM: the rig
# cleans up, then exits; SIGKILL 20 s later).
bound=""
command -v timeout >/dev/null 2>&1 && bound="timeout -k 20 300"
$bound python3 -m unittest discover -s "$srcdir/tests/fleet" -p 'test_*.py' -v
status=$?
[ "$status" -eq 0 ] || exit 1
exit 0
