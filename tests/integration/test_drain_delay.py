"""drain_delay: a stop asked (SIGTERM or ringmasterctl stop) turns readiness
503 at once while requests are still served for drain_delay, so that a load
balancer's health check takes the host out before anything is refused; then
the graceful stop as without it. Also the fleet metrics that go with it."""
import os
import signal
import subprocess
import threading
import time
import unittest

from rmtest import RINGMASTERCTL

from harness import LoadLoop, ServerTestCase, wait_for


class DrainDelay(ServerTestCase):

    def ready_status(self, srv):
        try:
            return srv.http("GET", "/v2/health/ready", timeout=2)[0]
        except OSError:
            return None

    def test_sigterm_serves_during_drain_delay_with_readiness_503_then_stops(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2}}, drain_delay="4s",
                          shutdown_timeout="5s")
        self.assertEqual(self.ready_status(srv), 200)
        load = LoadLoop(srv, threads=2).start()
        self.addCleanup(load.stop)
        time.sleep(0.3)
        t_term = time.monotonic()
        srv.signal(signal.SIGTERM)
        wait_for(lambda: self.ready_status(srv) == 503, 2.0, what="readiness 503 right after SIGTERM")
        self.assertLess(time.monotonic() - t_term, 2.0)
        self.assertEqual(srv.metric("ringmaster_draining"), 1)
        ok_at_term = load.snapshot()[0]
        # Fresh connections are still served normally well into the delay:
        # 2.5 s after the signal (not after the waits above), 1.5 s before
        # its end.
        time.sleep(max(0.0, t_term + 2.5 - time.monotonic()))
        self.assertIsNone(srv.proc.poll(), "the master exited before drain_delay was over")
        st, _, body = srv.infer("echo", b"still served", ctype="text/plain", timeout=3)
        self.assertEqual((st, body), (200, b"still served"))
        self.assertEqual(srv.metric("ringmaster_pool_ready", pool="echo"), 1,
                         "the pool itself still serves during drain_delay")
        ok_mid, statuses, errors, bad = load.snapshot()
        self.assertGreater(ok_mid - ok_at_term, 20, "requests served during drain_delay")
        self.assertEqual((errors, bad), ([], []), "nothing refused or failed during drain_delay")
        rc = srv.proc.wait(timeout=10)
        elapsed = time.monotonic() - t_term
        load.stop()
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(elapsed, 3.9, "the stop did not wait drain_delay")
        self.assertLess(elapsed, 10.0, "the stop took far longer than drain_delay + the drain")

    def test_ctl_stop_waits_for_drain_delay_and_the_stop(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, drain_delay="4s",
                          shutdown_timeout="5s")
        t0 = time.monotonic()
        ctl = subprocess.Popen([RINGMASTERCTL, "-c", srv.ini, "stop"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        wait_for(lambda: self.ready_status(srv) == 503, 2.0, what="readiness 503 after ctl stop")
        self.assertEqual(srv.status_json()["draining"], True)
        # A reload during the delay is refused: the server is stopping.
        r = srv.ctl("reload", timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("stopping", r.stderr)
        out, err = ctl.communicate(timeout=20)
        elapsed = time.monotonic() - t0
        self.assertEqual(ctl.returncode, 0, err)
        self.assertIn("stop: stopped", out)
        self.assertGreaterEqual(elapsed, 3.9, "ctl stop returned before drain_delay was over")
        self.assertLess(elapsed, 10.0, "ctl stop took far longer than drain_delay + the stop")
        self.assertEqual(srv.proc.wait(timeout=5), 0)

    def test_second_sigterm_during_drain_delay_stops_at_once(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, drain_delay="30s")
        srv.signal(signal.SIGTERM)
        wait_for(lambda: self.ready_status(srv) == 503, 2.0, what="readiness 503")
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        srv.proc.wait(timeout=5)
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_worker_killed_during_drain_delay_is_replaced_and_requests_served(self):
        # The kill, the respawn and the request below all fit in drain_delay.
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, drain_delay="8s",
                          shutdown_timeout="5s")
        srv.signal(signal.SIGTERM)
        wait_for(lambda: self.ready_status(srv) == 503, 2.0, what="readiness 503")
        (pid,) = srv.workers("echo")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: srv.workers("echo") and pid not in srv.workers("echo"), 3,
                 what="a new echo worker during drain_delay")
        wait_for(lambda: srv.metric("ringmaster_pool_ready", pool="echo") == 1, 5,
                 what="the new worker ready during drain_delay")
        st, _, body = srv.infer("echo", b"after respawn", ctype="text/plain", timeout=5)
        self.assertEqual((st, body), (200, b"after respawn"))
        self.assertEqual(srv.proc.wait(timeout=15), 0)


class FleetMetrics(ServerTestCase):

    def test_build_info_saturation_capacity_and_pool_ready(self):
        srv = self.server(pools={"chaos": {"handler": "chaos", "workers": 2, "queue_depth": 8}})
        self.assertEqual(srv.metric("ringmaster_build_info"), 1)
        self.assertEqual(srv.metric("ringmaster_queue_capacity", pool="chaos"), 8)
        self.assertEqual(srv.metric("ringmaster_pool_ready", pool="chaos"), 1)
        self.assertEqual(srv.metric("ringmaster_pool_saturation", pool="chaos"), 0)
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(
            "r", srv.infer("chaos", b"sleep 1500", ctype="text/plain", timeout=10)))
        t.start()
        self.addCleanup(t.join, 10)
        wait_for(lambda: srv.metric("ringmaster_pool_saturation", pool="chaos") == 0.5, 3,
                 what="saturation 0.5 with one of two workers busy")
        t.join(10)
        self.assertEqual(out["r"][0], 200)

    def test_reloads_counted_by_result(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}})
        self.assertEqual(srv.metric("ringmaster_reloads_total", result="ok"), 0)
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(srv.ini, "a") as f:
            f.write("\n[broken\n")
        # ringmasterctl reads the file itself and would refuse it first: SIGHUP.
        srv.signal(signal.SIGHUP)
        wait_for(lambda: srv.metric("ringmaster_reloads_total", result="failed") == 1, 3,
                 what="the refused reload counted as failed")
        self.assertEqual(srv.metric("ringmaster_reloads_total", result="ok"), 1)


if __name__ == "__main__":
    unittest.main()
