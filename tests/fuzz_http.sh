#!/bin/sh
# Feed the gateway garbage for a bounded time (tests/fuzz_http.py): random
# bytes, mutated requests, framing tricks, half-closes and resets from several
# clients, while a clean client checks every echo. Passes when the gateway
# never died, no slot leaked, no descriptor leaked, no input got a 500 and
# the clean client saw only correct answers. Fixed seed: reproducible.
set -eu
srcdir=${srcdir:-.}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PYTHONPATH="$srcdir/tests/pylib${PYTHONPATH:+:$PYTHONPATH}" PYTHONDONTWRITEBYTECODE=1 \
python3 "$srcdir/tests/fuzz_http.py" --ringmaster "$(pwd)/ringmaster" --ctl "$(pwd)/ringmasterctl" \
    --duration 15 --clients 4 --seed 20261126 --out "$out/findings"
