#!/bin/bash
# python_bench.sh - the digits model (examples/digits) served by ringmaster's
# python handler against the same model in a WSGI app (bench/digits_wsgi.py)
# under gunicorn (Debian's package: sync workers, --preload), the same
# number of workers, the same wrk load, in one run:
#   1. throughput: req/s, p50 and p99 latency (wrk --latency), one image per request;
#   2. memory: PSS per worker (smaps_rollup), ringmaster with preload = no and yes;
#   3. availability: the same load while one worker is SIGKILLed every second:
#      requests that failed (non-2xx and socket errors) on each side.
#
#   bench/python_bench.sh [SECONDS] [WORKERS]      (defaults: 10 2)
# Needs: wrk, gunicorn, python3-sklearn (apt-get install -y wrk gunicorn python3-sklearn).
# Run from the build directory. Not part of make check.
set -euo pipefail
secs=${1:-10}
workers=${2:-2}
conns=${CONNS:-16}
bin=${RINGMASTER:-./ringmaster}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
for t in wrk gunicorn python3; do command -v $t >/dev/null || { echo "missing $t (apt-get install -y wrk gunicorn)"; exit 2; }; done
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 0.5;
            for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One held-out image as a v2 request, and a wrk script that POSTs it.
/usr/bin/python3 - "$src/examples/digits" >"$tmp/body.json" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from digits_data import dataset
_, _, x, _ = dataset()
print(json.dumps({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 64], "data": x[:1].tolist()}]}))
PY
cat >"$tmp/post.lua" <<LUA
local f = io.open("$tmp/body.json"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = "application/json"
LUA

# pids of processes whose parent is $1, titled / named like $2
kids() { for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$(sed 's/.*) //' $d/stat 2>/dev/null | awk '{print $2}')" = "$1" ] || continue;
         tr '\0' ' ' <$d/cmdline 2>/dev/null | grep -q -- "$2" && echo "$p"; done; true; }
pss_mean() { local sum=0 n=0; for p in "$@"; do v=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0);
             sum=$((sum + v)); n=$((n + 1)); done; [ $n -gt 0 ] && echo "scale=1; $sum / $n / 1000" | bc || echo 0; }

start_rm() {  # $1 preload
    port=$(free_port)
    cat >"$tmp/rm.ini" <<INI
[ringmaster]
listen = 127.0.0.1:$port
runtime_dir = $tmp/run
heartbeat_interval = 50ms
[pool digits]
handler = python
python_path = $src/examples/digits
app = digits:Digits
workers = $workers
preload = $1
queue_depth = 256
INI
    "$bin" -c "$tmp/rm.ini" 2>>"$tmp/rm.log" &
    rm_pid=$!; pids+=($rm_pid)
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.1; done
    sleep 1
    url="http://127.0.0.1:$port/v2/models/digits/infer"
    wpids() { kids "$rm_pid" "ringmaster: worker digits"; }
}
stop_rm() { kill -TERM "$rm_pid"; wait "$rm_pid" 2>/dev/null || true; }
start_gu() {
    port=$(free_port)
    (cd "$here" && exec gunicorn -w "$workers" --preload -b "127.0.0.1:$port" --log-level warning digits_wsgi:app) 2>>"$tmp/gu.log" &
    gu_pid=$!; pids+=($gu_pid)
    for _ in $(seq 200); do curl -sf -X POST --data-binary @"$tmp/body.json" "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
    url="http://127.0.0.1:$port/"
    wpids() { kids "$gu_pid" "gunicorn"; }
}
stop_gu() { kill -TERM "$gu_pid"; wait "$gu_pid" 2>/dev/null || true; }

run_wrk() {  # $1 kill-every-second: yes/no -> prints "rps p50 p99 failed"
    local killer=
    if [ "$1" = yes ]; then
        ( while sleep 1; do p=$(wpids | shuf -n1); [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done ) &
        killer=$!
    fi
    wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$tmp/post.lua" "$url" >"$tmp/wrk.out" 2>&1 || true
    [ -n "$killer" ] && kill "$killer" 2>/dev/null || true
    rps=$(awk '/Requests\/sec/{print $2}' "$tmp/wrk.out")
    p50=$(awk '$1=="50%"{print $2}' "$tmp/wrk.out")
    p99=$(awk '$1=="99%"{print $2}' "$tmp/wrk.out")
    non2xx=$(awk '/Non-2xx/{print $NF}' "$tmp/wrk.out"); non2xx=${non2xx:-0}
    sockerr=$(awk '/Socket errors/{gsub(",",""); print $4+$6+$8+$10}' "$tmp/wrk.out"); sockerr=${sockerr:-0}
    total=$(awk '/requests in/{print $1}' "$tmp/wrk.out")
    echo "$rps $p50 $p99 $((non2xx + sockerr)) $total"
}

echo "digits model, $workers workers, wrk -t2 -c$conns -d${secs}s, one image per request"
printf '%-34s %10s %8s %8s %10s %10s\n' "server" "req/s" "p50" "p99" "failed" "requests"
start_rm no; read -r a b c d e <<<"$(run_wrk no)"; pss_rm=$(pss_mean $(wpids))
printf '%-34s %10s %8s %8s %10s %10s\n' "ringmaster (python handler)" "$a" "$b" "$c" "$d" "$e"; rm_rps=$a
read -r a b c d e <<<"$(run_wrk yes)"
printf '%-34s %10s %8s %8s %10s %10s\n' "ringmaster, a worker killed / s" "$a" "$b" "$c" "$d" "$e"; rm_fail=$d
stop_rm
start_rm yes; curl -s -X POST --data-binary @"$tmp/body.json" "$url" >/dev/null; pss_rm_pre=$(pss_mean $(wpids)); stop_rm
start_gu; read -r a b c d e <<<"$(run_wrk no)"; pss_gu=$(pss_mean $(wpids))
printf '%-34s %10s %8s %8s %10s %10s\n' "gunicorn --preload (sync)" "$a" "$b" "$c" "$d" "$e"; gu_rps=$a
read -r a b c d e <<<"$(run_wrk yes)"
printf '%-34s %10s %8s %8s %10s %10s\n' "gunicorn, a worker killed / s" "$a" "$b" "$c" "$d" "$e"; gu_fail=$d
stop_gu
echo "PSS per worker (MB): ringmaster $pss_rm, ringmaster preload $pss_rm_pre, gunicorn --preload $pss_gu"
echo "ratio_rps_vs_gunicorn $(echo "scale=2; $rm_rps / $gu_rps" | bc)"
echo "failed_under_kills ringmaster $rm_fail gunicorn $gu_fail"
