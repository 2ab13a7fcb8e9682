"""ringmaster - the Python side of ringmaster's built-in `python` handler.

A pool with `handler = python` and `app = package.module:Name` serves a
Python model. Name is either
  - a class: constructed once per worker with the pool's other keys as a
    dict of strings; its `infer(request)` answers each request; an optional
    `close()` runs when the worker exits; or
  - a function `infer(request)`, with an optional module-level
    `init(config)` run once per worker.

`infer` returns
  - bytes (200, application/octet-stream) or str (200, text/plain);
  - a dict or list (200, JSON);
  - for an Open Inference Protocol v2 request, a dict of named arrays (or a
    list of lists): encoded as a v2 response (name, datatype, shape, data);
  - `Response(body, status=200, content_type=None)` for anything else.
`raise BadRequest("why")` answers 400 with that message; any other exception
answers 500 with its message, its traceback goes to the log, and the worker
serves on. print(), logging and warnings go to ringmaster's log with the
worker's name. docs/handlers.md is the guide.
"""
import json as _json
import logging as _logging
import sys as _sys
import time as _time
import traceback as _traceback

import _ringmaster

try:
    import numpy as _np
except Exception:  # noqa: BLE001 - numpy is optional
    _np = None

__all__ = ["Request", "Response", "BadRequest", "log"]


class BadRequest(Exception):
    """Raise from infer() to answer 400 with the message."""


class Response:
    """An answer with its own status and Content-Type."""

    def __init__(self, body=b"", status=200, content_type=None):
        self.body = body
        self.status = int(status)
        self.content_type = content_type


def log(msg, level="info"):
    """One line in ringmaster's log, from this worker."""
    _ringmaster.log(_LEVELS.get(level, 6), str(msg))


_LEVELS = {"error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}


# ------------------------------------------------------------------ output

class _LogWriter:
    """sys.stdout / sys.stderr: whole lines to ringmaster's log."""

    def __init__(self, level):
        self.level = level
        self.buf = ""

    def write(self, s):
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            if line:
                _ringmaster.log(self.level, line)
        return len(s)

    def flush(self):
        if self.buf:
            _ringmaster.log(self.level, self.buf)
            self.buf = ""

    def isatty(self):
        return False


class _LogHandler(_logging.Handler):
    def emit(self, record):
        try:
            lvl = 3 if record.levelno >= _logging.ERROR else 4 if record.levelno >= _logging.WARNING else \
                6 if record.levelno >= _logging.INFO else 7
            _ringmaster.log(lvl, self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise
            pass


def _setup_output():
    _sys.stdout = _LogWriter(6)
    _sys.stderr = _LogWriter(4)
    root = _logging.getLogger()
    h = _LogHandler()
    h.setFormatter(_logging.Formatter("%(name)s: %(message)s"))
    root.addHandler(h)
    if root.level == _logging.WARNING:
        root.setLevel(_logging.INFO)
    _logging.captureWarnings(True)


# ------------------------------------------------------------------ v2 tensors

_DTYPES = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}


def _flatten(data):
    out = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def _check_value(name, dt, v):
    if dt == "BYTES":
        if not isinstance(v, (str, bytes)):
            raise BadRequest("input %s: BYTES data must be strings, got %s" % (name, type(v).__name__))
    elif dt == "BOOL":
        if not isinstance(v, bool):
            raise BadRequest("input %s: BOOL data must be true or false, got %r" % (name, v))
    elif dt.startswith("FP"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadRequest("input %s: %s data must be numbers, got %r" % (name, dt, v))
    else:
        if isinstance(v, bool) or not isinstance(v, int):
            raise BadRequest("input %s: %s data must be integers, got %r" % (name, dt, v))


def _decode_input(t):
    if not isinstance(t, dict):
        raise BadRequest("inputs: each input must be an object")
    name = t.get("name")
    dt = t.get("datatype")
    shape = t.get("shape")
    data = t.get("data")
    if not isinstance(name, str) or not name:
        raise BadRequest("inputs: an input without a name")
    if dt not in _DTYPES:
        raise BadRequest("input %s: unknown datatype %r (one of %s)" % (name, dt, ", ".join(_DTYPES)))
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape):
        raise BadRequest("input %s: shape must be a list of non-negative integers" % name)
    if not isinstance(data, list):
        raise BadRequest("input %s: data must be a list" % name)
    flat = _flatten(data)
    want = 1
    for d in shape:
        want *= d
    if len(flat) != want:
        raise BadRequest("input %s: shape %s needs %d values, got %d" % (name, shape, want, len(flat)))
    for v in flat:
        _check_value(name, dt, v)
    if dt == "BYTES":
        flat = [v.encode() if isinstance(v, str) else v for v in flat]
    if _np is not None:
        if dt == "BYTES":
            arr = _np.empty(len(flat), dtype=object)
            arr[:] = flat
        else:
            arr = _np.asarray(flat, dtype=_DTYPES[dt])
        return name, arr.reshape(shape)
    return name, flat


_NP_TO_V2 = {"bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
             "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
             "float16": "FP16", "float32": "FP32", "float64": "FP64"}


def _encode_output(name, value):
    if _np is not None and isinstance(value, _np.ndarray):
        arr = value
    elif _np is not None and isinstance(value, (_np.generic,)):
        arr = _np.asarray([value])
    elif isinstance(value, (list, tuple)):
        if _np is not None:
            arr = _np.asarray(value)
        else:
            flat = _flatten(list(value))
            dt = "BYTES" if flat and isinstance(flat[0], (str, bytes)) else \
                "FP64" if any(isinstance(v, float) for v in flat) else "INT64"
            return {"name": name, "datatype": dt, "shape": [len(flat)],
                    "data": [v.decode() if isinstance(v, bytes) else v for v in flat]}
    elif isinstance(value, (int, float, str, bytes, bool)):
        return _encode_output(name, [value])
    else:
        raise TypeError("output %s: cannot encode %s as a tensor" % (name, type(value).__name__))
    if arr.dtype.kind in "OSU":
        data = [v.decode() if isinstance(v, bytes) else str(v) for v in arr.reshape(-1).tolist()]
        return {"name": name, "datatype": "BYTES", "shape": list(arr.shape), "data": data}
    dt = _NP_TO_V2.get(str(arr.dtype))
    if dt is None:
        raise TypeError("output %s: numpy dtype %s has no v2 datatype" % (name, arr.dtype))
    return {"name": name, "datatype": dt, "shape": list(arr.shape), "data": arr.reshape(-1).tolist()}


# ------------------------------------------------------------------ the request

class Request:
    """What infer() receives. body is a read-only memoryview of the request
    in shared memory, valid during the call only (copy with bytes(body) to
    keep it)."""

    __slots__ = ("body", "content_type", "attempt", "deadline", "_json", "_v2")

    @property
    def cancelled(self):
        """True once the client went away (a streaming infer stops then)."""
        return _ringmaster.cancelled()

    def __init__(self, body, content_type, attempt, deadline):
        self.body = body
        self.content_type = content_type
        self.attempt = attempt
        self.deadline = deadline
        self._json = None
        self._v2 = None

    @property
    def remaining(self):
        """Seconds left until the request's deadline."""
        return self.deadline - _time.monotonic()

    def json(self):
        """The body parsed as JSON (BadRequest if it is not)."""
        if self._json is None:
            try:
                self._json = _json.loads(bytes(self.body))
            except (ValueError, UnicodeDecodeError) as e:
                raise BadRequest("body is not JSON: %s" % e) from None
        return self._json

    def _decode_v2(self):
        if self._v2 is None:
            doc = None
            if self.content_type.split(";")[0].strip().lower() in ("application/json", "") and \
                    bytes(self.body[:1]) == b"{":
                try:
                    doc = self.json()
                except BadRequest:
                    doc = None
            if isinstance(doc, dict) and "inputs" in doc:
                if not isinstance(doc["inputs"], list):
                    raise BadRequest("inputs must be a list")
                inputs = {}
                for t in doc["inputs"]:
                    name, arr = _decode_input(t)
                    inputs[name] = arr
                params = doc.get("parameters") or {}
                if not isinstance(params, dict):
                    raise BadRequest("parameters must be an object")
                self._v2 = (True, inputs, params, doc.get("id"), doc.get("outputs"))
            else:
                self._v2 = (False, {}, {}, None, None)
        return self._v2

    @property
    def is_v2(self):
        """True for an Open Inference Protocol v2 JSON request."""
        return self._decode_v2()[0]

    @property
    def inputs(self):
        """v2 inputs by name: numpy arrays (lists without numpy), shape and datatype checked."""
        return self._decode_v2()[1]

    @property
    def parameters(self):
        return self._decode_v2()[2]


# ------------------------------------------------------------------ the model

_model = {"infer": None, "close": None, "name": ""}


def _load(app, config):
    """Import app ("package.module:Name") and build the model."""
    import importlib
    import inspect
    if ":" not in app:
        raise ValueError("app = %r: expected package.module:Name" % app)
    modname, attr = app.split(":", 1)
    mod = importlib.import_module(modname)
    obj = mod
    for part in attr.split("."):
        obj = getattr(obj, part)
    if inspect.isclass(obj):
        inst = obj(dict(config))
        infer = getattr(inst, "infer", None)
        if not callable(infer):
            raise TypeError("%s has no infer(request) method" % app)
        _model["infer"] = infer
        close = getattr(inst, "close", None)
        _model["close"] = close if callable(close) else None
    elif callable(obj):
        init = getattr(mod, "init", None)
        if callable(init) and init is not obj:
            init(dict(config))
        _model["infer"] = obj
        close = getattr(mod, "close", None)
        _model["close"] = close if callable(close) and close is not obj else None
    else:
        raise TypeError("%s is neither a class nor a function" % app)
    _model["name"] = app


def _encode(result, req, model_name):
    """(status, content_type, bytes) of what infer() returned."""
    if isinstance(result, Response):
        body = result.body
        ct = result.content_type
        if isinstance(body, str):
            return result.status, ct or "text/plain; charset=utf-8", body.encode()
        if isinstance(body, (dict, list)):
            return result.status, ct or "application/json", _json.dumps(body).encode()
        return result.status, ct or "application/octet-stream", bytes(body)
    if result is None:
        return 200, "application/octet-stream", b""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return 200, "application/octet-stream", bytes(result)
    if isinstance(result, str):
        return 200, "text/plain; charset=utf-8", result.encode()
    v2 = req._v2 is not None and req._v2[0] or (req._v2 is None and req.is_v2)
    if v2 and isinstance(result, dict) and not ("outputs" in result and isinstance(result["outputs"], list)):
        out = {"model_name": model_name, "outputs": [_encode_output(k, v) for k, v in result.items()]}
        if req._v2[3] is not None:
            out["id"] = req._v2[3]
        return 200, "application/json", _json.dumps(out).encode()
    if isinstance(result, (dict, list, tuple, int, float, bool)):
        return 200, "application/json", _json.dumps(result, default=_json_default).encode()
    if _np is not None and isinstance(result, (_np.ndarray, _np.generic)):
        return 200, "application/json", _json.dumps(result.tolist()).encode()
    raise TypeError("infer() returned %s: return bytes, str, a dict or list, or ringmaster.Response"
                    % type(result).__name__)


def _json_default(o):
    if _np is not None and isinstance(o, (_np.ndarray, _np.generic)):
        return o.tolist()
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    raise TypeError("%s is not JSON serializable" % type(o).__name__)


def _chunk(item):
    """(content type, bytes) of one item a streaming infer yielded."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return "application/octet-stream", bytes(item)
    if isinstance(item, str):
        return "text/plain; charset=utf-8", item.encode()
    if isinstance(item, (dict, list)):
        return "application/json", _json.dumps(item, default=_json_default).encode()
    raise TypeError("infer() yielded %s: yield bytes, str or a dict" % type(item).__name__)


def _stream(gen):
    """infer() is a generator: each item it yields is one chunk, sent to the
    client at once (status 200; the Content-Type is the first item's).
    When the client goes away the generator is closed (GeneratorExit at its
    yield). An empty generator answers an empty 200."""
    n = 0
    try:
        for item in gen:
            ct, data = _chunk(item)
            n += 1
            if not _ringmaster.emit(data, 200, ct):
                gen.close()
                return 499, "text/plain", b"client gone"
    except BaseException:
        if n == 0:
            raise  # nothing went out yet: a plain error answer
        tb = _traceback.format_exc()
        for line in tb.rstrip().split("\n"):
            _ringmaster.log(3, line)
        return 500, "text/plain", b"infer failed mid-stream"
    return 200, "application/octet-stream", b""


def _handle(body, content_type, attempt, deadline, pool):
    """Called by the worker for each request: (status, content_type, bytes)."""
    req = Request(body, content_type, attempt, deadline)
    try:
        result = _model["infer"](req)
        if hasattr(result, "__next__") and hasattr(result, "close") and hasattr(result, "send"):
            return _stream(result)
        return _encode(result, req, pool)
    except BadRequest as e:
        return 400, "application/json", _json.dumps({"error": str(e) or "bad request"}).encode()
    except Exception as e:  # noqa: BLE001 - a model's error is the client's 500, the log's traceback
        tb = _traceback.format_exc()
        for line in tb.rstrip().split("\n"):
            _ringmaster.log(3, line)
        msg = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
        return 500, "application/json", _json.dumps({"error": msg}).encode()
    finally:
        _sys.stdout.flush()
        _sys.stderr.flush()


def _close():
    close = _model.get("close")
    if close:
        close()
