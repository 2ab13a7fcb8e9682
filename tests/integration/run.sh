#!/bin/sh
# run.sh - integration tests: start the real ringmaster on 127.0.0.1 with a
# free port and drive it over HTTP and signals (tests/integration/test_*.py).
# Run from the build directory (make check does); exit 0 pass, 1 fail, 77 skip.
set -u
srcdir=${srcdir:-.}
builddir=$(pwd)
if ! command -v python3 >/dev/null 2>&1; then
    echo "run.sh: python3 not found: skipping the integration tests" >&2
    exit 77
fi
RINGMASTER=${RINGMASTER:-$builddir/ringmaster}
RINGMASTERCTL=${RINGMASTERCTL:-$builddir/ringmasterctl}
EXAMPLE_UPPER_SO=${EXAMPLE_UPPER_SO:-$builddir/tests/handlers/example_upper.so}
PYTHONDONTWRITEBYTECODE=1
# The shared helpers (tests/pylib/rmtest.py) come from the source tree.
PYTHONPATH="$srcdir/tests/pylib${PYTHONPATH:+:$PYTHONPATH}"
export RINGMASTER RINGMASTERCTL EXAMPLE_UPPER_SO srcdir PYTHONDONTWRITEBYTECODE PYTHONPATH
for f in "$RINGMASTER" "$RINGMASTERCTL"; do
    if [ ! -x "$f" ]; then
        echo "run.sh: $f is not built" >&2
        exit 99
    fi
done
python3 -m unittest discover -s "$srcdir/tests/integration" -p 'test_*.py' -v
status=$?
[ "$status" -eq 0 ] || exit 1
exit 0
