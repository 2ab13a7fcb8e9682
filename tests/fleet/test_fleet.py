"""
test_fleet.py - three ringmaster hosts in network namespaces behind a real
HAProxy, watched by a real Prometheus (tests/fleet/fleet.py, docs/fleet.md).

For each of `balance roundrobin`, `leastconn` and `source`:
  * the spread the algorithm promises;
  * a host's whole process tree SIGKILLed under load: HAProxy re-sends what
    it can to another host; the failures left (counted) are only requests in
    flight on that host at the instant of the kill, at most one per client;
  * a planned drain (SIGTERM, drain_delay longer than the health check needs
    to mark the host down) under load: no failed request, and HAProxy marked
    the host down before it stopped accepting;
  * a rolling reload of the three hosts (ringmasterctl reload, one by one)
    under load: no failed request.
Monitoring: Prometheus scrapes the three hosts; `up`, request rates per host
and pool, queue depth, ready workers through its HTTP API; the alerting rules
load and evaluate; every panel of the Grafana dashboard returns data.

Measured numbers go to stderr as `fleet-result: ...` lines (and, with
$FLEET_RESULTS, as JSON to that file).
Run by hand (root): see docs/fleet.md.
"""
import http.client
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fleet import (HAPROXY, PROMETHEUS, Load, Rig, leftovers,  # noqa: E402
                   sweep_stale, wait_for)
from rmtest import ReportOnFailure  # noqa: E402

SRCDIR = os.path.abspath(os.environ.get("srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
ALERTS = os.path.join(SRCDIR, "etc", "prometheus", "ringmaster-alerts.yml")
DASHBOARD = os.path.join(SRCDIR, "etc", "grafana", "ringmaster-dashboard.json")

RIG = None
PROM = None
RESULTS = []


def setUpModule():
    global RIG, PROM
    if os.geteuid() != 0:
        raise unittest.SkipTest("the fleet rig needs root (ip netns)")
    for path, pkg in ((HAPROXY, "haproxy"), (PROMETHEUS, "prometheus")):
        if not os.access(path, os.X_OK):
            raise unittest.SkipTest("%s not found: install the Debian package %s" % (path, pkg))
    t0 = time.monotonic()
    RIG = Rig(hosts=3, clients=6)
    try:
        RIG.setup_network()
        RIG.start_hosts()
        PROM = RIG.prometheus(ALERTS)
    except BaseException:
        RIG.close()
        raise
    sys.stderr.write("fleet: rig up in %.1f s (drain_delay %s)\n"
                     % (time.monotonic() - t0, "supported" if RIG.drain_delay_supported else "NOT supported"))


def tearDownModule():
    if RIG is None:
        return
    tag = RIG.tag
    RIG.close()
    left = leftovers(tag)
    for r in RESULTS:
        sys.stderr.write("fleet-result: %s\n" % json.dumps(r, sort_keys=True))
    out = os.environ.get("FLEET_RESULTS")
    if out:
        with open(out, "w") as f:
            json.dump(RESULTS, f, indent=1, sort_keys=True)
    if left:
        raise AssertionError("the rig left namespaces or links behind: %r" % left)


def record(**kw):
    RESULTS.append(kw)
    sys.stderr.write("fleet-result: %s\n" % json.dumps(kw, sort_keys=True))


def one_request(host, port, pool="echo", body=b"x", timeout=15):
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", "/v2/models/%s/infer" % pool, body=body, headers={"Content-Type": "text/plain"})
        r = conn.getresponse()
        data = r.read()
        return r.status, r.getheader("X-Server"), data
    finally:
        conn.close()


class LbCase(ReportOnFailure):
    """One HAProxy for the class (BALANCE), logs printed when a test fails."""
    BALANCE = None
    LOAD_THREADS = 4

    @classmethod
    def setUpClass(cls):
        cls.lb = RIG.haproxy(cls.BALANCE)

    @classmethod
    def tearDownClass(cls):
        cls.lb.cleanup()

    def report_failure(self):
        lines = self.lb.log().splitlines()
        odd = [ln for ln in lines if " 200 " not in ln or " ---- " not in ln]
        sys.stderr.write("\n----- haproxy log (%s): %d lines, the %d not '200 ----' (last 80) -----\n%s\n" % (
            self.id(), len(lines), len(odd), "\n".join(odd[-80:])))
        for h in RIG.hosts + RIG.retired[-2:]:
            if h is not None:
                sys.stderr.write("----- %s (pid %s) stderr -----\n%s" % (h.name, h.pid, h.log()[-3000:]))

    def setUp(self):
        # Every host serving and seen UP, whatever the test before did.
        for i, h in enumerate(RIG.hosts):
            if h is None or not h.running():
                RIG.start_host(i)
        self.lb.wait_all_up()

    def load(self, **kw):
        load = Load(self.lb, threads=self.LOAD_THREADS, **kw)
        self.addCleanup(load.stop)   # also when the test fails half-way
        return load.start()

    def warm(self, load):
        for h in RIG.hosts:
            load.wait_served(h.name, 10)

    def victim(self, load):
        return RIG.hosts[1]

    def wait_flowing(self, load, since, exclude=None):
        """Answers keep coming after since: 10 from every host but exclude."""
        for h in RIG.hosts:
            if h is not exclude:
                load.wait_served(h.name, 10, since=since)

    def lb_counters(self):
        be = self.lb.command("show stat")
        rows = [ln.split(",") for ln in be.splitlines() if ln.startswith("be,BACKEND,")]
        head = be.splitlines()[0].lstrip("# ").split(",")
        row = dict(zip(head, rows[0]))
        return {"retries": int(row["wretr"] or 0), "redispatches": int(row["wredis"] or 0)}

    def finish(self, load, scenario, **extra):
        load.stop()
        total, failures, per = load.counts()
        rec = dict(balance=self.BALANCE, scenario=scenario, answered=total, failed=len(failures),
                   per_host=per, **self.lb_counters())
        rec.update(extra)
        record(**rec)
        return total, failures, per


class FleetCase(LbCase):
    """The failure scenarios, run for each algorithm."""

    def test_sigkill_of_a_host_under_load_fails_no_request(self):
        c0 = self.lb_counters()
        load = self.load()
        self.warm(load)
        victim = self.victim(load)
        i = victim.index
        t_kill = time.monotonic()
        killed = victim.sigkill_tree()
        t_dead = time.monotonic()   # every process of its tree gone (reaped or not a live process)
        self.lb.wait_status(victim.name, "DOWN")
        t_down = time.monotonic()
        # Traffic goes on on the two others for a while.
        self.wait_flowing(load, t_down, exclude=victim)
        # An answer to a request sent before t_dead may still arrive after
        # it (HAProxy relays what the host wrote before it died); a request
        # sent after it cannot have been answered by that host.
        self.assertEqual(load.served_started_after(victim.name, t_dead), [], "a dead host answered")
        RIG.start_host(i)
        self.lb.wait_status(victim.name, "UP")
        t_up = time.monotonic()
        load.wait_served(victim.name, 10, since=t_up)
        total, failures, per = self.finish(load, "sigkill", host=victim.name, processes_killed=killed,
                                           detect_s=round(t_down - t_kill, 3), up_s=round(t_up - t_kill, 3),
                                           failed_at_s=[round(f[0] - t_kill, 3) for f in load.counts()[1]],
                                           retries_during=self.lb_counters()["retries"] - c0["retries"])
        self.check_after_kill(load, victim)
        # A request in flight on the host at the instant of the kill may
        # fail: HAProxy 2.6 logs it SH-- (server aborted before its headers)
        # with 0 retries, despite `retry-on empty-response`, and closes the
        # client's keep-alive connection without an answer, as a server
        # closing an idle connection does, for the client to re-send it
        # (RFC 9112 9.3.1; a fresh connection gets a 502). So a SIGKILL costs
        # at most the requests in flight on that host then: one per client
        # connection, all before it was marked down (docs/fleet.md).
        for t, _i, what in failures:
            self.assertRegex(what, r"RemoteDisconnected|ConnectionResetError",
                             "a failure other than a connection closed without an answer")
            self.assertLess(t, t_down, "a request failed after HAProxy had marked the host down")
        self.assertLessEqual(len(failures), self.LOAD_THREADS,
                             "more failures than requests in flight: %r" % failures)

    def check_after_kill(self, load, victim):
        pass

    def test_planned_drain_under_load_fails_no_request(self):
        load = self.load()
        self.warm(load)
        victim = self.victim(load)
        i = victim.index
        t_term = time.monotonic()
        victim.signal(signal.SIGTERM)
        self.lb.wait_status(victim.name, "DOWN", timeout=10)
        t_down = time.monotonic()
        # The master exits by itself (drain_delay, then the graceful stop).
        victim.proc.wait(timeout=30)
        t_exit = time.monotonic()
        victim.stop()          # its tree must be gone too (no second signal: it has exited)
        served_draining = load.served_by(victim.name, since=t_term)
        self.wait_flowing(load, t_exit, exclude=victim)
        RIG.start_host(i)
        self.lb.wait_status(victim.name, "UP")
        load.wait_served(victim.name, 10, since=time.monotonic())
        total, failures, _ = self.finish(load, "drain", host=victim.name, marked_down_s=round(t_down - t_term, 3),
                                         exited_s=round(t_exit - t_term, 3), answered_while_draining=served_draining,
                                         drain_delay_supported=RIG.drain_delay_supported)
        self.assertEqual(failures, [], "%d of %d requests failed" % (len(failures), total + len(failures)))
        self.assertTrue(RIG.drain_delay_supported, "this ringmaster has no drain_delay key")
        self.assertLess(t_down, t_exit, "HAProxy marked the host down only after it had exited")

    def test_rolling_reload_of_all_hosts_fails_no_request(self):
        load = self.load()
        self.warm(load)
        t0 = time.monotonic()
        for h in RIG.hosts:
            r = h.ctl("reload")
            self.assertEqual(r.returncode, 0, "%s: ringmasterctl reload: %s%s" % (h.name, r.stdout, r.stderr))
            self.wait_flowing(load, time.monotonic())
        took = time.monotonic() - t0
        total, failures, _ = self.finish(load, "rolling_reload", seconds=round(took, 2))
        self.assertEqual(failures, [], "%d of %d requests failed" % (len(failures), total + len(failures)))


class RoundRobinTest(FleetCase):
    BALANCE = "roundrobin"

    def rotation(self):
        """30 sequential requests on one connection: the hosts in order, and
        whether a host changed state (a health check flapped) meanwhile."""
        def changes():
            return {n: (r["status"], r["chkdown"], r["lastchg"]) for n, r in self.lb.stats().items()}
        before = changes()
        seq = []
        conn = http.client.HTTPConnection("127.0.0.1", self.lb.port, timeout=10)
        try:
            for n in range(30):
                conn.request("POST", "/v2/models/echo/infer", body=b"rr %d" % n)
                r = conn.getresponse()
                self.assertEqual((r.status, r.read()), (200, b"rr %d" % n))
                seq.append(r.getheader("X-Server"))
        finally:
            conn.close()
        after = changes()
        stable = all(before[n][0] == after[n][0] == "UP" and before[n][1] == after[n][1] and
                     int(after[n][2]) >= int(before[n][2]) for n in before)
        return seq, stable

    def test_spread_is_strict_rotation(self):
        # A host marked down and up again during the sequence (a health
        # check timing out on a loaded machine) changes the rotation: such a
        # sequence proves nothing either way and is taken again (3 tries).
        for attempt in range(3):
            seq, stable = self.rotation()
            if stable:
                break
            self.lb.wait_all_up()
        self.assertTrue(stable, "a host changed state during each of 3 sequences")
        per = {s: seq.count(s) for s in set(seq)}
        record(balance=self.BALANCE, scenario="spread", requests=30, per_host=per, attempts=attempt + 1)
        self.assertEqual(per, {"h0": 10, "h1": 10, "h2": 10}, seq)
        for k in range(len(seq) - 2):
            self.assertEqual(len(set(seq[k:k + 3])), 3, "not a rotation: %r" % seq)


class LeastConnTest(FleetCase):
    BALANCE = "leastconn"

    def test_spread_avoids_hosts_with_requests_in_flight(self):
        # Two slow requests (chaos: sleep 10 s, far longer than the 15 short
        # requests and the stats polls take) occupy two hosts; leastconn
        # sends every short request meanwhile to the third, idle one.
        slow = []

        def slow_request(k):
            slow.append(one_request("127.0.0.1", self.lb.port, "chaos", b"sleep 10000", timeout=30))
        threads = [threading.Thread(target=slow_request, args=(k,)) for k in range(2)]
        threads[0].start()
        wait_for(lambda: sum(int(r["scur"] or 0) for r in self.lb.stats().values()) == 1, 5, "1 slow request")
        threads[1].start()
        busy = wait_for(lambda: [n for n, r in self.lb.stats().items() if int(r["scur"] or 0) > 0]
                        if sum(int(r["scur"] or 0) for r in self.lb.stats().values()) == 2 else None,
                        5, "2 slow requests in flight")
        self.assertEqual(len(busy), 2, "leastconn put both slow requests on one host")
        idle = ({"h0", "h1", "h2"} - set(busy)).pop()
        seq = []
        for n in range(15):
            # HAProxy counts a request until its stream is released, a moment
            # after the client has the answer: wait for that (else the idle
            # host still has 1, as many as the busy ones, and a tie is fair game).
            wait_for(lambda: int(self.lb.stats()[idle]["scur"] or 0) == 0, 5, "%s idle" % idle, interval=0.005)
            st, srv, body = one_request("127.0.0.1", self.lb.port, "echo", b"lc %d" % n)
            self.assertEqual((st, body), (200, b"lc %d" % n))
            seq.append(srv)
        for t in threads:
            t.join(timeout=30)
        record(balance=self.BALANCE, scenario="spread", slow_on=busy, short_requests=seq.count(idle),
               short_total=len(seq))
        self.assertEqual(seq, [idle] * 15, "busy hosts %r" % busy)
        self.assertEqual([s[0] for s in slow], [200, 200])


class SourceTest(FleetCase):
    BALANCE = "source"
    LOAD_THREADS = 6   # one per client namespace: 6 source addresses

    def load(self):
        return super().load(netns=RIG.client_ns)

    def mapping(self, load, until=None):
        """{thread (= client): [server, ...]} in order."""
        with load.lock:
            out = {}
            for t, i, s, _t0 in load.answers:
                if until is None or t < until:
                    out.setdefault(i, []).append(s)
            return out

    def warm(self, load):
        wait_for(lambda: len(self.mapping(load)) == self.LOAD_THREADS and
                 all(len(v) >= 10 for v in self.mapping(load).values()), 15, "every client answered 10 times")

    def wait_flowing(self, load, since, exclude=None):
        """Every client (source address) gets 5 answers after since."""
        def each():
            with load.lock:
                n = {}
                for t, i, _s, _t0 in load.answers:
                    if t >= since:
                        n[i] = n.get(i, 0) + 1
            return len(n) == self.LOAD_THREADS and min(n.values()) >= 5
        wait_for(each, 15, "5 answers for every client")

    def victim(self, load):
        # The host with most clients (so that the kill moves some).
        first = {i: v[0] for i, v in self.mapping(load).items()}
        names = [first[i] for i in first]
        name = max(sorted(set(names)), key=names.count)
        self._before = first
        return RIG.hosts[int(name[1:])]

    def check_after_kill(self, load, victim):
        # Consistent hashing: only the dead host's clients moved, and they
        # came back to it; the others never changed host.
        for i, servers in self.mapping(load).items():
            home = self._before[i]
            if home != victim.name:
                self.assertEqual(set(servers), {home}, "client %d moved though its host lived" % i)
            else:
                self.assertEqual(servers[-1], home, "client %d did not come back to its host" % i)

    def test_spread_one_address_always_reaches_the_same_host(self):
        load = self.load()
        self.warm(load)
        load.stop()
        m = self.mapping(load)
        hosts = {i: sorted(set(v)) for i, v in m.items()}
        record(balance=self.BALANCE, scenario="spread", clients={RIG.client_addr[i]: v for i, v in hosts.items()},
               per_host=load.counts()[2])
        for i, v in hosts.items():
            self.assertEqual(len(v), 1, "client %s reached %r" % (RIG.client_addr[i], v))
        self.assertGreaterEqual(len({v[0] for v in hosts.values()}), 2, "6 addresses all hashed to one host")


# ------------------------------------------------------------------ monitoring

def promql_regex(text):
    """text as a regex matching only itself, inside a PromQL double-quoted string."""
    return re.escape(text).replace("\\", "\\\\")


def substitute(expr, instance, pool):
    """A panel's query as Grafana would send it with these variables chosen."""
    for k, v in (("$__rate_interval", "5s"), ("${__rate_interval}", "5s"), ("$__interval", "2s"),
                 ("${__interval}", "2s"), ("$__range", "1m"), ("${__range}", "1m"),
                 ("${instance}", promql_regex(instance)), ("$instance", promql_regex(instance)),
                 ("${pool}", pool), ("$pool", pool), ("${job}", "ringmaster"), ("$job", "ringmaster")):
        expr = expr.replace(k, v)
    return expr


def panels(doc):
    for p in doc.get("panels", []):
        yield p
        for q in p.get("panels", []):   # collapsed rows
            yield q


class MonitoringTest(LbCase):
    BALANCE = "roundrobin"

    def test_prometheus_scrapes_every_host_and_every_panel_has_data(self):
        load = self.load()
        try:
            self.warm(load)
            inst = ["%s:8080" % a for a in RIG.host_addr]

            def up():
                r = PROM.query('up{job="ringmaster"}')
                return sorted(x["metric"]["instance"] for x in r if x["value"][1] == "1") == sorted(inst)
            wait_for(up, 20, "up == 1 for the three hosts", interval=0.2)

            def rates():
                r = PROM.query('sum by (instance, pool) (rate(ringmaster_requests_total{outcome="ok"}[5s]))')
                got = {(x["metric"]["instance"], x["metric"]["pool"]): float(x["value"][1]) for x in r}
                return got if all(got.get((i, "echo"), 0) > 0 for i in inst) and \
                    all((i, "chaos") in got for i in inst) else None
            got = wait_for(rates, 20, "request rates per host and pool", interval=0.2)
            record(scenario="prometheus_rates", rates={"%s/%s" % k: round(v, 1) for k, v in got.items()})

            depth = PROM.query("ringmaster_queue_depth")
            self.assertEqual(sorted((x["metric"]["instance"], x["metric"]["pool"]) for x in depth),
                             sorted((i, p) for i in inst for p in ("chaos", "echo")))
            ready = PROM.query('sum by (instance, pool) (ringmaster_workers{state=~"ready|busy"})')
            self.assertEqual(len(ready), 6)
            for x in ready:
                self.assertGreaterEqual(float(x["value"][1]), 1, x)

            # The drain tests before, as Prometheus saw them: each drained host
            # was scraped with ringmaster_draining 1 (it drains for 4 s, four
            # scrapes), and no other host was.
            drained = {"%s:8080" % RIG.host_addr[int(r["host"][1:])] for r in RESULTS if r.get("scenario") == "drain"}
            if drained:
                r = PROM.query("max_over_time(ringmaster_draining[10m]) == 1")
                self.assertEqual({x["metric"]["instance"] for x in r}, drained,
                                 "the drained hosts, as scraped with ringmaster_draining 1")
            # A reload of each host, here (a host reloaded in a test before
            # may have been killed before its next scrape), seen by Prometheus.
            before = {x["metric"]["instance"]: float(x["value"][1])
                      for x in PROM.query('ringmaster_reloads_total{result="ok"}')}
            for h in RIG.hosts:
                r = h.ctl("reload")
                self.assertEqual(r.returncode, 0, "%s: ringmasterctl reload: %s%s" % (h.name, r.stdout, r.stderr))

            def reloads_seen():
                now = {x["metric"]["instance"]: float(x["value"][1])
                       for x in PROM.query('ringmaster_reloads_total{result="ok"}')}
                return all(now.get(i, 0) >= before.get(i, 0) + 1 for i in inst)
            wait_for(reloads_seen, 15, "Prometheus to count a reload on every host", interval=0.2)

            # The alerting rules are loaded and evaluate without error.
            groups = PROM.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            self.assertGreaterEqual(len(rules), 5)
            for r in rules:
                self.assertEqual(r.get("health"), "ok", r)

            # Every panel of the dashboard: its queries, variables chosen as a
            # user would (one host, the echo pool), must return data.
            with open(DASHBOARD) as f:
                doc = json.load(f)
            queries = []
            for p in panels(doc):
                for t in p.get("targets", []):
                    if t.get("expr"):
                        queries.append((p.get("title"), substitute(t["expr"], inst[0], "echo")))
            self.assertGreaterEqual(len(queries), 10)
            empty = []
            deadline = time.monotonic() + 15
            for title, q in queries:
                self.assertNotIn("$", q, "unsubstituted variable in panel %r" % title)
                while True:
                    res = PROM.query(q)
                    if res or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                if not res:
                    empty.append((title, q))
            record(scenario="dashboard", panels=len(list(panels(doc))), queries=len(queries), empty=len(empty))
            self.assertEqual(empty, [], "panels without data")
        finally:
            load.stop()


class ZzCleanupTest(unittest.TestCase):
    def test_sweep_removes_what_a_dead_run_left(self):
        """A namespace, a veth and a temp dir named as by a run whose pid is
        gone are swept (also SIGKILLed by pid: what runs in such a namespace
        or with such a temp dir in its command line)."""
        import subprocess
        dead = 4194303   # above any pid_max default in use: never a live pid here
        while os.path.exists("/proc/%d" % dead):
            dead -= 1
        ns, link = "rmfl%d-h0" % dead, "rmfl%dh0" % dead
        subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", link, "type", "veth", "peer", "name", link + "p"], check=True)
        tmp = tempfile.mkdtemp(prefix="rmfl%d-haproxy-" % dead)
        removed = sweep_stale()
        self.assertIn(ns, removed)
        self.assertIn(link, removed)
        self.assertIn(tmp, removed)
        self.assertFalse(os.path.exists(tmp))
        self.assertEqual(leftovers("rmfl%d" % dead), [])


def load_tests(loader, standard_tests, pattern):
    # In this order: the algorithms, then monitoring (Prometheus has scraped
    # the kills, drains and reloads by then), then the sweep.
    suite = unittest.TestSuite()
    for cls in (RoundRobinTest, LeastConnTest, SourceTest, MonitoringTest, ZzCleanupTest):
        suite.addTests(loader.loadTestsFromTestCase(cls))
    return suite


if __name__ == "__main__":
    unittest.main()
