#!/usr/bin/env python3
"""stream_bench.py - streamed answers against answers in one piece
(docs/streaming.md). Not part of make check.

Starts the built ringmaster (tests/integration/harness.py) with one pool of
the built-in `stream` handler and measures, at 1, 16 and 64 concurrent
clients:
  - time to first chunk (first body byte after the headers), for a model
    that makes 50 chunks 5 ms apart, streamed vs answered in one piece
    (`whole`: the same bytes, Content-Length);
  - chunks per second through the server, for 20000 chunks of 64 bytes made
    as fast as the handler can, streamed vs in one piece;
and the gateway's resident memory with 64 clients that ask for 8 MB each
and read nothing.

Run from the build directory:
    python3 bench/stream_bench.py [--rounds N]
"""
import argparse
import os
import socket
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
sys.path.insert(0, os.path.join(SRC, "tests", "pylib"))
os.environ.setdefault("RINGMASTER", os.path.join(os.getcwd(), "ringmaster"))
os.environ.setdefault("RINGMASTERCTL", os.path.join(os.getcwd(), "ringmasterctl"))

from harness import Server  # noqa: E402

CHUNKS = 20000  # per stream in the throughput runs


def one(port, body, out, i):
    """Send one request; record (seconds to first body byte, seconds to the
    end, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    req = b"POST /v2/models/s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        len(body), body)
    t0 = time.monotonic()
    s.sendall(req)
    buf = b""
    first = None
    total = 0
    while True:
        d = s.recv(262144)
        if not d:
            break
        if first is None:
            buf += d
            k = buf.find(b"\r\n\r\n")
            if k < 0 or len(buf) == k + 4:
                continue
            first = time.monotonic() - t0
            total = len(buf) - k - 4
        else:
            total += len(d)
    end = time.monotonic() - t0
    s.close()
    out[i] = (first if first is not None else end, end, total)


def run(port, body, n):
    out = [None] * n
    ts = [threading.Thread(target=one, args=(port, body, out, i)) for i in range(n)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    return out, wall


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            # private memory: the pool's shared memory the gateway maps
            # (the slots' answer areas) is counted in VmRSS as it is read
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    srv = Server(pools={"s": {"handler": "stream", "workers": 64, "queue_depth": 256,
                              "max_response_size": "2MiB", "request_timeout": "60s"}},
                 gateways=1, idle_timeout="120s")
    srv.start()
    try:
        rows = []
        for conc in (1, 16, 64):
            for mode in ("stream", "whole"):
                suffix = b" whole" if mode == "whole" else b""
                ttfc, rates = [], []
                for _ in range(a.rounds):
                    out, _ = run(srv.port, b"50 every 5" + suffix, conc)
                    ttfc += [o[0] * 1000 for o in out]
                    out, wall = run(srv.port, b"%d size 64" % CHUNKS + suffix, conc)
                    assert all(o[2] >= CHUNKS * 64 for o in out), out
                    rates.append(conc * CHUNKS / wall)
                rows.append((conc, mode, statistics.median(ttfc), max(ttfc), statistics.median(rates)))
        print("| streams | answer | first chunk, median ms | first chunk, worst ms | chunks/s (64 B) |")
        print("| ---: | --- | ---: | ---: | ---: |")
        for conc, mode, med, worst, rate in rows:
            print("| %d | %s | %.1f | %.1f | %.0f |" % (conc, "streamed" if mode == "stream" else "one piece",
                                                         med, worst, rate))

        # 64 clients that ask for 8 MB each and read nothing.
        gw = srv.gateways()[0]
        before = rss_kib(gw)
        socks = []
        for _ in range(64):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", srv.port))
            s.sendall(b"POST /v2/models/s/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\n2000 size 4000")
            socks.append(s)
        time.sleep(3)
        after = rss_kib(gw)
        print()
        print("gateway private memory (RssAnon): %d KiB before, %d KiB with 64 streams of 8 MB whose clients "
              "do not read (+%d KiB)" % (before, after, after - before))
        for s in socks:
            s.close()
    except BaseException:
        sys.stderr.write("\n".join(ln for ln in srv.log().splitlines()
                                    if "gateway" in ln or "error" in ln or "warn" in ln)[-4000:] + "\n")
        raise
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
