"""Streaming answers (docs/streaming.md): chunked /infer, the generate
extension (generate, generate_stream as server-sent events), slow readers,
cancellation, worker deaths before and after the first chunk, the idle
limit, a reload under streams, bad input. Handler: the built-in `stream`
(worker/handlers/stream.c), whose request body says what to emit."""
import json
import os
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import ServerTestCase, alive, have_python_handler, proc_stat, wait_for


def stream_pool(**keys):
    p = {"handler": "stream", "workers": 2, "max_response_size": "4KiB"}
    p.update(keys)
    return {"s": p}


class Stream:
    """One streamed request over a raw socket: the status and headers, then
    the body chunk by chunk as it comes (HTTP/1.1 chunked, or until EOF)."""

    def __init__(self, port, path, body, timeout=20.0, rcvbuf=None, ctype="text/plain"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        if isinstance(body, str):
            body = body.encode()
        req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
               % (path, ctype, len(body))).encode() + body
        self.sock.sendall(req)
        self.f = self.sock.makefile("rb")
        self.status = None
        self.headers = {}
        self.complete = False   # the last chunk (0) came

    def head(self):
        line = self.f.readline()
        if not line:
            raise EOFError("no status line")
        self.status = int(line.split()[1])
        while True:
            h = self.f.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode().partition(":")
            self.headers[k.strip().lower()] = v.strip()
        return self.status

    def chunks(self):
        """Yield the body's chunks; sets complete when the last chunk came.
        Stops at EOF (a body cut short)."""
        if self.status is None:
            self.head()
        if self.headers.get("transfer-encoding") != "chunked":
            n = int(self.headers.get("content-length", "-1"))
            data = self.f.read(n) if n >= 0 else self.f.read()
            self.complete = True
            yield data
            return
        while True:
            line = self.f.readline()
            if not line:
                return
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.f.readline()
                self.complete = True
                return
            data = self.f.read(size)
            crlf = self.f.read(2)
            if len(data) < size or crlf != b"\r\n":
                return
            yield data

    def body(self):
        return b"".join(self.chunks())

    def events(self):
        """Server-sent events: (event type, data) as they come."""
        buf = b""
        for c in self.chunks():
            buf += c
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                kind, data = "message", []
                for line in ev.decode().split("\n"):
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                yield kind, "\n".join(data)

    def close(self):
        try:
            self.f.close()
        finally:
            self.sock.close()


def expected(n, size=0):
    """What `stream` emits for n chunks of size bytes (stream.c)."""
    out = []
    for i in range(n):
        t = "%d:" % i
        if size <= 0:
            t += "\n"
        else:
            while len(t) < size:
                t += chr(ord("a") + len(t) % 26)
        out.append(t.encode())
    return out


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            # private memory: the pool's shared memory the gateway maps
            # (the slots' answer areas) is counted in VmRSS as it is read
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class StreamBase(ServerTestCase):

    def open(self, srv, path, body, **kw):
        s = Stream(srv.port, path, body, **kw)
        self.addCleanup(s.close)
        return s

    def new_worker(self, srv, old):
        """Wait for the pool's one worker to be a new one, ready; its pid."""
        wait_for(lambda: len(srv.workers("s")) == 1 and list(srv.workers("s")) != [old] and
                 srv.pool_status("s")["workers"]["ready"] == 1, 10, what="a new ready worker")
        time.sleep(0.1)  # the gateways' view of the workers is refreshed per 20 ms tick
        return sorted(srv.workers("s"))[0]

    def metric(self, srv, result, value):
        try:
            wait_for(lambda: srv.metric("ringmaster_streams_total", pool="s", result=result) == value, 3)
        except AssertionError:
            self.fail("ringmaster_streams_total{result=%s} is %r, expected %r"
                      % (result, srv.metric("ringmaster_streams_total", pool="s", result=result), value))
        # ringmasterctl status reads the same counters: JSON and text agree.
        self.assertEqual(srv.pool_status("s")["streams"][result], value, "ringmasterctl status --json: streams")
        if value:
            text = srv.ctl("status").stdout
            self.assertIn("%d %s" % (value, result), text.split("streams since start:", 1)[-1].split("\n")[0],
                          "ringmasterctl status: the streams line\n" + text)


class StreamTest(StreamBase):

    def test_infer_chunked_order_and_content(self):
        srv = self.server(pools=stream_pool())
        s = self.open(srv, "/v2/models/s/infer", "40 size 100")
        self.assertEqual(s.head(), 200)
        self.assertEqual(s.headers.get("transfer-encoding"), "chunked")
        self.assertEqual(s.headers.get("content-type"), "text/plain")
        self.assertEqual(s.body(), b"".join(expected(40, 100)))
        self.assertTrue(s.complete, "the body ended without its last chunk")
        # Big chunks (larger than half the queue) arrive whole and in order.
        s = self.open(srv, "/v2/models/s/infer", "7 size 10000")
        self.assertEqual(s.body(), b"".join(expected(7, 10000)))
        self.assertTrue(s.complete)
        self.metric(srv, "started", 2)
        self.metric(srv, "completed", 2)

    def test_http10_client_gets_the_stream_until_close(self):
        srv = self.server(pools=stream_pool())
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /v2/models/s/infer HTTP/1.0\r\nContent-Length: 8\r\n\r\n5 size 9")
        data = b""
        while True:
            d = sock.recv(65536)
            if not d:
                break
            data += d
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertIn(b"connection: close", head.lower())
        self.assertEqual(body, b"".join(expected(5, 9)))

    def test_out_of_tree_c_handler_streams(self):
        from harness import EXAMPLE_UPPER_SO
        so = os.path.join(os.path.dirname(EXAMPLE_UPPER_SO), "example_stream.so")
        if not os.path.exists(so):
            self.skipTest("%s is not built" % so)
        srv = self.server(pools={"s": {"handler": so, "workers": 1, "max_response_size": "4KiB"}})
        s = self.open(srv, "/v2/models/s/infer", "chunks come in order")
        self.assertEqual(s.head(), 200)
        self.assertEqual(list(s.chunks()), [b"CHUNKS", b"COME", b"IN", b"ORDER"])
        self.assertTrue(s.complete)
        s = self.open(srv, "/v2/models/s/generate_stream", json.dumps({"a": 1}) + " ")
        evs = list(s.events())
        self.assertEqual(evs, [("message", '{"A":'), ("message", "1}")])
        s = self.open(srv, "/v2/models/s/infer", "fail one two three four")
        self.assertEqual(list(s.chunks()), [b"FAIL", b"ONE", b"TWO"])
        self.assertFalse(s.complete)

    def test_first_chunk_before_the_last_is_made(self):
        srv = self.server(pools=stream_pool())
        s = self.open(srv, "/v2/models/s/infer", "3 every 1000")
        t0 = time.monotonic()
        it = s.chunks()
        first = next(it)
        t_first = time.monotonic() - t0
        rest = b"".join(it)
        t_all = time.monotonic() - t0
        self.assertEqual(first + rest, b"".join(expected(3)))
        self.assertLess(t_first, 0.9, "the first chunk waited for the others")
        self.assertGreater(t_all, 1.8)

    def test_generate_stream_events(self):
        srv = self.server(pools=stream_pool())
        s = self.open(srv, "/v2/models/s/generate_stream", json.dumps({"text_input": "5"}),
                      ctype="application/json")
        self.assertEqual(s.head(), 200)
        self.assertEqual(s.headers.get("content-type"), "text/event-stream")
        evs = list(s.events())
        self.assertTrue(s.complete)
        self.assertEqual([k for k, _ in evs], ["message"] * 5)
        self.assertEqual([json.loads(d)["text_output"] for _, d in evs], [e.decode() for e in expected(5)])

    def test_generate_one_json_answer(self):
        srv = self.server(pools=stream_pool())
        st, h, body = srv.http("POST", "/v2/models/s/generate", json.dumps({"text_input": "4"}).encode(),
                               headers={"Content-Type": "application/json"})
        self.assertEqual(st, 200, body)
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(json.loads(body), {"text_output": b"".join(expected(4)).decode()})

    def test_generate_bad_input_is_400_json(self):
        srv = self.server(pools=stream_pool())
        for path in ("/v2/models/s/generate", "/v2/models/s/generate_stream"):
            for body in (b"not json", b"[1,2]", b"", b'{"text_input": '):
                st, h, ans = srv.http("POST", path, body, headers={"Content-Type": "application/json"})
                self.assertEqual(st, 400, (path, body, ans))
                self.assertEqual(h.get("content-type"), "application/json")
                self.assertIn("error", json.loads(ans))
        # A failure before the first chunk is a plain JSON error with its status.
        st, h, ans = srv.http("POST", "/v2/models/s/generate_stream",
                              json.dumps({"text_input": "3 fail-at 0"}).encode())
        self.assertEqual(st, 500, ans)
        self.assertEqual(json.loads(ans), {"error": "fail-at reached"})
        self.metric(srv, "started", 0)

    def test_64_concurrent_streams_intact(self):
        srv = self.server(pools=stream_pool(workers=8, queue_depth=64))
        results = [None] * 64

        def one(i):
            try:
                s = Stream(srv.port, "/v2/models/s/infer", "%d size %d every 5" % (20 + i % 7, 50 + i))
                try:
                    results[i] = (s.head(), s.body(), s.complete)
                finally:
                    s.close()
            except Exception as e:  # noqa: BLE001 (reported below)
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for i, r in enumerate(results):
            self.assertIsInstance(r, tuple, "stream %d: %r" % (i, r))
            self.assertEqual(r[0], 200)
            self.assertEqual(r[1], b"".join(expected(20 + i % 7, 50 + i)), "stream %d garbled" % i)
            self.assertTrue(r[2], "stream %d not terminated" % i)
        self.metric(srv, "completed", 64)

    def test_slow_reader_bounded_and_does_not_stall_others(self):
        srv = self.server(pools=stream_pool(workers=3))
        gw = srv.gateways()[0]
        base = rss_kib(gw)
        # 4000 chunks of 1500 bytes (6 MB) to a client that reads nothing.
        # (1500: a record that does not fit before the end of the 4 KiB
        # queue needs room for the filler too, while the queue is less than
        # half full: the worker must still sleep, not spin.)
        slow = self.open(srv, "/v2/models/s/infer", "4000 size 1500", rcvbuf=4096)
        self.assertEqual(slow.head(), 200)
        time.sleep(1.0)
        # Others are served meanwhile.
        for _ in range(5):
            s = self.open(srv, "/v2/models/s/infer", "10")
            self.assertEqual(s.body(), b"".join(expected(10)))
        grown = rss_kib(gw) - base
        self.assertLess(grown, 4096, "the gateway grew %d KiB for a client that does not read" % grown)
        # The worker waits, it does not spin.
        busy = [p for p in list(srv.workers("s")) if proc_stat(p)]
        t0 = {p: sum(int(x) for x in proc_stat(p)[13:15]) for p in busy}
        time.sleep(1.0)
        t1 = {p: sum(int(x) for x in proc_stat(p)[13:15]) for p in busy if proc_stat(p)}
        spent = max(t1[p] - t0[p] for p in t1)
        self.assertLess(spent, 30, "a worker used %d ticks of CPU in 1 s while its client did not read" % spent)
        # Then it reads everything: intact.
        self.assertEqual(slow.body(), b"".join(expected(4000, 1500)))
        self.assertTrue(slow.complete)

    def test_cancellation_frees_the_worker(self):
        srv = self.server(pools=stream_pool(workers=1))
        pid = sorted(srv.workers("s"))[0]
        tmp = tempfile.mkdtemp(prefix="rm-stream-")
        self.addCleanup(lambda: [os.unlink(os.path.join(tmp, f)) for f in os.listdir(tmp)] and os.rmdir(tmp))
        count = os.path.join(tmp, "count")
        # One chunk per 10 ms from the start: by the disconnect the handler
        # made at most (t_close - t_open) * 100 + 1 of them, however many
        # the client had read (the rest sat in socket buffers).
        t_open = time.monotonic()
        s = Stream(srv.port, "/v2/models/s/infer", "100000 every 10 count %s" % count)
        it = s.chunks()
        got = [next(it) for _ in range(5)]
        self.assertEqual(got, expected(5))
        s.close()  # the client goes away mid-stream
        t_close = time.monotonic()
        wait_for(lambda: os.path.exists(count) and os.path.getsize(count) > 0, 5, what="the handler to stop")
        with open(count) as f:
            line = f.read()
        self.assertIn("cancelled=1", line)
        emitted = int(line.split()[0].split("=")[1])
        self.assertLess(emitted, 100000)
        # It stops within about a second (100 chunks) of the disconnect.
        self.assertLess(emitted, (t_close - t_open) * 100 + 5 + 100, "ran on well after the disconnect: %s" % line)
        # The same worker takes the next request at once.
        st, _, body = srv.infer("s", b"2", ctype="text/plain", timeout=5)
        self.assertEqual((st, body), (200, b"0:\n1:\n"))
        self.assertEqual(list(srv.workers("s")), [pid])
        self.metric(srv, "cancelled", 1)

    def test_sigkill_before_first_chunk_reruns(self):
        srv = self.server(pools=stream_pool(workers=1))
        pid = sorted(srv.workers("s"))[0]
        # The first chunk comes 4 s after the handler starts: the kill, once
        # the worker is busy with the request, lands well before it.
        s = self.open(srv, "/v2/models/s/infer", "5 first 4000")
        wait_for(lambda: srv.pool_status("s")["workers"]["busy"] == 1, 3, what="the worker busy with the stream")
        os.kill(pid, signal.SIGKILL)
        self.assertEqual(s.head(), 200)
        self.assertEqual(s.body(), b"".join(expected(5)))
        self.assertTrue(s.complete)
        self.assertNotEqual(list(srv.workers("s")), [pid])
        # The same from inside: crash-once-at 0.
        s = self.open(srv, "/v2/models/s/infer", "4 crash-once-at 0")
        self.assertEqual(s.body(), b"".join(expected(4)))

    def test_sigkill_mid_stream_is_an_error_event(self):
        srv = self.server(pools=stream_pool(workers=1))
        pid = sorted(srv.workers("s"))[0]
        s = self.open(srv, "/v2/models/s/generate_stream", json.dumps({"text_input": "1000 every 50"}),
                      ctype="application/json")
        evs = s.events()
        first = [next(evs) for _ in range(3)]
        self.assertEqual([k for k, _ in first], ["message"] * 3)
        os.kill(pid, signal.SIGKILL)
        rest = list(evs)
        self.assertTrue(rest, "the stream ended without a word")
        kind, data = rest[-1]
        self.assertEqual(kind, "error", rest[-3:])
        self.assertIn("died", json.loads(data)["error"])
        # /infer: the chunked body is cut short (no last chunk).
        pid = self.new_worker(srv, pid)
        s2 = self.open(srv, "/v2/models/s/infer", "1000 every 50")
        self.assertEqual(s2.head(), 200)
        self.assertEqual(s2.headers.get("transfer-encoding"), "chunked")
        it = s2.chunks()
        next(it)
        os.kill(pid, signal.SIGKILL)
        list(it)
        self.assertFalse(s2.complete, "a cut stream looked complete")
        # The next stream is served.
        self.new_worker(srv, pid)
        s3 = self.open(srv, "/v2/models/s/infer", "3")
        self.assertEqual(s3.body(), b"".join(expected(3)))
        self.metric(srv, "failed", 2)

    def test_gateway_killed_mid_stream_cancels_and_frees_the_worker(self):
        srv = self.server(pools=stream_pool(workers=1))
        pid = sorted(srv.workers("s"))[0]
        gw = srv.gateways()[0]
        tmp = tempfile.mkdtemp(prefix="rm-stream-")
        self.addCleanup(lambda: [os.unlink(os.path.join(tmp, f)) for f in os.listdir(tmp)] and os.rmdir(tmp))
        count = os.path.join(tmp, "count")
        s = self.open(srv, "/v2/models/s/infer", "100000 every 10 count %s" % count)
        it = s.chunks()
        self.assertEqual([next(it) for _ in range(3)], expected(3))
        os.kill(gw, signal.SIGKILL)
        list(it)
        self.assertFalse(s.complete, "a stream cut by a dead gateway looked complete")
        # Recovery of the gateway aborts the slot: the handler sees it gone.
        wait_for(lambda: os.path.exists(count) and os.path.getsize(count) > 0, 10, what="the handler to stop")
        with open(count) as f:
            self.assertIn("cancelled=1", f.read())
        wait_for(lambda: srv.gateways().get(0) not in (None, gw), 10, what="a new gateway")
        wait_for(lambda: srv.http_status("/v2/health/ready") == 200, 10, what="ready again")
        s = self.open(srv, "/v2/models/s/infer", "2")
        self.assertEqual(s.body(), b"".join(expected(2)))
        self.assertEqual(list(srv.workers("s")), [pid], "the worker was replaced instead of freed")

    def test_idle_stream_killed_with_error_event(self):
        srv = self.server(pools=stream_pool(workers=1, stream_idle_timeout="600ms"))
        pid = sorted(srv.workers("s"))[0]
        s = self.open(srv, "/v2/models/s/generate_stream", json.dumps({"text_input": "10 hang-at 2"}),
                      ctype="application/json")
        t0 = time.monotonic()
        evs = list(s.events())
        self.assertEqual([k for k, _ in evs], ["message", "message", "error"], evs)
        self.assertIn("stream_idle_timeout", evs[-1][1])
        self.assertLess(time.monotonic() - t0, 5)
        self.new_worker(srv, pid)
        self.assertFalse(alive(pid))
        self.assertEqual(srv.metric("ringmaster_restarts_total", pool="s", reason="timeout"), 1)
        s = self.open(srv, "/v2/models/s/infer", "2")
        self.assertEqual(s.body(), b"".join(expected(2)))

    def test_reload_during_32_long_streams(self):
        srv = self.server(pools=stream_pool(workers=32, queue_depth=64))
        results = [None] * 32
        started = threading.Barrier(33, timeout=30)

        def one(i):
            try:
                s = Stream(srv.port, "/v2/models/s/infer", "20 every 100")
                try:
                    it = s.chunks()
                    first = next(it)
                    started.wait()
                    results[i] = (first + b"".join(it), s.complete)
                finally:
                    s.close()
            except Exception as e:  # noqa: BLE001
                results[i] = e
                try:
                    started.abort()
                except threading.BrokenBarrierError:
                    pass
        threads = [threading.Thread(target=one, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        started.wait()
        r = srv.ctl("reload", timeout=60)
        self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
        for t in threads:
            t.join(60)
        for i, res in enumerate(results):
            self.assertIsInstance(res, tuple, "stream %d: %r" % (i, res))
            self.assertEqual(res, (b"".join(expected(20)), True), "stream %d" % i)


SRC = os.path.abspath(os.environ.get("srcdir", "."))
APPS = os.path.join(SRC, "tests", "python_apps")
MARKOV = os.path.join(SRC, "examples", "markov")


@unittest.skipUnless(have_python_handler(), "ringmaster was built without the python handler")
class PythonStreamTest(StreamBase):

    def py_pool(self, app="streamapp:infer", path=APPS, **keys):
        d = {"handler": "python", "python_path": path, "app": app, "workers": 1, "max_response_size": "4KiB"}
        d.update(keys)
        return {"s": d}

    def test_generator_chunks_in_order(self):
        srv = self.server(pools=self.py_pool())
        s = self.open(srv, "/v2/models/s/infer", "7")
        self.assertEqual(s.head(), 200)
        self.assertEqual(s.headers.get("content-type"), "application/octet-stream")
        chunks = list(s.chunks())
        self.assertTrue(s.complete)
        self.assertEqual(chunks, [b"b0;", b"s1;", b'{"d": 2}', b"b3;", b"s4;", b'{"d": 5}', b"b6;"])
        # A generator that fails after chunks went out: the body is cut.
        s = self.open(srv, "/v2/models/s/infer", "fail 2")
        self.assertEqual(s.head(), 200)
        self.assertEqual(list(s.chunks()), [b"ok0;", b"ok1;"])
        self.assertFalse(s.complete)
        # Before any chunk: a plain JSON 500.
        st, _, body = srv.http("POST", "/v2/models/s/infer", b"fail 0")
        self.assertEqual(st, 500, body)
        self.assertIn("broken model", json.loads(body)["error"])
        # The worker serves on.
        s = self.open(srv, "/v2/models/s/infer", "2")
        self.assertEqual(list(s.chunks()), [b"b0;", b"s1;"])

    def test_generator_sees_cancellation(self):
        srv = self.server(pools=self.py_pool())
        pid = sorted(srv.workers("s"))[0]
        tmp = tempfile.mkdtemp(prefix="rm-pystream-")
        count = os.path.join(tmp, "count")
        self.addCleanup(lambda: [os.unlink(os.path.join(tmp, f)) for f in os.listdir(tmp)] and os.rmdir(tmp))
        s = Stream(srv.port, "/v2/models/s/infer", "count %s 100000" % count)
        it = s.chunks()
        self.assertEqual([next(it) for _ in range(3)], [b"c0\n", b"c1\n", b"c2\n"])
        s.close()
        wait_for(lambda: os.path.exists(count) and os.path.getsize(count) > 0, 5, what="the generator to stop")
        with open(count) as f:
            line = f.read()
        self.assertIn("cancelled=1", line)
        self.assertLess(int(line.split()[0].split("=")[1]), 1000, line)
        s = self.open(srv, "/v2/models/s/infer", "1")
        self.assertEqual(list(s.chunks()), [b"b0;"])
        self.assertEqual(list(srv.workers("s")), [pid])
        self.metric(srv, "cancelled", 1)

    def test_markov_example_streams_words(self):
        srv = self.server(pools=self.py_pool(app="markov:Markov", path=MARKOV))
        req = json.dumps({"text_input": "the freedom", "parameters": {"max_tokens": 25, "seed": 7}})
        s = self.open(srv, "/v2/models/s/generate_stream", req, ctype="application/json")
        self.assertEqual(s.head(), 200)
        evs = list(s.events())
        self.assertTrue(s.complete)
        self.assertEqual(len(evs), 25, evs)
        words = [json.loads(d)["text_output"] for k, d in evs]
        self.assertTrue(all(k == "message" for k, _ in evs))
        self.assertTrue(all(w.strip() for w in words), words)
        # /generate: the same seed, the same words, merged into one answer.
        st, h, body = srv.http("POST", "/v2/models/s/generate", req.encode())
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body), {"text_output": "".join(words)})


try:
    from test_ocr_http import LINES, have_ocr, render, words
    HAVE_OCR = have_ocr()
except Exception:  # noqa: BLE001 (no OCR test helpers: skip)
    HAVE_OCR = False


@unittest.skipUnless(HAVE_OCR, "ringmaster built without the ocr handler, or gen_text_image missing")
class OcrStreamTest(StreamBase):

    def test_multipage_tiff_streams_page_by_page(self):
        import base64
        srv = self.server(pools={"s": {"handler": "ocr", "workers": 1, "startup_timeout": "30s"}})
        tmp = tempfile.mkdtemp(prefix="rm-ocrstream-")
        path = os.path.join(tmp, "doc.tif")
        self.addCleanup(lambda: [os.unlink(os.path.join(tmp, f)) for f in os.listdir(tmp)] and os.rmdir(tmp))
        pages = 12
        args = []
        for i in range(pages):
            args += (["--page"] if i else []) + [LINES[i % len(LINES)], "page %d" % (i + 1)]
        img = base64.b64encode(render(path, *args)).decode()
        req = json.dumps({"image": img})
        s = self.open(srv, "/v2/models/s/generate_stream", req, ctype="application/json")
        t0 = time.monotonic()
        got, when = [], []
        for kind, data in s.events():
            self.assertEqual(kind, "message", data)
            got.append(json.loads(data))
            when.append(time.monotonic() - t0)
        self.assertTrue(s.complete)
        self.assertEqual([g["page"] for g in got], list(range(1, pages + 1)))
        for i, g in enumerate(got):
            self.assertEqual(words(g["text_output"]), words(LINES[i % len(LINES)] + " page %d" % (i + 1)), g)
        # The first page came while the others were still being read.
        self.assertLess(when[0], when[-1] / 3, "first page at %.3f s, last at %.3f s" % (when[0], when[-1]))
        # /generate: one JSON, the pages' text in order.
        st, _, body = srv.http("POST", "/v2/models/s/generate", req.encode())
        self.assertEqual(st, 200, body)
        doc = json.loads(body)
        self.assertEqual(words(doc["text_output"]),
                         sum((words(LINES[i % len(LINES)] + " page %d" % (i + 1)) for i in range(pages)), []))
        # Not an image: a plain 400 before any chunk.
        st, _, body = srv.http("POST", "/v2/models/s/generate_stream", json.dumps({"image": "eHl6"}).encode())
        self.assertEqual(st, 400, body)


if __name__ == "__main__":
    unittest.main()
