"""fnapp - a function app for tests/integration/test_python.py: the body
picks the behaviour (see infer)."""
import ctypes
import logging
import os
import time
import warnings

import ringmaster

CONFIG = {}
KEPT = []
LEAK = []


def init(config):
    CONFIG.update(config)
    if config.get("init_sleep"):
        time.sleep(float(config["init_sleep"]))


def infer(request):
    if request.is_v2:
        # v2 round trip: every input back as an output of the same name
        return dict(request.inputs)
    cmd = bytes(request.body).decode("utf-8", "replace")
    if cmd == "bytes":
        return b"\x00\x01raw"
    if cmd == "str":
        return "text \u00e9"
    if cmd == "json":
        return {"a": 1, "list": [1, 2]}
    if cmd == "response":
        return ringmaster.Response(b"teapot", status=418, content_type="text/x-tea")
    if cmd == "bad":
        raise ringmaster.BadRequest("the input is bad")
    if cmd == "boom":
        raise ValueError("model exploded")
    if cmd == "pid":
        return {"pid": os.getpid()}
    if cmd == "config":
        return CONFIG
    if cmd == "attempt":
        return {"attempt": request.attempt, "remaining": request.remaining}
    if cmd == "ctype":
        return {"content_type": request.content_type}
    if cmd == "loop":
        while True:
            pass
    if cmd == "exit":
        os._exit(3)
    if cmd == "segv":
        ctypes.string_at(0)
    if cmd == "leak":
        LEAK.append(bytearray(4 << 20))
        return {"pid": os.getpid(), "leaked_mib": 4 * len(LEAK)}
    if cmd == "print":
        print("hello from print")
        logging.getLogger("fnapp").warning("hello from logging")
        warnings.warn("hello from warnings")
        return "printed"
    if cmd == "keep":
        KEPT.append(request.body)
        return "kept"
    if cmd == "kept":
        try:
            return bytes(KEPT[-1])
        except ValueError as e:
            return {"released": str(e)}
    if cmd == "big":
        return b"x" * (2 << 20)
    return bytes(request.body)
