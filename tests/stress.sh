#!/bin/sh
# Multi-process stress of ring + slots, no faults: every item consumed exactly once.
set -eu
./tests/torture --producers 3 --consumers 3 --seconds 3 --stall-ms 1000
./tests/torture --producers 2 --consumers 2 --cells 2 --seconds 2 --stall-ms 1000
