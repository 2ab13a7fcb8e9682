#!/usr/bin/env python3
"""systemd protocol tests, without systemd as PID 1 (never start systemd).

A fake NOTIFY_SOCKET (path and @abstract) records every datagram with the
sender's credentials (SO_PASSCRED), so each message is checked to come from
the master's pid. Socket activation goes through systemd-socket-activate and
through a test-held socket passed as fd 3 with LISTEN_PID set to the daemon.
The daemon is started and stopped by the shared launcher
(tests/pylib/rmtest.py: Daemon), with the systemd variables passed in.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))

from rmtest import RINGMASTERCTL as CTL  # noqa: E402
from rmtest import Daemon, children, free_port, tcp_sockets, wait_for  # noqa: E402


def echo_daemon(workers=1, port=None):
    """The daemon these tests run: one echo pool, 50 ms heartbeats."""
    return Daemon(pools={"echo": {"handler": "echo", "workers": workers, "startup_timeout": "5s"}},
                  port=port, tmp_prefix="rm-sd-", heartbeat_interval="50ms", heartbeat_timeout="1s")


def set_workers(d, workers):
    d.pools["echo"]["workers"] = workers
    d.write_ini()


def get(port, path, timeout=2.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def post(port, body, timeout=5.0):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/echo/infer", data=body,
                                 headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value


class FakeNotify:
    """A unix datagram socket standing in for systemd's notify socket.

    A thread reads it at once (the master's sd_notify must never wait on a
    full queue: net.unix.max_dgram_qlen is 10). Each message is recorded with
    the kernel's arrival time (SO_TIMESTAMPNS, CLOCK_REALTIME), not the time
    the thread got around to it, so the timings survive a loaded machine.
    sync() proves that every datagram sent before it was called is recorded.
    """

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.bound = "\0" + addr[1:] if addr.startswith("@") else addr
        self.sock.bind(self.bound)
        self.addr = addr
        self.msgs = []  # (kernel arrival time on the time.time() clock, sender pid, text)
        self.synced = 0  # sync markers seen
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.sock.settimeout(0.1)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            pid, when = None, time.time()
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid, _, _ = struct.unpack("iII", cdata[:12])
                elif level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", cdata[:16])
                    when = sec + nsec / 1e9
            text = data.decode()
            with self.lock:
                if pid == os.getpid() and text.startswith("X_TEST_SYNC="):
                    self.synced += 1
                else:
                    self.msgs.append((when, pid, text))

    def sync(self, timeout=10.0):
        """Return once every datagram sent before this call is in msgs.

        A unix datagram socket keeps order: a marker sent now is read after
        everything already queued."""
        with self.lock:
            want = self.synced + 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"X_TEST_SYNC=1", self.bound)
        wait_for(lambda: self.synced >= want or None, timeout, what="the notify reader caught up")

    def texts(self):
        with self.lock:
            return [m[2] for m in self.msgs]

    def find(self, needle, start=0):
        with self.lock:
            for i, m in enumerate(self.msgs[start:], start):
                if needle in m[2].split("\n"):
                    return i
        return None

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.daemon = echo_daemon(workers=2)
        self.addCleanup(self.daemon.cleanup)  # runs after tearDown's checked stop
        self.dir = self.daemon.tmp
        self.port = self.daemon.port
        self.ini = self.daemon.ini
        self.notify = None

    def tearDown(self):
        try:
            self.daemon.stop()  # by pid; raises if its process tree did not go
        finally:
            if self.notify:
                self.notify.close()

    def start(self, notify_addr, watchdog_usec=None):
        self.notify = FakeNotify(notify_addr)
        env = {"NOTIFY_SOCKET": notify_addr}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.daemon.start(env=env, ready=lambda: self.notify.find("READY=1") is not None)

    def assert_all_from_master(self):
        pid = self.daemon.pid
        with self.notify.lock:
            senders = {m[1] for m in self.notify.msgs}
        self.assertEqual(senders, {pid}, "a notify message came from a process other than the master")

    def test_ready_only_when_every_pool_ready_and_only_from_master_path_socket(self):
        self.start(os.path.join(self.dir, "notify.sock"))
        status, body = get(self.port, "/v2/health/ready")
        self.assertEqual(status, 200, body)
        self.assertIsNotNone(wait_for(lambda: any(t.startswith("STATUS=") for t in self.notify.texts()), 3))
        self.assert_all_from_master()
        # Children carry no systemd variables.
        kids = [pid for pid, _ in children(self.daemon.pid)]
        self.assertGreaterEqual(len(kids), 3, "a gateway and 2 workers")
        for c in kids:
            with open(f"/proc/{c}/environ", "rb") as f:
                env = f.read().split(b"\0")
            for var in (b"NOTIFY_SOCKET=", b"LISTEN_PID=", b"LISTEN_FDS=", b"WATCHDOG_USEC=", b"WATCHDOG_PID="):
                self.assertFalse(any(e.startswith(var) for e in env), f"child {c} has {var!r}")

    def test_abstract_socket_reload_sequence_and_stopping(self):
        self.start("@rm-test-%d" % os.getpid())
        first_ready = self.notify.find("READY=1")
        set_workers(self.daemon, 3)
        r = subprocess.run([CTL, "-c", self.ini, "reload"], capture_output=True, text=True, timeout=30)
        t_ctl_done = time.time()  # the clock of the kernel's arrival times
        self.assertEqual(r.returncode, 0, r.stderr + self.daemon.log())
        # Everything the master sent so far is recorded after sync().
        self.notify.sync()
        i_rel = self.notify.find("RELOADING=1", first_ready + 1)
        self.assertIsNotNone(i_rel, self.notify.texts())
        msg = self.notify.msgs[i_rel][2]
        self.assertIn("MONOTONIC_USEC=", msg)
        self.assertNotIn("READY=1", msg.split("\n"))  # never combined
        i_ready = self.notify.find("READY=1", i_rel + 1)
        self.assertIsNotNone(i_ready, self.notify.texts())
        # sent before ctl returned (the reload is done when ctl says so)
        self.assertLessEqual(self.notify.msgs[i_ready][0], t_ctl_done)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.log())
        self.notify.sync()
        self.assertIsNotNone(self.notify.find("STOPPING=1"), self.notify.texts())
        self.assert_all_from_master()

    def test_bad_ini_reload_keeps_serving_and_reports(self):
        self.start(os.path.join(self.dir, "n.sock"))
        with open(self.ini, "a") as f:
            f.write("bogus_key_without_section_meaning = 1\n[pool echo2]\nworkers = many\n")
        r = subprocess.run([CTL, "-c", self.ini, "reload"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("workers", r.stderr)
        self.assertEqual(post(self.port, b"still here")[1], b"still here")

    def test_watchdog_gaps_within_half_interval_also_during_reload(self):
        usec = 1000000  # pings due every 500 ms; systemd would kill after 1 s of silence
        self.start(os.path.join(self.dir, "w.sock"), watchdog_usec=usec)
        time.sleep(2.0)  # a window of pings before the reload (a measurement, not a wait)
        set_workers(self.daemon, 3)
        r = subprocess.run([CTL, "-c", self.ini, "reload"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(1.0)
        self.notify.sync()
        with self.notify.lock:
            pings = [m[0] for m in self.notify.msgs if "WATCHDOG=1" in m[2].split("\n")]
        self.assertGreater(len(pings), 4)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # Half the interval plus 350 ms of scheduling slack: still well
        # inside the interval, after which systemd would kill the service.
        slack = 0.35
        print(f"watchdog: {len(pings)} pings, worst gap {max(gaps) * 1000:.0f} ms (limit {usec / 2000 + slack * 1000:.0f} ms)")
        self.assertLessEqual(max(gaps), usec / 2e6 + slack)


class SocketActivationTest(unittest.TestCase):
    def daemon(self, **kw):
        d = echo_daemon(**kw)
        self.addCleanup(d.cleanup, check=True)
        return d

    @unittest.skipUnless(shutil.which("systemd-socket-activate"), "systemd-socket-activate missing")
    def test_systemd_socket_activate_sockets_win_over_ini(self):
        sa_port = free_port()
        d = self.daemon()
        ini_port = d.port
        # systemd-socket-activate listens, then execs the daemon on the
        # first connection: its pid is the daemon's.
        d.start(wrapper=["systemd-socket-activate", "-l", f"127.0.0.1:{sa_port}", "--fdname=http"], wait=False)
        wait_for(lambda: tcp_sockets(sa_port, "LISTEN"), 5, what="systemd-socket-activate listening")
        # The first connection starts the daemon (it inherits the socket).
        st, _ = get(sa_port, "/v2/health/live", timeout=10)
        self.assertEqual(st, 200, d.log())
        self.assertEqual(post(sa_port, b"activated")[1], b"activated")
        st, _ = get(ini_port, "/v2/health/live", timeout=0.5)
        self.assertIsNone(st, "the INI's listen address must not be bound when systemd passes sockets")

    def _start_with_fd3(self, lsock, port):
        # LISTEN_PID must be the daemon's own pid: sh sets it to $$ and execs.
        fd = lsock.fileno()
        cmd = f'exec 3<&{fd}; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec "$0" "$@"'
        d = self.daemon()
        d.start(wrapper=["sh", "-c", cmd], pass_fds=(fd,), ready=lambda: get(port, "/v2/health/ready")[0] == 200)
        return d

    def test_fd3_passed_socket_and_connection_made_while_down_is_served(self):
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(64)
        port = lsock.getsockname()[1]
        d1 = self._start_with_fd3(lsock, port)
        self.assertEqual(d1.stop(), 0, d1.log())
        # Daemon down; the test still holds the listening socket: connect now.
        result = {}

        def client():
            try:
                result["r"] = post(port, b"while down", timeout=20)
            except Exception as e:  # noqa: BLE001
                result["e"] = e
        t = threading.Thread(target=client)
        t.start()
        wait_for(lambda: tcp_sockets(port, "ESTABLISHED") >= 1, 5, what="the client's connection in the backlog")
        self.assertTrue(t.is_alive(), "the client must be waiting in the backlog")
        d2 = self._start_with_fd3(lsock, port)
        t.join(20)
        lsock.close()
        self.assertEqual(result.get("r"), (200, b"while down"), f"{result} {d2.log()}")

    def test_passed_socket_named_metrics_serves_only_metrics(self):
        socks = []
        for _ in range(2):
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", 0))
            ls.listen(64)
            self.addCleanup(ls.close)
            socks.append(ls)
        http_port, metrics_port = (ls.getsockname()[1] for ls in socks)
        fds = [ls.fileno() for ls in socks]
        # fd 3 "http", fd 4 "metrics"; the INI's metrics_listen (another
        # port) must not be bound: systemd's metrics socket wins.
        ini_metrics = free_port()
        cmd = (f'exec 3<&{fds[0]} 4<&{fds[1]}; LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=http:metrics '
               'exec "$0" "$@"')
        d = self.daemon()
        d.global_keys["metrics_listen"] = "127.0.0.1:%d" % ini_metrics
        d.write_ini()
        d.start(wrapper=["sh", "-c", cmd], pass_fds=tuple(fds),
                ready=lambda: get(http_port, "/v2/health/ready")[0] == 200)
        st, body = get(metrics_port, "/metrics")
        self.assertEqual(st, 200, body[:200])
        self.assertIn(b"ringmaster_up 1", body)
        self.assertEqual(get(http_port, "/metrics")[0], 404)
        self.assertEqual(post(http_port, b"served")[1], b"served")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            post(metrics_port, b"not here")
        self.assertEqual(cm.exception.code, 404)
        self.assertIsNone(get(ini_metrics, "/metrics", timeout=0.5)[0],
                          "the INI's metrics_listen must not be bound when systemd passes a metrics socket")
        self.assertIn("systemd:metrics (/metrics and health only)", d.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
