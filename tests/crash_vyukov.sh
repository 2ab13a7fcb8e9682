#!/bin/sh
# The crash test is not blind: with a split claim/publish (Vyukov) ring and the
# same repair layer, it must report a wedge or a loss.
set -eu
./tests/torture_vyukov --producers 3 --consumers 3 --seconds 20 --crash-one-in 3000 --kill-ms 8 \
    --stall-ms 1000 --expect-failure
