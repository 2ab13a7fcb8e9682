#!/bin/sh
# Crash test: crash points (SIGKILL at random between shared-memory steps) plus
# random external SIGKILL and SIGSTOP/SIGCONT; the oracle checks exactly-once,
# no stuck slot, no run beyond 1 + re-queues, no progress gap over 1 s.
set -eu
./tests/torture_crash --producers 3 --consumers 3 --seconds 12 --crash-one-in 3000 --kill-ms 8 \
    --stall-ms 1000 --min-deaths 300 --min-fired 100
./tests/torture_crash --producers 3 --consumers 4 --cells 8 --seconds 12 --crash-one-in 3000 --kill-ms 8 \
    --max-attempts 2 --stall-ms 1000 --min-deaths 300 --min-fired 100
# Streamed answers: every answer is 10 chunks through the slot's chunk queue
# (shm/stream.c), 4 records deep here, so workers wait for room; a death
# after the first chunk ends the request 502, never re-runs it, and every
# stream that ends well must be whole and in order.
./tests/torture_crash --producers 3 --consumers 3 --seconds 8 --crash-one-in 3000 --kill-ms 8 \
    --stall-ms 1000 --min-deaths 200 --min-fired 50 --stream 10
