"""Bad input gets a clear HTTP error, never crashes a process and never
disturbs other clients (docs/contract.md): 413, 404, 405, 400, 431, the
strict HTTP/1.1 rules (400 or 505, then close, nothing behind answered), and
a slowloris client cut off at header_timeout."""
import calendar
import json
import re
import select
import socket
import threading
import time
import unittest

from harness import LoadLoop, Server, ServerTestCase, build_request


class BadInput(ServerTestCase):
    class_servers = []

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(pools={"echo": {"handler": "echo", "workers": 2, "max_request_size": "1KiB"}},
                         header_timeout="1s", max_header_size="4KiB")
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
            cls.gateways = cls.srv.gateways()
            # Another client doing echo requests all along, on fresh
            # connections and on one keep-alive connection.
            cls.load = LoadLoop(cls.srv, threads=1, fresh=True).start()
            cls.load_ka = LoadLoop(cls.srv, threads=1, fresh=False).start()
        except BaseException:
            cls.srv.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.load.stop()
        cls.load_ka.stop()
        cls.srv.stop()

    def tearDown(self):
        # Nothing crashed, and the other clients saw only correct 200s.
        self.assertEqual(self.srv.gateways(), self.gateways, "a gateway died (or was replaced)")
        for loop in (self.load, self.load_ka):
            ok, statuses, errors, bad = loop.snapshot()
            self.assertEqual(errors, [], "the echo client saw errors meanwhile")
            self.assertEqual(bad, [], "the echo client saw non-200 or wrong answers meanwhile: %r" % statuses)
            self.assertGreater(ok, 0, "the echo client got no answer at all")

    def assertJsonError(self, status, body, expected, what=""):
        self.assertEqual(status, expected, "%s: %r" % (what, body[:300]))
        try:
            doc = json.loads(body)
        except ValueError:
            self.fail("%s: error body is not JSON: %r" % (what, body[:300]))
        self.assertIsInstance(doc.get("error"), str, "%s: %r" % (what, doc))

    def raw_exchange(self, data, timeout=5.0):
        """Send data on a fresh connection, read one answer."""
        c = self.srv.raw(timeout=timeout)
        try:
            c.send(data)
            return c.response()
        finally:
            c.close()

    # ---- 413

    def test_body_over_max_request_size_is_413(self):
        st, _, body = self.srv.infer("echo", b"x" * 1025)
        self.assertJsonError(st, body, 413, "1025-byte body, max_request_size 1KiB")
        st, _, body = self.srv.infer("echo", b"y" * 1024)
        self.assertEqual((st, body), (200, b"y" * 1024), "a body of exactly max_request_size is allowed")

    def test_declared_oversize_body_is_413_without_sending_it(self):
        r = self.raw_exchange(b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 104857600\r\n\r\n", timeout=3)
        self.assertIsNotNone(r, "connection closed without an answer")
        self.assertJsonError(r.status, r.body, 413, "Content-Length 100 MiB")

    # ---- 404

    def test_unknown_pool_is_404(self):
        st, _, body = self.srv.infer("nope", b"hello")
        self.assertJsonError(st, body, 404, "POST /v2/models/nope/infer")
        for path in ("/v2/models/nope", "/v2/models/nope/ready"):
            st, _, body = self.srv.http("GET", path)
            self.assertJsonError(st, body, 404, "GET " + path)

    def test_unknown_path_is_404(self):
        for path in ("/", "/v2/nothing", "/v3/health/live", "/v2/health/dead", "/metricsx",
                     "/v2/models/echo/infer/more", "/v2/models"):
            st, _, body = self.srv.http("GET", path)
            self.assertJsonError(st, body, 404, "GET " + path)

    # ---- 405

    def test_get_on_infer_is_405(self):
        st, h, body = self.srv.http("GET", "/v2/models/echo/infer")
        self.assertJsonError(st, body, 405, "GET /v2/models/echo/infer")
        self.assertIn("POST", h.get("allow", "POST"), "Allow header should name POST")
        st, _, body = self.srv.http("PUT", "/v2/models/echo/infer", b"x")
        self.assertJsonError(st, body, 405, "PUT /v2/models/echo/infer")
        st, _, body = self.srv.http("DELETE", "/v2/health/live")
        self.assertJsonError(st, body, 405, "DELETE /v2/health/live")

    # ---- 400

    def test_malformed_request_line_and_garbage_are_400(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /v2/health/live HTTP/1.1 trailing\r\nHost: x\r\n\r\n",
            b"\x00\x01\x02\x03\xff\xfe\xfd" * 16 + b"\r\n\r\n",
            b"GET /v2/health/live HTTP/1.1\r\nNo colon in this header line\r\n\r\n",
            b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Content-Length: 5\r\n\r\nabcde",
        ]
        for data in cases:
            r = self.raw_exchange(data)
            self.assertIsNotNone(r, "no answer to %r" % data[:60])
            self.assertJsonError(r.status, r.body, 400, repr(data[:60]))
        # And the gateway still answers on a fresh connection.
        self.assertEqual(self.srv.http("GET", "/v2/health/live")[0], 200)

    def test_garbage_after_a_good_request_answers_both(self):
        r1, r2 = None, None
        c = self.srv.raw()
        try:
            c.send(build_request("POST", "/v2/models/echo/infer", b"good", {"Content-Type": "text/plain"})
                   + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\r\n\r\n")
            r1 = c.response()
            r2 = c.response()
        finally:
            c.close()
        self.assertEqual((r1.status, r1.body), (200, b"good"))
        self.assertIsNotNone(r2, "no answer to the garbage after a good request")
        self.assertJsonError(r2.status, r2.body, 400, "TLS hello bytes after a request")

    # ---- strict HTTP/1.1 (RFC 9112): 400 or 505, and nothing after it

    STRICT_CASES = [
        (400, b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello"),
        (400, b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhelloXX0\r\n\r\n"),
        (400, b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\rXhello\r\n0\r\n\r\n"),
        (400, b"GET /v2/health/live HTXP/1.1\r\nHost: x\r\n\r\n"),
        (400, b"GET /v2/health/live HTTP/1.x\r\nHost: x\r\n\r\n"),
        (505, b"GET /v2/health/live HTTP/2.0\r\nHost: x\r\n\r\n"),
        (505, b"GET /v2/health/live HTTP/1.2\r\nHost: x\r\n\r\n"),
        (400, b"POST /v2/models/echo/infer HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        (400, b"GET /v2/health/live HTTP/1.1\r\n\r\n"),
        (400, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        (400, b"GET /v2/health/live HTTP/1.1\r\nHost: x y\r\n\r\n"),
        (400, b"GET /v2/health/live HTTP/1.1\r\nHost: x:99999\r\n\r\n"),
        (400, b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        (400, b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        (400, b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello"),
        (400, b"GET http://x/v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]

    def test_strict_http_rejects_alone_then_closes(self):
        """Each bad request, with a good one behind it in the same write: one
        answer (the error, with Connection: close and a Date), then the
        connection closes without another byte."""
        good = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        for status, data in self.STRICT_CASES:
            c = self.srv.raw(timeout=5)
            try:
                c.send(data + good)
                r = c.response()
                self.assertIsNotNone(r, "no answer to %r" % data[:80])
                self.assertJsonError(r.status, r.body, status, repr(data[:80]))
                self.assertEqual(r.headers.get("connection"), "close", repr(data[:80]))
                self.assertRegex(r.headers.get("date", ""), self.IMF_FIXDATE, repr(data[:80]))
                try:
                    rest = c.f.read()
                except TimeoutError:
                    self.fail("connection not closed after the answer to %r" % data[:80])
                except OSError:
                    rest = b""  # reset after the answer: closed all the same
                self.assertEqual(rest, b"", "bytes after the answer to %r (the request behind it was answered)"
                                 % data[:80])
            finally:
                c.close()
        self.assertEqual(self.srv.http("GET", "/v2/health/live")[0], 200)

    IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                             r"\d{4} \d\d:\d\d:\d\d GMT$")

    def test_answers_carry_an_imf_fixdate_date(self):
        for method, path, body in (("GET", "/v2/health/live", b""), ("GET", "/nope", b""),
                                   ("POST", "/v2/models/echo/infer", b"hi")):
            st, h, _ = self.srv.http(method, path, body)
            self.assertRegex(h.get("date", ""), self.IMF_FIXDATE, "%s %s: %d" % (method, path, st))
            when = calendar.timegm(time.strptime(h["date"], "%a, %d %b %Y %H:%M:%S GMT"))
            self.assertLess(abs(when - time.time()), 3, "Date %r is not now" % h["date"])

    # ---- 431

    def test_headers_over_max_header_size_are_431(self):
        r = self.raw_exchange(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
        self.assertIsNotNone(r, "connection closed without an answer")
        self.assertJsonError(r.status, r.body, 431, "8 KiB header, max_header_size 4KiB")

    # ---- slowloris

    def slowloris(self, result, idx):
        """Send a partial header one byte at a time; record when the server
        closes the connection (None: it never did within 5 s)."""
        # t0 before the connect: the server's header_timeout runs from its
        # accept, which may come before this thread runs again after it.
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=5)
        try:
            s.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while time.monotonic() - t0 < 5:
                r, _, _ = select.select([s], [], [], 0.2)
                if r:
                    try:
                        data = s.recv(4096)
                    except (ConnectionResetError, OSError):
                        data = b""
                    if not data:
                        result[idx] = time.monotonic() - t0
                        return
                    continue  # an error answer (408) before the close: fine
                try:
                    s.send(b"z")
                except (BrokenPipeError, ConnectionResetError):
                    result[idx] = time.monotonic() - t0
                    return
        finally:
            s.close()

    def test_slowloris_cut_off_at_header_timeout(self):
        n = 4
        result = [None] * n
        threads = [threading.Thread(target=self.slowloris, args=(result, i)) for i in range(n)]
        ok_before = self.load.snapshot()[0] + self.load_ka.snapshot()[0]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        for r in result:
            self.assertIsNotNone(r, "a slow client was not cut off within 5 s (header_timeout 1 s): %r" % result)
            self.assertGreaterEqual(r, 0.9, "cut off before header_timeout: %r" % result)
            self.assertLess(r, 2.5, "cut off long after header_timeout (1 s): %r" % result)
        ok_after = self.load.snapshot()[0] + self.load_ka.snapshot()[0]
        self.assertGreater(ok_after - ok_before, 5, "echo clients starved while slow clients were connected")


if __name__ == "__main__":
    unittest.main()
