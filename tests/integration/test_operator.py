"""What an operator relies on (docs/contract.md): safe files, honest tools,
queued reloads. Each test is written to fail on the behaviour it replaced:
a pid file with two numbers, a world-writable runtime_dir used as is, a
failed start leaving its files, `ringmasterctl -c OTHER reload` reloading
the master's own file, `stop` answering before the stop was done, a SIGHUP
during a reload dropped."""
import os
import signal
import stat
import subprocess
import time

from harness import RINGMASTER, RINGMASTERCTL, ServerTestCase, alive, wait_for


class Files(ServerTestCase):

    def test_pid_file_holds_only_the_pid(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}})
        with open(os.path.join(srv.global_keys["runtime_dir"], "ringmaster.pid")) as f:
            self.assertEqual(f.read(), "%d\n" % srv.pid)  # kill -TERM $(cat FILE) signals the master only
        mode = stat.S_IMODE(os.stat(os.path.join(srv.global_keys["runtime_dir"], "ringmaster.pid")).st_mode)
        self.assertEqual(mode, 0o644)

    def test_runtime_dir_writable_by_others_is_refused(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, start=False)
        rd = srv.global_keys["runtime_dir"]
        os.makedirs(rd)
        os.chmod(rd, 0o777)
        srv.start(wait_ready=False)
        wait_for(lambda: not srv.running(), 10, what="ringmaster to refuse the runtime_dir")
        self.assertEqual(srv.proc.returncode, 1)
        self.assertIn("writable by everyone (mode 0777): refusing it", srv.log())
        os.chmod(rd, 0o755)

    def test_runtime_dir_that_is_a_symlink_is_refused(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, start=False)
        rd = srv.global_keys["runtime_dir"]
        os.makedirs(rd + ".real", mode=0o700)
        os.symlink(rd + ".real", rd)
        srv.start(wait_ready=False)
        wait_for(lambda: not srv.running(), 10, what="ringmaster to refuse the runtime_dir")
        self.assertIn("is a symbolic link, not a directory", srv.log())

    def test_failed_start_leaves_nothing_behind(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, start=False,
                          listen="192.0.2.7:%d" % srv_port())
        rd = srv.global_keys["runtime_dir"]
        srv.start(wait_ready=False)
        wait_for(lambda: not srv.running(), 10, what="start-up to fail")
        self.assertIn("bind 192.0.2.7", srv.log())
        self.assertFalse(os.path.exists(rd), "a failed start left %s: %s" % (rd, os.listdir(rd) if os.path.isdir(rd)
                                                                               else ""))


def srv_port():
    from harness import free_port
    return free_port()


class Tools(ServerTestCase):

    def test_stop_returns_when_the_service_has_stopped(self):
        srv = self.server(pools={"chaos": {"handler": "chaos", "workers": 1}})
        pid = srv.pid
        r = srv.ctl("stop")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "stop: stopped")
        self.assertFalse(alive(pid), "ctl stop returned while the master still ran")

    def test_ctl_with_another_file_is_refused_and_named(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}})
        other = os.path.join(srv.tmp, "other.ini")
        with open(other, "w") as f:
            f.write(srv.ini_text())  # the same runtime_dir: it reaches this master
        for cmd in ("reload", "stop"):
            r = subprocess.run([RINGMASTERCTL, "-c", other, cmd], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 1, r.stdout)
            self.assertIn("this ringmaster runs %s, not %s" % (os.path.realpath(srv.ini), os.path.realpath(other)),
                          r.stderr)
        self.assertTrue(srv.running(), "the master stopped on a command meant for another file")

    def test_sighup_during_a_reload_is_queued_not_dropped(self):
        srv = self.server(pools={"slow": {"handler": "python", "python_path": _apps(), "app": "fnapp:infer",
                                          "workers": 1, "init_sleep": "1"}})
        os.kill(srv.pid, signal.SIGHUP)
        wait_for(lambda: "reload" in srv.log(), 5, what="the first reload to start")
        time.sleep(0.2)
        os.kill(srv.pid, signal.SIGHUP)  # during the first reload (workers load for 1 s)
        wait_for(lambda: "another reload follows this one" in srv.log(), 5, what="the second SIGHUP to be queued")
        wait_for(lambda: srv.log().count("reload finished") >= 2, 30, what="two reloads to finish")


def _apps():
    return os.path.join(os.path.abspath(os.environ.get("srcdir", ".")), "tests", "python_apps")



class Logs(ServerTestCase):

    def test_log_lines_carry_an_rfc3339_time_and_a_level(self):
        import re
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}})
        lines = [l for l in srv.log().splitlines() if l.strip()]
        self.assertTrue(lines)
        pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ringmaster\[\d+\]: [^:]+: "
                         r"(error|warning|notice|info|debug): ")
        for line in lines:
            self.assertRegex(line, pat)

    def test_access_log_has_a_line_per_answer(self):
        import re
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1},
                                 "chaos": {"handler": "chaos", "workers": 2, "max_attempts": 2}},
                          access_log="access.log")
        self.assertEqual(srv.infer("echo", b"hello")[0], 200)
        self.assertEqual(srv.infer("chaos", b"crash-once")[0], 200)  # a re-run: attempt 2
        self.assertEqual(srv.http("GET", "/v2/health/live")[0], 200)
        self.assertEqual(srv.http("GET", "/nope")[0], 404)
        path = os.path.join(srv.tmp, "access.log")  # relative to the INI's folder
        pat = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1:\d+ "(\S+) (\S+)" (\S+) (\d{3}) '
                         r'(\d+) (\d+\.\d{6}) (\d+)$')

        def parsed():
            if not os.path.exists(path):
                return []
            out = []
            for line in open(path).read().splitlines():
                m = pat.match(line)
                self.assertIsNotNone(m, line)
                out.append(m.groups())
            return out
        wait_for(lambda: any(p[1] == "/nope" for p in parsed()), 5, what="the access log lines")
        by = {}
        for p in parsed():
            by.setdefault((p[1], p[2]), []).append(p)
        (echo,) = by[("/v2/models/echo/infer", "echo")]
        self.assertEqual((echo[0], echo[3], echo[4], echo[6]), ("POST", "200", "5", "1"))
        (chaos,) = by[("/v2/models/chaos/infer", "chaos")]
        self.assertEqual((chaos[3], chaos[6]), ("200", "2"))
        live = by[("/v2/health/live", "-")][0]
        self.assertEqual((live[3], live[6]), ("200", "0"))
        self.assertEqual(by[("/nope", "-")][0][3], "404")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)


class Resources(ServerTestCase):

    def test_max_connections_capped_by_the_descriptor_limit_and_health_still_answers(self):
        import socket
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 1}}, start=False)
        srv.start(wrapper=("prlimit", "--nofile=256:256"))
        srv.wait_ready()
        self.assertIn("max_connections 1024 exceeds what RLIMIT_NOFILE (256 descriptors) allows: capped at",
                      srv.log())
        idle = []
        try:
            for _ in range(300):  # more than the gateway may hold: idle clients
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                idle.append(s)
            time.sleep(0.3)
            st, _, body = srv.http("GET", "/v2/health/live", timeout=5)
            self.assertEqual(st, 200, body)  # an idle client made room for the probe
            self.assertTrue(srv.running())
        finally:
            for s in idle:
                s.close()

    def test_clients_that_never_read_cannot_grow_a_gateway_past_its_cap(self):
        import socket
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2, "max_request_size": "2MiB",
                                          "max_response_size": "2MiB", "queue_depth": 512}})
        (gw,) = srv.gateways().values()
        body = b"x" * (2 << 20)
        req = (b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        socks = []
        try:
            for _ in range(250):  # 500 MiB of answers nobody reads
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: answers pile up
                s.settimeout(10)
                s.connect(("127.0.0.1", srv.port))
                s.sendall(req)
                socks.append(s)
            time.sleep(2)
            # the gateway's own memory (not the pool's shared memory it maps,
            # which queue_depth x the sizes bound)
            with open("/proc/%d/status" % gw) as f:
                rss = int([l for l in f if l.startswith("RssAnon:")][0].split()[1]) * 1024
            self.assertLess(rss, (256 + 96) << 20, "the gateway holds %d MiB" % (rss >> 20))
            print("\n  250 clients that never read 2 MiB answers: gateway RssAnon %d MiB" % (rss >> 20), end=" ")
            self.assertEqual(srv.gateways(), {0: gw}, "the gateway died")
            st, _, got = srv.infer("echo", b"still here")
            self.assertEqual((st, got), (200, b"still here"))
        finally:
            for s in socks:
                s.close()

    def test_a_worker_over_max_worker_memory_is_recycled(self):
        apps = os.path.join(os.path.abspath(os.environ.get("srcdir", ".")), "tests", "python_apps")
        srv = self.server(pools={"py": {"handler": "python", "python_path": apps, "app": "fnapp:infer",
                                        "workers": 1, "max_worker_memory": "80MiB"}})
        first = json_pid(srv)
        for _ in range(12):  # 4 MiB a request
            self.assertEqual(srv.infer("py", b"leak")[0], 200)
        wait_for(lambda: json_pid(srv) != first, 15, what="the leaking worker to be replaced")
        self.assertIn("over max_worker_memory", srv.log())
        self.assertGreaterEqual(srv.metric("ringmaster_restarts_total", pool="py", reason="memory"), 1)


def json_pid(srv):
    import json
    st, _, got = srv.infer("py", b"pid")
    return json.loads(got)["pid"] if st == 200 else None
