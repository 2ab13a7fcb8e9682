#!/bin/sh
# systemd protocol tests (fake NOTIFY_SOCKET, socket activation); never starts systemd.
srcdir=${srcdir:-.}
RINGMASTER=${RINGMASTER:-$(pwd)/ringmaster} RINGMASTERCTL=${RINGMASTERCTL:-$(pwd)/ringmasterctl} \
    exec python3 "$srcdir/tests/systemd/test_notify.py" -v
