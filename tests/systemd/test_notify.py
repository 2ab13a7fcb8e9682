#!/usr/bin/env python3
"""systemd protocol tests, without systemd as PID 1 (never start systemd).

A fake NOTIFY_SOCKET (path and @abstract) records every datagram with the
sender's credentials (SO_PASSCRED), so each message is checked to come from
the master's pid. Socket activation goes through systemd-socket-activate and
through a test-held socket passed as fd 3 with LISTEN_PID set to the daemon.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

BIN = os.environ.get("RINGMASTER", "./ringmaster")
CTL = os.environ.get("RINGMASTERCTL", "./ringmasterctl")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_ini(d, port, workers=1, extra=""):
    path = os.path.join(d, "rm.ini")
    with open(path + ".new", "w") as f:
        f.write(f"""[ringmaster]
listen = 127.0.0.1:{port}
runtime_dir = {d}/run
heartbeat_interval = 50ms
heartbeat_timeout = 1s
shutdown_timeout = 5s
{extra}
[pool echo]
handler = echo
workers = {workers}
startup_timeout = 5s
""")
    os.rename(path + ".new", path)
    return path


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


def wait_for(pred, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


class FakeNotify:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, addr):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + addr[1:] if addr.startswith("@") else addr)
        self.addr = addr
        self.msgs = []  # (monotonic time, sender pid, text)
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.sock.settimeout(0.1)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            except OSError:
                return
            pid = None
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid, _, _ = struct.unpack("iII", cdata[:12])
            with self.lock:
                self.msgs.append((time.monotonic(), pid, data.decode()))

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


class Daemon:
    def __init__(self, args, env, pass_fds=()):
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, env=env, stderr=self.stderr, pass_fds=pass_fds)

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            if ppid == pid:
                out.append(int(d))
        except (OSError, ValueError):
            pass
    return out


class NotifyTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rm-sd-")
        self.port = free_port()
        self.daemon = None
        self.notify = None

    def tearDown(self):
        if self.daemon:
            self.daemon.stop()
        if self.notify:
            self.notify.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, notify_addr, watchdog_usec=None):
        self.notify = FakeNotify(notify_addr)
        ini = write_ini(self.dir, self.port, workers=2)
        env = dict(os.environ, NOTIFY_SOCKET=notify_addr)
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.daemon = Daemon([BIN, "-c", ini], env)
        self.ini = ini
        ok = wait_for(lambda: self.notify.find("READY=1") is not None, 15)
        self.assertTrue(ok, "no READY=1; daemon log:\n" + self.daemon.log())
        return ini

    def assert_all_from_master(self):
        pid = self.daemon.proc.pid
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
        for c in children(self.daemon.proc.pid):
            with open(f"/proc/{c}/environ", "rb") as f:
                env = f.read().split(b"\0")
            for var in (b"NOTIFY_SOCKET=", b"LISTEN_PID=", b"LISTEN_FDS=", b"WATCHDOG_USEC=", b"WATCHDOG_PID="):
                self.assertFalse(any(e.startswith(var) for e in env), f"child {c} has {var!r}")

    def test_abstract_socket_reload_sequence_and_stopping(self):
        self.start("@rm-test-%d" % os.getpid())
        first_ready = self.notify.find("READY=1")
        write_ini(self.dir, self.port, workers=3)
        r = subprocess.run([CTL, "-c", self.ini, "reload"], capture_output=True, text=True, timeout=30)
        t_ctl_done = time.monotonic()
        self.assertEqual(r.returncode, 0, r.stderr + self.daemon.log())
        i_rel = self.notify.find("RELOADING=1", first_ready + 1)
        self.assertIsNotNone(i_rel, self.notify.texts())
        msg = self.notify.msgs[i_rel][2]
        self.assertIn("MONOTONIC_USEC=", msg)
        self.assertNotIn("READY=1", msg.split("\n"))  # never combined
        i_ready = self.notify.find("READY=1", i_rel + 1)
        self.assertIsNotNone(i_ready, self.notify.texts())
        self.assertLessEqual(self.notify.msgs[i_ready][0], t_ctl_done)  # READY before ctl returned
        self.assertEqual(self.daemon.stop(), 0)
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
        usec = 400000  # pings due every 200 ms
        self.start(os.path.join(self.dir, "w.sock"), watchdog_usec=usec)
        time.sleep(1.0)
        write_ini(self.dir, self.port, workers=3)
        r = subprocess.run([CTL, "-c", self.ini, "reload"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(0.5)
        with self.notify.lock:
            pings = [m[0] for m in self.notify.msgs if "WATCHDOG=1" in m[2].split("\n")]
        self.assertGreater(len(pings), 5)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        slack = 0.15
        print(f"watchdog: {len(pings)} pings, worst gap {max(gaps) * 1000:.0f} ms (limit {usec / 2000 + slack * 1000:.0f} ms)")
        self.assertLessEqual(max(gaps), usec / 2e6 + slack)


class SocketActivationTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rm-sa-")
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @unittest.skipUnless(shutil.which("systemd-socket-activate"), "systemd-socket-activate missing")
    def test_systemd_socket_activate_sockets_win_over_ini(self):
        sa_port, ini_port = free_port(), free_port()
        ini = write_ini(self.dir, ini_port)
        d = Daemon(["systemd-socket-activate", "-l", f"127.0.0.1:{sa_port}", "--fdname=http",
                    BIN, "-c", ini], dict(os.environ))
        self.daemons.append(d)
        time.sleep(0.3)
        # The first connection starts the daemon (it inherits the socket).
        st, _ = get(sa_port, "/v2/health/live", timeout=10)
        self.assertEqual(st, 200, d.log())
        self.assertEqual(post(sa_port, b"activated")[1], b"activated")
        st, _ = get(ini_port, "/v2/health/live", timeout=0.5)
        self.assertIsNone(st, "the INI's listen address must not be bound when systemd passes sockets")

    def _start_with_fd3(self, lsock, ini):
        # LISTEN_PID must be the daemon's own pid: sh sets it to $$ and execs.
        fd = lsock.fileno()
        cmd = f'exec 3<&{fd}; LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec "$0" -c "$1"'
        d = Daemon(["sh", "-c", cmd, BIN, ini], dict(os.environ), pass_fds=(fd,))
        self.daemons.append(d)
        return d

    def test_fd3_passed_socket_and_connection_made_while_down_is_served(self):
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(64)
        port = lsock.getsockname()[1]
        ini = write_ini(self.dir, free_port())
        d1 = self._start_with_fd3(lsock, ini)
        self.assertTrue(wait_for(lambda: get(port, "/v2/health/ready")[0] == 200, 15), d1.log())
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
        time.sleep(0.5)
        self.assertTrue(t.is_alive(), "the client must be waiting in the backlog")
        d2 = self._start_with_fd3(lsock, ini)
        t.join(20)
        lsock.close()
        self.assertEqual(result.get("r"), (200, b"while down"), f"{result} {d2.log()}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
