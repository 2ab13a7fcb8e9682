#!/bin/bash
# bench_ring_smoke.sh - make check smoke test of the ring benchmark.
# Runs bench/bench_ring in quick mode (it exits 1 if any run loses, duplicates
# or corrupts a value) and checks that the last line is the ratio line. No
# threshold on the ratio: CI machines are too noisy for one.
set -eu

out=$(./bench/bench_ring -q)
printf '%s\n' "$out"
last=$(printf '%s\n' "$out" | tail -n 1)
if ! printf '%s\n' "$last" | grep -Eq '^ratio_vs_ck_ring [0-9]+\.[0-9]{2}$'; then
    echo "bench_ring_smoke: unexpected last line: '$last'" >&2
    exit 1
fi
echo "$last"
