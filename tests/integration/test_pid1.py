"""
test_pid1.py - ringmaster as PID 1 of a PID namespace, as in a container
(no init, no systemd; deploy/container, deploy/kubernetes).

The master is started as `unshare --pid --fork --mount-proc ringmaster -c INI`:
PID 1 of a new PID namespace with its own /proc, like a container's entry
point. A pool's handler (tests/handlers/orphans.so) leaves orphans behind
on every request: a double-forked grandchild re-parented to PID 1 at once,
and a child that outlives its worker (max_requests = 1 recycles the worker
after each request). PID 1 must reap every one of them: the test scans the
namespace's processes from outside (every /proc entry whose ns/pid is the
master's) and fails on a zombie that stays, or on orphans that were never
re-parented to the master (then the test proved nothing).

Then SIGTERM, as a container runtime or the kubelet sends it from outside
the namespace, and, in a second test, from inside it (`kill -TERM 1` run in
the namespace: the kernel drops a signal sent to a namespace's init from
inside unless init handles it; ringmaster blocks its signals and reads them
from a signalfd, so it must get it): a request in flight is answered, the
master exits 0 after a graceful stop. With drain_delay, readiness turns 503
at once and requests are still served during the delay.

Needs root (a new PID namespace), util-linux's unshare and nsenter.
"""
import os
import signal
import subprocess
import threading
import time
import unittest

from harness import RINGMASTER, RINGMASTERCTL, Daemon, proc_stat, proc_title, wait_for

ORPHANS_SO = os.path.join(os.path.dirname(RINGMASTER), "tests", "handlers", "orphans.so")
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]
# A zombie may exist between a process's exit and the master's next
# waitpid() (its SIGCHLD wakes the master at once); one that stays this long
# was not reaped.
ZOMBIE_MAX_S = 1.0


def can_unshare_pid():
    try:
        return subprocess.run(UNSHARE + ["true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def status_fields(pid):
    """{key: value} of /proc/PID/status, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return None


def namespace_procs(ns):
    """{pid (as seen from here): (state, ppid, comm, NSpid)} of the processes in PID namespace ns."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if ns_of(pid) != ns:
            continue
        st = status_fields(pid)
        if st is None:
            continue
        out[pid] = (st["State"].split()[0], int(st["PPid"]), st["Name"], st.get("NSpid", ""))
    return out


@unittest.skipUnless(os.path.exists(ORPHANS_SO), "tests/handlers/orphans.so is not built")
class Pid1(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not can_unshare_pid():
            raise unittest.SkipTest("cannot make a PID namespace here (unshare --pid needs root)")

    def setUp(self):
        keys = {"shutdown_timeout": "5s", "drain_delay": "4s"}
        self.d = Daemon(pools={"orphans": {"handler": ORPHANS_SO, "workers": 2, "max_requests": 1},
                               "echo": {"handler": "echo", "workers": 2}},
                        tmp_prefix="rm-pid1-", **keys)
        self.addCleanup(self.cleanup)
        self.d.start(wrapper=UNSHARE)
        # unshare forked the namespace's PID 1: ringmaster, its only child.
        self.unshare_pid = self.d.pid
        self.master = wait_for(self.pid1, 5.0, "the namespace's PID 1")
        self.ns = ns_of(self.master)
        self.assertNotEqual(self.ns, ns_of(os.getpid()))

    def cleanup(self):
        try:
            # In case a test failed before its stop: ringmaster first (unshare
            # ignores SIGTERM), then the Daemon's own checks of the session.
            st = proc_stat(self.master) if getattr(self, "master", None) else None
            if st and st[1] not in ("Z", "X"):
                os.kill(self.master, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if getattr(self, "_outcome", None) and any(e for _, e in getattr(self._outcome, "errors", [])):
            print("\n----- ringmaster log -----\n%s----- end -----" % self.d.log())
        self.d.cleanup()

    def pid1(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.unshare_pid, self.unshare_pid)) as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            return None
        for pid in kids:
            st = status_fields(pid)
            if st and st.get("NSpid", "").split()[-1:] == ["1"] and (proc_title(pid) or "").startswith("ringmaster: master"):
                return pid
        return None

    def infer(self, pool, body, timeout=10.0):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=timeout)
        try:
            conn.request("POST", "/v2/models/%s/infer" % pool, body=body)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def ready_status(self):
        try:
            return self.d.http_status("/v2/health/ready", 1.0)
        except OSError:
            return None

    def test_pid1_reaps_every_orphan_and_zombie(self):
        seen = {}          # rm-orphan pid -> [first seen, parent pids seen]
        zombies = {}       # pid -> (first seen as zombie, last seen as zombie)
        stop = threading.Event()

        def scan():
            while not stop.is_set():
                now = time.monotonic()
                for pid, (state, ppid, comm, _nspid) in namespace_procs(self.ns).items():
                    if comm == "rm-orphan":
                        seen.setdefault(pid, [now, set()])[1].add(ppid)
                    if state == "Z":
                        first = zombies.get(pid, (now, now))[0]
                        zombies[pid] = (first, now)
                stop.wait(0.005)
        t = threading.Thread(target=scan, daemon=True)
        t.start()
        try:
            n = 20
            for i in range(n):
                status, body = self.infer("orphans", b"fork")
                self.assertEqual(status, 200, body)
                self.assertEqual(self.infer("echo", b"x%d" % i), (200, b"x%d" % i))
            # Every orphan lives at most 300 ms; then none may be left, not even as a zombie.
            wait_for(lambda: not any(c == "rm-orphan" for _, _, c, _ in namespace_procs(self.ns).values()),
                     10.0, "every rm-orphan process of the namespace gone (reaped)")
            time.sleep(0.2)
        finally:
            stop.set()
            t.join()
        left = {p: v for p, v in namespace_procs(self.ns).items() if v[0] == "Z"}
        self.assertEqual(left, {}, "zombies left in the namespace")
        stuck = {p: round(last - first, 3) for p, (first, last) in zombies.items() if last - first > ZOMBIE_MAX_S}
        self.assertEqual(stuck, {}, "zombies that stayed over %.1f s (pid: seconds)" % ZOMBIE_MAX_S)
        # The test proved something: orphans were made and PID 1 adopted them.
        self.assertGreaterEqual(len(seen), n, "the handler's orphans were not seen (%d)" % len(seen))
        adopted = [p for p, (_, parents) in seen.items() if self.master in parents]
        self.assertGreaterEqual(len(adopted), n // 2,
                                "orphans re-parented to PID 1 (the master): %d of %d" % (len(adopted), len(seen)))
        longest = max([last - first for first, last in zombies.values()] or [0])
        print("\n  %d orphans, %d re-parented to PID 1 (the master), %d zombies seen, longest %.0f ms"
              % (len(seen), len(adopted), len(zombies), longest * 1000), end=" ")
        # Only ringmaster's own processes are left: master, gateway, workers.
        for pid, (state, _ppid, comm, _) in namespace_procs(self.ns).items():
            self.assertTrue((proc_title(pid) or "").startswith("ringmaster: "),
                            "a process of the namespace that is not ringmaster's: %d %s %s" % (pid, state, comm))
        # ringmasterctl works inside the namespace (kubectl exec POD -- ringmasterctl status).
        r = subprocess.run(["nsenter", "-t", str(self.master), "-p", "-m", RINGMASTERCTL, "-c", self.d.ini,
                            "status", "--interval", "0"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("orphans", r.stdout)
        self.stop_and_check(lambda: os.kill(self.master, signal.SIGTERM))

    def test_sigterm_from_inside_the_namespace_stops_gracefully(self):
        # `kill -TERM 1` by a process of the namespace: without a handler the
        # kernel would drop it; ringmaster's blocked signals + signalfd take it.
        def kill_from_inside():
            r = subprocess.run(["nsenter", "-t", str(self.master), "-p", "-m", "sh", "-c", "kill -TERM 1"],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.stop_and_check(kill_from_inside)

    def test_ringmasterctl_stop_from_outside_the_namespace_follows_the_stop(self):
        # The pid file says 1 (the master's pid in its namespace); from out
        # here ringmasterctl must still find the master (the control
        # socket's peer, as the kernel names it here) and return when it
        # has stopped, not watch this namespace's PID 1.
        with open(os.path.join(self.d.tmp, "run", "ringmaster.pid")) as f:
            self.assertEqual(f.read().split(), ["1"])
        ctl = {}

        def ctl_stop():
            ctl["proc"] = subprocess.Popen([RINGMASTERCTL, "-c", self.d.ini, "stop"], stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
        self.stop_and_check(ctl_stop)
        out, err = ctl["proc"].communicate(timeout=10)
        self.assertEqual(ctl["proc"].returncode, 0, out + err)
        self.assertIn("stop: stopped", out)

    def stop_and_check(self, send_sigterm):
        """A request in flight over the SIGTERM is answered; readiness is
        503 at once and requests are served during drain_delay; the master
        (PID 1) exits 0, which unshare passes on."""
        self.assertEqual(self.ready_status(), 200)
        slow = {}

        def slow_request():
            try:
                slow["answer"] = self.infer("orphans", b"sleep 1000", timeout=15)
            except Exception as e:  # noqa: BLE001 (reported below)
                slow["answer"] = e
        t = threading.Thread(target=slow_request)
        t.start()
        # The slow request is running once a worker is busy with it: wait for
        # its handler to have started (no sleep as synchronisation).
        wait_for(lambda: self.busy_worker(), 5.0, "a worker busy with the slow request")
        t0 = time.monotonic()
        send_sigterm()
        served_during_drain = 0
        # t0 is taken before send_sigterm, which may start nsenter and sh:
        # "at once" is allowed their start-up on a loaded machine.
        wait_for(lambda: self.ready_status() == 503, 2.0, "readiness 503 right after SIGTERM")
        self.assertLess(time.monotonic() - t0, 2.0)
        # drain_delay 4 s: new requests are still answered meanwhile (asked
        # until 2.5 s, well inside it).
        while time.monotonic() - t0 < 2.5:
            self.assertEqual(self.infer("echo", b"drain"), (200, b"drain"))
            served_during_drain += 1
        t.join(15)
        self.assertEqual(slow.get("answer"), (200, b"ok slept 1000 ms"), "the request in flight over SIGTERM")
        try:
            rc = self.d.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.fail("ringmaster (PID 1) did not stop within 15 s of SIGTERM")
        self.assertEqual(rc, 0, "exit status of ringmaster as PID 1 (through unshare)")
        self.assertIn("stopped", self.d.log())
        self.assertGreater(served_during_drain, 0)
        # The graceful stop waited for drain_delay.
        self.assertGreaterEqual(time.monotonic() - t0, 4.0)
        # PID 1 is gone, so is its namespace: nothing of it may be left.
        self.assertEqual(namespace_procs(self.ns), {})

    def busy_worker(self):
        """A worker of pool orphans is running a request (its /metrics gauge)."""
        import http.client
        import re
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=2)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        m = re.search(r'^ringmaster_workers\{pool="orphans",state="busy"\} (\S+)', text, re.M)
        return m is not None and float(m.group(1)) >= 1

if __name__ == "__main__":
    unittest.main()
