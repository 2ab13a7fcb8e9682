"""The command line: `ringmaster -t` (FILE:LINE: message, exit 1 / exit 0)
and `ringmaster -V`."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import free_port, RINGMASTER


class CommandLine(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rm-it-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def check(self, text, name="ringmaster.ini"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([RINGMASTER, "-t", "-c", path], capture_output=True, text=True, timeout=10)
        return path, r

    def assertLineError(self, text, line, words):
        path, r = self.check(text)
        self.assertEqual(r.returncode, 1, "exit status of -t on a bad file; stderr: %r" % r.stderr)
        out = r.stderr + r.stdout
        m = re.search(r"^%s:(\d+): (.+)$" % re.escape(path), out, re.M)
        self.assertIsNotNone(m, "no 'FILE:LINE: message' in %r" % out)
        self.assertEqual(int(m.group(1)), line, out)
        for w in words:
            self.assertIn(w, m.group(2), out)
        self.assertIn(m.group(0), r.stderr, "the error belongs on stderr")

    def test_check_bad_value_prints_file_line_message_and_exits_1(self):
        self.assertLineError("[ringmaster]\nlisten = 127.0.0.1:1\n\n[pool echo]\nhandler = echo\n"
                             "workers = lots\n", 6, ["workers"])

    def test_check_unknown_global_key_is_an_error_with_its_line(self):
        self.assertLineError("[ringmaster]\nlisten = 127.0.0.1:1\nworkerz = 2\n\n[pool echo]\nhandler = echo\n",
                             3, ["workerz"])

    def test_check_bad_duration_and_size_name_key_and_line(self):
        self.assertLineError("[ringmaster]\nheartbeat_timeout = soon\n[pool echo]\n", 2, ["heartbeat_timeout"])
        self.assertLineError("[ringmaster]\n[pool echo]\nmax_request_size = 1XB\n", 3, ["max_request_size"])

    def test_check_syntax_error_names_its_line(self):
        self.assertLineError("[ringmaster]\n[pool echo\nhandler = echo\n", 2, [])

    def test_check_missing_handler_so_names_path_and_line(self):
        self.assertLineError("[ringmaster]\n\n[pool x]\nhandler = /nonexistent/handler.so\n", 3,
                             ["/nonexistent/handler.so"])

    def test_check_good_file_exits_0(self):
        _, r = self.check("[ringmaster]\nlisten = 127.0.0.1:1\nheartbeat_interval = 50ms\n"
                          "heartbeat_timeout = 500ms\n\n[pool echo]\nhandler = echo\nworkers = 2\n"
                          "max_request_size = 2MiB\n\n[pool ocr]\nhandler = ocr\nlanguage = eng\n")
        if "unknown built-in" in r.stderr:
            self.skipTest("built without the ocr handler")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "", "nothing on stderr for a good file")

    def test_check_rejects_what_start_up_would_reject(self):
        port = free_port()
        for listen, want in [("999.1.1.1:80", "getaddrinfo"),
                             ("127.0.0.1:%d, 127.0.0.1:%d" % (port, port), "given twice"),
                             ("192.0.2.7:%d" % port, "Cannot assign requested address")]:
            _, r = self.check("[ringmaster]\nlisten = %s\n[pool e]\nhandler = echo\n" % listen)
            self.assertEqual(r.returncode, 1, listen)
            self.assertIn(want, r.stderr)
        _, r = self.check("[pool e]\nhandler = echo\nqueue_depth = 65536\nmax_request_size = 1GiB\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("GiB of shared memory", r.stderr)

    def test_check_refuses_a_fifo_at_once_instead_of_hanging(self):
        fifo = os.path.join(self.tmp, "fifo.ini")
        os.mkfifo(fifo)
        r = subprocess.run([RINGMASTER, "-t", "-c", fifo], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a regular file (a FIFO)", r.stderr)

    def test_check_rejects_keys_nobody_takes(self):
        # the misspellings an operator makes, each named with its line
        for key, line, hint in [("wokers = 2", 4, 'did you mean "workers"'),
                                ("queue_depht = 9", 4, 'did you mean "queue_depth"'),
                                ("request_timout = 1s", 4, 'did you mean "request_timeout"'),
                                ("anything = goes", 4, "handler echo takes (none)")]:
            _, r = self.check("[ringmaster]\n[pool e]\nhandler = echo\n%s\n" % key)
            self.assertEqual(r.returncode, 1, key)
            self.assertIn(":%d: unknown key" % line, r.stderr)
            self.assertIn(hint, r.stderr)
        _, r = self.check("[ringmaster]\n[pool e]\nhander = /x.so\n")
        self.assertEqual(r.returncode, 1)
        self.assertIn("handler is missing", r.stderr)

    def test_check_shipped_example_ini_exits_0(self):
        src = os.environ.get("srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
        ini = os.path.join(src, "etc", "ringmaster.ini")
        if not os.path.exists(ini):
            self.skipTest("etc/ringmaster.ini not found")
        r = subprocess.run([RINGMASTER, "-t", "-c", ini], capture_output=True, text=True, timeout=30)
        if r.returncode != 0 and "ocr" in r.stderr and "unknown built-in" in r.stderr:
            self.skipTest("built without the ocr handler")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_missing_file_exits_1(self):
        r = subprocess.run([RINGMASTER, "-t", "-c", os.path.join(self.tmp, "nope.ini")],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.ini", r.stderr)

    def test_version_prints_name_and_number(self):
        r = subprocess.run([RINGMASTER, "-V"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^ringmaster \d+\.\d+")


if __name__ == "__main__":
    unittest.main()
