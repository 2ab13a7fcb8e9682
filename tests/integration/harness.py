"""
harness.py - start the real `ringmaster` on 127.0.0.1 and drive it.

Everything here is stdlib only (Python 3.11, Debian 12). The launcher, the
waits and the /proc helpers are shared with the other Python tests:
tests/pylib/rmtest.py. This file adds what the integration tests need on top:
HTTP and raw-socket clients, ringmasterctl, the master's children by role,
load loops and a TestCase that prints the daemon's log of a failed test.

    srv = Server(pools={"echo": {"handler": "echo"}}, header_timeout="1s")
    srv.start()                      # free port, INI in a temp dir, waits for ready
    status, headers, body = srv.http("POST", "/v2/models/echo/infer", b"hi")
    srv.stop()                       # SIGTERM, then SIGKILL; asserts no child survives

Binaries: $RINGMASTER and $RINGMASTERCTL (default ./ringmaster and
./ringmasterctl, i.e. the build directory when run from there).
Out-of-tree handler: $EXAMPLE_UPPER_SO (default tests/handlers/example_upper.so
next to the ringmaster binary).

Every wait is a poll with a deadline; nothing sleeps longer than needed.
Only processes this harness started (the master and the master's children)
are ever signalled, by pid.
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))

from rmtest import (RINGMASTER, RINGMASTERCTL, Daemon, ReportOnFailure, alive, children,  # noqa: E402,F401 (re-exported)
                    free_port, proc_stat, proc_title, wait_for)

EXAMPLE_UPPER_SO = os.path.abspath(os.environ.get(
    "EXAMPLE_UPPER_SO",
    os.path.join(os.path.dirname(RINGMASTER), "tests", "handlers", "example_upper.so")))
PROMTOOL = "/usr/bin/promtool"

READY_TIMEOUT = 15.0
# After /v2/health/ready turns 200, give the gateways one tick (20 ms) to
# refresh their cached view of the pools before tests send inference
# requests. Without it, an inference request right after the 200 can be
# answered 503 "no ready worker": a server bug, caught on its own by
# test_health.ReadyMeansServing, kept out of every other test by this wait.
READY_SETTLE = 0.05
# A pool may take its startup_timeout to load; waiting for ready gives every
# start that long (plus this margin for the gateways and the first tick),
# never less than READY_TIMEOUT.
STARTUP_MARGIN = 5.0


# ------------------------------------------------------------------ utilities

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric_sum(text, name, **labels):
    """Sum of the samples of a Prometheus text exposition called name whose
    labels include labels; None if there is none."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2) or ""))
        if all(have.get(k) == str(v) for k, v in labels.items()):
            found = True
            total += float(m.group(3))
    return total if found else None


_DURATION = re.compile(r'^\s*(\d+)\s*([a-zA-Z]*)\s*$')
_DURATION_UNITS = {"": 0.001, "ms": 0.001, "s": 1.0, "m": 60.0}


def duration_s(value):
    """A config duration ("30s", "2m", "500ms", plain ms) in seconds; None
    if it does not parse (the daemon will refuse it anyway)."""
    m = _DURATION.match(str(value))
    if not m or m.group(2).lower() not in _DURATION_UNITS:
        return None
    return int(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]


def ready_timeout(pools):
    """How long a start may take before it is a failure: READY_TIMEOUT, or
    the largest startup_timeout among pools plus STARTUP_MARGIN if that is
    longer."""
    longest = max((duration_s(keys["startup_timeout"]) or 0.0
                   for keys in (pools or {}).values() if "startup_timeout" in keys), default=0.0)
    return max(READY_TIMEOUT, longest + STARTUP_MARGIN if longest else 0.0)


# ------------------------------------------------------------------ raw HTTP

class RawResponse:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value (last one wins)
        self.body = body
        self.version = version

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %s %r %r>" % (self.status, self.reason, self.headers, self.body[:200])


def read_response(f, head=False):
    """Read one HTTP/1.x response from a buffered binary file (sock.makefile('rb')).
    Returns RawResponse, or None on a clean EOF before the status line."""
    line = f.readline(65537)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("bad status line %r" % line)
    version, status = parts[0], int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = {}
    while True:
        h = f.readline(65537)
        if not h:
            raise ValueError("EOF in response headers")
        h = h.decode("latin-1").rstrip("\r\n")
        if not h:
            break
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if head or status in (204, 304) or 100 <= status < 200:
        pass
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(f.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(f.read(size))
            f.readline()
        body = b"".join(chunks)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        body = f.read(n)
        if len(body) != n:
            raise ValueError("EOF in response body (%d of %d bytes)" % (len(body), n))
    else:
        body = f.read()
    return RawResponse(status, reason, headers, body, version)


def build_request(method, path, body=b"", headers=None, host="127.0.0.1"):
    h = {"Host": host}
    if body or method in ("POST", "PUT"):
        h["Content-Length"] = str(len(body))
    if headers:
        h.update(headers)
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return head.encode("latin-1") + (body or b"")


class RawConn:
    """A plain socket to the server, for pipelining, garbage and slow clients."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def response(self, head=False):
        return read_response(self.f, head=head)

    def closed_by_peer(self, timeout):
        """True if the server closes the connection within timeout seconds
        (EOF or reset); bytes it sends first (an error answer) are ignored."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(65536):
                    return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        return False

    def close(self):
        try:
            self.f.close()
        finally:
            self.sock.close()


# ------------------------------------------------------------------ the server

class Server(Daemon):
    """One ringmaster master on a free port, with its own temp dir
    (rmtest.Daemon), and a thread that records every child it ever had."""

    def __init__(self, pools=None, **global_keys):
        super().__init__(pools=pools, tmp_prefix="rm-it-", **global_keys)
        self.metrics_port = None  # metrics_listen's TCP port, when a test sets one
        self._stop_poll = threading.Event()
        self._poller = None

    # ---- life cycle

    def start(self, wait_ready=True, **kw):
        super().start(wait=False, **kw)
        self._poller = threading.Thread(target=self._poll_children, daemon=True)
        self._poller.start()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_all_workers(self, deadline):
        """Until every pool has workers + spares ready or busy (bounded)."""
        want = {name: int(keys.get("workers", 2)) + int(keys.get("spares", 0))
                for name, keys in self.pools.items()}
        while time.monotonic() < deadline:
            try:
                pools = {p["name"]: p for p in self.status_json()["pools"]}
            except AssertionError:
                pools = {}
            if all(n in pools and (pools[n]["failed"] or
                                   pools[n]["workers"]["ready"] + pools[n]["workers"]["busy"] >= w)
                   for n, w in want.items()):
                return
            time.sleep(0.02)

    def wait_ready(self, timeout=None, settle=READY_SETTLE):
        """Until ready and every worker is up; timeout defaults to
        ready_timeout(self.pools)."""
        if timeout is None:
            timeout = ready_timeout(self.pools)
        deadline = time.monotonic() + timeout
        super().wait_ready(timeout=timeout)
        # Ready means one worker per pool; tests expect them all.
        self.wait_all_workers(deadline)
        self.record_children()
        time.sleep(settle)

    def _poll_children(self):
        while not self._stop_poll.is_set():
            try:
                self.record_children()
            except Exception:
                pass
            self._stop_poll.wait(0.05)

    def record_children(self):
        out = []
        for pid, title in children(self.pid):
            st = proc_stat(pid)
            if st is None:
                continue
            with self._seen_lock:
                self.seen.setdefault(pid, (st[2], title))
                if title.startswith("ringmaster: "):
                    self.seen[pid] = (st[2], title)
            out.append((pid, title))
        return out

    def children(self):
        """[(pid, title)] of the master's live children, right now."""
        return self.record_children()

    def workers(self, pool=None):
        """{pid: title} of live workers (of pool, if given)."""
        pre = "ringmaster: worker " + (pool + " " if pool else "")
        return {p: t for p, t in self.children() if t.startswith(pre)}

    def gateways(self):
        """{index: pid} of live gateways."""
        out = {}
        for p, t in self.children():
            if t.startswith("ringmaster: gateway "):
                out[int(t.split()[-1])] = p
        return out

    def stop(self, check=True):
        """SIGTERM the master (then SIGKILL), make sure no process of its tree
        survives, remove the temp dir. With check, raise AssertionError about
        what went wrong."""
        if self.proc is None:  # never started (or the exec failed)
            self.cleanup()
            return
        if self.running():
            try:
                self.record_children()
            except Exception:
                pass
        self._stop_poll.set()
        if self._poller:
            self._poller.join()
        try:
            super().stop(check=check)
        finally:
            self.cleanup()

    def wait_children_gone(self, timeout):
        """Poll until no process of its tree is alive; return {pid: (start, title)} still alive."""
        return self.wait_tree_gone(timeout)

    # ---- HTTP

    def http(self, method, path, body=None, headers=None, timeout=10.0, port=None):
        """One request on a fresh connection (to port, default the listen
        port): (status, {lower-name: value}, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def infer(self, pool, body, ctype="application/octet-stream", timeout=10.0):
        if isinstance(body, str):
            body = body.encode()
        return self.http("POST", "/v2/models/%s/infer" % pool, body, {"Content-Type": ctype}, timeout)

    def raw(self, timeout=10.0):
        return RawConn(self.port, timeout)

    def metric(self, name, **labels):
        """Sum of the /metrics samples called name whose labels include
        labels; None if there is no such sample."""
        st, _, body = self.http("GET", "/metrics", port=self.metrics_port)
        if st != 200:
            raise AssertionError("GET /metrics: %d %r" % (st, body[:200]))
        return metric_sum(body.decode("utf-8"), name, **labels)

    # ---- ringmasterctl

    def ctl(self, *args, timeout=30):
        """Run ringmasterctl -c INI ARGS: CompletedProcess (text)."""
        return subprocess.run([RINGMASTERCTL, "-c", self.ini] + list(args), capture_output=True,
                              text=True, timeout=timeout)

    def status_json(self, interval=0):
        """`ringmasterctl status --json`: one look by default (--interval 0,
        no rates); with interval, two looks that far apart and the rates."""
        r = self.ctl("status", "--json", "--interval", str(interval), timeout=10 + interval)
        if r.returncode != 0:
            raise AssertionError("ringmasterctl status --json: exit %d: %s" % (r.returncode, r.stderr))
        return json.loads(r.stdout)

    def pool_status(self, name):
        for p in self.status_json()["pools"]:
            if p["name"] == name:
                return p
        raise AssertionError("pool %s not in ringmasterctl status" % name)


# ------------------------------------------------------------------ test base

def have_python_handler():
    """Was ringmaster built with the python handler (libpython3 present)?"""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as f:
        f.write("[pool p]\nhandler = python\napp = x:y\n")
        f.flush()
        r = subprocess.run([RINGMASTER, "-t", "-c", f.name], capture_output=True, text=True)
    return "unknown built-in" not in r.stderr


class LoadLoop:
    """Threads looping on echo requests until stopped; counts statuses and errors."""

    def __init__(self, server, pool="echo", threads=1, fresh=True, body=b"ping"):
        self.server, self.pool, self.fresh, self.body = server, pool, fresh, body
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.statuses = {}
        self.errors = []       # (t_start, t_end, repr(exception), detail)
        self.bad = []          # (status, body) that was not a correct echo
        self.ok = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self, i):
        body = self.body + b" %d" % i
        conn = None
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            t0 = time.monotonic()
            try:
                if conn is None or self.fresh:
                    if conn:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
                b = body + b" %d" % n
                conn.request("POST", "/v2/models/%s/infer" % self.pool, body=b,
                             headers={"Content-Type": "text/plain"})
                r = conn.getresponse()
                data = r.read()
                with self.lock:
                    self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
                    if r.status == 200 and data == b:
                        self.ok += 1
                    else:
                        self.bad.append((r.status, data[:200]))
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                with self.lock:
                    self.errors.append((t0, time.monotonic(), repr(e)))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=15)

    def snapshot(self):
        with self.lock:
            return self.ok, dict(self.statuses), list(self.errors), list(self.bad)


class ServerTestCase(ReportOnFailure):
    """Prints the daemon's stderr of every server of a test that failed."""

    def setUp(self):
        self.servers = []

    def server(self, pools=None, start=True, **global_keys):
        srv = Server(pools=pools, **global_keys)
        self.servers.append(srv)
        self.addCleanup(srv.stop)
        if start:
            srv.start()
        return srv

    def report_failure(self):
        srvs = list(getattr(self, "servers", [])) + list(getattr(type(self), "class_servers", []))
        for srv in srvs:
            sys.stderr.write("\n----- ringmaster stderr (%s, port %d, pid %s) -----\n%s"
                             "----- end of stderr -----\n" % (self.id(), srv.port, srv.pid, srv.log()))
