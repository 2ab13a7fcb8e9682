"""Health, metadata and metrics endpoints (docs/contract.md, Open Inference
Protocol v2 paths)."""
import json
import os
import re
import subprocess
import time
import unittest

from harness import PROMTOOL, RINGMASTER, Server, ServerTestCase, build_request, metric_sum, wait_for


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

    def test_server_metadata_version_matches_ringmaster_V(self):
        doc = self.get_json("/v2")
        self.assertIsInstance(doc.get("name"), str, doc)
        self.assertIsInstance(doc.get("version"), str, doc)
        self.assertIsInstance(doc.get("extensions"), list, doc)
        v = subprocess.run([RINGMASTER, "-V"], capture_output=True, text=True).stdout.split()
        if len(v) == 2:
            self.assertEqual(doc["version"], v[1], "GET /v2 version vs ringmaster -V")

    def test_model_metadata_names_each_pool(self):
        for name in ("echo", "chaos"):
            doc = self.get_json("/v2/models/%s" % name)
            self.assertEqual(doc.get("name"), name, doc)

    def test_model_ready_is_200_for_each_pool(self):
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

    def test_metrics_pass_promtool_and_count_requests(self):
        for i in range(3):
            self.assertEqual(self.srv.infer("echo", b"m%d" % i)[0], 200)
        self.assertEqual(self.srv.infer("nope", b"x")[0], 404)
        st, h, body = self.srv.http("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(h.get("content-type", "").startswith("text/plain"), h.get("content-type"))
        text = body.decode("utf-8")
        for name, kind in (("ringmaster_requests_total", "counter"), ("ringmaster_restarts_total", "counter"),
                           ("ringmaster_workers", "gauge"), ("ringmaster_up", "gauge"),
                           ("ringmaster_request_duration_seconds", "histogram"),
                           ("ringmaster_responses_total", "counter"),
                           ("ringmaster_other_responses_total", "counter")):
            self.assertIn("# TYPE %s %s" % (name, kind), text)
        self.assertEqual(metric_sum(text, "ringmaster_up"), 1)
        # The gauges are the master's view, published once a tick: a worker
        # that just answered may still count as busy. Serving = ready + busy.
        for pool, n in (("echo", 2), ("chaos", 1)):
            serving = sum(metric_sum(text, "ringmaster_workers", pool=pool, state=st) or 0 for st in ("ready", "busy"))
            self.assertEqual(serving, n, "ringmaster_workers{pool=%r} ready + busy" % pool)
        total = metric_sum(text, "ringmaster_requests_total")
        self.assertIsNotNone(total, "no ringmaster_requests_total sample")
        self.assertGreaterEqual(total, 3)
        self.assertRegex(text, r'ringmaster_requests_total\{[^}]*pool="echo"', "requests are counted per pool")
        # Answers by status: the pool's inference answers in its own series,
        # the 404 of an unknown model in the server's.
        self.assertGreaterEqual(metric_sum(text, "ringmaster_responses_total", pool="echo", code="200"), 3)
        self.assertGreaterEqual(metric_sum(text, "ringmaster_other_responses_total", code="404"), 1)
        self.assertEqual(metric_sum(text, "ringmaster_responses_total", pool="echo", code="404"), 0)
        if os.path.exists(PROMTOOL):
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, "promtool check metrics:\n%s%s\n--- metrics ---\n%s"
                             % (r.stdout.decode(), r.stderr.decode(), text))
        # The counter goes up.
        self.assertEqual(self.srv.infer("echo", b"one more")[0], 200)
        text2 = self.srv.http("GET", "/metrics")[2].decode()
        self.assertGreater(metric_sum(text2, "ringmaster_requests_total"), total)


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
    # Readiness 200 promises a ready worker: an inference request sent right
    # behind it (pipelined on the same connection) must not get 503 "no
    # ready worker". Checked when a pool goes from no ready worker to one:
    # at startup, and after its only worker died.

    def ready_then_infer(self, srv, ready_path, pool, body, deadline):
        """Poll ready_path with an inference request pipelined behind it
        until ready is 200; return that inference answer."""
        while True:
            self.assertIsNone(srv.proc.poll(), "ringmaster exited")
            self.assertLess(time.monotonic(), deadline, "never ready")
            try:
                c = srv.raw(timeout=2)
            except OSError:
                time.sleep(0.005)
                continue
            try:
                c.send(build_request("GET", ready_path) +
                       build_request("POST", "/v2/models/%s/infer" % pool, body))
                ready, answer = c.response(), c.response()
            except (OSError, ValueError):
                ready = None
            finally:
                c.close()
            if ready is not None and ready.status == 200:
                return answer
            time.sleep(0.001)

    def test_infer_right_after_ready_200_is_served(self):
        failures = []
        for i in range(3):
            srv = self.server(pools={"echo": {"handler": "echo", "workers": 1},
                                     "late": {"handler": "chaos", "workers": 1}}, start=False)
            srv.start(wait_ready=False)
            r = self.ready_then_infer(srv, "/v2/health/ready", "late", b"x%d" % i, time.monotonic() + 15)
            if (r.status, r.body) != (200, b"x%d" % i):
                failures.append("start %d: /v2/health/ready 200, then %d %r" % (i, r.status, r.body))
            srv.stop()
        srv = self.server(pools={"solo": {"handler": "chaos", "workers": 1, "max_attempts": 1}})
        for i in range(5):
            st, _, body = srv.infer("solo", b"crash")
            self.assertEqual(st, 502, body)
            for path in ("/v2/health/ready", "/v2/models/solo/ready"):
                r = self.ready_then_infer(srv, path, "solo", b"y%d" % i, time.monotonic() + 10)
                if (r.status, r.body) != (200, b"y%d" % i):
                    failures.append("crash %d: %s 200, then %d %r" % (i, path, r.status, r.body))
                # Let the gateway catch up before the next round.
                wait_for(lambda: srv.infer("solo", b"z")[0] == 200, 2, what="solo serving again")
        self.assertEqual(failures, [], "inference right after readiness 200")


def _status(srv, path):
    try:
        return srv.http("GET", path, timeout=1)[0]
    except OSError:
        return None


if __name__ == "__main__":
    unittest.main()
