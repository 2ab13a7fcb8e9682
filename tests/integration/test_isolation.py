"""Shared memory as a trust boundary (docs/architecture.md, "trust model").

A hostile handler (tests/handlers/attack.so) serves pool "attacker" next to
an echo pool "victim" under load. Each test runs one attack and then
requires, every time:
  - the master's and the gateways' pids are unchanged (nobody else died);
  - the victim pool lost no request (every answer byte-exact) and its
    /v2/models/victim/ready never said anything but 200;
  - no client ever received bytes from outside its own answer (the
    attacker's clients get the attack's report, an echo of their own body,
    or a JSON error; never a victim's payload);
  - the attacked pool serves again within seconds.
Also: the master never runs handler code (a constructor that crashes or
hangs cannot kill or hang `ringmaster -t` or start-up), workers run in their
own process group with PR_SET_NO_NEW_PRIVS, and `user =` drops privileges.
"""
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import RINGMASTER, LoadLoop, ServerTestCase, alive, wait_for

HANDLERS = os.path.join(os.path.dirname(RINGMASTER), "tests", "handlers")
ATTACK_SO = os.path.join(HANDLERS, "attack.so")
EVIL_CTOR_SO = os.path.join(HANDLERS, "evil_ctor.so")

SERVE_AGAIN_S = 10.0


class ReadyProbe:
    """GET /v2/models/POOL/ready in a loop; counts answers other than 200."""

    def __init__(self, srv, pool):
        self.srv, self.pool = srv, pool
        self.bad = []
        self.n = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_ev.is_set():
            try:
                st, _, body = self.srv.http("GET", "/v2/models/%s/ready" % self.pool, timeout=5)
            except Exception as e:  # noqa: BLE001 - every failure counts
                st, body = None, repr(e).encode()
            self.n += 1
            if st != 200:
                self.bad.append((st, body[:200]))
            time.sleep(0.01)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join(timeout=10)


class Isolation(ServerTestCase):

    def start_pair(self, **attacker_keys):
        keys = {"handler": ATTACK_SO, "workers": 2, "request_timeout": "5s", "max_attempts": 2}
        keys.update(attacker_keys)
        return self.server(pools={"victim": {"handler": "echo", "workers": 2}, "attacker": keys},
                           heartbeat_interval="50ms", heartbeat_timeout="1s")

    def assert_attacker_answer_clean(self, status, body, sent=None):
        """An attacker's answer: the attack's JSON report, an echo of what
        was sent, or a JSON error; never another client's bytes."""
        self.assertNotIn(b"victim-payload", body, "an attacker's client got a victim's bytes")
        if sent is not None and status == 200 and body == sent:
            return
        try:
            doc = json.loads(body)
        except ValueError:
            self.fail("attacker answer %d is neither an echo nor JSON: %r" % (status, body[:200]))
        self.assertTrue("attack" in doc or "error" in doc, doc)

    def serves_again(self, srv):
        """Until the attacker pool echoes again; returns the seconds it took."""
        t0 = time.monotonic()
        n = [0]

        def echoed():
            n[0] += 1
            body = b"hello %d" % n[0]
            try:
                st, _, got = srv.infer("attacker", body, timeout=5)
            except OSError:
                return False
            self.assert_attacker_answer_clean(st, got, body)
            return st == 200 and got == body
        wait_for(echoed, SERVE_AGAIN_S, what="the attacked pool to serve again", interval=0.05)
        return time.monotonic() - t0

    def run_attack(self, attack, srv=None, after=None, hold=0.0):
        srv = srv or self.start_pair()
        master = srv.pid
        gateways = srv.gateways()
        load = LoadLoop(srv, pool="victim", threads=2, fresh=False, body=b"victim-payload").start()
        with ReadyProbe(srv, "victim") as probe:
            time.sleep(0.3)
            st, _, body = srv.infer("attacker", attack.encode(), timeout=15)
            self.assert_attacker_answer_clean(st, body)
            if after:
                after(st, body)
            time.sleep(hold)  # the attack goes on in the background meanwhile
            took = self.serves_again(srv)
            time.sleep(0.3)
        load.stop()
        ok, statuses, errors, bad = load.snapshot()
        self.assertEqual(errors, [], "victim requests failed")
        self.assertEqual(bad, [], "victim answers wrong")
        self.assertGreater(ok, 50, "too little victim traffic to prove anything")
        self.assertEqual(probe.bad, [], "victim readiness said not ready")
        self.assertTrue(srv.running(), "the master died")
        self.assertEqual(srv.pid, master)
        self.assertEqual(srv.gateways(), gateways, "a gateway died or was replaced")
        print("\n  %s: attacker answered %d, served again after %.2f s; victim %d ok, %d readiness probes"
              % (attack, st, took, ok, probe.n), end=" ")
        return st, body

    # ---- the attacks

    def test_random_bytes_over_every_mapping_heals_only_the_attacked_pool(self):
        srv = self.start_pair()
        self.run_attack("scribble", srv)
        log = srv.log()
        self.assertIn("pool attacker: its shared memory is inconsistent", log)
        self.assertNotIn("pool victim: its shared memory", log)
        self.assertGreaterEqual(srv.metric("ringmaster_pool_heals_total", pool="attacker"), 1)
        self.assertEqual(srv.metric("ringmaster_pool_heals_total", pool="victim"), 0)

    def test_zeroing_every_writable_mapping(self):
        self.run_attack("zero")

    def test_thread_flipping_words_for_seconds(self):
        self.run_attack("flip 2000", hold=2.5)

    def test_linear_overflow_past_the_answer_buffer_faults_in_the_offender(self):
        def after(st, body):
            self.assertEqual(st, 502, body)  # every attempt's worker died on the guard page
        # 2 MiB past a 64 KiB answer buffer: past every answer area of the
        # pool (4 slots), into the guard page after them.
        srv = self.start_pair(queue_depth=4, max_response_size="64KiB")
        self.run_attack("overflow 2097152", srv, after)
        self.assertIn("signal 11", srv.log())

    def test_targeted_writes_on_header_and_descriptors_all_fault(self):
        def after(st, body):
            self.assertEqual(st, 200, body)
            doc = json.loads(body)
            self.assertEqual(doc["landed"], 0, doc)
            self.assertGreater(doc["faulted"], 1000, doc)
            self.assertEqual(doc["mprotected"], 0, "mprotect made the master's memory writable")
        self.run_attack("targeted", after=after)

    def test_worker_sees_only_its_own_pool(self):
        def after(st, body):
            self.assertEqual(st, 200, body)
            maps = json.loads(body)["maps"]
            names = {m.split()[0] for m in maps}
            self.assertNotIn("memfd:ringmaster-gw", names, maps)
            pools = {n for n in names if n.startswith("memfd:ringmaster-pool-")}
            self.assertEqual(len(pools), 1, "a worker can address another pool: %s" % maps)
            self.assertIn("memfd:ringmaster-ctrl ro", maps)
            self.assertNotIn("memfd:ringmaster-ctrl rw", maps)
        self.run_attack("maps", after=after)

    def test_grandchild_flipping_after_its_worker_is_killed_dies_with_it(self):
        srv = self.start_pair()
        info = {}

        def after(st, body):
            self.assertEqual(st, 200, body)
            doc = json.loads(body)
            info.update(doc)
            self.assertTrue(alive(doc["pid"]), "the grandchild did not start")
            os.kill(doc["worker"], signal.SIGKILL)
            wait_for(lambda: not alive(doc["pid"]), 3, what="the grandchild to die with its worker")
        self.run_attack("grandchild 8000", srv, after)
        self.assertFalse(alive(info["pid"]))


class NoHandlerCodeInTheMaster(ServerTestCase):

    def run_t(self, how, timeout=30):
        ini = os.path.join(self.tmp, "evil.ini")
        with open(ini, "w") as f:
            f.write("[ringmaster]\nlisten = 127.0.0.1:1\nruntime_dir = %s\n[pool e]\nhandler = %s\n"
                    % (os.path.join(self.tmp, "run"), EVIL_CTOR_SO))
        env = dict(os.environ, EVIL_CTOR=how)
        t0 = time.monotonic()
        r = subprocess.run([RINGMASTER, "-t", "-c", ini], env=env, capture_output=True, text=True, timeout=timeout)
        return r, time.monotonic() - t0

    def setUp(self):
        super().setUp()
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="rm-iso-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))

    def test_constructor_that_crashes_fails_the_check_not_ringmaster(self):
        r, took = self.run_t("crash")
        self.assertEqual(r.returncode, 1, r.stderr)
        # Under ASan (.ci/sanitizers.sh) the child reports the SEGV itself
        # and exits 1 instead of dying of it.
        if "ASAN_OPTIONS" not in os.environ:
            self.assertIn("crashed (signal 11", r.stderr)
        self.assertLess(took, 5)

    def test_constructor_that_starts_a_thread_passes(self):
        r, _ = self.run_t("thread")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_constructor_that_hangs_is_killed_after_the_timeout(self):
        r, took = self.run_t("loop")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("took over 10 s", r.stderr)
        self.assertLess(took, 20)


class Hardening(ServerTestCase):

    @staticmethod
    def status_field(pid, name):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split()[1:]
        return None

    def test_workers_in_their_own_process_group_without_new_privileges(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2}})
        for pid in srv.workers("echo"):
            self.assertEqual(os.getpgid(pid), pid, "worker %d is not its own process group" % pid)
            self.assertEqual(self.status_field(pid, "NoNewPrivs"), ["1"])
        for pid in srv.gateways().values():
            self.assertEqual(self.status_field(pid, "NoNewPrivs"), ["1"])

    @unittest.skipUnless(os.geteuid() == 0, "user = needs ringmaster to start as root")
    def test_pool_user_drops_privileges_after_setup(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1, "user": "nobody"}})
        st, _, body = srv.infer("echo", b"hi")
        self.assertEqual((st, body), (200, b"hi"))
        (pid,) = srv.workers("echo")
        uids = self.status_field(pid, "Uid")
        self.assertEqual(set(uids), {"65534"}, uids)
        for gw in srv.gateways().values():
            self.assertEqual(self.status_field(gw, "Uid")[0], "0")


if __name__ == "__main__":
    unittest.main()
