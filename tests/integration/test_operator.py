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
