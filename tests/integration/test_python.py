"""Python models through the built-in `python` handler, over HTTP with the
real daemon (docs/handlers.md): function and class apps, every kind of
answer, v2 tensors in and out with their checks, errors as 400/500 without
losing the worker, init errors marking the pool failed with the Python
error in the log, hangs (504), crashes (re-run, then 502), readiness that
tells the truth, recycling of a leaking model, a reload that swaps the code
under load, output to the log, preload, and the scikit-learn digits model's
accuracy through HTTP."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

from harness import RINGMASTER, LoadLoop, ServerTestCase, have_python_handler, wait_for

SRC = os.path.abspath(os.environ.get("srcdir", "."))
APPS = os.path.join(SRC, "tests", "python_apps")
DIGITS = os.path.join(SRC, "examples", "digits")


def have_module(name):
    return subprocess.run(["/usr/bin/python3", "-c", "import " + name], capture_output=True).returncode == 0


HAVE_PY = have_python_handler()


def v2(name, datatype, shape, data):
    return json.dumps({"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}).encode()


@unittest.skipUnless(HAVE_PY, "ringmaster was built without the python handler (--disable-python)")
class PythonApps(ServerTestCase):

    def pool(self, app="fnapp:infer", **keys):
        d = {"handler": "python", "python_path": APPS, "app": app, "workers": 1, "request_timeout": "5s"}
        d.update(keys)
        return d

    def test_function_app_answers_every_kind(self):
        srv = self.server(pools={"py": self.pool(color="blue")}, heartbeat_timeout="3s")
        cases = {
            b"bytes": (200, "application/octet-stream", b"\x00\x01raw"),
            b"str": (200, "text/plain; charset=utf-8", "text \u00e9".encode()),
            b"json": (200, "application/json", b'{"a": 1, "list": [1, 2]}'),
            b"response": (418, "text/x-tea", b"teapot"),
        }
        for body, (status, ctype, want) in cases.items():
            st, h, got = srv.infer("py", body)
            self.assertEqual((st, h.get("content-type"), got), (status, ctype, want), body)
        st, _, got = srv.infer("py", b"config")
        self.assertEqual(json.loads(got), {"color": "blue"})  # app and python_path are not the model's
        st, _, got = srv.infer("py", b"attempt")
        doc = json.loads(got)
        self.assertEqual(doc["attempt"], 1)
        self.assertTrue(0 < doc["remaining"] <= 5, doc)
        st, _, got = srv.infer("py", b"ctype", ctype="text/x-mine")
        self.assertEqual(json.loads(got), {"content_type": "text/x-mine"})

    def test_class_app_built_once_per_worker_and_closed(self):
        marker = os.path.join(self.id_tmp(), "closed")
        srv = self.server(pools={"py": self.pool("classapp:Model", prefix="p:", close_marker=marker)})
        self.assertEqual(srv.infer("py", b"a")[2], b"p:a #1")
        self.assertEqual(srv.infer("py", b"b")[2], b"p:b #2")  # one instance, state kept
        srv.stop()
        with open(marker) as f:
            self.assertIn("closed", f.read())

    def id_tmp(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="rm-py-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        return d

    def test_metadata_declares_the_tensors_and_a_reload_changes_them(self):
        srv = self.server(pools={"py": self.pool(inputs="image FP32 -1x64", outputs="label INT64 -1, p FP32 -1x10"),
                                 "so": {"handler": os.path.join(os.path.dirname(RINGMASTER), "tests", "handlers",
                                                                "example_upper.so"), "workers": 1}})
        st, _, body = srv.http("GET", "/v2/models/py")
        doc = json.loads(body)
        self.assertEqual(doc["handler"], "python")
        self.assertEqual(doc["inputs"], [{"name": "image", "datatype": "FP32", "shape": [-1, 64]}])
        self.assertEqual([o["name"] for o in doc["outputs"]], ["label", "p"])
        st, _, body = srv.http("GET", "/v2/models/so")
        self.assertEqual(json.loads(body)["handler"], "shared object")
        self.assertNotIn(b"/", body.replace(b"/v2", b""), "metadata shows a filesystem path")
        srv.pools["py"]["inputs"] = "text BYTES 1"
        srv.write_ini()
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = json.loads(srv.http("GET", "/v2/models/py")[2])
        self.assertEqual(doc["inputs"], [{"name": "text", "datatype": "BYTES", "shape": [1]}])

    def test_v2_tensors_round_trip_and_are_checked(self):
        srv = self.server(pools={"py": self.pool()})
        for dt, shape, data in [("FP32", [2, 2], [[1.5, 2.0], [3.25, -4.0]]), ("INT64", [3], [1, -2, 3000000000]),
                                ("BYTES", [2], ["hello", "w\u00f6rld"])]:
            st, _, got = srv.infer("py", v2("x", dt, shape, data), ctype="application/json")
            self.assertEqual(st, 200, got)
            out = json.loads(got)["outputs"][0]
            self.assertEqual((out["name"], out["datatype"], out["shape"]), ("x", dt, shape), out)
            flat = [v for row in data for v in row] if isinstance(data[0], list) else data
            self.assertEqual(out["data"], flat)
        bad = [(v2("x", "FP32", [2, 2], [1, 2, 3]), "needs 4 values, got 3"),
               (v2("x", "INT64", [2], [1, "two"]), "INT64 data must be integers"),
               (v2("x", "FP33", [1], [1]), "unknown datatype"),
               (v2("x", "FP32", [-1], [1]), "shape must be a list of non-negative integers")]
        for body, why in bad:
            st, _, got = srv.infer("py", body, ctype="application/json")
            self.assertEqual(st, 400, got)
            self.assertIn(why, json.loads(got)["error"])

    def test_bad_request_is_400_and_an_exception_500_and_the_worker_serves_on(self):
        srv = self.server(pools={"py": self.pool()})
        pid = json.loads(srv.infer("py", b"pid")[2])["pid"]
        st, _, got = srv.infer("py", b"bad")
        self.assertEqual((st, json.loads(got)), (400, {"error": "the input is bad"}))
        st, _, got = srv.infer("py", b"boom")
        self.assertEqual((st, json.loads(got)), (500, {"error": "ValueError: model exploded"}))
        self.assertEqual(json.loads(srv.infer("py", b"pid")[2])["pid"], pid, "the worker was replaced")
        log = srv.log()
        self.assertIn("Traceback (most recent call last)", log)
        self.assertIn("ValueError: model exploded", log)

    def test_print_logging_and_warnings_reach_the_log_with_the_worker_name(self):
        srv = self.server(pools={"py": self.pool()})
        self.assertEqual(srv.infer("py", b"print")[2], b"printed")
        wait_for(lambda: "hello from warnings" in srv.log(), 5, what="the warning in the log")
        log = srv.log()
        for text in ("worker py 0: info: hello from print", "worker py 0: warning: fnapp: hello from logging",
                     "hello from warnings"):
            self.assertIn(text, log)

    def test_request_body_kept_past_the_call_is_released_not_stale(self):
        srv = self.server(pools={"py": self.pool()})
        self.assertEqual(srv.infer("py", b"keep")[2], b"kept")
        st, _, got = srv.infer("py", b"kept")
        self.assertIn("released", json.loads(got))

    def test_answer_larger_than_max_response_size_is_500(self):
        srv = self.server(pools={"py": self.pool(max_response_size="1MiB")})
        st, _, got = srv.infer("py", b"big")
        self.assertEqual(st, 500)
        self.assertIn("larger than max_response_size", got.decode())

    def test_syntax_or_import_error_fails_the_pool_with_the_python_error(self):
        for app, want in [("syntax_error:infer", "SyntaxError"), ("import_error:infer", "ModuleNotFoundError")]:
            srv = self.server(pools={"py": self.pool(app)}, start=False)
            t0 = time.monotonic()
            r = subprocess.run([RINGMASTER, "-t", "-c", srv.ini], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)  # -t does not run Python
            # A cold start loads libpython (and tesseract): seconds on a slow machine.
            self.assertLess(time.monotonic() - t0, 10)
            srv.start(wait_ready=False)
            wait_for(lambda: "marked failed" in srv.log(), 15, what="the pool marked failed")
            self.assertIn(want, srv.log())
            st, _, body = srv.http("GET", "/v2/models/py/ready")
            self.assertEqual(st, 503, body)
            srv.stop()

    def test_infinite_loop_is_504_and_the_worker_replaced(self):
        srv = self.server(pools={"py": self.pool(request_timeout="1s")})
        pid = json.loads(srv.infer("py", b"pid")[2])["pid"]
        st, _, _ = srv.infer("py", b"loop")
        self.assertEqual(st, 504)
        wait_for(lambda: srv.infer("py", b"pid")[0] == 200, 10, what="a new worker")
        self.assertNotEqual(json.loads(srv.infer("py", b"pid")[2])["pid"], pid)

    def test_crash_is_rerun_then_502_and_readiness_tells_the_truth(self):
        srv = self.server(pools={"py": self.pool(max_attempts=2, init_sleep="1.5")},
                          heartbeat_timeout="3s")
        for cmd in (b"exit", b"segv"):
            st, _, body = srv.infer("py", cmd, timeout=30)
            self.assertEqual(st, 502, body)
            # the pool's only worker is dead and the new one loads for 1.5 s:
            # readiness says so, then serves again
            st, _, body = srv.http("GET", "/v2/models/py/ready")
            self.assertEqual(st, 503, body)
            wait_for(lambda: srv.http("GET", "/v2/models/py/ready")[0] == 200, 15, what="ready again")
            self.assertEqual(srv.infer("py", b"str")[0], 200)

    def test_leaking_model_is_recycled_by_max_requests(self):
        srv = self.server(pools={"py": self.pool(max_requests=4, workers=1, spares=1)})
        pids = set()
        def handover_done():
            w = srv.pool_status("py")["workers"]
            return w["starting"] == 0 and w["draining"] == 0
        for _ in range(30):
            # A human pace: a replacement gets the time to load (however
            # long that takes here) before the next request.
            wait_for(handover_done, 30, what="no replacement worker loading")
            st, _, got = srv.infer("py", b"leak")
            self.assertEqual(st, 200, got)
            doc = json.loads(got)
            pids.add(doc["pid"])
            # max_requests 4 (+ up to 25 % jitter), and a few more while
            # the replacement loads (recycling hands over ready-first)
            self.assertLessEqual(doc["leaked_mib"], 4 * 12, "a leaking worker was not recycled")
        self.assertGreaterEqual(len(pids), 3, "workers were not recycled")

    def test_reload_swaps_the_code_with_zero_failures_under_load(self):
        srv = self.server(pools={"echo": self.pool("swapped:infer", python_path=os.path.join(APPS, "v1"),
                                                   workers=2)})
        self.assertEqual(srv.infer("echo", b"x")[2], b"v1:x")
        load = LoadLoop(srv, pool="echo", threads=2, fresh=False)
        # LoadLoop checks echoes: count answers by version instead
        seen = {"v1": 0, "v2": 0, "other": 0}
        stop = threading.Event()
        errors = []

        def loop():
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    st, _, got = srv.infer("echo", b"r%d" % n)
                except OSError as e:
                    errors.append(repr(e))
                    continue
                if st != 200:
                    errors.append((st, got[:100]))
                elif got == b"v1:r%d" % n:
                    seen["v1"] += 1
                elif got == b"v2:r%d" % n:
                    seen["v2"] += 1
                else:
                    seen["other"] += 1
        del load
        threads = [threading.Thread(target=loop) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        srv.pools["echo"]["python_path"] = os.path.join(APPS, "v2")
        srv.write_ini()
        r = srv.ctl("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(seen["other"], 0)
        self.assertGreater(seen["v1"], 0)
        self.assertGreater(seen["v2"], 0)
        self.assertEqual(srv.infer("echo", b"x")[2], b"v2:x")

    def test_preloaded_python_model_serves_from_forked_workers(self):
        srv = self.server(pools={"py": self.pool("classapp:Model", workers=2, preload="yes", prefix="p:")})
        pids = set()
        for i in range(20):
            st, _, got = srv.infer("py", b"%d" % i)
            self.assertEqual(st, 200, got)
        pids = set(srv.workers("py"))
        self.assertEqual(len(pids), 2)
        st, _, got = srv.infer("py", b"z")
        self.assertTrue(got.startswith(b"p:z #"), got)


@unittest.skipUnless(HAVE_PY, "ringmaster was built without the python handler (--disable-python)")
@unittest.skipUnless(have_module("sklearn"), "python3-sklearn is not installed (setup.sh --check installs it)")
class DigitsModel(ServerTestCase):

    def test_digits_accuracy_on_held_out_images_through_http(self):
        srv = self.server(pools={"digits": {"handler": "python", "python_path": DIGITS, "app": "digits:Digits",
                                            "workers": 2, "max_request_size": "8MiB",
                                            # it trains at start: the harness waits this long
                                            "startup_timeout": "60s"}})
        code = ("import sys, json; sys.path.insert(0, %r); from digits_data import dataset; "
                "_, _, x, y = dataset(); print(json.dumps([x.tolist(), y.tolist()]))" % DIGITS)
        x, y = json.loads(subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                                         check=True).stdout)
        right = 0
        for i in range(0, len(y), 60):  # several requests, batches of up to 60 images
            batch = x[i:i + 60]
            st, _, got = srv.infer("digits", v2("image", "FP32", [len(batch), 64], batch), ctype="application/json")
            self.assertEqual(st, 200, got[:300])
            outs = {o["name"]: o for o in json.loads(got)["outputs"]}
            self.assertEqual(outs["probabilities"]["shape"], [len(batch), 10])
            right += sum(int(a == b) for a, b in zip(outs["label"]["data"], y[i:i + 60]))
        acc = right / len(y)
        print("\n  digits: accuracy %.3f on %d held-out images" % (acc, len(y)), end=" ")
        self.assertGreaterEqual(acc, 0.95)
        st, _, got = srv.infer("digits", v2("image", "FP32", [1, 3], [1, 2, 3]), ctype="application/json")
        self.assertEqual(st, 400, got)


@unittest.skipUnless(HAVE_PY, "ringmaster was built without the python handler (--disable-python)")
@unittest.skipUnless(have_module("torch"), "python3-torch is not installed (optional: it pulls ~170 packages; "
                                           "apt-get install -y python3-torch to run this test)")
class TorchModel(ServerTestCase):

    def test_torch_example_serves_v2_tensors(self):
        srv = self.server(pools={"torch": {"handler": "python", "app": "tiny_torch:Model", "workers": 1,
                                           "python_path": "%s, %s" % (os.path.join(SRC, "examples", "torch"), DIGITS),
                                           "startup_timeout": "120s"}})
        st, _, got = srv.infer("torch", v2("image", "FP32", [1, 64], [0.0] * 64), ctype="application/json")
        self.assertEqual(st, 200, got)
        outs = {o["name"]: o for o in json.loads(got)["outputs"]}
        self.assertEqual(outs["probabilities"]["shape"], [1, 10])


if __name__ == "__main__":
    unittest.main()
