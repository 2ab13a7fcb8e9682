#!/bin/sh
# systemd protocol tests (fake NOTIFY_SOCKET, socket activation); never starts systemd.
# The shared Python helpers are in $srcdir/tests/pylib (rmtest.py).
srcdir=${srcdir:-.}
PYTHONPATH="$srcdir/tests/pylib${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
RINGMASTER=${RINGMASTER:-$(pwd)/ringmaster} RINGMASTERCTL=${RINGMASTERCTL:-$(pwd)/ringmasterctl} \
    exec python3 "$srcdir/tests/systemd/test_notify.py" -v
