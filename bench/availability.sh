#!/bin/bash
# availability.sh - wrk echo load while workers are SIGKILLed (and, with -r,
# while the configuration is reloaded, alternating 2 and 3 workers).
# Prints requests, non-2xx responses and socket errors. Target: zero of both.
#
#   bench/availability.sh [-d SECONDS] [-k KILL_EVERY_S] [-r RELOAD_EVERY_S] [-c CONNS]
# Defaults: 30 s, a kill every 1 s, no reloads, 64 connections.
# Needs: wrk. Run from the build dir.
set -euo pipefail
dur=30; kill_every=1; reload_every=0; conns=64
while getopts "d:k:r:c:" o; do
    case $o in d) dur=$OPTARG ;; k) kill_every=$OPTARG ;; r) reload_every=$OPTARG ;; c) conns=$OPTARG ;; *) exit 2 ;; esac
done
bin=${RINGMASTER:-./ringmaster}
ctl=${RINGMASTERCTL:-./ringmasterctl}
command -v wrk >/dev/null || { echo "missing wrk (apt-get install -y wrk)"; exit 2; }
tmp=$(mktemp -d)
master=""
cleanup() {
    if [ -n "$master" ]; then
        kill -TERM "$master" 2>/dev/null || true
        sleep 1
        kill -KILL "$master" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
write_ini() {
cat >"$tmp/rm.ini.new" <<INI
[ringmaster]
listen = 127.0.0.1:$port
gateways = 1
runtime_dir = $tmp/run
heartbeat_interval = 50ms
heartbeat_timeout = 1s
[pool echo]
handler = echo
workers = $1
queue_depth = 256
max_attempts = 3
startup_timeout = 10s
INI
mv "$tmp/rm.ini.new" "$tmp/rm.ini"
}
write_ini 2
"$bin" -c "$tmp/rm.ini" 2>"$tmp/rm.log" &
master=$!
for i in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.1; done
printf 'wrk.method = "POST"\nwrk.body = "hello"\nwrk.headers["Content-Type"] = "text/plain"\n' >"$tmp/post.lua"

wrk -t2 -c"$conns" -d"${dur}s" -s "$tmp/post.lua" "http://127.0.0.1:$port/v2/models/echo/infer" >"$tmp/wrk.out" 2>&1 &
wrkpid=$!
kills=0; reloads=0; reload_fail=0; n=2
start=$(date +%s.%N)
next_kill=$kill_every; next_reload=$reload_every
while kill -0 "$wrkpid" 2>/dev/null; do
    sleep 0.1
    t=$(awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN{print n-s}')
    if awk -v t="$t" -v k="$next_kill" 'BEGIN{exit !(t>=k)}'; then
        next_kill=$(awk -v k="$next_kill" -v e="$kill_every" 'BEGIN{print k+e}')
        pid=$(pgrep -P "$master" -f "ringmaster: worker" | shuf -n1 || true)
        [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && kills=$((kills+1))
    fi
    if [ "$reload_every" != 0 ] && awk -v t="$t" -v k="$next_reload" 'BEGIN{exit !(t>=k)}'; then
        next_reload=$(awk -v k="$next_reload" -v e="$reload_every" 'BEGIN{print k+e}')
        n=$((n == 2 ? 3 : 2)); write_ini $n
        ( "$ctl" -c "$tmp/rm.ini" reload >>"$tmp/reload.log" 2>&1 || echo fail >>"$tmp/reload.fail" ) &
        reloads=$((reloads+1))
    fi
done
wait "$wrkpid" || true
sleep 0.5
[ -f "$tmp/reload.fail" ] && reload_fail=$(wc -l <"$tmp/reload.fail")
reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.out"); non2xx=${non2xx:-0}
sockerr=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' "$tmp/wrk.out"); sockerr=${sockerr:-0}
echo "ringmaster: requests $reqs, non-2xx $non2xx, socket errors $sockerr, workers killed $kills, reloads $reloads (failed $reload_fail), ${dur}s at $conns connections"
grep -E "Requests/sec|Latency" "$tmp/wrk.out" || true
[ "$non2xx" = 0 ] && [ "$sockerr" = 0 ]
