"""preload = yes: a per-pool preloader loads the model once and forks the
workers, which share its pages copy-on-write and are supervised by the master
like any other worker."""
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from harness import ServerTestCase, proc_title, wait_for
from test_ocr_http import LINES, have_ocr, render, words


def pss_anon_kb(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss_Anon:"):
                return int(line.split()[1])
    raise AssertionError("no Pss_Anon in smaps_rollup")


def ppid(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    return int(st[st.rindex(")") + 2:].split()[1])


@unittest.skipUnless(have_ocr(), "ringmaster built without the ocr handler, or gen_text_image missing")
class Preload(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rm-pre-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.png = render(os.path.join(cls.tmp, "l.png"), LINES[1])

    def ocr(self, preload, workers=2):
        srv = self.server(pools={"ocr": {"handler": "ocr", "workers": workers, "preload": preload,
                                         "startup_timeout": "30s"}})
        wait_for(lambda: len(srv.workers("ocr")) == workers and
                 srv.pool_status("ocr")["workers"]["ready"] == workers, 20, what="ready ocr workers")
        return srv

    def read_back(self, srv):
        st, _, body = srv.infer("ocr", self.png, ctype="image/png")
        self.assertEqual(st, 200, body)
        import json
        self.assertEqual(words(json.loads(body)["text"]), words(LINES[1]))

    def preloader_pid(self, srv):
        for p in srv.status_json()["processes"]:
            if p["role"] == "preloader":
                return p["pid"]
        return None

    def test_preloaded_workers_are_masters_children_and_share_the_model(self):
        plain = self.ocr(False)
        for _ in range(4):
            self.read_back(plain)
        plain_pss = [pss_anon_kb(p) for p in plain.workers("ocr")]
        plain.stop()

        pre = self.ocr(True)
        for _ in range(4):
            self.read_back(pre)
        zpid = self.preloader_pid(pre)
        self.assertIsNotNone(zpid)
        self.assertEqual(proc_title(zpid), "ringmaster: preloader ocr")
        self.assertEqual(ppid(zpid), pre.pid)
        pre_pss = []
        for w in pre.workers("ocr"):
            self.assertEqual(ppid(w), pre.pid, "a preloaded worker must be re-parented to the master")
            pre_pss.append(pss_anon_kb(w))
        print("\nPss_Anon per ocr worker: plain %s kB, preloaded %s kB" % (plain_pss, pre_pss))
        self.assertLess(max(pre_pss), 0.75 * min(plain_pss))

    def test_killed_preloaded_worker_and_killed_preloader_are_replaced(self):
        srv = self.ocr(True)
        before = set(srv.workers("ocr"))
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)
        after = wait_for(lambda: (lambda w: w if len(w) == 2 and victim not in w else None)(set(srv.workers("ocr"))),
                         20, what="a replacement worker")
        self.assertNotIn(victim, after)
        self.read_back(srv)
        zpid = self.preloader_pid(srv)
        os.kill(zpid, signal.SIGKILL)
        # Workers keep serving while the preloader is replaced.
        self.read_back(srv)
        wait_for(lambda: (self.preloader_pid(srv) or zpid) != zpid, 20, what="a new preloader")
        self.assertEqual(set(srv.workers("ocr")), after)


if __name__ == "__main__":
    unittest.main()
