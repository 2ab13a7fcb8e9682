#!/bin/bash
# throughput.sh - ringmaster echo (1 gateway, 2 workers) against nginx
# `return 200` (1 worker), same wrk settings, alternating, in one run.
# Prints both req/s (median of the rounds) and the ratio ringmaster / nginx.
#
#   bench/throughput.sh [SECONDS_PER_ROUND] [ROUNDS]
# Needs: wrk, nginx (apt-get install -y wrk nginx-light). Run from the build dir.
set -euo pipefail
secs=${1:-10}
rounds=${2:-3}
conns=${CONNS:-64}
threads=${THREADS:-2}
bin=${RINGMASTER:-./ringmaster}
for t in wrk nginx; do command -v $t >/dev/null || { echo "missing $t (apt-get install -y wrk nginx-light)"; exit 2; }; done
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; sleep 0.5; for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rport=$(free_port)
cat >"$tmp/rm.ini" <<INI
[ringmaster]
listen = 127.0.0.1:$rport
gateways = 1
runtime_dir = $tmp/run
[pool echo]
handler = echo
workers = 2
queue_depth = 256
INI
"$bin" -c "$tmp/rm.ini" 2>"$tmp/rm.log" &
pids+=($!)

nport=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx;
  server { listen 127.0.0.1:$nport; location / { return 200 "hello"; } }
}
CONF
nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" &
pids+=($!)

for i in $(seq 100); do curl -sf "http://127.0.0.1:$rport/v2/health/ready" >/dev/null && break; sleep 0.1; done
printf 'wrk.method = "POST"\nwrk.body = "hello"\nwrk.headers["Content-Type"] = "text/plain"\n' >"$tmp/post.lua"

run() { # url [script]
    local out
    out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" ${2:+-s "$2"} "$1" 2>&1)
    echo "$out" | awk '/Requests\/sec/ {print $2}'
}
rm_res=(); ng_res=()
for r in $(seq "$rounds"); do
    ng_res+=("$(run "http://127.0.0.1:$nport/")")
    rm_res+=("$(run "http://127.0.0.1:$rport/v2/models/echo/infer" "$tmp/post.lua")")
    echo "round $r: nginx ${ng_res[-1]} req/s, ringmaster ${rm_res[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ng=$(median "${ng_res[@]}"); rmv=$(median "${rm_res[@]}")
echo "nginx_return_200_rps $ng"
echo "ringmaster_echo_rps $rmv"
awk -v a="$rmv" -v b="$ng" 'BEGIN { printf "ratio_vs_nginx %.2f\n", a / b }'
