#!/bin/bash
# ocr_memory.sh - memory of an `ocr` pool: ringmaster with 1, 2 and 4 OCR
# workers (one run each). After the pool is ready every worker serves a few
# requests (so the model and Tesseract's buffers are fully touched), then
# /proc/PID/smaps_rollup is read for every ringmaster process: the master and
# its descendants (gateway, workers), found by their titles
# ("ringmaster: worker ocr N") in /proc/PID/cmdline.
#
#   bench/ocr_memory.sh [WORKER_COUNTS...]      (default: 1 2 4)
#
# Prints per run: RSS and PSS per worker (mean over the workers, MB = 10^6
# bytes), the anonymous part of the worker PSS (private heap: the model
# weights Tesseract unpacks), the PSS of the other ringmaster processes
# (master, gateway; with preload, the pool's preloader) and the total PSS of
# all ringmaster processes; and for comparison the peak RSS of one
# `tesseract IMG - --oem 1 --psm 6 -l eng` process.
# PRELOAD=yes sets `preload = yes` in the pool (the model is loaded once in a
# preloader that forks the workers: copy-on-write sharing).
# Needs: python3, curl, ./ringmaster, ./tests/gen_text_image (ringmasterctl
# optional: used to check that every worker served). Run from the build dir.
set -euo pipefail
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 4)
per_worker=${REQUESTS_PER_WORKER:-4}
preload=${PRELOAD:-no}
bin=${RINGMASTER:-./ringmaster}
ctl=${RINGMASTERCTL:-./ringmasterctl}
gen=${GEN_TEXT_IMAGE:-./tests/gen_text_image}
here=$(cd "$(dirname "$0")" && pwd)
client="$here/ocr_client.py"
for t in python3 curl; do command -v $t >/dev/null || { echo "missing $t"; exit 2; }; done
for f in "$bin" "$gen"; do [ -x "$f" ] || { echo "missing $f (make)"; exit 2; }; done

tmp=$(mktemp -d)
# Private copies (a rebuild of the tree during the run changes nothing here);
# the long path also leaves room in argv for the process titles.
mkdir "$tmp/bin"
cp "$bin" "$tmp/bin/ringmaster"
bin=$tmp/bin/ringmaster
if [ -x "$ctl" ]; then cp "$ctl" "$tmp/bin/ringmasterctl"; ctl=$tmp/bin/ringmasterctl; fi
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

lines=("The quick brown fox jumps over the lazy dog"
       "Invoice 4821 is due on March 14 2024"
       "Sphinx of black quartz judge my vow"
       "Reading is to the mind what exercise is to the body")
: >"$tmp/manifest"
for i in "${!lines[@]}"; do
    "$gen" "$tmp/line$i.png" "${lines[$i]}"
    printf '%s\t%s\n' "$tmp/line$i.png" "${lines[$i]}" >>"$tmp/manifest"
done

# served count of every worker, "pid served" lines (needs ringmasterctl)
served() {
    "$ctl" -c "$1" status --json --interval 0 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin)["processes"]:
    if p["role"] == "worker":
        print(p["pid"], p["served"])'
}

measure() { # master-pid workers
    python3 - "$1" "$2" <<'PY'
import os, sys
master, nworkers = int(sys.argv[1]), int(sys.argv[2])
parent = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
        except OSError:
            pass
tree, todo = [master], [master]
while todo:
    p = todo.pop()
    kids = [c for c, pp in parent.items() if pp == p]
    tree += kids
    todo += kids

def title(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()

def rollup(pid):
    v = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                v[k] = int(parts[0]) * 1024 / 1e6  # MB
    return v

procs = []
for pid in sorted(tree):
    try:
        procs.append((pid, title(pid), rollup(pid)))
    except OSError as e:
        print("  cannot read %d: %s" % (pid, e), file=sys.stderr)
workers = [p for p in procs if p[1].startswith("ringmaster: worker ocr")]
for pid, t, v in procs:
    print("  %-7d %-28s Rss %7.1f MB  Pss %7.1f MB  (Pss_Anon %6.1f, Pss_File %6.1f)"
          % (pid, t, v.get("Rss", 0), v.get("Pss", 0), v.get("Pss_Anon", 0), v.get("Pss_File", 0)),
          file=sys.stderr)
if len(workers) != nworkers:
    print("  expected %d workers, found %d" % (nworkers, len(workers)), file=sys.stderr)
mean = lambda k: sum(w[2].get(k, 0) for w in workers) / max(1, len(workers))
by = lambda prefix, k: sum(p[2].get(k, 0) for p in procs if p[1].startswith(prefix))
print("%d %.1f %.1f %.1f %.1f %.1f %.1f %.1f %d" % (
    len(workers), mean("Rss"), mean("Pss"), mean("Pss_Anon"),
    min((w[2].get("Pss", 0) for w in workers), default=0), max((w[2].get("Pss", 0) for w in workers), default=0),
    sum(p[2].get("Pss", 0) for p in procs if p not in workers),
    sum(p[2].get("Pss", 0) for p in procs), len(procs)))
PY
}

results=()
for n in "${counts[@]}"; do
    port=$(free_port)
    ini=$tmp/rm$n.ini
    cat >"$ini" <<INI
[ringmaster]
listen = 127.0.0.1:$port
gateways = 1
runtime_dir = $tmp/run$n
[pool ocr]
handler = ocr
workers = $n
preload = $preload
INI
    "$bin" -c "$ini" 2>"$tmp/rm$n.log" &
    rm_pid=$!
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$port/v2/models/ocr/ready" >/dev/null 2>&1 && break
        kill -0 "$rm_pid" 2>/dev/null || { echo "ringmaster exited:"; cat "$tmp/rm$n.log"; exit 1; }
        sleep 0.1
    done
    echo "-- $n worker(s), master pid $rm_pid, port $port" >&2
    # Every worker serves >= per_worker requests (checked with ringmasterctl
    # when it is there; else n * per_worker requests at concurrency n).
    for _ in $(seq 10); do
        python3 "$client" http --port "$port" --manifest "$tmp/manifest" --concurrency "$n" \
            --warmup 0 --requests "$per_worker" >"$tmp/client.out" 2>"$tmp/client.err" ||
            { cat "$tmp/client.err"; exit 1; }
        grep -q 'non200=0 wrong=0 errors=0' "$tmp/client.out" ||
            { echo "  answers not all right:"; cat "$tmp/client.out" "$tmp/client.err"; }
        [ -x "$ctl" ] || break
        s=$(served "$ini")
        echo "  served per worker (pid served): $(echo $s)" >&2
        [ "$(echo "$s" | awk -v m="$per_worker" -v n="$n" '$2 >= m {k++} END { print (k + 0 >= n) }')" = 1 ] && break
    done
    out=$(measure "$rm_pid" "$n")
    results+=("$n $out")
    stop_rm
done

# One tesseract CLI process for comparison (peak RSS, from getrusage).
cli_rss=
if command -v tesseract >/dev/null; then
    cli_rss=$(python3 -c '
import resource, subprocess, sys
subprocess.run(["tesseract", sys.argv[1], "-", "--oem", "1", "--psm", "6", "-l", "eng"],
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print("%.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6))' "$tmp/line0.png")
fi

echo
echo "OCR pool memory (preload = $preload) after every worker served >= $per_worker requests (MB = 10^6 bytes; per worker = mean; non-worker = master, gateway and any preloader)"
printf '%7s %12s %12s %17s %16s %12s %15s\n' workers "RSS/worker" "PSS/worker" "anon PSS/worker" "non-worker PSS" "total PSS" "(processes)"
for r in "${results[@]}"; do
    read -r n found rss pss anon _ _ mg total nprocs <<<"$r"
    printf '%7s %12s %12s %17s %16s %12s %15s\n' "$n" "$rss" "$pss" "$anon" "$mg" "$total" "$nprocs"
    [ "$found" = "$n" ] || echo "    (found $found worker processes, expected $n)"
done
[ -z "$cli_rss" ] || echo "one tesseract CLI process (same image): peak RSS $cli_rss MB"
