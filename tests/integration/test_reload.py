"""Reload (`ringmasterctl reload`) and worker count signals (SIGTTIN/SIGTTOU)."""
import signal
import time
import unittest

from harness import LoadLoop, ServerTestCase, wait_for


def worker_procs(srv, pool_name):
    """{pid: process entry} of the pool's workers in ringmasterctl status --json.
    processes[].pool is a shared-memory index: the titles carry the name."""
    titles = srv.workers(pool_name)
    return {p["pid"]: p for p in srv.status_json()["processes"] if p["role"] == "worker" and p["pid"] in titles}


class Reload(ServerTestCase):

    def serving_workers(self, srv, pool):
        w = srv.pool_status(pool)["workers"]
        return w["ready"] + w["busy"]

    def test_reload_adds_a_worker_and_returns_0(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2}})
        wait_for(lambda: self.serving_workers(srv, "echo") == 2, 5, what="2 ready workers")
        old = set(srv.workers("echo"))
        load = LoadLoop(srv, threads=2, fresh=False).start()
        try:
            srv.pools["echo"]["workers"] = 3
            srv.write_ini()
            t0 = time.monotonic()
            r = srv.ctl("reload")
            took = time.monotonic() - t0
            self.assertEqual(r.returncode, 0, "ringmasterctl reload: %r %r" % (r.stdout, r.stderr))
            # reload returns when the new generation serves; the worker
            # counts in status are published by the master's loop, up to a
            # tick later: wait for them, briefly.
            def settled():
                w = srv.pool_status("echo")["workers"]
                return w if w["ready"] + w["busy"] == 3 and w["draining"] == 0 else None
            try:
                wait_for(settled, 2, what="3 serving workers and none draining")
            except AssertionError:
                self.fail("right after reload: %r" % srv.pool_status("echo"))
            new = wait_for(lambda: (lambda w: set(w) if len(w) == 3 else None)(srv.workers("echo")), 2,
                           what="3 echo worker processes")
            time.sleep(0.2)
        finally:
            load.stop()
        self.assertEqual(old & new, set(), "a reload starts a whole new generation of workers")
        procs = worker_procs(srv, "echo")
        gens = {p["generation"] for p in procs.values()}
        self.assertEqual(len(gens), 1, "workers of mixed generations after the reload: %r" % procs)
        self.assertLess(took, 10)
        ok, statuses, errors, bad = load.snapshot()
        self.assertEqual((errors, bad), ([], []), "requests failed during the reload: %r" % statuses)
        self.assertGreater(ok, 0)
        self.assertEqual(srv.status_json()["reloads"], 1)

    def test_reload_with_broken_ini_returns_1_and_keeps_serving(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2}})
        wait_for(lambda: self.serving_workers(srv, "echo") == 2, 5, what="2 ready workers")
        before = set(srv.workers("echo"))
        good = srv.ini_text()
        srv.write_ini(good.replace("workers = 2", "workers = three"))
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 1, "reload of a broken INI: %r %r" % (r.stdout, r.stderr))
        self.assertIn("%s:" % srv.ini, r.stderr, "the reason names FILE:LINE")
        self.assertIn("workers", r.stderr)
        # Nothing changed, and it serves.
        st, _, body = srv.infer("echo", b"still here", ctype="text/plain")
        self.assertEqual((st, body), (200, b"still here"))
        self.assertEqual(set(srv.workers("echo")), before, "a refused reload must change nothing")
        self.assertEqual(srv.http("GET", "/v2/health/ready")[0], 200)
        # A good reload after the bad one still works.
        srv.write_ini(good)
        self.assertEqual(srv.ctl("reload").returncode, 0)

    def test_reload_whose_workers_fail_is_rolled_back(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2}})
        wait_for(lambda: self.serving_workers(srv, "echo") == 2, 5, what="2 ready workers")
        before = set(srv.workers("echo"))
        # A handler the new workers cannot load: the reload is either refused
        # up front or its new generation fails to start; both return 1 and
        # leave the old generation serving.
        srv.pools["echo"]["handler"] = "/nonexistent/handler.so"
        srv.write_ini()
        load = LoadLoop(srv, threads=1, fresh=True).start()
        try:
            r = srv.ctl("reload")
        finally:
            load.stop()
        self.assertEqual(r.returncode, 1, "reload with failing workers: %r %r" % (r.stdout, r.stderr))
        self.assertTrue(r.stderr.strip(), "no reason given")
        ok, statuses, errors, bad = load.snapshot()
        self.assertEqual((errors, bad), ([], []), "requests failed during the rolled-back reload")
        self.assertEqual(srv.http("GET", "/v2/health/ready")[0], 200)
        self.assertTrue(before <= set(srv.workers("echo")), "the old generation must keep serving")
        st, _, body = srv.infer("echo", b"old gen", ctype="text/plain")
        self.assertEqual((st, body), (200, b"old gen"))

    def test_many_new_workers_failing_never_mark_the_pool_failed(self):
        # Eight new workers fail their init one after another; the first
        # failure decides the rollback. The others, reaped before it runs,
        # must not be judged by the pool's own policy: the last one would
        # mark the pool failed and the old generation, still serving, would
        # answer 503 "model failed to load" until the rollback.
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 8}})
        wait_for(lambda: self.serving_workers(srv, "echo") == 8, 10, what="8 ready workers")
        srv.pools["echo"]["handler"] = "/nonexistent/handler.so"
        srv.write_ini()
        load = LoadLoop(srv, threads=2, fresh=True).start()
        try:
            r = srv.ctl("reload")
        finally:
            load.stop()
        self.assertEqual(r.returncode, 1, "reload with failing workers: %r %r" % (r.stdout, r.stderr))
        ok, statuses, errors, bad = load.snapshot()
        self.assertEqual((errors, bad), ([], []), "requests failed during the rolled-back reload")
        self.assertGreater(ok, 0)


class WorkerCountSignals(ServerTestCase):

    def test_sigttin_and_sigttou_add_and_remove_one_worker_per_pool(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2},
                                 "chaos": {"handler": "chaos", "workers": 1}})

        def counts(e, c):
            def ok():
                pe, pc = srv.pool_status("echo")["workers"], srv.pool_status("chaos")["workers"]
                return (len(srv.workers("echo")) == e and len(srv.workers("chaos")) == c and
                        pe["ready"] + pe["busy"] == e and pc["ready"] + pc["busy"] == c)
            return ok

        wait_for(counts(2, 1), 5, what="2 echo and 1 chaos workers")
        srv.signal(signal.SIGTTIN)
        wait_for(counts(3, 2), 5, what="3 echo and 2 chaos workers after SIGTTIN")
        srv.signal(signal.SIGTTIN)
        wait_for(counts(4, 3), 5, what="4 echo and 3 chaos workers after a second SIGTTIN")
        srv.signal(signal.SIGTTOU)
        wait_for(counts(3, 2), 5, what="3 echo and 2 chaos workers after SIGTTOU")
        srv.signal(signal.SIGTTOU)
        wait_for(counts(2, 1), 5, what="2 echo and 1 chaos workers after a second SIGTTOU")
        for pool in ("echo", "chaos"):
            st, _, body = srv.infer(pool, b"count", ctype="text/plain")
            self.assertEqual((st, body), (200, b"count"))


if __name__ == "__main__":
    unittest.main()
