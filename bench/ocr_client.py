#!/usr/bin/env python3
"""ocr_client.py - load generator and latency statistics for the OCR benches.

  ocr_client.py http --port P [--host 127.0.0.1] [--pool ocr] --manifest FILE
                     [--duration S | --requests N] [--concurrency C] [--warmup N] [--v2]
      C threads, each with one keep-alive connection (http.client), post the
      manifest's images round robin to /v2/models/POOL/infer for S seconds
      (after N untimed warm-up requests per thread). A request that started
      before the deadline is waited for and counted. Every answer is checked:
      status 200 and every expected word present in the recognized text.

  ocr_client.py stats --manifest FILE --wall SECONDS < RESULTS
      Summarize lines "IMAGE MS TEXTFILE [...]" (one per tesseract CLI run,
      written by ocr_bench.sh): images/s = lines / wall, p50/p99 of MS, and the same
      word check on each TEXTFILE.

  ocr_client.py pct FILE
      count, p50, p99 and max of the latencies in FILE (ms, one a line), as
      appended by --lat: pools several rounds.

The manifest has one image per line: PATH<TAB>expected text.
http and stats print one line of key=value results, then details of any
non-200 answer or wrong text on stderr:
  count=N wall=S rps=R p50_ms=X p99_ms=Y max_ms=Z non200=K wrong=W errors=E
--lat FILE appends every latency to FILE, for `pct` over several rounds.
Percentiles are nearest-rank.
"""
import argparse
import base64
import http.client
import json
import re
import sys
import threading
import time

WORD = re.compile(r"[A-Za-z0-9]+")


def load_manifest(path):
    images = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            p, expected = line.split("\t", 1)
            with open(p, "rb") as img:
                images.append((p, img.read(), expected))
    if not images:
        sys.exit("ocr_client: empty manifest %s" % path)
    return images


def missing_words(expected, text):
    """Expected words (letters and digits, case-sensitive) not found in text."""
    got = set(WORD.findall(text))
    return [w for w in WORD.findall(expected) if w not in got]


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(1, -(-len(sorted_vals) * q // 100))  # ceil(n*q/100), at least 1
    return sorted_vals[int(k) - 1]


def report(lat_ms, wall, non200, wrong, errors, lat_file=None):
    lat = sorted(lat_ms)
    n = len(lat)
    if lat_file:
        with open(lat_file, "a") as f:
            f.writelines("%.3f\n" % v for v in lat_ms)
    print("count=%d wall=%.3f rps=%.2f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f non200=%d wrong=%d errors=%d"
          % (n, wall, n / wall if wall > 0 else 0.0, percentile(lat, 50), percentile(lat, 99),
             lat[-1] if lat else float("nan"), len(non200), len(wrong), len(errors)))
    for status, body in non200[:10]:
        print("  non-200: %d %s" % (status, body[:300]), file=sys.stderr)
    for img, miss, text in wrong[:10]:
        print("  wrong text: %s missing %s, got %r" % (img, miss, text[:200]), file=sys.stderr)
    for e in errors[:10]:
        print("  error: %s" % e, file=sys.stderr)
    if len(lat) >= 5:
        slow = lat[-3:]
        print("  slowest ms: %s" % " ".join("%.1f" % v for v in slow), file=sys.stderr)


def cmd_http(args):
    images = load_manifest(args.manifest)
    path = "/v2/models/%s/infer" % args.pool
    bodies = []
    for p, data, expected in images:
        if args.v2:
            doc = {"id": p, "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                        "data": [base64.b64encode(data).decode()]}]}
            bodies.append((p, json.dumps(doc).encode(), "application/json", expected))
        else:
            bodies.append((p, data, "image/png", expected))

    lock = threading.Lock()
    lat_ms, non200, wrong, errors = [], [], [], []
    t_state = {}

    def go():  # runs once, when every thread has finished its warm-up
        t_state["t0"] = time.perf_counter()
        t_state["deadline"] = t_state["t0"] + args.duration
    start = threading.Barrier(args.concurrency + 1, action=go)

    def text_of(body):
        doc = json.loads(body)
        if args.v2:
            for out in doc.get("outputs", []):
                if out.get("name") == "text":
                    return out["data"][0]
            return ""
        return doc.get("text", "")

    def one(conn, item):
        p, body, ctype, expected = item
        conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        data = r.read()
        return r.status, data, r.getheader("Connection", "")

    def worker(tid):
        conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
        i = tid * 7  # different threads start on different images
        for _ in range(args.warmup):
            try:
                one(conn, bodies[i % len(bodies)])
            except Exception:
                conn.close()
                conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
            i += 1
        start.wait()
        deadline = t_state["deadline"]
        mine_lat, mine_non, mine_wrong, mine_err = [], [], [], []
        left = args.requests  # > 0: exactly this many, whatever the duration
        while (left > 0) if args.requests > 0 else (time.perf_counter() < deadline):
            left -= 1
            item = bodies[i % len(bodies)]
            i += 1
            t0 = time.perf_counter()
            try:
                status, data, connhdr = one(conn, item)
            except Exception as e:  # connection reset, timeout...
                mine_err.append("%s: %r" % (item[0], e))
                conn.close()
                conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
                continue
            ms = (time.perf_counter() - t0) * 1e3
            mine_lat.append(ms)
            if status != 200:
                mine_non.append((status, data.decode("utf-8", "replace")))
            else:
                try:
                    text = text_of(data)
                except Exception as e:
                    mine_wrong.append((item[0], ["<unparsable: %r>" % e], data.decode("utf-8", "replace")))
                else:
                    miss = missing_words(item[3], text)
                    if miss:
                        mine_wrong.append((item[0], miss, text))
            if connhdr.lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
        conn.close()
        with lock:
            lat_ms.extend(mine_lat)
            non200.extend(mine_non)
            wrong.extend(mine_wrong)
            errors.extend(mine_err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(args.concurrency)]
    for t in threads:
        t.start()
    start.wait()  # the timed window starts when all threads are warm
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_state["t0"]
    report(lat_ms, wall, non200, wrong, errors, args.lat)
    return 0


def cmd_stats(args):
    images = {p: expected for p, _, expected in load_manifest(args.manifest)}
    lat_ms, wrong, errors = [], [], []
    for line in sys.stdin:
        parts = line.split()
        if len(parts) < 3:
            continue
        img, ms, textfile = parts[:3]
        lat_ms.append(float(ms))
        try:
            with open(textfile, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            errors.append("%s: %s" % (img, e))
            continue
        miss = missing_words(images.get(img, ""), text)
        if miss:
            wrong.append((img, miss, text))
    report(lat_ms, args.wall, [], wrong, errors, args.lat)
    return 0


def cmd_pct(args):
    with open(args.file) as f:
        lat = sorted(float(x) for x in f if x.strip())
    print("count=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f"
          % (len(lat), percentile(lat, 50), percentile(lat, 99), lat[-1] if lat else float("nan")))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("http")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--pool", default="ocr")
    h.add_argument("--manifest", required=True)
    h.add_argument("--duration", type=float, default=10.0)
    h.add_argument("--concurrency", type=int, default=1)
    h.add_argument("--requests", type=int, default=0,
                   help="each thread sends exactly this many timed requests (instead of --duration)")
    h.add_argument("--warmup", type=int, default=2, help="untimed requests per thread first")
    h.add_argument("--timeout", type=float, default=60.0)
    h.add_argument("--v2", action="store_true", help="send v2 JSON (base64) instead of raw PNG")
    h.add_argument("--lat", help="append every timed latency (ms) to this file")
    s = sub.add_parser("stats")
    s.add_argument("--manifest", required=True)
    s.add_argument("--wall", type=float, required=True)
    s.add_argument("--lat", help="append every latency (ms) to this file")
    q = sub.add_parser("pct")
    q.add_argument("file", help="latencies (ms), one a line")
    args = ap.parse_args()
    return {"http": cmd_http, "stats": cmd_stats, "pct": cmd_pct}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
