#!/bin/bash
# ocr_bench.sh - OCR requests/s and p50/p99 latency: ringmaster's `ocr` pool
# (model loaded once per worker) against running Tesseract's own CLI once per
# image, as a user would script it, on the same generated one-line images, in
# one run.
#
#   bench/ocr_bench.sh [SECONDS_PER_RINGMASTER_RUN] [CLI_PASSES]
#
# Rows:
#   ringmaster ocr, 1 worker   client concurrency 1
#   ringmaster ocr, 2 workers  client concurrency 2, then 4
#   tesseract CLI per image    `tesseract IMG - --oem 1 --psm 6 -l eng`, one
#                              process per image, sequentially (xargs -P1) and
#                              2 at a time (xargs -P2); every image CLI_PASSES
#                              times. req/s = images / wall time of the batch;
#                              p50/p99 of each process's wall time.
#   ... OMP_THREAD_LIMIT=1     the same CLI with OpenMP limited to one thread
#                              (what the ocr handler does); skip: CLI_OMP1=0
# then the ratios ringmaster / CLI at equal concurrency. Every answer is
# checked (status 200, every expected word in the text); non-200s, wrong
# texts and errors are counted in the table and detailed on stderr.
#
# The ringmaster client is bench/ocr_client.py (python3 stdlib: threads, one
# keep-alive http.client connection each, raw PNG bodies). V2=1 sends v2 JSON
# (base64) instead.
# Needs: python3, curl, tesseract (apt-get install -y tesseract-ocr), a built
# ./ringmaster and ./tests/gen_text_image. Run from the build dir.
set -euo pipefail
secs=${1:-15}
passes=${2:-2}
bin=${RINGMASTER:-./ringmaster}
ctl=${RINGMASTERCTL:-./ringmasterctl}
gen=${GEN_TEXT_IMAGE:-./tests/gen_text_image}
omp1=${CLI_OMP1:-1}
here=$(cd "$(dirname "$0")" && pwd)
client="$here/ocr_client.py"
for t in python3 curl tesseract; do command -v $t >/dev/null || { echo "missing $t"; exit 2; }; done
for f in "$bin" "$gen"; do [ -x "$f" ] || { echo "missing $f (make)"; exit 2; }; done
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

tmp=$(mktemp -d)
rm_pid=
stop_rm() {
    [ -n "$rm_pid" ] || return 0
    kill -TERM "$rm_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$rm_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$rm_pid" 2>/dev/null || true
    wait "$rm_pid" 2>/dev/null || true
    rm_pid=
}
cleanup() { stop_rm; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

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
cut -f1 "$tmp/manifest" >"$tmp/list"
nimg=$(wc -l <"$tmp/list")

# ------------------------------------------------------------ ringmaster
start_rm() { # workers
    local n=$1 port
    port=$(free_port)
    mkdir -p "$tmp/run$n"
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
    rm_pid=$!
    rm_port=$port
    local t0=$EPOCHREALTIME
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$port/v2/models/ocr/ready" >/dev/null 2>&1 && break
        kill -0 "$rm_pid" 2>/dev/null || { echo "ringmaster exited:"; cat "$tmp/rm$n.log"; exit 1; }
        sleep 0.1
    done
    # The pool is ready with its first worker: wait for all n (status --json).
    if [ -x "$ctl" ]; then
        for _ in $(seq 100); do
            "$ctl" -c "$tmp/rm$n.ini" status --json 2>/dev/null |
                python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["pools"][0]["workers"]["ready"]+d["pools"][0]["workers"]["busy"]>='"$n"' else 1)' \
                && break
            sleep 0.1
        done
    fi
    curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null ||
        { echo "ringmaster on port $port not ready:"; cat "$tmp/rm$n.log"; exit 1; }
    echo "ringmaster ocr, $n worker(s): ready in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}') s" >&2
}

declare -A R  # R[key]="count rps p50 p99 non200 wrong errors"
rows=()
parse() { # key label conc < client output
    local key=$1 label=$2 conc=$3 line
    line=$(grep '^count=' || true)
    [ -n "$line" ] || { echo "no result for $label" >&2; line="count=0 rps=0 p50_ms=nan p99_ms=nan max_ms=nan non200=0 wrong=0 errors=1"; }
    eval "local $line"
    R[$key]="$label|$conc|$count|$rps|$p50_ms|$p99_ms|$max_ms|$non200|$wrong|$errors"
    rows+=("$key")
}

rm_run() { # workers conc
    local n=$1 c=$2 out
    echo "-- ringmaster ocr, $n worker(s), concurrency $c, ${secs}s" >&2
    out=$(python3 "$client" http --port "$rm_port" --manifest "$tmp/manifest" \
        --duration "$secs" --concurrency "$c" --warmup 2 ${V2:+--v2} 2>"$tmp/client.err")
    echo "   $out" >&2
    sed 's/^/   /' "$tmp/client.err" >&2
    parse "rm$n.$c" "ringmaster ocr, $n worker$([ "$n" = 1 ] || echo s)" "$c" <<<"$out"
    if [ -x "$ctl" ]; then
        "$ctl" -c "$tmp/rm$n.ini" status --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
w = [p for p in d["processes"] if p["role"] == "worker"]
print("   served per worker (cumulative): " + ", ".join("pid %d: %d" % (p["pid"], p["served"]) for p in w))' >&2 || true
    fi
}

# ------------------------------------------------------------ tesseract CLI
cat >"$tmp/cli_one.sh" <<'SH'
#!/bin/bash
# cli_one.sh IMG OUT RESULTS: one tesseract process, its wall time appended.
s=$EPOCHREALTIME
tesseract "$1" - --oem 1 --psm 6 -l eng >"$2" 2>/dev/null || echo "tesseract failed on $1 (exit $?)" >&2
e=$EPOCHREALTIME
awk -v s="$s" -v e="$e" -v img="$1" -v out="$2" 'BEGIN { printf "%s %.1f %s\n", img, (e - s) * 1000, out }' >>"$3"
SH
chmod +x "$tmp/cli_one.sh"

cli_run() { # parallel key label-suffix [VAR=value...]
    local p=$1 key=$2 suffix=$3 t0 t1 out
    shift 3
    echo "-- tesseract CLI per image$suffix, xargs -P$p, $passes x $nimg images" >&2
    mkdir -p "$tmp/$key"
    : >"$tmp/$key.res"
    for pass in $(seq "$passes"); do
        while read -r img; do echo "$img $tmp/$key/$pass.$(basename "$img").txt $tmp/$key.res"; done <"$tmp/list"
    done >"$tmp/$key.jobs"
    t0=$EPOCHREALTIME
    env "$@" xargs -P"$p" -n3 "$tmp/cli_one.sh" <"$tmp/$key.jobs"
    t1=$EPOCHREALTIME
    out=$(python3 "$client" stats --manifest "$tmp/manifest" \
        --wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" <"$tmp/$key.res" 2>"$tmp/client.err")
    echo "   $out" >&2
    sed 's/^/   /' "$tmp/client.err" >&2
    parse "$key" "tesseract CLI per image$suffix" "$p" <<<"$out"
}

# One untimed CLI run first: the model file is in the page cache for everyone.
tesseract "$(head -1 "$tmp/list")" - --oem 1 --psm 6 -l eng >/dev/null 2>&1

start_rm 1
rm_run 1 1
stop_rm
cli_run 1 cli1 ""
start_rm 2
rm_run 2 2
rm_run 2 4
stop_rm
cli_run 2 cli2 ""
if [ "$omp1" = 1 ]; then
    cli_run 1 cli1omp ", OMP_THREAD_LIMIT=1" OMP_THREAD_LIMIT=1
    cli_run 2 cli2omp ", OMP_THREAD_LIMIT=1" OMP_THREAD_LIMIT=1
fi

# ---------------------------------------------------------------- report
echo
echo "OCR: $nimg one-line PNGs (~$(du -cb "$tmp"/img/*.png | tail -1 | awk -v n="$nimg" '{printf "%.0f", $1/n/1024}') KiB each), ringmaster ${secs}s per row, CLI $passes pass(es); $(nproc) CPU(s)"
printf '%-45s %4s %7s %7s %7s %7s %6s %7s %6s\n' mode conc req/s "p50 ms" "p99 ms" "max ms" count non200 wrong
for k in "${rows[@]}"; do
    IFS='|' read -r label conc count rps p50 p99 max non wrong errs <<<"${R[$k]}"
    printf '%-45s %4s %7.2f %7.1f %7.1f %7.1f %6s %7s %6s\n' "$label" "$conc" "$rps" "$p50" "$p99" "$max" "$count" "$non" "$wrong"
    [ "$errs" = 0 ] || echo "    ($errs connection errors/failed runs: see above)"
done
field() { IFS='|' read -r -a f <<<"${R[$1]}"; echo "${f[$2]}"; }
ratio() { # label rm-key cli-key
    awk -v a="$(field "$2" 3)" -v b="$(field "$3" 3)" -v pa="$(field "$2" 4)" -v pb="$(field "$3" 4)" -v l="$1" \
        'BEGIN { printf "ratio ringmaster / CLI, %s: req/s x%.2f, p50 latency x%.2f\n", l, a / b, pa / pb }'
}
echo
ratio "concurrency 1 (1 worker vs sequential)" rm1.1 cli1
ratio "concurrency 2 (2 workers vs xargs -P2)" rm2.2 cli2
if [ "$omp1" = 1 ]; then
    ratio "concurrency 1, vs CLI with OMP_THREAD_LIMIT=1" rm1.1 cli1omp
    ratio "concurrency 2, vs CLI with OMP_THREAD_LIMIT=1" rm2.2 cli2omp
fi
# Anything the daemon logged above info level.
if grep -hiE 'warn|error|crit|died|killed|timeout' "$tmp"/rm*.log >/dev/null 2>&1; then
    echo
    echo "ringmaster log (warnings/errors):"
    grep -hiE 'warn|error|crit|died|killed|timeout' "$tmp"/rm*.log | head -20
fi
