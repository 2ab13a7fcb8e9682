#!/bin/bash
# peers_availability.sh - the availability benchmark (bench/availability.sh -k 1
# -r 2) run against ringmaster and three Debian-packaged peers, one after the
# other, with the same faults, and printed as one table:
#
#   ringmaster              1 gateway, echo pool, 2 workers
#   gunicorn (sync, 2w)     bench/peers/echo_wsgi.py
#   uWSGI (2w)              bench/peers/echo_wsgi.py, master + http-socket, Connection: close
#   php-fpm + nginx (2w)    bench/peers/echo.php, pm static, unix socket, 1 nginx worker
#
# Load: wrk -t2 -c CONNS, POST "hello", for SECONDS per server. Faults while wrk
# runs (defaults): every 1 s a random worker (a child of the server's master; php-fpm's
# pool workers; never nginx) gets SIGKILL, and every 2 s the server reloads
# with its own mechanism, its worker count alternating 3 and 2:
#   ringmaster  INI rewritten, `ringmasterctl reload`
#   gunicorn    gunicorn.conf.py rewritten (workers = N), SIGHUP to the master
#   uWSGI       INI rewritten (processes = N), SIGHUP to the master (graceful reload)
#   php-fpm     pool conf rewritten (pm.max_children = N), SIGUSR2 to the master
# Columns: requests wrk completed, responses with status >= 400 (wrk's
# "Non-2xx or 3xx"), socket errors (connect + read + write + timeout), req/s,
# p99 latency from the Lua done() hook. A details block follows.
#
#   bench/peers_availability.sh [-d SECONDS] [-c CONNS] [-k KILL_EVERY_S] [-r RELOAD_EVERY_S] [-s SERVERS]
# Defaults: 60 s per server, 64 connections, a kill every 1 s, a reload every
# 2 s (0 turns either off, to tell which fault costs what), all four servers
# (-s takes a comma list of ringmaster,gunicorn,uwsgi,phpfpm).
# Takes about 4 x (SECONDS + 5) s.
# Needs: wrk, gunicorn, uwsgi-core + uwsgi-plugin-python3, php-fpm, nginx;
# installed with apt-get when missing. Run from the build dir (./ringmaster,
# ./ringmasterctl; or set RINGMASTER / RINGMASTERCTL). KEEP=1 keeps the temp
# dir (configs, the servers' logs, wrk output) and prints its path.
set -euo pipefail
dur=60; conns=64; kill_every=1; reload_every=2; servers=ringmaster,gunicorn,uwsgi,phpfpm
while getopts "d:c:k:r:s:" o; do
    case $o in
        d) dur=$OPTARG ;; c) conns=$OPTARG ;; k) kill_every=$OPTARG ;; r) reload_every=$OPTARG ;; s) servers=$OPTARG ;;
        *) echo "usage: $0 [-d SECONDS] [-c CONNS] [-k KILL_EVERY_S] [-r RELOAD_EVERY_S] [-s SERVERS]" >&2; exit 2 ;;
    esac
done
for v in "$dur" "$conns" "$kill_every" "$reload_every"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "not a whole number: $v" >&2; exit 2; }
done
here=$(cd "$(dirname "$0")" && pwd)
peers=$here/peers
bin=${RINGMASTER:-./ringmaster}
ctl=${RINGMASTERCTL:-./ringmasterctl}
for f in "$bin" "$ctl"; do [ -x "$f" ] || { echo "missing $f (run from the build dir after make)" >&2; exit 2; }; done
for f in echo_wsgi.py echo.php; do [ -f "$peers/$f" ] || { echo "missing $peers/$f" >&2; exit 2; }; done

# ---- install the peers when missing -------------------------------------------
fpm_bin() { ls /usr/sbin/php-fpm* 2>/dev/null | sort -V | tail -n1; }
pidfiles="/run/nginx.pid /run/php/php*-fpm.pid /run/uwsgi/*.pid /run/uwsgi/app/*/pid"
live_pidfile_pids() { # pids named by a service pidfile that are alive
    local f p
    for f in $pidfiles; do
        [ -f "$f" ] || continue
        p=$(head -c 32 "$f" | tr -dc 0-9)
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
    done
    return 0
}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v gunicorn >/dev/null || need+=(gunicorn)
command -v uwsgi >/dev/null || need+=(uwsgi-core)    # uwsgi-core: the binary without the init script
[ -f /usr/lib/uwsgi/plugins/python3_plugin.so ] || need+=(uwsgi-plugin-python3)
[ -n "$(fpm_bin)" ] || need+=(php-fpm)
command -v nginx >/dev/null || need+=(nginx-light)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    before=" $(live_pidfile_pids | tr '\n' ' ') "
    timeout 300 apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q -o DPkg::Lock::Timeout=300 "${need[@]}" >&2
    # Without systemd, invoke-rc.d may still start a service (when policy-rc.d
    # allows it): stop only a service that the install started, by its pidfile.
    for p in $(live_pidfile_pids); do
        case "$before" in *" $p "*) continue ;; esac
        echo "stopping service started by apt: pid $p ($(cat /proc/$p/comm 2>/dev/null))" >&2
        kill -QUIT "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
fi
fpm=$(fpm_bin)
[ -n "$fpm" ] || { echo "php-fpm not found" >&2; exit 2; }

# ---- bookkeeping: every process this script starts, and its cleanup -----------
tmp=$(mktemp -d)
chmod 755 "$tmp"
masters=()     # pids of the servers' master processes (and nginx) we started
helpers=()     # wrk and ringmasterctl runs
stat_state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; }
alive() { local s; s=$(stat_state "$1"); [ -n "$s" ] && [ "$s" != Z ]; }
stop_master() { # pid signal: stop a master we started, then whatever of its children is left
    local m=$1 sig=$2 kids k
    [ -n "$m" ] || return 0
    kids=$(pgrep -P "$m" 2>/dev/null || true)
    if alive "$m"; then kill -"$sig" "$m" 2>/dev/null || true; fi
    for _ in $(seq 50); do alive "$m" || break; sleep 0.1; done
    if alive "$m"; then
        kids="$kids $(pgrep -P "$m" 2>/dev/null || true)"
        kill -KILL "$m" 2>/dev/null || true
    fi
    wait "$m" 2>/dev/null || true
    for k in $kids; do if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi; done
    local left=() x    # forget it: a later pid with the same number is not ours
    for x in "${masters[@]}"; do [ "$x" = "$m" ] || left+=("$x"); done
    masters=("${left[@]}")
    return 0
}
cleanup() {
    set +e
    for p in "${helpers[@]}"; do if alive "$p"; then kill -TERM "$p" 2>/dev/null; fi; done
    for p in "${masters[@]}"; do stop_master "$p" TERM; done
    if [ -n "${KEEP:-}" ]; then echo "logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }

# request() counts the requests wrk sends: wrk reconnects silently, counting no
# error, when a server closes a connection (FIN) before answering, so
# sent - answered is the only place such a lost request shows.
cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "hello"
wrk.headers["Content-Type"] = "text/plain"
local threads = {}
function setup(thread) table.insert(threads, thread) end
sent = 0
local req
function request()
  sent = sent + 1
  if not req then req = wrk.format() end
  return req
end
function done(summary, latency, requests)
  local e, s = summary.errors, 0
  for _, t in ipairs(threads) do s = s + t:get("sent") end
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d\n",
    summary.requests, e.connect, e.read, e.write, e.timeout, e.status,
    summary.duration, latency:percentile(99), s))
end
LUA

wait_ready() { # url: a POST "hello" answered "hello" within 15 s
    for _ in $(seq 150); do
        [ "$(curl -s -m 1 -X POST -H 'Content-Type: text/plain' --data hello "$1" 2>/dev/null)" = hello ] && return 0
        sleep 0.1
    done
    return 1
}

# ---- the servers: start_X sets master/url/workers_cmd; reload_X N -------------
master=""; url=""; stop_sig=TERM; extra=""   # extra: a second process (nginx)

rm_ini() {
    cat >"$tmp/rm.ini.new" <<INI
[ringmaster]
listen = 127.0.0.1:$port
gateways = 1
runtime_dir = $tmp/rm-run
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
start_ringmaster() {
    rm_ini 2
    "$bin" -c "$tmp/rm.ini" 2>"$tmp/ringmaster.log" &
    master=$!; masters+=("$master"); stop_sig=TERM
    url="http://127.0.0.1:$port/v2/models/echo/infer"
}
workers_ringmaster() { pgrep -P "$master" -f "ringmaster: worker" 2>/dev/null || true; }
reload_ringmaster() {
    rm_ini "$1"
    ( timeout 20 "$ctl" -c "$tmp/rm.ini" reload >>"$tmp/ringmaster.reload.log" 2>&1 || echo fail >>"$tmp/reload.fail" ) &
    helpers+=($!)
}

gu_conf() {
    cat >"$tmp/gunicorn.conf.py.new" <<PY
bind = "127.0.0.1:$port"
workers = $1
worker_class = "sync"
pidfile = "$tmp/gunicorn.pid"
errorlog = "$tmp/gunicorn.log"
loglevel = "info"
PY
    mv "$tmp/gunicorn.conf.py.new" "$tmp/gunicorn.conf.py"
}
start_gunicorn() {
    gu_conf 2
    gunicorn -c "$tmp/gunicorn.conf.py" --chdir "$peers" echo_wsgi:app 2>>"$tmp/gunicorn.log" &
    master=$!; masters+=("$master"); stop_sig=INT    # INT: quick shutdown (TERM waits graceful_timeout)
    url="http://127.0.0.1:$port/"
}
workers_gunicorn() { pgrep -P "$master" 2>/dev/null || true; }
reload_gunicorn() { gu_conf "$1"; kill -HUP "$master" 2>/dev/null || echo fail >>"$tmp/reload.fail"; }

uw_ini() {
    cat >"$tmp/uwsgi.ini.new" <<INI
[uwsgi]
plugins = python3
master = true
processes = $1
http-socket = 127.0.0.1:$port
add-header = Connection: close
chdir = $peers
wsgi-file = $peers/echo_wsgi.py
callable = app
need-app = true
pidfile = $tmp/uwsgi.pid
disable-logging = true
die-on-term = true
INI
    mv "$tmp/uwsgi.ini.new" "$tmp/uwsgi.ini"
}
start_uwsgi() {
    uw_ini 2
    uwsgi --ini "$tmp/uwsgi.ini" >>"$tmp/uwsgi.log" 2>&1 &
    master=$!; masters+=("$master"); stop_sig=INT
    url="http://127.0.0.1:$port/"
}
workers_uwsgi() { pgrep -P "$master" 2>/dev/null || true; }
reload_uwsgi() { uw_ini "$1"; kill -HUP "$master" 2>/dev/null || echo fail >>"$tmp/reload.fail"; }

fpm_conf() {
    cat >"$tmp/php-fpm.conf.new" <<CONF
[global]
pid = $tmp/php-fpm.pid
error_log = $tmp/php-fpm.log
daemonize = no
[echo]
user = root
group = root
listen = $tmp/php-fpm.sock
listen.mode = 0666
pm = static
pm.max_children = $1
CONF
    mv "$tmp/php-fpm.conf.new" "$tmp/php-fpm.conf"
}
start_phpfpm() {
    fpm_conf 2
    mkdir -p "$tmp/nginx"
    cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
user root;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  proxy_temp_path $tmp/nginx/proxy;
  server {
    listen 127.0.0.1:$port;
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $peers/echo.php;
      fastcgi_pass unix:$tmp/php-fpm.sock;
    }
  }
}
CONF
    # -R: the pool runs as root here, so that nginx and php-fpm share $tmp without chown
    "$fpm" -R -F -y "$tmp/php-fpm.conf" >>"$tmp/php-fpm.log" 2>&1 &
    master=$!; masters+=("$master"); stop_sig=TERM
    for _ in $(seq 100); do [ -S "$tmp/php-fpm.sock" ] && break; sleep 0.1; done
    nginx -c "$tmp/nginx.conf" -p "$tmp/nginx" -e "$tmp/nginx/error.log" &
    extra=$!; masters+=("$extra")
    url="http://127.0.0.1:$port/"
}
workers_phpfpm() { pgrep -P "$master" 2>/dev/null || true; }
reload_phpfpm() { fpm_conf "$1"; kill -USR2 "$master" 2>/dev/null || echo fail >>"$tmp/reload.fail"; }

# ---- one run: start, load + faults, stop -----------------------------------
rows=(); details=()
run_server() { # key label
    local key=$1 label=$2
    port=$(free_port); master=""; extra=""; rm -f "$tmp/reload.fail"
    "start_$key"
    if ! wait_ready "$url"; then
        echo "$label: not ready, see logs below" >&2
        tail -n 20 "$tmp"/*.log "$tmp"/nginx/error.log 2>/dev/null >&2 || true
        rows+=("$(printf '%-22s %9s %8s %11s %9s %8s' "$label" - - - - -)")
        stop_master "$master" "$stop_sig"; [ -n "$extra" ] && stop_master "$extra" TERM
        return 0
    fi
    local out=$tmp/$key.wrk
    wrk -t2 -c"$conns" -d"${dur}s" --timeout 2s -s "$tmp/post.lua" "$url" >"$out" 2>&1 &
    local wrkpid=$! ; helpers+=("$wrkpid")
    local start now kills=0 reloads=0 n=2 wmin=99 wmax=0 w pid
    start=$(now_ms)
    local next_kill=$((start + kill_every * 1000)) next_reload=$((start + reload_every * 1000))
    local deadline=$((start + dur * 1000 + 15000))
    while alive "$wrkpid"; do
        sleep 0.1
        now=$(now_ms)
        if [ "$now" -ge "$deadline" ]; then kill -TERM "$wrkpid" 2>/dev/null; break; fi
        w=$("workers_$key" | wc -l)
        [ "$w" -lt "$wmin" ] && wmin=$w; [ "$w" -gt "$wmax" ] && wmax=$w
        if [ "$kill_every" -gt 0 ] && [ "$now" -ge "$next_kill" ]; then
            next_kill=$((next_kill + kill_every * 1000))
            pid=$("workers_$key" | shuf -n1)
            [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
        fi
        if [ "$reload_every" -gt 0 ] && [ "$now" -ge "$next_reload" ]; then
            next_reload=$((next_reload + reload_every * 1000))
            n=$((n == 2 ? 3 : 2)); "reload_$key" "$n"; reloads=$((reloads + 1))
        fi
    done
    local h
    for h in "${helpers[@]}"; do wait "$h" 2>/dev/null || true; done   # wrk, ringmasterctl (timeout 20)
    helpers=()
    local master_end=alive
    alive "$master" || master_end=DEAD
    local reload_fail=0
    [ -f "$tmp/reload.fail" ] && reload_fail=$(wc -l <"$tmp/reload.fail")
    stop_master "$master" "$stop_sig"
    [ -n "$extra" ] && stop_master "$extra" TERM
    local r
    r=$(awk '/^RESULT/ {print $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$out")
    if [ -z "$r" ]; then
        echo "$label: no wrk result:" >&2; cat "$out" >&2
        rows+=("$(printf '%-22s %9s %8s %11s %9s %8s' "$label" - - - - -)")
        return 0
    fi
    set -- $r  # requests connect read write timeout status duration_us p99_us sent
    rows+=("$(awk -v l="$label" -v req="$1" -v st="$6" -v se="$(($2 + $3 + $4 + $5))" -v d="$7" -v p="$8" \
        'BEGIN { printf "%-22s %9d %8d %11d %9.0f %8.1f", l, req, st, se, req / (d / 1e6), p / 1000 }')")
    details+=("$(printf '%-22s connect %s read %s write %s timeout %s; sent %s, answered %s; workers killed %d, reloads %d (failed %d), workers seen %d..%d, master %s at the end' \
        "$label" "$2" "$3" "$4" "$5" "$9" "$1" "$kills" "$reloads" "$reload_fail" "$wmin" "$wmax" "$master_end")")
}

faults="SIGKILL a worker every ${kill_every} s, reload (2/3 workers) every ${reload_every} s"
echo "peers_availability: ${dur}s per server, wrk -t2 -c$conns POST hello, $faults (0 = off)" >&2
for key in ${servers//,/ }; do
    case $key in
        ringmaster) run_server ringmaster "ringmaster" ;;
        gunicorn)   run_server gunicorn   "gunicorn (sync, 2w)" ;;
        uwsgi)      run_server uwsgi      "uWSGI (2w)" ;;
        phpfpm)     run_server phpfpm     "php-fpm + nginx (2w)" ;;
        *) echo "unknown server $key (ringmaster,gunicorn,uwsgi,phpfpm)" >&2; exit 2 ;;
    esac
done

printf '%-22s %9s %8s %11s %9s %8s\n' server requests non-2xx socket_err req/s p99_ms
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${details[@]}"
echo "versions: gunicorn $(gunicorn --version 2>&1 | tr -dc '0-9.'), uWSGI $(uwsgi --version 2>/dev/null), $("$fpm" -v 2>/dev/null | head -n1 | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
