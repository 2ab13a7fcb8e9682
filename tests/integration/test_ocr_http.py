"""The built-in `ocr` handler over HTTP (issue: a real AI model out of the box):
generated images read back, bad bodies 400, oversized 413, and a worker
SIGKILLed in the middle of an OCR run: the request is run again, answered 200."""
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest

from harness import RINGMASTER, ServerTestCase, wait_for

GEN = os.path.abspath(os.environ.get(
    "GEN_TEXT_IMAGE", os.path.join(os.path.dirname(RINGMASTER), "tests", "gen_text_image")))

LINES = [
    "The quick brown fox jumps over the lazy dog",
    "Every accepted request ends exactly once",
    "Workers load the model once and then serve",
    "A master process watches the heartbeats",
    "Shared memory holds the ring of slots",
    "Reload without dropping a single request",
]


def have_ocr():
    if not os.access(GEN, os.X_OK):
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as f:
        f.write("[pool o]\nhandler = ocr\n")
        f.flush()
        return subprocess.run([RINGMASTER, "-t", "-c", f.name], capture_output=True).returncode == 0


def render(path, *lines):
    subprocess.run([GEN, path] + list(lines), check=True, capture_output=True)
    with open(path, "rb") as f:
        return f.read()


def words(s):
    return [w.strip(".,").lower() for w in s.split()]


@unittest.skipUnless(have_ocr(), "ringmaster built without the ocr handler, or gen_text_image missing")
class OcrOverHttp(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="rm-ocr-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.line_png = render(os.path.join(cls.tmp, "line.png"), LINES[0])
        # A page that takes a worker long enough to be killed in the middle.
        cls.page_png = render(os.path.join(cls.tmp, "page.png"), *(LINES * 4))

    def ocr_server(self, **pool):
        keys = {"handler": "ocr", "workers": 2, "max_request_size": "4MiB", "request_timeout": "30s",
                "startup_timeout": "30s"}
        keys.update(pool)
        return self.server(pools={"ocr": keys})

    def test_ocr_reads_generated_image_and_v2_json(self):
        srv = self.ocr_server()
        st, _, body = srv.infer("ocr", self.line_png, ctype="image/png")
        self.assertEqual(st, 200, body)
        doc = json.loads(body)
        self.assertEqual(words(doc["text"]), words(LINES[0]))
        self.assertIn("confidence", doc)
        req = {"id": "r1", "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                       "data": [base64.b64encode(self.line_png).decode()]}]}
        st, _, body = srv.infer("ocr", json.dumps(req), ctype="application/json")
        self.assertEqual(st, 200, body)
        doc = json.loads(body)
        out = {o["name"]: o for o in doc["outputs"]}
        self.assertEqual(out["text"]["datatype"], "BYTES")
        self.assertEqual(words(out["text"]["data"][0]), words(LINES[0]))
        st, _, body = srv.http("GET", "/v2/models/ocr")
        self.assertEqual(st, 200)
        meta = json.loads(body)
        self.assertEqual(meta["inputs"][0]["name"], "image")
        self.assertEqual(meta["outputs"][0]["name"], "text")

    def test_ocr_garbage_truncated_and_empty_bodies_get_400(self):
        srv = self.ocr_server(workers=1)
        for body in (b"this is not an image at all", self.line_png[: len(self.line_png) // 2], b""):
            st, _, resp = srv.infer("ocr", body, ctype="image/png")
            self.assertEqual(st, 400, (body[:20], resp))
            self.assertIn("error", json.loads(resp))
        # The worker survived all of it and still reads text.
        st, _, resp = srv.infer("ocr", self.line_png, ctype="image/png")
        self.assertEqual(st, 200, resp)

    def test_ocr_image_over_max_request_size_is_413(self):
        srv = self.ocr_server(workers=1, max_request_size="1KiB")
        self.assertGreater(len(self.line_png), 1024)
        st, _, resp = srv.infer("ocr", self.line_png, ctype="image/png")
        self.assertEqual(st, 413, resp)

    def test_ocr_worker_killed_mid_request_is_rerun_and_answered_200(self):
        srv = self.ocr_server(workers=2, max_attempts=2)
        result = {}

        def client():
            result["r"] = srv.infer("ocr", self.page_png, ctype="image/png", timeout=60)
        t = threading.Thread(target=client)
        t.start()

        def busy_worker():
            for p in srv.status_json()["processes"]:
                if p["role"] == "worker" and p["state"] == "busy":
                    return p["pid"]
            return None
        victim = wait_for(busy_worker, 10, what="a busy ocr worker")
        os.kill(victim, signal.SIGKILL)
        t.join(60)
        st, _, body = result["r"]
        self.assertEqual(st, 200, body)
        got = words(json.loads(body)["text"])
        want = words(" ".join(LINES * 4))
        hits = sum(1 for w in want if w in set(got))
        self.assertGreaterEqual(hits / len(want), 0.95, got)
        _, _, metrics = srv.http("GET", "/metrics")
        retried = [l for l in metrics.decode().splitlines()
                   if l.startswith('ringmaster_retried_requests_total{pool="ocr"}')]
        self.assertTrue(retried and float(retried[0].split()[-1]) >= 1, retried)


if __name__ == "__main__":
    unittest.main()
