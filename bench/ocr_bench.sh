#!/bin/bash
# shellcheck disable=SC2154 # own0, own1, c0, c1 are set by children_cpu (printf -v)
# ocr_bench.sh - OCR requests/s and p50/p99 latency: ringmaster's `ocr` pool
# (the model loaded once per worker) against running Tesseract's own CLI once
# per image, as a user would script it, on the same generated one-line
# images, in one run.
#
#   bench/ocr_bench.sh [SECONDS_PER_RINGMASTER_ROW] [ROUNDS]     (default 5 3)
#
# Rows:
#   ringmaster ocr, 1 worker   client concurrency 1
#   ringmaster ocr, 2 workers  client concurrency 2, then 4
#   tesseract CLI per image    `tesseract IMG - --oem 1 --psm 6 -l eng`, one
#                              process per image, sequentially (xargs -P1)
#                              and 2 at a time (xargs -P2), the images round
#                              robin, started for SECONDS like the ringmaster
#                              rows. req/s = images / wall time (first start
#                              to last end); latency = each process's wall.
#   ..., OMP_THREAD_LIMIT=1    the same CLI with OpenMP limited to one thread,
#                              as the ocr handler runs it (skip: CLI_OMP1=0)
# The rows alternate, round after round (the 1- and 2-worker daemons both run
# the whole time, the idle one costs nothing), so a burst of load from other
# processes hits all of them alike. req/s = all requests / all timed wall
# time, with the per-round min-max beside it; p50/p99/max over all rounds'
# requests (nearest rank). CPU ms/req: CPU time of all ringmaster processes
# (master, gateway, workers; not the client) or of the tesseract processes,
# per request (the warm-up requests, ~1%, are in the CPU time, not in the
# count) - what the work costs whatever else the machine is doing.
# Then the ratios ringmaster / CLI at equal concurrency, and how much CPU
# other processes took during the run (the noise).
#
# Every answer is checked: status 200 and every expected word in the text;
# non-200s and wrong texts are counted in the table and detailed on stderr.
# The ringmaster client is bench/ocr_client.py (python3 stdlib: threads, one
# keep-alive http.client connection each, raw PNG bodies; V2=1 sends v2 JSON
# with base64 instead), 2 untimed warm-up requests per connection.
#
# Needs: python3, curl, tesseract (apt-get install -y tesseract-ocr), a built
# ./ringmaster, ./ringmasterctl and ./tests/gen_text_image. Run from the
# build dir. Takes about (7 * SECONDS + 6) * ROUNDS + 10 seconds.
set -euo pipefail
secs=${1:-5}
rounds=${2:-3}
bin=${RINGMASTER:-./ringmaster}
ctl=${RINGMASTERCTL:-./ringmasterctl}
gen=${GEN_TEXT_IMAGE:-./tests/gen_text_image}
omp1=${CLI_OMP1:-1}
here=$(cd "$(dirname "$0")" && pwd)
client="$here/ocr_client.py"
for t in python3 curl tesseract; do command -v $t >/dev/null || { echo "missing $t"; exit 2; }; done
for f in "$bin" "$ctl" "$gen"; do [ -x "$f" ] || { echo "missing $f (make)"; exit 2; }; done
hz=$(getconf CLK_TCK)

tmp=$(mktemp -d)
# Private copies: a rebuild of the tree during the run must not change the
# daemon under test nor pair it with a ringmasterctl of another layout.
mkdir "$tmp/bin"
cp "$bin" "$tmp/bin/ringmaster"
cp "$ctl" "$tmp/bin/ringmasterctl"
bin=$tmp/bin/ringmaster
ctl=$tmp/bin/ringmasterctl
declare -A rm_pid rm_port
stop_rm() { # workers
    local p=${rm_pid[$1]:-}
    [ -n "$p" ] || return 0
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    rm_pid[$1]=
}
cleanup() { for n in "${!rm_pid[@]}"; do stop_rm "$n"; done; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# Busy and total jiffies of the whole machine (all CPUs), from /proc/stat.
machine_cpu() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6; exit }' /proc/stat; }
# children_cpu VAR: CPU seconds so far of this shell's waited-for children
# into VAR (bash `times`; not in $(...): a forked shell starts from zero).
children_cpu() {
    times >"$tmp/times"
    printf -v "$1" '%s' "$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } printf "%.3f", t }' "$tmp/times")"
}
# CPU seconds of a ringmaster: the master and its children.
tree_cpu() {
    local t=0 p
    for p in "$1" $(ps -o pid= --ppid "$1"); do
        # fields after "(comm) ": state is 1, utime 12, stime 13
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0)))
    done
    awk -v t="$t" -v hz="$hz" 'BEGIN { printf "%.3f", t / hz }'
}

run_t0=$EPOCHREALTIME
read -r busy0 total0 < <(machine_cpu)
children_cpu own0
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- images
# 20 one-line images (leptonica's bitmap font, ~1300x120 PNG) and a manifest
# "path<TAB>expected text".
mkdir -p "$tmp/img"
lines=(
    "The quick brown fox jumps over the lazy dog"
    "Pack my box with five dozen liquor jugs"
    "Invoice 4821 is due on March 14 2024"
    "Sphinx of black quartz judge my vow"
    "Please ship 12 crates to the north warehouse"
    "How vexingly quick daft zebras jump"
    "Meeting moved to room 305 at 10 am"
    "The five boxing wizards jump quickly"
    "Total amount payable 1375 euros"
    "Bright vixens jump and dozy fowl quack"
    "Order number 99017 has been delivered"
    "Jackdaws love my big sphinx of quartz"
    "Call the front desk before noon today"
    "Waltz bad nymph for quick jigs vex"
    "Account balance is 2048 dollars"
    "Glib jocks quiz nymph to vex dwarf"
    "Reading is to the mind what exercise is to the body"
    "Six big devils from Japan quickly forgot how to waltz"
    "Batch 77 passed every quality check"
    "A wizard's job is to vex chumps quickly in fog"
)
: >"$tmp/manifest"
for i in "${!lines[@]}"; do
    f=$tmp/img/line$(printf %02d "$i").png
    "$gen" "$f" "${lines[$i]}"
    printf '%s\t%s\n' "$f" "${lines[$i]}" >>"$tmp/manifest"
done
mapfile -t images < <(cut -f1 "$tmp/manifest")
nimg=${#images[@]}

# ------------------------------------------------------------ results
declare -A LABEL CONC CNT WALL NON WRONG ERR CPU RPS
keys=()
# add KEY LABEL CONC CPU_SECONDS < a result line of ocr_client.py
add() {
    local key=$1 line count=0 wall=0 rps=0 non200=0 wrong=0 errors=1 p50_ms='' p99_ms='' max_ms=''
    line=$(grep '^count=' || true)
    [ -n "$line" ] && eval "$line"
    if [ -z "${LABEL[$key]:-}" ]; then
        keys+=("$key"); LABEL[$key]=$2; CONC[$key]=$3
        CNT[$key]=0; WALL[$key]=0; NON[$key]=0; WRONG[$key]=0; ERR[$key]=0; CPU[$key]=0; RPS[$key]=
    fi
    CNT[$key]=$((CNT[$key] + count))
    NON[$key]=$((NON[$key] + non200)); WRONG[$key]=$((WRONG[$key] + wrong)); ERR[$key]=$((ERR[$key] + errors))
    WALL[$key]=$(awk -v a="${WALL[$key]}" -v b="$wall" 'BEGIN { print a + b }')
    CPU[$key]=$(awk -v a="${CPU[$key]}" -v b="$4" 'BEGIN { print a + b }')
    RPS[$key]+="$rps "
}

# ------------------------------------------------------------ ringmaster
start_rm() { # workers
    local n=$1 port t0=$EPOCHREALTIME
    port=$(free_port)
    cat >"$tmp/rm$n.ini" <<INI
[ringmaster]
listen = 127.0.0.1:$port
gateways = 1
runtime_dir = $tmp/run$n
[pool ocr]
handler = ocr
workers = $n
queue_depth = 64
INI
    "$bin" -c "$tmp/rm$n.ini" 2>"$tmp/rm$n.log" &
    rm_pid[$n]=$!
    rm_port[$n]=$port
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$port/v2/models/ocr/ready" >/dev/null 2>&1 && break
        kill -0 "${rm_pid[$n]}" 2>/dev/null || { echo "ringmaster exited:"; cat "$tmp/rm$n.log"; exit 1; }
        sleep 0.05
    done
    local t1=$EPOCHREALTIME
    # The pool is ready with its first worker: wait for all n.
    for _ in $(seq 200); do
        "$ctl" -c "$tmp/rm$n.ini" status --json --interval 0 2>/dev/null | python3 -c '
import json, sys
w = json.load(sys.stdin)["pools"][0]["workers"]
sys.exit(0 if w["ready"] + w["busy"] >= '"$n"' else 1)' && break
        sleep 0.05
    done
    curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null ||
        { echo "ringmaster on port $port not ready:"; cat "$tmp/rm$n.log"; exit 1; }
    echo "ringmaster, $n ocr worker(s): /v2/models/ocr/ready after $(elapsed "$t0" "$t1") s, all workers ready after $(elapsed "$t0" "$EPOCHREALTIME") s" >&2
}

rm_run() { # workers conc
    local n=$1 c=$2 key=rm$1c$2 out c0 c1
    c0=$(tree_cpu "${rm_pid[$n]}")
    out=$(python3 "$client" http --port "${rm_port[$n]}" --manifest "$tmp/manifest" \
        --duration "$secs" --concurrency "$c" --warmup 2 --lat "$tmp/$key.lat" ${V2:+--v2} \
        2>"$tmp/client.err")
    c1=$(tree_cpu "${rm_pid[$n]}")
    echo "   ringmaster $n worker(s), concurrency $c: $out cpu_s=$(elapsed "$c0" "$c1")" >&2
    sed 's/^/     /' "$tmp/client.err" >&2
    add "$key" "ringmaster ocr, $n worker$([ "$n" = 1 ] || echo s)" "$c" "$(elapsed "$c0" "$c1")" <<<"$out"
}

# ------------------------------------------------------------ tesseract CLI
# cli_one.sh IMG OUT RESULTS DEADLINE: one tesseract process, its wall time
# and end time appended to RESULTS; nothing once DEADLINE (epoch s) passed.
cat >"$tmp/cli_one.sh" <<'SH'
#!/bin/bash
s=$EPOCHREALTIME
[ "${s/[.,]/}" -lt "${4/[.,]/}" ] || exit 0
tesseract "$1" - --oem 1 --psm 6 -l eng >"$2" 2>/dev/null || echo "tesseract failed on $1 (exit $?)" >&2
e=$EPOCHREALTIME
awk -v s="$s" -v e="$e" -v img="$1" -v out="$2" 'BEGIN { printf "%s %.1f %s %s\n", img, (e - s) * 1000, out, e }' >>"$3"
SH
chmod +x "$tmp/cli_one.sh"

# The same bound as the ringmaster rows: images are started for SECONDS, the
# ones running then are waited for; wall = start to the last one's end.
# xargs gets a list longer than can run in time (the images round robin);
# the ones past the deadline exit at once and are not counted.
cli_run() { # parallel key label [VAR=value...]
    local p=$1 key=$2 label=$3 t0 t1 out c0 c1 deadline i
    shift 3
    mkdir -p "$tmp/$key"
    : >"$tmp/$key.res"
    t0=$EPOCHREALTIME
    deadline=$(awk -v t="$t0" -v d="$secs" 'BEGIN { printf "%.6f", t + d }')
    for ((i = 0; i < p * (secs * 5 + 1); i++)); do
        echo "${images[$(((i + cli_offset) % nimg))]} $tmp/$key/$r.$i.txt $tmp/$key.res $deadline"
    done >"$tmp/$key.jobs"
    children_cpu c0
    t0=$EPOCHREALTIME
    env "$@" xargs -P"$p" -n4 "$tmp/cli_one.sh" <"$tmp/$key.jobs"
    children_cpu c1
    t1=$(awk 'BEGIN { m = 0 } $4 > m { m = $4 } END { printf "%.6f", m }' "$tmp/$key.res")
    out=$(python3 "$client" stats --manifest "$tmp/manifest" --wall "$(elapsed "$t0" "$t1")" \
        --lat "$tmp/$key.lat" <"$tmp/$key.res" 2>"$tmp/client.err")
    echo "   $label, -P$p: $out cpu_s=$(elapsed "$c0" "$c1")" >&2
    sed 's/^/     /' "$tmp/client.err" >&2
    add "$key" "$label" "$p" "$(elapsed "$c0" "$c1")" <<<"$out"
}

# One untimed CLI run first: the model file is in the page cache for everyone.
tesseract "${images[0]}" - --oem 1 --psm 6 -l eng >/dev/null 2>&1

start_rm 1
start_rm 2
for r in $(seq "$rounds"); do
    cli_offset=$(((r - 1) * 7)) # each round starts the CLI on other images
    echo "-- round $r/$rounds (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    rm_run 1 1
    cli_run 1 cli1 "tesseract CLI per image"
    rm_run 2 2
    rm_run 2 4
    cli_run 2 cli2 "tesseract CLI per image"
    if [ "$omp1" = 1 ]; then
        cli_run 1 cli1omp "tesseract CLI, OMP_THREAD_LIMIT=1" OMP_THREAD_LIMIT=1
        cli_run 2 cli2omp "tesseract CLI, OMP_THREAD_LIMIT=1" OMP_THREAD_LIMIT=1
    fi
done
for n in 1 2; do
    echo "   ringmaster $n worker(s), served per worker: $("$ctl" -c "$tmp/rm$n.ini" status --json --interval 0 2>&1 | python3 -c '
import json, sys
s = sys.stdin.read()
try:
    print(", ".join("pid %d: %d" % (p["pid"], p["served"]) for p in json.loads(s)["processes"] if p["role"] == "worker"))
except ValueError:
    print("ringmasterctl status failed: " + s.strip())')" >&2
    stop_rm "$n"
done

# ---------------------------------------------------------------- report
read -r busy1 total1 < <(machine_cpu)
children_cpu own1 # includes the ringmasters (waited for above)
run_wall=$(elapsed "$run_t0" "$EPOCHREALTIME")
echo
echo "OCR: $nimg one-line PNGs (~$(du -cb "$tmp"/img/*.png | tail -1 | awk -v n="$nimg" '{printf "%.0f", $1/n/1024}') KiB each); $rounds round(s) of ${secs}s per row; $(nproc) CPUs"
printf '%-36s %4s %7s %13s %7s %7s %7s %8s %6s %6s %5s\n' mode conc req/s "(round range)" "p50 ms" "p99 ms" "max ms" "CPU ms/r" n non200 wrong
order=(rm1c1 rm2c2 rm2c4 cli1 cli2 cli1omp cli2omp)
for k in "${order[@]}"; do
    [ -n "${LABEL[$k]:-}" ] || continue
    read -r _ p50_ms p99_ms max_ms < <(python3 "$client" pct "$tmp/$k.lat" | tr '=' ' ' | awk '{print $2, $4, $6, $8}')
    rps=$(awk -v c="${CNT[$k]}" -v w="${WALL[$k]}" 'BEGIN { printf "%.2f", (w > 0 ? c / w : 0) }')
    range=$(tr ' ' '\n' <<<"${RPS[$k]}" | awk 'NF { if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 } END { printf "%.1f-%.1f", min, max }')
    cpu=$(awk -v c="${CPU[$k]}" -v n="${CNT[$k]}" 'BEGIN { printf "%.1f", n ? c * 1000 / n : 0 }')
    printf '%-36s %4s %7s %13s %7s %7s %7s %8s %6s %6s %5s\n' "${LABEL[$k]}" "${CONC[$k]}" "$rps" "($range)" \
        "$p50_ms" "$p99_ms" "$max_ms" "$cpu" "${CNT[$k]}" "${NON[$k]}" "${WRONG[$k]}"
    [ "${ERR[$k]}" = 0 ] || echo "    (${ERR[$k]} connection errors / failed runs: see above)"
    eval "rps_$k=$rps p50_$k=$p50_ms cpu_$k=$cpu"
done
echo
ratio() { # label rm-key cli-key
    local a=rps_$2 b=rps_$3 pa=p50_$2 pb=p50_$3 ca=cpu_$2 cb=cpu_$3
    awk -v a="${!a}" -v b="${!b}" -v pa="${!pa}" -v pb="${!pb}" -v ca="${!ca}" -v cb="${!cb}" -v l="$1" \
        'BEGIN { printf "ringmaster / CLI, %s: req/s x%.1f, p50 latency x%.3f, CPU per request x%.3f\n", l, a / b, pa / pb, ca / cb }'
}
ratio "concurrency 1 (1 worker vs sequential)" rm1c1 cli1
ratio "concurrency 2 (2 workers vs xargs -P2)" rm2c2 cli2
if [ "$omp1" = 1 ]; then
    ratio "concurrency 1, CLI with OMP_THREAD_LIMIT=1" rm1c1 cli1omp
    ratio "concurrency 2, CLI with OMP_THREAD_LIMIT=1" rm2c2 cli2omp
fi
awk -v b="$((busy1 - busy0))" -v t="$((total1 - total0))" -v own="$(elapsed "$own0" "$own1")" -v hz="$hz" \
    -v w="$run_wall" -v l0="$load0" -v l1="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
    other = b / hz - own; if (other < 0) other = 0
    printf "noise: in %.0f s, the machine had %.0f CPU-s; this bench used %.0f, other processes %.0f (%.0f%%); load average %s -> %s\n",
        w, t / hz, own, other, 100 * other / (t / hz), l0, l1 }'
# Anything the daemons logged at warning level or above.
if grep -hE ': (warning|warn|error|crit|alert|emerg):' "$tmp"/rm*.log >/dev/null 2>&1; then
    echo
    echo "ringmaster log (warnings and errors):"
    grep -hE ': (warning|warn|error|crit|alert|emerg):' "$tmp"/rm*.log | head -20
fi
