"""`ringmasterctl status`: rates and answers by status code since the last
look, latency percentiles, totals that survive worker deaths, what each
worker is doing and its RSS, --watch, --json, and bad arguments
(docs/contract.md)."""
import json
import os
import re
import select
import signal
import subprocess
import threading
import time

from harness import RINGMASTERCTL, LoadLoop, Server, ServerTestCase, wait_for

CODES = ["200", "2xx", "3xx", "400", "404", "405", "408", "413", "414", "431", "4xx",
         "500", "502", "503", "504", "5xx"]
HEADER = re.compile(rb"(?m)^ringmaster \S+: master pid \d+")


def pool_of(doc, name):
    for p in doc["pools"]:
        if p["name"] == name:
            return p
    raise AssertionError("pool %s not in %r" % (name, [p["name"] for p in doc["pools"]]))


class Watch:
    """`ringmasterctl status --json --watch S` in the background: one JSON
    document per line; each compares with the sample before it."""

    def __init__(self, srv, seconds):
        self.p = subprocess.Popen([RINGMASTERCTL, "-c", srv.ini, "status", "--json", "--watch", str(seconds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""

    def next_doc(self, timeout):
        """The next screen, parsed (bounded wait)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.p.poll() is not None and not select.select([self.p.stdout], [], [], 0)[0]:
                raise AssertionError("no screen from status --watch within %.1f s (exit %r, stderr %r)"
                                     % (timeout, self.p.poll(), self.p.stderr.read() if self.p.poll() is not None
                                        else b""))
            if select.select([self.p.stdout], [], [], min(left, 0.2))[0]:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    continue
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def stop(self):
        """SIGINT by pid (a watch ends with 0); its exit status."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            return self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("status --watch did not end on SIGINT")
        finally:
            self.p.stdout.close()
            self.p.stderr.close()


class Status(ServerTestCase):
    class_servers = []

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(pools={"echo": {"handler": "echo", "workers": 2},
                                "chaos": {"handler": "chaos", "workers": 1, "max_attempts": 1},
                                "slow": {"handler": "chaos", "workers": 1},
                                "victim": {"handler": "echo", "workers": 2}},
                         heartbeat_interval="50ms")
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            cls.srv.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def ready(self, pool, n):
        wait_for(lambda: (lambda w: w["ready"] + w["busy"] >= n)(self.srv.pool_status(pool)["workers"]), 10,
                 what="%d ready workers in pool %s" % (n, pool))

    def test_under_load_the_request_rate_is_positive_and_the_200s_rise(self):
        load = LoadLoop(self.srv, pool="echo", threads=2).start()
        try:
            wait_for(lambda: load.snapshot()[0] >= 20, 10, what="the load to get going")
            a = self.srv.status_json(interval=1)
            text = self.srv.ctl("status", "--interval", "0.5", timeout=10)
            b = self.srv.status_json(interval=0.3)
        finally:
            load.stop()
        pa, pb = pool_of(a, "echo"), pool_of(b, "echo")
        self.assertGreaterEqual(a["interval_s"], 0.9)
        self.assertGreater(pa["requests_per_s"], 0, pa)
        self.assertGreater(pa["answers_last"]["200"], 0, pa)
        self.assertEqual(pa["errors_per_s"], 0, pa)
        self.assertAlmostEqual(pa["requests_per_s"], sum(pa["answers_last"].values()) / a["interval_s"],
                               delta=max(1, pa["requests_per_s"] / 100))
        self.assertGreater(pb["answers"]["200"], pa["answers"]["200"], "the 200 count rises under load")
        self.assertGreaterEqual(pa["answers"]["200"], pa["answers_last"]["200"])
        for doc in (pa["latency_last"], pa["latency"]):
            self.assertGreater(doc["count"], 0, doc)
            for q in ("p50", "p90", "p99"):
                self.assertIn(doc[q]["cmp"], ("<=", "~", ">"), doc)
                self.assertGreater(doc[q]["s"], 0, doc)
            self.assertLessEqual(doc["p50"]["s"], doc["p99"]["s"], doc)
        # The text says the same.
        self.assertEqual(text.returncode, 0, text.stderr)
        m = re.search(r"(?m)^pool echo .*\n  last 0\.5 s:\s+([0-9.]+) req/s, ([0-9.]+) errors/s;\s+answers 200: (\d+)",
                      text.stdout)
        self.assertIsNotNone(m, text.stdout)
        self.assertGreater(float(m.group(1)), 0, text.stdout)
        self.assertGreater(int(m.group(3)), 0, text.stdout)
        self.assertRegex(text.stdout, r"(?m)^pool echo .*\n.*\n  since start: answers 200: \d+;\s+latency p50 \S")

    def test_a_crashing_chaos_pool_shows_its_502s_since_the_last_look(self):
        self.ready("chaos", 1)
        before = self.srv.pool_status("chaos")["answers"]["502"]
        w = Watch(self.srv, 0.3)
        try:
            first = w.next_doc(5)  # the sample it compares the next one with is taken
            self.assertIsNotNone(pool_of(first, "chaos")["answers_last"])
            st, _, body = self.srv.infer("chaos", b"crash", ctype="text/plain")
            self.assertEqual(st, 502, body)
            seen = 0
            deadline = time.monotonic() + 5
            while not seen and time.monotonic() < deadline:
                doc = w.next_doc(5)
                seen = pool_of(doc, "chaos")["answers_last"]["502"]
            self.assertEqual(seen, 1, "the 502 in a screen after the crash")
            self.assertGreater(pool_of(doc, "chaos")["errors_per_s"], 0)
        finally:
            self.assertEqual(w.stop(), 0)
        self.assertEqual(self.srv.pool_status("chaos")["answers"]["502"], before + 1)
        text = self.srv.ctl("status", "--interval", "0").stdout
        self.assertRegex(text, r"(?m)^pool chaos .*\n  since start: answers [^\n]*502: %d" % (before + 1))

    def test_a_busy_worker_shows_how_long_it_has_been_busy(self):
        self.ready("slow", 1)
        pids = set(self.srv.workers("slow"))
        answer = []
        t = threading.Thread(target=lambda: answer.append(self.srv.infer("slow", b"sleep 4000", timeout=15)))
        t.start()
        try:
            def busy(min_s):
                for p in self.srv.status_json()["processes"]:
                    if p["pid"] in pids and p["state"] == "busy" and p["busy_s"] is not None and p["busy_s"] >= min_s:
                        return p
                return None
            # The request runs 4 s: seen busy early enough to see it grow.
            p1 = wait_for(lambda: busy(0.2), 5, what="the slow worker busy for 0.2 s")
            self.assertLess(p1["busy_s"], 3.0, p1)
            text = self.srv.ctl("status", "--interval", "0").stdout
            self.assertRegex(text, r"(?m)^  pid %d\s+worker \d+\s+gen \d+\s+busy for [0-9.]+ (ms|s) " % p1["pid"])
            p2 = wait_for(lambda: busy(p1["busy_s"] + 0.2), 5, what="the busy time growing")
            self.assertEqual(p2["pid"], p1["pid"])
        finally:
            t.join(15)
        self.assertEqual(answer[0][0], 200, answer)
        # Workers not running a request have no busy time.
        for p in self.srv.status_json()["processes"]:
            if p["state"] != "busy":
                self.assertIsNone(p["busy_s"], p)
        # Its 4 s in the slow pool's latency: interpolated inside (2.5 s, 5 s].
        lat = self.srv.pool_status("slow")["latency"]
        self.assertEqual(lat["count"], 1, lat)
        self.assertEqual(lat["p50"]["cmp"], "~", lat)
        self.assertGreater(lat["p50"]["s"], 2.5, lat)
        self.assertLessEqual(lat["p50"]["s"], 5.0, lat)

    def test_live_processes_show_their_rss(self):
        st = self.srv.status_json()
        live = {pid for pid, _ in self.srv.children()}
        checked = 0
        for p in st["processes"]:
            if p["pid"] in live and p["state"] in ("ready", "busy"):
                self.assertIsNotNone(p["rss_kb"], p)
                self.assertGreater(p["rss_kb"], 100, p)
                checked += 1
        self.assertGreaterEqual(checked, 1 + 2 + 1 + 1 + 2, st["processes"])  # a gateway and every worker
        text = self.srv.ctl("status", "--interval", "0").stdout
        for pid in self.srv.workers():
            self.assertRegex(text, r"(?m)^  pid %d\s.* rss [0-9.]+ (KiB|MiB)$" % pid)

    def test_the_total_served_never_drops_when_a_worker_is_killed(self):
        self.ready("victim", 2)
        for i in range(20):
            self.assertEqual(self.srv.infer("victim", b"v%d" % i)[0], 200)
        start = self.srv.pool_status("victim")
        self.assertGreaterEqual(start["served_total"], 20, start)
        pids = set(self.srv.workers("victim"))
        procs = [p for p in self.srv.status_json()["processes"] if p["pid"] in pids]
        victim = max(procs, key=lambda p: p["served"])
        self.assertGreater(victim["served"], 0, procs)
        load = LoadLoop(self.srv, pool="victim", threads=1).start()
        totals = []
        try:
            totals.append(self.srv.pool_status("victim")["served_total"])
            os.kill(victim["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                totals.append(self.srv.pool_status("victim")["served_total"])
            after = wait_for(lambda: (lambda d: d if victim["pid"] not in {p["pid"] for p in d["processes"]}
                                      else None)(self.srv.status_json()), 5, what="the killed worker reaped")
        finally:
            load.stop()
        drops = [(i, a, b) for i, (a, b) in enumerate(zip(totals, totals[1:])) if b < a]
        self.assertEqual(drops, [], "served_total went down: %r" % totals)
        p = pool_of(after, "victim")
        self.assertGreaterEqual(p["served_exited"], victim["served"], p)
        self.assertEqual(p["served_total"], p["served"] + p["served_exited"], p)
        self.assertGreater(totals[-1], totals[0], "requests served after the kill are counted")
        self.assertGreaterEqual(self.srv.pool_status("victim")["served_total"], totals[-1])

    def test_watch_prints_a_screen_per_interval_until_interrupted(self):
        p = subprocess.Popen([RINGMASTERCTL, "-c", self.srv.ini, "status", "--watch", "0.2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = b""
        try:
            deadline = time.monotonic() + 5
            while len(HEADER.findall(out)) < 2 and time.monotonic() < deadline and p.poll() is None:
                if select.select([p.stdout], [], [], 0.2)[0]:
                    out += os.read(p.stdout.fileno(), 65536)
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                rc = p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = None
            out += p.stdout.read()
            err = p.stderr.read()
            p.stdout.close()
            p.stderr.close()
        self.assertGreaterEqual(len(HEADER.findall(out)), 2, out.decode(errors="replace"))
        self.assertIn(b"rates over the last 0.2 s", out)
        self.assertEqual(rc, 0, "status --watch ends with 0 on SIGINT; stderr %r" % err)

    def test_json_carries_what_the_text_shows(self):
        self.assertEqual(self.srv.http("GET", "/no/such/path")[0], 404)
        doc = self.srv.status_json(interval=0.2)
        for k in ("master_pid", "uptime_s", "draining", "reloads", "interval_s", "pools", "other_answers",
                  "other_answers_last", "processes"):
            self.assertIn(k, doc)
        self.assertGreater(doc["interval_s"], 0)
        self.assertEqual(sorted(p["name"] for p in doc["pools"]), ["chaos", "echo", "slow", "victim"])
        for p in doc["pools"]:
            for k in ("name", "handler", "failed", "queue", "queue_depth", "workers", "served", "served_exited",
                      "served_total", "requests_per_s", "errors_per_s", "answers", "answers_last", "latency",
                      "latency_last"):
                self.assertIn(k, p)
            self.assertEqual(sorted(p["workers"]), ["busy", "draining", "ready", "starting"])
            self.assertEqual(list(p["answers"]), CODES)
            self.assertEqual(list(p["answers_last"]), CODES)
            self.assertEqual(sorted(p["latency"]), ["count", "p50", "p90", "p99"])
        self.assertEqual(list(doc["other_answers"]), CODES)
        self.assertGreaterEqual(doc["other_answers"]["404"], 1)
        for p in doc["processes"]:
            for k in ("pid", "role", "pool", "index", "generation", "state", "served", "heartbeat_age_ms",
                      "busy_s", "rss_kb"):
                self.assertIn(k, p)
        # One look (--interval 0): the same document without rates.
        one = self.srv.status_json()
        self.assertEqual(one["interval_s"], 0)
        self.assertIsNone(one["other_answers_last"])
        for p in one["pools"]:
            for k in ("requests_per_s", "errors_per_s", "answers_last", "latency_last"):
                self.assertIsNone(p[k], (p["name"], k))
        # Every pool and worker of the JSON is on the text screen.
        text = self.srv.ctl("status", "--interval", "0.2").stdout
        for p in doc["pools"]:
            self.assertRegex(text, r"(?m)^pool %s .*\n  last 0\.2 s: .*\n  since start: answers .*latency p50 .*\n"
                                   r"  served \d+ in all: \d+ by live workers, \d+ by exited ones$" % p["name"])
        self.assertRegex(text, r"(?m)^other answers .*since start: .*404: \d+")
        for pid in self.srv.workers():
            self.assertRegex(text, r"(?m)^  pid %d\s+worker \d+\s+gen \d+\s+\S" % pid)

    def test_bad_arguments_exit_2_with_usage(self):
        for args in (["--interval", "x"], ["--watch", "-1"], ["--watch", "0"], ["--interval", "-1"],
                     ["--interval"], ["--interval", "1e9"], ["--interval", "0", "--watch"], ["--bogus"]):
            r = self.srv.ctl("status", *args, timeout=10)
            self.assertEqual(r.returncode, 2, "status %s: exit %d %r" % (" ".join(args), r.returncode, r.stderr))
            self.assertIn("usage: ringmasterctl", r.stderr, args)
            self.assertEqual(r.stdout, "", args)


class WatchEnds(ServerTestCase):

    def test_watch_ends_with_1_when_the_master_stops(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}})
        w = Watch(srv, 0.2)
        try:
            w.next_doc(5)
            srv.stop()
            rc = w.p.wait(timeout=10)
            err = w.p.stderr.read().decode()
        finally:
            w.stop()
        self.assertEqual(rc, 1, err)
        self.assertIn("is ringmaster running?", err)
