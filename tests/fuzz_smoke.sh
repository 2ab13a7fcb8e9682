#!/bin/sh
# fuzz_smoke.sh - every libFuzzer harness (tests/fuzz/) for a few seconds on
# its corpus, so that CI catches a regression; `make fuzz` runs them longer.
# A crash, a sanitizer report or a leak fails (the input is kept under
# tests/fuzz/work/NAME/ to be added to the corpus). Skips (77) without clang
# or libFuzzer, and says so.
set -u
srcdir=${srcdir:-.}
secs=${FUZZ_SMOKE_SECONDS:-8}
clang=$(sed -n 's/^CLANG = //p' Makefile 2>/dev/null)
if [ -z "$clang" ]; then
    echo "fuzz_smoke.sh: clang not found (apt-get install -y clang libclang-rt-14-dev): skipping" >&2
    exit 77
fi
if ! make -s fuzz-build >fuzz-build.log 2>&1; then
    if grep -q "fuzzer" fuzz-build.log && grep -qi "cannot find\|not found\|No such file" fuzz-build.log; then
        echo "fuzz_smoke.sh: clang has no libFuzzer (apt-get install -y libclang-rt-14-dev): skipping" >&2
        cat fuzz-build.log >&2
        exit 77
    fi
    cat fuzz-build.log >&2
    exit 1
fi
status=0
for h in tests/fuzz/fuzz_*; do
    [ -x "$h" ] || continue
    name=$(basename "$h" | sed 's/^fuzz_//')
    work=tests/fuzz/work/$name
    mkdir -p "$work"
    out=$("$h" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$work/" "$work" \
          "$srcdir/tests/fuzz/corpus/$name" 2>&1)
    rc=$?
    execs=$(printf '%s\n' "$out" | sed -n 's/^stat::number_of_executed_units: *//p' | tail -1)
    cov=$(printf '%s\n' "$out" | grep -o 'cov: [0-9]*' | tail -1)
    echo "fuzz $name: exit $rc, ${execs:-?} executions, $cov"
    if [ "$rc" -ne 0 ]; then
        printf '%s\n' "$out" | tail -40 >&2
        status=1
    fi
done
exit $status
