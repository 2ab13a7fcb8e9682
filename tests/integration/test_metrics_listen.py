"""metrics_listen: /metrics (and the health paths) on addresses of their own,
nothing else there, and /metrics no longer on listen (docs/contract.md)."""
import http.client
import os
import socket
import subprocess
import tempfile
import unittest

from harness import RINGMASTER, ServerTestCase, free_port, metric_sum


def unix_get(path, url, timeout=5.0):
    """GET url over the unix socket at path: (status, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    conn.sock = s
    try:
        conn.request("GET", url)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class MetricsListen(ServerTestCase):
    def start(self, **keys):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, start=False, **keys)
        mport = free_port()
        while mport == srv.port:  # two picks can coincide
            mport = free_port()
        srv.global_keys["metrics_listen"] = "127.0.0.1:%d" % mport
        srv.write_ini()
        srv.metrics_port = mport
        srv.start()
        return srv, mport

    def test_metrics_only_there_and_nothing_else_there(self):
        srv, mport = self.start()
        # Inference on listen is counted, and /metrics there is 404.
        st, _, body = srv.infer("echo", b"counted")
        self.assertEqual((st, body), (200, b"counted"))
        st, h, body = srv.http("GET", "/metrics")
        self.assertEqual(st, 404, body[:200])
        self.assertTrue(h.get("content-type", "").startswith("application/json"), h)
        # metrics_listen: the exposition, with the answer given on listen.
        st, h, body = srv.http("GET", "/metrics", port=mport)
        self.assertEqual(st, 200, body[:200])
        self.assertTrue(h.get("content-type", "").startswith("text/plain"), h)
        text = body.decode()
        self.assertEqual(metric_sum(text, "ringmaster_up"), 1.0)
        self.assertEqual(metric_sum(text, "ringmaster_responses_total", pool="echo", code="200"), 1.0)
        # Health answers on both; HEAD too (probes).
        for port in (srv.port, mport):
            for path in ("/v2/health/live", "/v2/health/ready"):
                self.assertEqual(srv.http("GET", path, port=port)[0], 200, (port, path))
                self.assertEqual(srv.http("HEAD", path, port=port)[0], 200, (port, path))
        # Nothing else on metrics_listen: no inference reaches a worker.
        for method, path in (("POST", "/v2/models/echo/infer"), ("POST", "/v2/models/echo/generate"),
                             ("GET", "/v2"), ("GET", "/v2/models/echo"), ("GET", "/v2/models/echo/ready"),
                             ("GET", "/metrics/"), ("GET", "/")):
            st, _, body = srv.http(method, path, body=b"x" if method == "POST" else None, port=mport)
            self.assertEqual(st, 404, "%s %s on metrics_listen: %d %r" % (method, path, st, body[:200]))
        self.assertEqual(srv.metric("ringmaster_requests_total", pool="echo"), 1.0,
                         "a request sent to metrics_listen reached the pool")
        # A method /metrics does not take is still 405 there.
        self.assertEqual(srv.http("POST", "/metrics", body=b"x", port=mport)[0], 405)

    def test_unix_socket_and_reload_rules(self):
        sock = os.path.join(self._tmp(), "metrics.sock")
        srv, mport = self.start()
        srv.global_keys["metrics_listen"] = "127.0.0.1:%d, unix:%s" % (mport, sock)
        srv.write_ini()
        # Bound at start: a reload that changes the list is refused, and says why.
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("metrics_listen cannot change on reload", r.stderr)
        self.assertFalse(os.path.exists(sock))
        self.assertEqual(srv.http("GET", "/metrics", port=mport)[0], 200)
        # The same list spelled differently is not a change.
        srv.global_keys["metrics_listen"] = "  127.0.0.1:%d " % mport
        srv.global_keys["listen"] = " 127.0.0.1:%d" % srv.port
        srv.write_ini()
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        srv.global_keys["listen"] = "127.0.0.1:%d, 127.0.0.1:%d" % (srv.port, free_port())
        srv.write_ini()
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("listen and metrics_listen cannot change on reload", r.stderr)
        self.assertEqual(srv.infer("echo", b"still")[2], b"still")
        srv.stop()
        # A unix metrics socket from the start.
        srv2 = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, start=False,
                           metrics_listen="unix:%s" % sock)
        srv2.start()
        st, body = unix_get(sock, "/metrics")
        self.assertEqual(st, 200, body[:200])
        self.assertEqual(metric_sum(body.decode(), "ringmaster_up"), 1.0)
        self.assertEqual(unix_get(sock, "/v2/models/echo/ready")[0], 404)
        self.assertEqual(srv2.http("GET", "/metrics")[0], 404)

    def _tmp(self):
        d = tempfile.mkdtemp(prefix="rm-ml-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        return d

    def test_dash_t_refuses_an_address_in_both_lists(self):
        port = free_port()
        d = self._tmp()
        ini = os.path.join(d, "r.ini")
        cases = [
            # the same text: the parser
            ("127.0.0.1:%d" % port, "127.0.0.1:%d" % port, "metrics_listen repeats an address of listen"),
            # the same address spelled otherwise: -t's resolved comparison
            ("127.0.0.1:%d" % port, "127.1:%d" % port, "is given twice"),
            ("unix:%s/a.sock" % d, "unix:%s/a.sock" % d, "metrics_listen repeats an address of listen"),
            ("127.0.0.1:%d" % port, "bogus", "metrics_listen (addresses or off): bad listen address"),
        ]
        for listen, metrics, want in cases:
            with open(ini, "w") as f:
                f.write("[ringmaster]\nlisten = %s\nmetrics_listen = %s\nruntime_dir = %s/run\n"
                        "[pool echo]\nhandler = echo\n" % (listen, metrics, d))
            r = subprocess.run([RINGMASTER, "-t", "-c", ini], capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, (listen, metrics, r.stdout))
            self.assertIn(want, r.stderr, (listen, metrics))
        other = free_port()
        while other == port:
            other = free_port()
        with open(ini, "w") as f:
            f.write("[ringmaster]\nlisten = 127.0.0.1:%d\nmetrics_listen = 127.0.0.1:%d\nruntime_dir = %s/run\n"
                    "[pool echo]\nhandler = echo\n" % (port, other, d))
        r = subprocess.run([RINGMASTER, "-t", "-c", ini], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
