"""Zero downtime: hot spares, recycling through the handover, pools added and
removed by a reload, and reloads plus worker kills under load losing nothing
(the bounded version of bench/availability.sh)."""
import os
import random
import signal
import threading
import time
import unittest

from harness import LoadLoop, ServerTestCase, wait_for


class ReadyWatcher:
    """Polls a pool's serving workers (ready + busy) and its ready endpoint;
    records the minimum seen."""

    def __init__(self, srv, pool):
        self.srv, self.pool = srv, pool
        self.min_serving = None
        self.not_ready = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_ev.is_set():
            w = self.srv.pool_status(self.pool)["workers"]
            n = w["ready"] + w["busy"]
            self.min_serving = n if self.min_serving is None else min(self.min_serving, n)
            st, _, _ = self.srv.http("GET", "/v2/models/%s/ready" % self.pool, timeout=2)
            if st != 200:
                self.not_ready += 1
            time.sleep(0.01)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join()


class ZeroDowntime(ServerTestCase):

    def serving(self, srv, pool):
        w = srv.pool_status(pool)["workers"]
        return w["ready"] + w["busy"]

    def test_spare_keeps_pool_ready_while_a_killed_worker_is_replaced(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1, "spares": 1}})
        wait_for(lambda: self.serving(srv, "echo") == 2, 10, what="worker + spare ready")
        load = LoadLoop(srv, threads=2, fresh=False).start()
        with ReadyWatcher(srv, "echo") as rw:
            time.sleep(0.2)
            victim = sorted(srv.workers("echo"))[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: victim not in srv.workers("echo") and self.serving(srv, "echo") == 2, 10,
                     what="the replacement")
            time.sleep(0.2)
        load.stop()
        ok, statuses, errors, bad = load.snapshot()
        self.assertEqual((errors, bad), ([], []), statuses)
        self.assertGreater(ok, 0)
        self.assertEqual(rw.not_ready, 0, "the pool must stay ready: its spare serves at once")
        self.assertGreaterEqual(rw.min_serving, 1)

    def test_recycling_hands_over_before_draining(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2, "max_requests": 100}})
        wait_for(lambda: self.serving(srv, "echo") == 2, 10, what="2 ready workers")
        load = LoadLoop(srv, threads=3, fresh=False).start()
        with ReadyWatcher(srv, "echo") as rw:
            wait_for(lambda: (srv.metric("ringmaster_restarts_total", pool="echo", reason="recycled") or 0) >= 4,
                     30, what="4 recycles")
        load.stop()
        ok, statuses, errors, bad = load.snapshot()
        self.assertEqual((errors, bad), ([], []), statuses)
        self.assertGreaterEqual(rw.min_serving, 2, "a recycle must never leave fewer ready workers")
        self.assertEqual(rw.not_ready, 0)

    def test_reload_adds_a_pool_and_drains_a_removed_one_to_404(self):
        srv = self.server(pools={"a": {"handler": "echo"}, "b": {"handler": "echo"}})
        self.assertEqual(srv.infer("b", b"x")[0], 200)
        srv.pools = {"a": {"handler": "echo"}, "c": {"handler": "chaos", "workers": 1}}
        srv.write_ini()
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The reload is done (pool c ready) when ctl returns; the gateways
        # see the new pool table at their next tick (20 ms).
        wait_for(lambda: srv.infer("c", b"sleep 1 then echo")[::2] == (200, b"sleep 1 then echo"), 2,
                 what="added pool c answering 200")
        wait_for(lambda: srv.infer("b", b"x")[0] == 404, 10, what="removed pool b answering 404")
        self.assertEqual(srv.http("GET", "/v2/models/b")[0], 404)
        self.assertEqual(srv.infer("a", b"still")[2], b"still")
        wait_for(lambda: not srv.workers("b"), 5, what="the workers of removed pool b gone")

    def test_reloads_and_worker_kills_under_load_lose_nothing(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2, "max_attempts": 3}},
                          heartbeat_interval="50ms", heartbeat_timeout="1s")
        wait_for(lambda: self.serving(srv, "echo") == 2, 10, what="2 ready workers")
        load = LoadLoop(srv, threads=4, fresh=False).start()
        reloads = kills = 0
        # At least 8 s and until the minimums below are reached (a loaded
        # machine makes each reload slower); never more than 60 s.
        t_start = time.monotonic()
        next_reload = t_start + 1
        n = 2
        try:
            while time.monotonic() < t_start + 60 and (time.monotonic() < t_start + 8 or reloads < 5 or kills < 10):
                if time.monotonic() >= next_reload:
                    n = 3 if n == 2 else 2
                    srv.pools["echo"]["workers"] = n
                    srv.write_ini()
                    r = srv.ctl("reload")
                    self.assertEqual(r.returncode, 0, r.stderr)
                    reloads += 1
                    next_reload = time.monotonic() + 1
                w = list(srv.workers("echo"))
                if w:
                    try:
                        os.kill(random.choice(w), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                time.sleep(0.5)
        finally:
            load.stop()
        ok, statuses, errors, bad = load.snapshot()
        print("\nunder load: %d ok, %d reloads, %d workers killed, statuses %r" % (ok, reloads, kills, statuses))
        self.assertEqual((errors, bad), ([], []), statuses)
        self.assertGreaterEqual(reloads, 5)
        self.assertGreaterEqual(kills, 10)
        self.assertGreater(ok, 100)


if __name__ == "__main__":
    unittest.main()
