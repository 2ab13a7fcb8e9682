"""Stopping: SIGTERM drains gracefully and exits 0 with nothing left;
SIGKILL of the master leaves no child alive (PR_SET_PDEATHSIG)."""
import json
import os
import signal
import threading
import time
import unittest

from harness import ServerTestCase, alive, wait_for


def busy_worker(srv):
    for p in srv.status_json()["processes"]:
        if p["role"] == "worker" and p["state"] == "busy":
            return p["pid"]
    return None


class Stop(ServerTestCase):

    def start_slow_request(self, srv, body):
        out = {}

        def run():
            t0 = time.monotonic()
            try:
                out["answer"] = srv.infer("chaos", body, ctype="text/plain", timeout=15)
            except Exception as e:  # noqa: BLE001
                out["error"] = repr(e)
            out["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=run)
        t.start()
        wait_for(lambda: busy_worker(srv), 10, what="a worker busy with %r" % body)
        return t, out

    def snapshot_children(self, srv):
        kids = srv.children()
        roles = sorted(t for _, t in kids)
        self.assertIn("ringmaster: gateway 0", roles)
        self.assertTrue(any(t.startswith("ringmaster: worker chaos ") for t in roles), roles)
        return {pid: srv.seen[pid][0] for pid, _ in kids}

    def test_sigterm_lets_slow_request_finish_then_exits_0(self):
        srv = self.server(pools={"chaos": {"handler": "chaos", "workers": 2}}, shutdown_timeout="10s")
        # A keep-alive connection opened before the stop, to look at readiness.
        probe = srv.raw(timeout=2)
        self.addCleanup(probe.close)
        probe.send(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(probe.response().status, 200)

        t, out = self.start_slow_request(srv, b"sleep 1500")
        kids = self.snapshot_children(srv)
        t_term = time.monotonic()
        srv.signal(signal.SIGTERM)
        wait_for(lambda: srv.status_json()["draining"], 5, what="the master to publish draining")

        # Readiness turns 503 at once (if the gateway still answers at all
        # on a connection it already had; closing it is fine too).
        try:
            probe.send(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
            r = probe.response()
        except OSError:
            r = None
        if r is not None:
            self.assertEqual(r.status, 503, "readiness after SIGTERM: %r" % r)
            self.assertIs(r.json().get("ready"), False)

        t.join(15)
        self.assertNotIn("error", out, "the slow request failed during the graceful stop")
        st, _, body = out["answer"]
        self.assertEqual((st, body), (200, b"sleep 1500"))
        self.assertGreaterEqual(out["elapsed"], 1.4)

        rc = srv.proc.wait(timeout=10)
        self.assertEqual(rc, 0, "master exit status after SIGTERM")
        self.assertLess(time.monotonic() - t_term, 5.0, "stop took far longer than the running request")
        left = {p for p, start in kids.items() if alive(p, start)}
        self.assertEqual(left, set(), "children alive after the master exited")
        self.assertEqual(srv.wait_children_gone(0.5), {}, "children alive after the master exited")

    def test_readiness_503_during_graceful_stop(self):
        # docs/contract.md: "Graceful stop (SIGTERM): readiness turns 503 at once,
        # queued and running requests finish". A probe arriving while a
        # request still runs must be told 503, not left hanging.
        srv = self.server(pools={"chaos": {"handler": "chaos", "workers": 1}}, shutdown_timeout="10s")
        # The request outlasts the drain wait and the two probes below (each
        # on a fresh connection), so they all happen while it runs.
        t, out = self.start_slow_request(srv, b"sleep 5000")
        srv.signal(signal.SIGTERM)
        wait_for(lambda: srv.status_json()["draining"], 5, what="the master to publish draining")
        try:
            st, _, body = srv.http("GET", "/v2/health/ready", timeout=1)
        except OSError as e:
            st, body = None, repr(e).encode()
        try:
            ist, ih, ibody = srv.infer("chaos", b"late", timeout=1)
        except OSError as e:
            ist, ih, ibody = None, {}, repr(e).encode()
        t.join(15)
        self.assertEqual(out.get("answer", (None, None, None))[::2], (200, b"sleep 5000"), out)
        self.assertEqual(st, 503, "GET /v2/health/ready on a new connection during the graceful stop: %r" % body)
        self.assertIs(json.loads(body).get("ready"), False)
        self.assertEqual(ist, 503, "inference on a new connection during the graceful stop: %r" % ibody)
        self.assertIn("retry-after", ih)
        self.assertEqual(srv.proc.wait(timeout=10), 0)

    def test_sigterm_when_idle_exits_0_promptly(self):
        srv = self.server(pools={"chaos": {"handler": "chaos", "workers": 2}})
        kids = self.snapshot_children(srv)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        self.assertEqual(srv.proc.wait(timeout=10), 0)
        self.assertLess(time.monotonic() - t0, 5.0, "an idle server should stop at once")
        self.assertEqual({p for p, s in kids.items() if alive(p, s)}, set())

    def test_second_sigterm_stops_immediately(self):
        srv = self.server(pools={"chaos": {"handler": "chaos", "workers": 1}}, shutdown_timeout="30s")
        t, out = self.start_slow_request(srv, b"sleep 12000")
        kids = self.snapshot_children(srv)
        srv.signal(signal.SIGTERM)
        # Two SIGTERMs pending at once are one signal: send the second only
        # once the master has read the first (it publishes draining).
        wait_for(lambda: srv.status_json()["draining"], 5, what="the master to publish draining")
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        srv.proc.wait(timeout=10)
        # The request still has seconds to run: a master that waited for it
        # would take far longer than this.
        self.assertLess(time.monotonic() - t0, 5.0, "a second SIGTERM must not wait for the request")
        self.assertEqual(srv.wait_children_gone(3.0), {}, "children alive after an immediate stop")
        self.assertEqual({p for p, s in kids.items() if alive(p, s)}, set())
        t.join(15)

    def test_sigkill_of_master_leaves_no_child_after_1s(self):
        srv = self.server(pools={"chaos": {"handler": "chaos", "workers": 3}}, gateways=2)
        wait_for(lambda: len(srv.workers("chaos")) == 3 and len(srv.gateways()) == 2, 5,
                 what="3 workers and 2 gateways")
        kids = self.snapshot_children(srv)
        self.assertGreaterEqual(len(kids), 5)
        t0 = time.monotonic()
        os.kill(srv.pid, signal.SIGKILL)
        srv.proc.wait(timeout=5)
        while time.monotonic() - t0 < 3.0:
            if not any(alive(p, s) for p, s in kids.items()):
                break
            time.sleep(0.01)
        left = {p: srv.seen[p][1] for p, s in kids.items() if alive(p, s)}
        self.assertEqual(left, {}, "alive 3 s after SIGKILL of the master")
        # Nothing accepts on the port any more.
        with self.assertRaises(OSError):
            srv.http("GET", "/v2/health/live", timeout=1)


if __name__ == "__main__":
    unittest.main()
