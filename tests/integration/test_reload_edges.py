"""Reloads that go wrong in the ways a review found: pools added after a
removal, rollbacks after earlier successful reloads, a new generation that
crashes while loading, and rollbacks that must not leave a pool without
workers."""
import os
import time
import unittest

from harness import RINGMASTER, LoadLoop, ServerTestCase, wait_for
from test_zero_downtime import ReadyWatcher

CRASH_INIT_SO = os.path.abspath(os.path.join(os.path.dirname(RINGMASTER), "tests", "handlers", "crash_init.so"))


class ReloadEdges(ServerTestCase):

    def reload(self, srv, pools, expect=0):
        srv.pools = pools
        srv.write_ini()
        r = srv.ctl("reload", timeout=60)
        self.assertEqual(r.returncode, expect, "reload: %r %r" % (r.stdout, r.stderr))
        return r

    def ready(self, srv):
        return srv.http("GET", "/v2/health/ready")[0]

    def wait_answer(self, srv, pool, body, want):
        """The gateways see a reload's pool table at their next tick (20 ms)
        after ringmasterctl reload returns: wait (2 s at most) for pool's
        answer to body to be want, (status, body) or just a status."""
        def answer():
            st, _, got = srv.infer(pool, body)
            return st if isinstance(want, int) else (st, got)
        wait_for(lambda: answer() == want, 2, what="pool %s answering %r" % (pool, want))

    def test_pool_added_after_a_removal_serves(self):
        srv = self.server(pools={"a": {"handler": "echo", "workers": 1}, "b": {"handler": "echo", "workers": 1}})
        self.reload(srv, {"b": {"handler": "echo", "workers": 1}})
        self.wait_answer(srv, "a", b"x", 404)
        self.reload(srv, {"b": {"handler": "echo", "workers": 1}, "c": {"handler": "echo", "workers": 1}})
        self.wait_answer(srv, "c", b"new pool", (200, b"new pool"))
        self.assertEqual(self.ready(srv), 200)
        self.assertEqual(set(srv.workers("c").values()), {"ringmaster: worker c 0"})

    def test_rollback_keeps_pools_of_earlier_reloads_and_removes_its_own(self):
        srv = self.server(pools={"a": {"handler": "echo", "workers": 1}})
        good = {"a": {"handler": "echo", "workers": 1}, "c": {"handler": "echo", "workers": 1}}
        self.reload(srv, good)
        self.wait_answer(srv, "c", b"added", (200, b"added"))
        bad = dict(good, d={"handler": "/nonexistent/handler.so", "workers": 1})
        r = self.reload(srv, bad, expect=1)
        self.assertIn("d", r.stderr)
        self.assertEqual(srv.infer("c", b"kept")[2], b"kept")
        self.assertEqual(srv.infer("d", b"x")[0], 404)
        wait_for(lambda: self.ready(srv) == 200 and not srv.workers("d"), 10, what="ready again, d gone")
        # The pools of the earlier reload keep their workers (the rolled-back
        # generation hands back to the previous one, then drains).
        wait_for(lambda: len(srv.workers("c")) == 1 and len(srv.workers("a")) == 1, 10,
                 what="one worker each in a and c")
        self.assertEqual(srv.infer("c", b"still")[2], b"still")

    def test_new_generation_crashing_while_loading_is_rolled_back(self):
        srv = self.server(pools={"a": {"handler": "echo", "workers": 2}})
        t0 = time.monotonic()
        r = self.reload(srv, {"a": {"handler": CRASH_INIT_SO, "workers": 2}}, expect=1)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertIn("a", r.stderr)
        self.assertEqual(srv.infer("a", b"old generation")[2], b"old generation")
        # The server takes the next reload (it is not stuck "reloading").
        self.reload(srv, {"a": {"handler": "echo", "workers": 3}})
        wait_for(lambda: len(srv.workers("a")) == 3, 10, what="3 workers after the good reload")

    def test_rollback_never_leaves_a_kept_pool_without_workers(self):
        srv = self.server(pools={"a": {"handler": "echo", "workers": 1}})
        load = LoadLoop(srv, pool="a", threads=2, fresh=False).start()
        with ReadyWatcher(srv, "a") as rw:
            self.reload(srv, {"a": {"handler": "echo", "workers": 1},
                              "d": {"handler": CRASH_INIT_SO, "workers": 1}}, expect=1)
            wait_for(lambda: not srv.workers("d"), 10, what="d's workers gone")
            time.sleep(0.3)
        load.stop()
        ok, statuses, errors, bad = load.snapshot()
        self.assertEqual((errors, bad), ([], []), statuses)
        self.assertEqual(rw.not_ready, 0, "pool a must stay ready through the rollback")
        self.assertGreaterEqual(rw.min_serving, 1)


if __name__ == "__main__":
    unittest.main()
