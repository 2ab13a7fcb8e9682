#!/usr/bin/env python3
"""fuzz.py - black-box HTTP fuzzer for the ringmaster gateway (stdlib only).

Several fuzzing clients throw hostile input at the gateway (random bytes,
mutated valid requests, Content-Length / Transfer-Encoding / chunk-size
variants, long URIs and headers, NUL bytes, pipelined mixes, fragmented
sends, half-closes, resets mid-body, slow partial sends) while one clean
client loops on echo inference and checks every answer byte for byte.

Afterwards it checks: the gateway has the same pid, the pool's queue is back
to 0 (no slot leaked), the gateway's descriptor count is back near its
baseline, the clean client saw only correct 200s, no fuzz input got a 500,
and (when it can read the log) the master logged no gateway death.

Two modes:
  fuzz.py --ringmaster BIN --ctl BIN [--duration 20]
      starts its own daemon (temp dir, free port, echo pool; the shared
      launcher of tests/pylib/rmtest.py), stops it after.
  fuzz.py --port P --ini INI --ctl BIN [--log MASTER_LOG] [--master-pid PID]
      fuzzes a daemon that is already running.
Exit status 0 when every check passed, 1 otherwise. Crashing inputs (the
last inputs of every client when the gateway pid changed) and inputs that
got a 500 are written under --out.
"""
import argparse
import multiprocessing
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "pylib"))

from rmtest import Daemon, wait_for  # noqa: E402

HOST = "127.0.0.1"
POOL = "echo"
INFER = "/v2/models/%s/infer" % POOL
STATUS_RE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")

# ------------------------------------------------------------------ helpers


def rnd_bytes(r, n):
    return r.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("latin-1")
    except OSError:
        return ""


def gateway_pids(master):
    return sorted(p for p in children(master) if "ringmaster: gateway" in cmdline(p))


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def queue_used(ctl, ini):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")  # LSan's exit would drop the buffered output
    out = subprocess.run([ctl, "-c", ini, "status", "--interval", "0"], capture_output=True, text=True, timeout=10,
                         env=env).stdout
    m = re.search(r"pool %s\s.*?queue (\d+)/(\d+)" % POOL, out)
    return (int(m.group(1)) if m else None), out


# ------------------------------------------------------------------ generators


def chunked(r, body, ext=False, trailer=False):
    out, i = b"", 0
    while i < len(body):
        n = r.randint(1, max(1, len(body) - i))
        out += b"%x" % n + (b";x=" + b"y" * r.randint(0, 20) if ext else b"") + b"\r\n" + body[i:i + n] + b"\r\n"
        i += n
    out += b"0\r\n" + (b"X-Trailer: t\r\n" if trailer else b"") + b"\r\n"
    return out


def valid_request(r):
    k = r.randrange(12)
    body = rnd_bytes(r, r.choice([0, 1, 5, 100, 3000, 20000]))
    ver = r.choice([b"1.1", b"1.1", b"1.0"])
    conn = r.choice([b"", b"", b"Connection: close\r\n", b"Connection: keep-alive\r\n"])
    host = b"Host: fz\r\n"
    if k < 4:
        path = r.choice([b"/v2/health/live", b"/v2/health/ready", b"/v2", b"/metrics",
                         b"/v2/models/echo", b"/v2/models/echo/ready", b"/v2/models/nope/ready",
                         b"/nope", b"http://h/v2/health/live", b"*", b"/v2/models//infer"])
        meth = r.choice([b"GET", b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"PUT"])
        return meth + b" " + path + b" HTTP/" + ver + b"\r\n" + host + conn + b"\r\n"
    ctype = r.choice([b"", b"Content-Type: text/plain\r\n", b"Content-Type: application/x-" + b"q" * 130 + b"\r\n"])
    expect = b"Expect: 100-continue\r\n" if r.random() < 0.2 else b""
    path = INFER.encode() if r.random() < 0.9 else b"/v2/models/nope/infer"
    meth = b"POST" if r.random() < 0.9 else b"GET"
    head = meth + b" " + path + b" HTTP/" + ver + b"\r\n" + host + conn + ctype + expect
    if r.random() < 0.3:
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(r, body, r.random() < 0.3, r.random() < 0.3)
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


CL_VALUES = [b"18446744073709551615", b"18446744073709551616", b"99999999999999999999999", b"-1", b"+5",
             b" 5", b"5 5", b"0x10", b"1e3", b"", b"5\x00", b"262144", b"262145", b"4294967296", b"0",
             b"00000000000000000000005", b"5, 5"]
TE_VALUES = [b"chunked", b"Chunked", b"gzip, chunked", b"chunked, gzip", b"identity", b" chunked",
             b"chunked\x00", b"xchunked", b"chunked, chunked", b"", b"\tchunked"]
CHUNK_SIZES = [b"ffffffffffffffff", b"fffffffffffffffff", b"-1", b"0x5", b"5 ", b"5;ext=1", b"", b"g",
               b"1" * 100, b"80000000", b"40000", b"0;" + b"e" * 20000, b"5\x00", b"+5"]


def header_variant(r):
    hdrs = []
    for _ in range(r.randint(1, 3)):
        k = r.randrange(3)
        if k == 0:
            hdrs.append(b"Content-Length: " + r.choice(CL_VALUES))
        elif k == 1:
            hdrs.append(b"Transfer-Encoding: " + r.choice(TE_VALUES))
        else:
            hdrs.append(r.choice([b"Expect: 100-continue", b"Connection: close", b"Connection: upgrade\r\nUpgrade: h2c",
                                  b"Content-Type: a\r\nContent-Type: b", b"Expect: " + b"1" * 100,
                                  b"X-Fold: a\r\n b", b"Connection: keep-alive, close"]))
    body = rnd_bytes(r, r.randint(0, 64))
    if r.random() < 0.5:
        body = b"".join(r.choice(CHUNK_SIZES) + b"\r\n" + rnd_bytes(r, r.randint(0, 8)) + b"\r\n"
                        for _ in range(r.randint(1, 3))) + r.choice([b"0\r\n\r\n", b""])
    return (b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: fz\r\n" + b"\r\n".join(hdrs) + b"\r\n\r\n" + body)


def long_thing(r):
    # With Host: an HTTP/1.1 request without one is 400 before any limit is
    # looked at, and these are here to reach the limits (414, 431, 413).
    k = r.randrange(6)
    if k == 0:
        return b"GET /" + b"a" * r.choice([2046, 2047, 2048, 5000, 20000]) + b" HTTP/1.1\r\nHost: fz\r\n\r\n"
    if k == 1:
        return b"GET /v2/health/live HTTP/1.1\r\nHost: fz\r\nX-Big: " + b"v" * r.choice([8000, 16300, 16400, 70000]) + b"\r\n\r\n"
    if k == 2:
        return (b"GET /v2/health/live HTTP/1.1\r\nHost: fz\r\n" +
                b"".join(b"X-%d: y\r\n" % i for i in range(r.choice([100, 1500, 3000]))) + b"\r\n")
    if k == 3:
        return b"GET /v2/health/live HTTP/1.1\r\nHost: fz\r\n" + b"N" * r.choice([31, 32, 33, 200, 20000]) + b": v\r\n\r\n"
    if k == 4:  # body limits: non-inference (64 KiB) and inference (max_request_size)
        n = r.choice([65536, 65537, 262144, 262145, 300000])
        path = r.choice([b"/v2/health/live", INFER.encode()])
        if r.random() < 0.5:
            return b"POST " + path + b" HTTP/1.1\r\nHost: fz\r\nContent-Length: %d\r\n\r\n" % n + b"b" * n
        return b"POST " + path + b" HTTP/1.1\r\nHost: fz\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(r, b"b" * n)
    return (b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: fz\r\nContent-Type: " + b"t" * r.choice([126, 127, 128, 5000]) +
            b"\r\nContent-Length: 1\r\n\r\nx")


def mutate(r, data):
    b = bytearray(data)
    for _ in range(r.randint(1, 8)):
        if not b:
            b += rnd_bytes(r, 4)
        k = r.randrange(7)
        i = r.randrange(len(b))
        if k == 0:
            b[i] ^= 1 << r.randrange(8)
        elif k == 1:
            b[i] = r.choice(b"\x00\r\n :\t\xff0123456789-;,/%?#\x7f")
        elif k == 2:
            b[i:i] = r.choice([b"\x00", b"\r\n", b" ", b"\r\n\r\n", b"0", b"f" * 17, rnd_bytes(r, 3)])
        elif k == 3:
            del b[i:i + r.randint(1, 10)]
        elif k == 4:
            j = r.randrange(len(b))
            b[i:i] = b[j:j + r.randint(1, 40)]
        elif k == 5:
            del b[i:]
        else:
            b[i:i] = valid_request(r)
    return bytes(b)


def make_input(r):
    k = r.randrange(100)
    if k < 8:
        return rnd_bytes(r, r.choice([1, 10, 100, 1000, 17000]))
    if k < 40:
        return mutate(r, valid_request(r))
    if k < 58:
        return header_variant(r)
    if k < 66:
        return long_thing(r)
    if k < 72:  # NUL bytes
        v = bytearray(valid_request(r))
        for _ in range(r.randint(1, 4)):
            v[r.randrange(len(v))] = 0
        return bytes(v)
    # pipelined mix
    parts = [valid_request(r) if r.random() < 0.6 else make_input_simple(r) for _ in range(r.randint(2, 8))]
    return b"".join(parts)


def make_input_simple(r):
    return r.choice([mutate(r, valid_request(r)), header_variant(r), valid_request(r)])


# ------------------------------------------------------------------ clients


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.inputs = 0
        self.bytes = 0
        self.statuses = {}
        self.conn_errors = 0
        self.clean_ok = 0
        self.clean_errors = []
        self.bad_answers = []  # (why, input)


def read_some(s, deadline):
    data = b""
    while time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not d:
            break
        data += d
    return data


def rst_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def fuzz_client(idx, args, stats, stop, recent):
    r = random.Random(args.seed * 1000 + idx)
    while not stop.is_set():
        data = make_input(r)
        recent.append(data)
        if len(recent) > 20:
            del recent[0]
        mode = r.randrange(10)
        try:
            s = socket.create_connection((HOST, args.port), timeout=2)
        except OSError:
            with stats.lock:
                stats.conn_errors += 1
            time.sleep(0.05)
            continue
        try:
            if mode <= 3:
                s.sendall(data)
            elif mode <= 5:  # fragmented, with tiny pauses
                i = 0
                while i < len(data) and not stop.is_set():
                    n = r.randint(1, 64)
                    s.sendall(data[i:i + n])
                    i += n
                    if r.random() < 0.05:
                        time.sleep(0.002)
            elif mode == 6:  # half-close after sending
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
            elif mode == 7:  # reset mid-send
                s.sendall(data[: r.randint(0, len(data))])
                rst_close(s)
                with stats.lock:
                    stats.inputs += 1
                    stats.bytes += len(data)
                continue
            elif mode == 8:  # send, never read, close
                s.sendall(data)
            else:  # slow: a few pieces, then give up
                for _ in range(3):
                    s.sendall(data[: r.randint(0, 40)])
                    time.sleep(0.05)
                s.sendall(data)
            got = b"" if mode == 8 else read_some(s, time.time() + r.choice([0.01, 0.03, 0.1, 0.3]))
        except OSError:
            got = b""
        if r.random() < 0.3:
            rst_close(s)
        else:
            s.close()
        with stats.lock:
            stats.inputs += 1
            stats.bytes += len(data)
            for m in STATUS_RE.finditer(got):
                st = int(m.group(1))
                stats.statuses[st] = stats.statuses.get(st, 0) + 1
                if st == 500 or st == 502:
                    stats.bad_answers.append(("status %d" % st, data, got[:500]))
            if got and not got.startswith(b"HTTP/1.1 "):
                stats.bad_answers.append(("answer does not start with a status line", data, got[:500]))


def fuzz_process(idx, args, q, stop, gw):
    """One fuzzing process (the GIL would cap threads): 2 client threads;
    dumps its recent inputs if the gateway pid disappears."""
    stats, tstop = Stats(), threading.Event()
    recents = [[], []]
    ts = [threading.Thread(target=fuzz_client, args=(idx * 2 + k, args, stats, tstop, recents[k]), daemon=True)
          for k in range(2)]
    for t in ts:
        t.start()
    dumped = False
    while not stop.is_set():
        time.sleep(0.1)
        if gw and not dumped and not os.path.exists("/proc/%d" % gw):
            dumped = True
            os.makedirs(args.out, exist_ok=True)
            for k, rec in enumerate(recents):
                for j, data in enumerate(list(rec)):
                    with open(os.path.join(args.out, "crash-p%d-%d-%02d.bin" % (idx, k, j)), "wb") as f:
                        f.write(data)
    tstop.set()
    for t in ts:
        t.join(10)
    q.put((stats.inputs, stats.bytes, stats.statuses, stats.conn_errors, stats.bad_answers[:50]))


def read_answer(f):
    line = f.readline(65536)
    if not line:
        raise EOFError("connection closed before the status line")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", line)
    if not m:
        raise ValueError("bad status line %r" % line[:100])
    hdrs = {}
    while True:
        h = f.readline(65536)
        if h in (b"\r\n", b""):
            break
        k, _, v = h.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get(b"content-length", b"0"))
    body = f.read(n)
    if len(body) != n:
        raise EOFError("short body")
    return int(m.group(1)), hdrs, body


def clean_client(args, stats, stop):
    r = random.Random(args.seed)
    s = f = None
    k = 0
    while not stop.is_set():
        if s is None or k % 50 == 0:
            if s:
                s.close()
            s = socket.create_connection((HOST, args.port), timeout=5)
            f = s.makefile("rb")
        k += 1
        body = rnd_bytes(r, r.choice([0, 1, 17, 1000, 16384, 70000]))
        ctype = b"application/x-fz-%d" % k
        req = (b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: clean\r\nContent-Type: " + ctype +
               b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        if k % 7 == 0:
            req += b"GET /v2/health/live HTTP/1.1\r\nHost: clean\r\n\r\n"  # pipelined
        try:
            s.sendall(req)
            st, h, b = read_answer(f)
            why = None
            if st != 200:
                why = "status %d %r" % (st, b[:200])
            elif h.get(b"content-type") != ctype:
                why = "content-type %r, expected %r" % (h.get(b"content-type"), ctype)
            elif b != body:
                why = "body differs (%d bytes, expected %d)" % (len(b), len(body))
            if k % 7 == 0 and why is None:
                st2, _, b2 = read_answer(f)
                if st2 != 200 or b2 != b'{"live":true}':
                    why = "pipelined live: %d %r" % (st2, b2[:100])
            with stats.lock:
                if why:
                    stats.clean_errors.append(why)
                else:
                    stats.clean_ok += 1
            if h.get(b"connection", b"").lower() == b"close":
                s.close()
                s = None
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            with stats.lock:
                stats.clean_errors.append("request %d: %r" % (k, e))
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass
            s = None
    if s:
        s.close()


# ------------------------------------------------------------------ own daemon


def start_daemon(args):
    """The daemon fuzzed in --ringmaster mode: one gateway, an echo pool."""
    d = Daemon(binary=args.ringmaster, tmp_prefix="gwfuzz.",
               pools={POOL: {"handler": "echo", "workers": 2, "queue_depth": 64,
                             "max_request_size": "256KiB", "max_response_size": "256KiB",
                             "request_timeout": "10s"}},
               gateways=1, heartbeat_interval="100ms", heartbeat_timeout="2s", max_connections=256,
               max_header_size="16KiB", header_timeout="3s", idle_timeout="10s")
    try:
        d.start(timeout=30, log_path=os.path.join(d.tmp, "master.log"))
    except (AssertionError, OSError) as e:
        d.stop(check=False)
        sys.exit("daemon did not become ready (%s); see %s" % (str(e).splitlines()[0], d.log_path))
    return d


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ringmaster", help="start this daemon binary (own temp dir and port)")
    ap.add_argument("--ctl", required=True, help="ringmasterctl binary")
    ap.add_argument("--port", type=int)
    ap.add_argument("--ini")
    ap.add_argument("--log", help="master log to scan for gateway deaths")
    ap.add_argument("--master-pid", type=int)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=8, help="fuzz processes (2 clients each)")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--out", default="/tmp/gwfuzz/findings")
    args = ap.parse_args()

    daemon = None
    if args.ringmaster:
        daemon = start_daemon(args)
        args.port, args.ini, args.log, args.master_pid = daemon.port, daemon.ini, daemon.log_path, daemon.pid
    if not (args.port and args.ini):
        ap.error("--port and --ini (or --ringmaster)")
    log_start = os.path.getsize(args.log) if args.log and not args.ringmaster else 0

    gws = gateway_pids(args.master_pid) if args.master_pid else []
    gw = gws[0] if gws else None
    fd0 = fd_count(gw) if gw else -1
    rss0 = rss_kb(gw) if gw else -1
    print("seed %d, port %d, gateway pid %s (fds %d, rss %d kB), log %s" %
          (args.seed, args.port, gw, fd0, rss0, args.log), flush=True)

    stats, stop = Stats(), threading.Event()
    pstop, q = multiprocessing.Event(), multiprocessing.Queue()
    procs = [multiprocessing.Process(target=fuzz_process, args=(i, args, q, pstop, gw), daemon=True)
             for i in range(args.clients)]
    for p in procs:
        p.start()
    clean = threading.Thread(target=clean_client, args=(args, stats, stop), daemon=True)
    clean.start()
    failures = []
    t_end = time.time() + args.duration
    while time.time() < t_end:
        time.sleep(0.25)
        if gw and not os.path.exists("/proc/%d" % gw):
            failures.append("gateway pid %d died during the run (recent inputs in %s)" % (gw, args.out))
            break
    pstop.set()
    stop.set()
    for _ in procs:
        try:
            n, nb, sts, ce, bad = q.get(timeout=30)
        except Exception:  # noqa: BLE001
            failures.append("a fuzz process did not report")
            continue
        stats.inputs += n
        stats.bytes += nb
        stats.conn_errors += ce
        stats.bad_answers += bad
        for k, v in sts.items():
            stats.statuses[k] = stats.statuses.get(k, 0) + v
    for p in procs:
        p.join(10)
    clean.join(10)

    # Let abandoned requests finish and lingering connections time out
    # (linger 2 s; header_timeout of the test daemon 3 s): bounded waits for
    # the queue and the gateway's descriptors to come back; what is still
    # off after them is a leak.
    settled = [lambda: queue_used(args.ctl, args.ini)[0] == 0]
    if gw:
        settled.append(lambda: fd_count(gw) <= fd0 + 2)
    for pred in settled:
        try:
            wait_for(pred, 10, what="the daemon to settle", interval=0.25)
        except AssertionError:
            pass  # measured and reported below
    gws_after = gateway_pids(args.master_pid) if args.master_pid else []
    fd1 = fd_count(gw) if gw else -1
    rss1 = rss_kb(gw) if gw else -1
    used, status_out = queue_used(args.ctl, args.ini)

    if gw and gws_after != [gw]:
        failures.append("gateway pid changed: %s -> %s" % (gw, gws_after))
    if used != 0:
        failures.append("queue not back to 0 (leaked slots): %s\n%s" % (used, status_out))
    if gw and fd1 > fd0 + 2:
        failures.append("gateway descriptors %d -> %d (connections leaked?)" % (fd0, fd1))
    if stats.clean_errors:
        failures.append("clean client: %d errors, first: %s" % (len(stats.clean_errors), stats.clean_errors[:5]))
    if stats.clean_ok == 0:
        failures.append("clean client got no answer at all")
    if stats.bad_answers:
        os.makedirs(args.out, exist_ok=True)
        for i, (why, data, got) in enumerate(stats.bad_answers[:50]):
            with open(os.path.join(args.out, "bad-%03d.bin" % i), "wb") as f:
                f.write(data)
            with open(os.path.join(args.out, "bad-%03d.answer" % i), "wb") as f:
                f.write(why.encode() + b"\n" + got)
        failures.append("%d fuzz answers were 500/502 or not HTTP (inputs in %s)" % (len(stats.bad_answers), args.out))
    print("inputs sent %d (%.1f MB) by %d fuzz clients in %.0f s; connect errors %d" %
          (stats.inputs, stats.bytes / 1e6, args.clients * 2, args.duration, stats.conn_errors))
    print("fuzz answers by status: %s" % dict(sorted(stats.statuses.items())))
    print("clean client: %d correct, %d errors" % (stats.clean_ok, len(stats.clean_errors)))
    print("gateway pid %s -> %s; fds %d -> %d; rss %d -> %d kB; queue in use after: %s" %
          (gw, gws_after, fd0, fd1, rss0, rss1, used))

    if daemon:
        try:
            daemon.stop(timeout=15)  # by pid; its whole process tree must go
        except AssertionError as e:
            failures.append("daemon stop: %s" % str(e).splitlines()[0])
    deaths = []
    if args.log and os.path.exists(args.log):
        with open(args.log, "rb") as f:
            f.seek(log_start)
            for line in f.read().decode("utf-8", "replace").splitlines():
                if "gateway" in line and ("killed by signal" in line or
                                          ("exited with" in line and "after draining" not in line) or
                                          "AddressSanitizer" in line or "runtime error" in line):
                    deaths.append(line)
                elif "AddressSanitizer" in line or "runtime error:" in line:
                    deaths.append(line)
        if deaths:
            failures.append("master log: %s" % deaths[:5])

    for f_ in failures:
        print("FAIL:", f_)
    print("PASS" if not failures else "FAILED")
    if daemon and not failures:
        daemon.cleanup()  # kept to look at when failed
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
