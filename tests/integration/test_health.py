"""Health, metadata and metrics endpoints (DESIGN.md 6, Open Inference
Protocol v2 paths)."""
import json
import os
import re
import subprocess
import time
import unittest

from harness import PROMTOOL, RINGMASTER, Server, ServerTestCase, build_request, wait_for


class Endpoints(ServerTestCase):
    class_servers = []

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(pools={"echo": {"handler": "echo", "workers": 2},
                                "chaos": {"handler": "chaos", "workers": 1}})
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            cls.srv.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def get_json(self, path, status=200):
        st, h, body = self.srv.http("GET", path)
        self.assertEqual(st, status, "GET %s: %r" % (path, body[:300]))
        self.assertTrue(h.get("content-type", "").startswith("application/json"),
                        "GET %s: Content-Type %r" % (path, h.get("content-type")))
        return json.loads(body)

    def test_live_is_200_true(self):
        self.assertIs(self.get_json("/v2/health/live").get("live"), True)

    def test_ready_is_200_true(self):
        self.assertIs(self.get_json("/v2/health/ready").get("ready"), True)

    def test_server_metadata(self):
        doc = self.get_json("/v2")
        self.assertIsInstance(doc.get("name"), str, doc)
        self.assertIsInstance(doc.get("version"), str, doc)
        self.assertIsInstance(doc.get("extensions"), list, doc)
        v = subprocess.run([RINGMASTER, "-V"], capture_output=True, text=True).stdout.split()
        if len(v) == 2:
            self.assertEqual(doc["version"], v[1], "GET /v2 version vs ringmaster -V")

    def test_model_metadata(self):
        for name in ("echo", "chaos"):
            doc = self.get_json("/v2/models/%s" % name)
            self.assertEqual(doc.get("name"), name, doc)

    def test_model_ready(self):
        for name in ("echo", "chaos"):
            st, _, body = self.srv.http("GET", "/v2/models/%s/ready" % name)
            self.assertEqual(st, 200, body)

    def test_head_of_live_has_no_body(self):
        c = self.srv.raw()
        try:
            c.send(b"HEAD /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\nGET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.response(head=True)
            self.assertEqual(r.status, 200)
            r = c.response()  # parses only if HEAD sent no body
            self.assertEqual((r.status, r.json().get("live")), (200, True))
        finally:
            c.close()

    def metric_sum(self, text, name):
        total, found = 0.0, False
        for line in text.splitlines():
            m = re.match(r"^%s(\{[^}]*\})?\s+(\S+)" % re.escape(name), line)
            if m:
                found = True
                total += float(m.group(2))
        return total if found else None

    def test_metrics_pass_promtool_and_count_requests(self):
        for i in range(3):
            self.assertEqual(self.srv.infer("echo", b"m%d" % i)[0], 200)
        self.assertEqual(self.srv.infer("nope", b"x")[0], 404)
        st, h, body = self.srv.http("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h.get("content-type", "").startswith("text/plain"), h.get("content-type"))
        text = body.decode("utf-8")
        for name in ("ringmaster_requests_total",):
            self.assertIn("# TYPE %s counter" % name, text)
        total = self.metric_sum(text, "ringmaster_requests_total")
        self.assertIsNotNone(total, "no ringmaster_requests_total sample")
        self.assertGreaterEqual(total, 3)
        self.assertRegex(text, r'ringmaster_requests_total\{[^}]*pool="echo"', "requests are counted per pool")
        if os.path.exists(PROMTOOL):
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, "promtool check metrics:\n%s%s\n--- metrics ---\n%s"
                             % (r.stdout.decode(), r.stderr.decode(), text))
        # The counter goes up.
        self.assertEqual(self.srv.infer("echo", b"one more")[0], 200)
        text2 = self.srv.http("GET", "/metrics")[2].decode()
        self.assertGreater(self.metric_sum(text2, "ringmaster_requests_total"), total)


def ocr_available():
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as f:
        f.write("[ringmaster]\n[pool o]\nhandler = ocr\n")
        f.flush()
        return subprocess.run([RINGMASTER, "-t", "-c", f.name], capture_output=True).returncode == 0


class NotReady(ServerTestCase):

    def test_failed_pool_makes_ready_503_with_reason(self):
        if not ocr_available():
            self.skipTest("no ocr handler to fail: built without OCR")
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1},
                                 "broken": {"handler": "ocr", "workers": 1, "language": "qqq"}},
                          start=False)
        srv.start(wait_ready=False)
        wait_for(lambda: _status(srv, "/v2/health/live") == 200, 15, what="live")
        wait_for(lambda: _status(srv, "/v2/models/echo/ready") == 200, 15, what="echo ready")
        # The broken pool's init fails permanently: marked failed, not ready.
        wait_for(lambda: srv.pool_status("broken")["failed"], 15, what="pool broken marked failed")
        st, h, body = srv.http("GET", "/v2/health/ready")
        self.assertEqual(st, 503, body)
        doc = json.loads(body)
        self.assertIs(doc.get("ready"), False, doc)
        self.assertIsInstance(doc.get("reason"), str, doc)
        self.assertIn("broken", doc["reason"])
        self.assertEqual(srv.http("GET", "/v2/models/broken/ready")[0], 503)
        self.assertEqual(srv.http("GET", "/v2/models/echo/ready")[0], 200)
        # Its requests get 503, the healthy pool still serves.
        st, h, body = srv.infer("broken", b"x")
        self.assertEqual(st, 503, body)
        self.assertIn("retry-after", h)
        self.assertEqual(srv.infer("echo", b"x")[:3:2], (200, b"x"))
        self.assertEqual(len(srv.workers("broken")), 0, "a failed pool must not respawn in a loop")


class ReadyMeansServing(ServerTestCase):

    def test_infer_right_after_ready_200_is_served(self):
        """Readiness 200 promises every pool has a ready worker: an inference
        request sent right behind it (pipelined on the same connection) must
        not get 503 "no ready worker"."""
        failures = []
        for i in range(8):
            srv = self.server(pools={"echo": {"handler": "echo", "workers": 1},
                                     "late": {"handler": "chaos", "workers": 1}}, start=False)
            srv.start(wait_ready=False)
            deadline = time.monotonic() + 15
            while True:
                self.assertIsNone(srv.proc.poll(), "ringmaster exited")
                self.assertLess(time.monotonic(), deadline, "never ready")
                try:
                    c = srv.raw(timeout=2)
                except OSError:
                    time.sleep(0.005)
                    continue
                try:
                    c.send(build_request("GET", "/v2/health/ready") +
                           build_request("POST", "/v2/models/late/infer", b"x%d" % i) +
                           build_request("POST", "/v2/models/echo/infer", b"y%d" % i))
                    ready, late, echo = c.response(), c.response(), c.response()
                except (OSError, ValueError):
                    ready = None
                finally:
                    c.close()
                if ready is not None and ready.status == 200:
                    break
                time.sleep(0.002)
            for r, want in ((late, b"x%d" % i), (echo, b"y%d" % i)):
                if (r.status, r.body) != (200, want):
                    failures.append("start %d: ready 200, then %d %r" % (i, r.status, r.body))
            srv.stop()
        self.assertEqual(failures, [], "inference right after readiness 200")


def _status(srv, path):
    try:
        return srv.http("GET", path, timeout=1)[0]
    except OSError:
        return None


if __name__ == "__main__":
    unittest.main()
