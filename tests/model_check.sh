#!/bin/sh
# model_check.sh - the SPIN model of the request protocol (tests/model/ring.pml,
# docs/model.md), checked exhaustively: 2 producers (gateways), 2 consumers
# (workers), a ring of 2 cells, any process dying once between any two of its
# shared-memory steps. Passes when the model has no error (no duplicate
# answer, no over-run, no lost request of a survivor, no survivor blocked),
# and when the same model with Vyukov's claim-then-publish ring DOES yield a
# counterexample (so the check is not blind). Prints the state counts and the
# counterexample's length. Then the stream queue's model (tests/model/stream.pml:
# one worker, one gateway, the chunk records and the two Dekker pairs of its
# wake-ups, and a client that leaves), exhaustively, and four broken variants
# that must be caught.
# Needs spin and a C compiler (exit 77 without spin).
set -eu
srcdir=${srcdir:-.}
model=$(cd "$srcdir" && pwd)/tests/model/ring.pml
if ! command -v spin >/dev/null 2>&1; then
    echo "model_check.sh: spin is not installed (apt-get install -y spin): skipping" >&2
    exit 77
fi
work=$(mktemp -d /tmp/rm-model-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$model" ring.pml
cp "$(dirname "$model")/stream.pml" stream.pml

# must_hold LABEL MODEL SPIN_DEFINES CC_FLAGS MAXDEPTH: exhaustive search, no
# error allowed
must_hold() {
    spin $3 -a "$2" >/dev/null
    cc -O2 -DSAFETY $4 -o pan pan.c
    ./pan -m"$5" >out.txt 2>&1 || true
    grep -E "errors:|states, stored|states, matched|depth reached|elapsed" out.txt | sed "s/^/  $1: /"
    if ! grep -q "errors: 0" out.txt || grep -q "Search not completed" out.txt; then
        echo "model_check.sh: the model of the $1 has an error (or the search did not complete):" >&2
        cat out.txt >&2
        [ -f "$2.trail" ] && spin -t -p "$2" | tail -60 >&2
        exit 1
    fi
}

# 1. the real ring: exhaustive, no error allowed
must_hold "ringmaster ring" ring.pml "" -DCOLLAPSE 2000000

# 2. Vyukov's ring in the same protocol: a counterexample must exist;
#    iterative search for the shortest one
spin -DVYUKOV -a ring.pml >/dev/null
cc -O2 -DSAFETY -DREACH -o panv pan.c
./panv -m2000000 -i >outv.txt 2>&1 || true
if ! grep -Eq "pan:[0-9]+: (invalid end state|assertion violated)" outv.txt; then
    echo "model_check.sh: the Vyukov ring was NOT caught: the check is blind" >&2
    cat outv.txt >&2
    exit 1
fi
len=$(grep -o "reducing search depth to [0-9]*" outv.txt | tail -1 | awk '{print $NF}')
[ -n "$len" ] || len=$(grep -o "at depth [0-9]*" outv.txt | head -1 | awk '{print $NF}')
kind=$(grep -Eo "pan:[0-9]+: (invalid end state|assertion violated)" outv.txt | head -1 | sed "s/^pan:[0-9]*: //")
echo "  vyukov ring: caught ($kind), shortest counterexample $len steps"

# 3. the streamed answer's chunk queue (tests/model/stream.pml): no error
#    allowed, also when the client may leave at any point (-DCANCEL); then
#    four broken variants, each of which must be caught.
must_hold "stream queue" stream.pml "" "" 200000
must_hold "stream queue, client may leave" stream.pml -DCANCEL "" 200000
for mut in -DMUT_WAKE_FIRST -DMUT_NO_RECHECK -DMUT_NO_ROOM "-DCANCEL -DMUT_KICK_NO_SEQ"; do
    rm -f stream.pml.trail
    spin $mut -a stream.pml >/dev/null
    cc -O2 -DSAFETY -o panm pan.c
    ./panm -m200000 >outm.txt 2>&1 || true
    found=$(grep -Eo "pan:[0-9]+: (invalid end state|assertion violated)" outm.txt | head -1 | sed "s/^pan:[0-9]*: //")
    if [ -z "$found" ]; then
        echo "model_check.sh: the stream queue variant $mut was NOT caught: the check is blind" >&2
        cat outm.txt >&2
        exit 1
    fi
    echo "  stream queue with $mut: caught ($found)"
done
echo "model_check.sh: PASS"
