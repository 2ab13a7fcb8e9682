/* generated from worker/handlers/ringmaster.py: do not edit */
#define RM_PYTHON_RUNTIME \
"\"\"\"ringmaster - the Python side of ringmaster's built-in `python` handler.\n" \
"\n" \
"A pool with `handler = python` and `app = package.module:Name` serves a\n" \
"Python model. Name is either\n" \
"  - a class: constructed once per worker with the pool's other keys as a\n" \
"    dict of strings; its `infer(request)` answers each request; an optional\n" \
"    `close()` runs when the worker exits; or\n" \
"  - a function `infer(request)`, with an optional module-level\n" \
"    `init(config)` run once per worker.\n" \
"\n" \
"`infer` returns\n" \
"  - bytes (200, application/octet-stream) or str (200, text/plain);\n" \
"  - a dict or list (200, JSON);\n" \
"  - for an Open Inference Protocol v2 request, a dict of named arrays (or a\n" \
"    list of lists): encoded as a v2 response (name, datatype, shape, data);\n" \
"  - `Response(body, status=200, content_type=None)` for anything else.\n" \
"`raise BadRequest(\"why\")` answers 400 with that message; any other exception\n" \
"answers 500 with its message, its traceback goes to the log, and the worker\n" \
"serves on. print(), logging and warnings go to ringmaster's log with the\n" \
"worker's name. docs/handlers.md is the guide.\n" \
"\"\"\"\n" \
"import json as _json\n" \
"import logging as _logging\n" \
"import sys as _sys\n" \
"import time as _time\n" \
"import traceback as _traceback\n" \
"\n" \
"import _ringmaster\n" \
"\n" \
"try:\n" \
"    import numpy as _np\n" \
"except Exception:  # noqa: BLE001 - numpy is optional\n" \
"    _np = None\n" \
"\n" \
"__all__ = [\"Request\", \"Response\", \"BadRequest\", \"log\"]\n" \
"\n" \
"\n" \
"class BadRequest(Exception):\n" \
"    \"\"\"Raise from infer() to answer 400 with the message.\"\"\"\n" \
"\n" \
"\n" \
"class Response:\n" \
"    \"\"\"An answer with its own status and Content-Type.\"\"\"\n" \
"\n" \
"    def __init__(self, body=b\"\", status=200, content_type=None):\n" \
"        self.body = body\n" \
"        self.status = int(status)\n" \
"        self.content_type = content_type\n" \
"\n" \
"\n" \
"def log(msg, level=\"info\"):\n" \
"    \"\"\"One line in ringmaster's log, from this worker.\"\"\"\n" \
"    _ringmaster.log(_LEVELS.get(level, 6), str(msg))\n" \
"\n" \
"\n" \
"_LEVELS = {\"error\": 3, \"warning\": 4, \"notice\": 5, \"info\": 6, \"debug\": 7}\n" \
"\n" \
"\n" \
"# ------------------------------------------------------------------ output\n" \
"\n" \
"class _LogWriter:\n" \
"    \"\"\"sys.stdout / sys.stderr: whole lines to ringmaster's log.\"\"\"\n" \
"\n" \
"    def __init__(self, level):\n" \
"        self.level = level\n" \
"        self.buf = \"\"\n" \
"\n" \
"    def write(self, s):\n" \
"        self.buf += s\n" \
"        while \"\\n\" in self.buf:\n" \
"            line, self.buf = self.buf.split(\"\\n\", 1)\n" \
"            if line:\n" \
"                _ringmaster.log(self.level, line)\n" \
"        return len(s)\n" \
"\n" \
"    def flush(self):\n" \
"        if self.buf:\n" \
"            _ringmaster.log(self.level, self.buf)\n" \
"            self.buf = \"\"\n" \
"\n" \
"    def isatty(self):\n" \
"        return False\n" \
"\n" \
"\n" \
"class _LogHandler(_logging.Handler):\n" \
"    def emit(self, record):\n" \
"        try:\n" \
"            lvl = 3 if record.levelno >= _logging.ERROR else 4 if record.levelno >= _logging.WARNING else \\\n" \
"                6 if record.levelno >= _logging.INFO else 7\n" \
"            _ringmaster.log(lvl, self.format(record))\n" \
"        except Exception:  # noqa: BLE001 - logging must never raise\n" \
"            pass\n" \
"\n" \
"\n" \
"def _setup_output():\n" \
"    _sys.stdout = _LogWriter(6)\n" \
"    _sys.stderr = _LogWriter(4)\n" \
"    root = _logging.getLogger()\n" \
"    h = _LogHandler()\n" \
"    h.setFormatter(_logging.Formatter(\"%(name)s: %(message)s\"))\n" \
"    root.addHandler(h)\n" \
"    if root.level == _logging.WARNING:\n" \
"        root.setLevel(_logging.INFO)\n" \
"    _logging.captureWarnings(True)\n" \
"\n" \
"\n" \
"# ------------------------------------------------------------------ v2 tensors\n" \
"\n" \
"_DTYPES = {\n" \
"    \"BOOL\": \"bool\", \"UINT8\": \"uint8\", \"UINT16\": \"uint16\", \"UINT32\": \"uint32\", \"UINT64\": \"uint64\",\n" \
"    \"INT8\": \"int8\", \"INT16\": \"int16\", \"INT32\": \"int32\", \"INT64\": \"int64\",\n" \
"    \"FP16\": \"float16\", \"FP32\": \"float32\", \"FP64\": \"float64\", \"BYTES\": \"object\",\n" \
"}\n" \
"\n" \
"\n" \
"def _flatten(data):\n" \
"    out = []\n" \
"    stack = [iter(data)]\n" \
"    while stack:\n" \
"        for x in stack[-1]:\n" \
"            if isinstance(x, list):\n" \
"                stack.append(iter(x))\n" \
"                break\n" \
"            out.append(x)\n" \
"        else:\n" \
"            stack.pop()\n" \
"    return out\n" \
"\n" \
"\n" \
"def _check_value(name, dt, v):\n" \
"    if dt == \"BYTES\":\n" \
"        if not isinstance(v, (str, bytes)):\n" \
"            raise BadRequest(\"input %s: BYTES data must be strings, got %s\" % (name, type(v).__name__))\n" \
"    elif dt == \"BOOL\":\n" \
"        if not isinstance(v, bool):\n" \
"            raise BadRequest(\"input %s: BOOL data must be true or false, got %r\" % (name, v))\n" \
"    elif dt.startswith(\"FP\"):\n" \
"        if isinstance(v, bool) or not isinstance(v, (int, float)):\n" \
"            raise BadRequest(\"input %s: %s data must be numbers, got %r\" % (name, dt, v))\n" \
"    else:\n" \
"        if isinstance(v, bool) or not isinstance(v, int):\n" \
"            raise BadRequest(\"input %s: %s data must be integers, got %r\" % (name, dt, v))\n" \
"\n" \
"\n" \
"def _decode_input(t):\n" \
"    if not isinstance(t, dict):\n" \
"        raise BadRequest(\"inputs: each input must be an object\")\n" \
"    name = t.get(\"name\")\n" \
"    dt = t.get(\"datatype\")\n" \
"    shape = t.get(\"shape\")\n" \
"    data = t.get(\"data\")\n" \
"    if not isinstance(name, str) or not name:\n" \
"        raise BadRequest(\"inputs: an input without a name\")\n" \
"    if dt not in _DTYPES:\n" \
"        raise BadRequest(\"input %s: unknown datatype %r (one of %s)\" % (name, dt, \", \".join(_DTYPES)))\n" \
"    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0\n" \
"                                               for d in shape):\n" \
"        raise BadRequest(\"input %s: shape must be a list of non-negative integers\" % name)\n" \
"    if not isinstance(data, list):\n" \
"        raise BadRequest(\"input %s: data must be a list\" % name)\n" \
"    flat = _flatten(data)\n" \
"    want = 1\n" \
"    for d in shape:\n" \
"        want *= d\n" \
"    if len(flat) != want:\n" \
"        raise BadRequest(\"input %s: shape %s needs %d values, got %d\" % (name, shape, want, len(flat)))\n" \
"    for v in flat:\n" \
"        _check_value(name, dt, v)\n" \
"    if dt == \"BYTES\":\n" \
"        flat = [v.encode() if isinstance(v, str) else v for v in flat]\n" \
"    if _np is not None:\n" \
"        if dt == \"BYTES\":\n" \
"            arr = _np.empty(len(flat), dtype=object)\n" \
"            arr[:] = flat\n" \
"        else:\n" \
"            arr = _np.asarray(flat, dtype=_DTYPES[dt])\n" \
"        return name, arr.reshape(shape)\n" \
"    return name, flat\n" \
"\n" \
"\n" \
"_NP_TO_V2 = {\"bool\": \"BOOL\", \"uint8\": \"UINT8\", \"uint16\": \"UINT16\", \"uint32\": \"UINT32\", \"uint64\": \"UINT64\",\n" \
"             \"int8\": \"INT8\", \"int16\": \"INT16\", \"int32\": \"INT32\", \"int64\": \"INT64\",\n" \
"             \"float16\": \"FP16\", \"float32\": \"FP32\", \"float64\": \"FP64\"}\n" \
"\n" \
"\n" \
"def _encode_output(name, value):\n" \
"    if _np is not None and isinstance(value, _np.ndarray):\n" \
"        arr = value\n" \
"    elif _np is not None and isinstance(value, (_np.generic,)):\n" \
"        arr = _np.asarray([value])\n" \
"    elif isinstance(value, (list, tuple)):\n" \
"        if _np is not None:\n" \
"            arr = _np.asarray(value)\n" \
"        else:\n" \
"            flat = _flatten(list(value))\n" \
"            dt = \"BYTES\" if flat and isinstance(flat[0], (str, bytes)) else \\\n" \
"                \"FP64\" if any(isinstance(v, float) for v in flat) else \"INT64\"\n" \
"            return {\"name\": name, \"datatype\": dt, \"shape\": [len(flat)],\n" \
"                    \"data\": [v.decode() if isinstance(v, bytes) else v for v in flat]}\n" \
"    elif isinstance(value, (int, float, str, bytes, bool)):\n" \
"        return _encode_output(name, [value])\n" \
"    else:\n" \
"        raise TypeError(\"output %s: cannot encode %s as a tensor\" % (name, type(value).__name__))\n" \
"    if arr.dtype.kind in \"OSU\":\n" \
"        data = [v.decode() if isinstance(v, bytes) else str(v) for v in arr.reshape(-1).tolist()]\n" \
"        return {\"name\": name, \"datatype\": \"BYTES\", \"shape\": list(arr.shape), \"data\": data}\n" \
"    dt = _NP_TO_V2.get(str(arr.dtype))\n" \
"    if dt is None:\n" \
"        raise TypeError(\"output %s: numpy dtype %s has no v2 datatype\" % (name, arr.dtype))\n" \
"    return {\"name\": name, \"datatype\": dt, \"shape\": list(arr.shape), \"data\": arr.reshape(-1).tolist()}\n" \
"\n" \
"\n" \
"# ------------------------------------------------------------------ the request\n" \
"\n" \
"class Request:\n" \
"    \"\"\"What infer() receives. body is a read-only memoryview of the request\n" \
"    in shared memory, valid during the call only (copy with bytes(body) to\n" \
"    keep it).\"\"\"\n" \
"\n" \
"    __slots__ = (\"body\", \"content_type\", \"attempt\", \"deadline\", \"_json\", \"_v2\")\n" \
"\n" \
"    def __init__(self, body, content_type, attempt, deadline):\n" \
"        self.body = body\n" \
"        self.content_type = content_type\n" \
"        self.attempt = attempt\n" \
"        self.deadline = deadline\n" \
"        self._json = None\n" \
"        self._v2 = None\n" \
"\n" \
"    @property\n" \
"    def remaining(self):\n" \
"        \"\"\"Seconds left until the request's deadline.\"\"\"\n" \
"        return self.deadline - _time.monotonic()\n" \
"\n" \
"    def json(self):\n" \
"        \"\"\"The body parsed as JSON (BadRequest if it is not).\"\"\"\n" \
"        if self._json is None:\n" \
"            try:\n" \
"                self._json = _json.loads(bytes(self.body))\n" \
"            except (ValueError, UnicodeDecodeError) as e:\n" \
"                raise BadRequest(\"body is not JSON: %s\" % e) from None\n" \
"        return self._json\n" \
"\n" \
"    def _decode_v2(self):\n" \
"        if self._v2 is None:\n" \
"            doc = None\n" \
"            if self.content_type.split(\";\")[0].strip().lower() in (\"application/json\", \"\") and \\\n" \
"                    bytes(self.body[:1]) == b\"{\":\n" \
"                try:\n" \
"                    doc = self.json()\n" \
"                except BadRequest:\n" \
"                    doc = None\n" \
"            if isinstance(doc, dict) and \"inputs\" in doc:\n" \
"                if not isinstance(doc[\"inputs\"], list):\n" \
"                    raise BadRequest(\"inputs must be a list\")\n" \
"                inputs = {}\n" \
"                for t in doc[\"inputs\"]:\n" \
"                    name, arr = _decode_input(t)\n" \
"                    inputs[name] = arr\n" \
"                params = doc.get(\"parameters\") or {}\n" \
"                if not isinstance(params, dict):\n" \
"                    raise BadRequest(\"parameters must be an object\")\n" \
"                self._v2 = (True, inputs, params, doc.get(\"id\"), doc.get(\"outputs\"))\n" \
"            else:\n" \
"                self._v2 = (False, {}, {}, None, None)\n" \
"        return self._v2\n" \
"\n" \
"    @property\n" \
"    def is_v2(self):\n" \
"        \"\"\"True for an Open Inference Protocol v2 JSON request.\"\"\"\n" \
"        return self._decode_v2()[0]\n" \
"\n" \
"    @property\n" \
"    def inputs(self):\n" \
"        \"\"\"v2 inputs by name: numpy arrays (lists without numpy), shape and datatype checked.\"\"\"\n" \
"        return self._decode_v2()[1]\n" \
"\n" \
"    @property\n" \
"    def parameters(self):\n" \
"        return self._decode_v2()[2]\n" \
"\n" \
"\n" \
"# ------------------------------------------------------------------ the model\n" \
"\n" \
"_model = {\"infer\": None, \"close\": None, \"name\": \"\"}\n" \
"\n" \
"\n" \
"def _load(app, config):\n" \
"    \"\"\"Import app (\"package.module:Name\") and build the model.\"\"\"\n" \
"    import importlib\n" \
"    import inspect\n" \
"    if \":\" not in app:\n" \
"        raise ValueError(\"app = %r: expected package.module:Name\" % app)\n" \
"    modname, attr = app.split(\":\", 1)\n" \
"    mod = importlib.import_module(modname)\n" \
"    obj = mod\n" \
"    for part in attr.split(\".\"):\n" \
"        obj = getattr(obj, part)\n" \
"    if inspect.isclass(obj):\n" \
"        inst = obj(dict(config))\n" \
"        infer = getattr(inst, \"infer\", None)\n" \
"        if not callable(infer):\n" \
"            raise TypeError(\"%s has no infer(request) method\" % app)\n" \
"        _model[\"infer\"] = infer\n" \
"        close = getattr(inst, \"close\", None)\n" \
"        _model[\"close\"] = close if callable(close) else None\n" \
"    elif callable(obj):\n" \
"        init = getattr(mod, \"init\", None)\n" \
"        if callable(init) and init is not obj:\n" \
"            init(dict(config))\n" \
"        _model[\"infer\"] = obj\n" \
"        close = getattr(mod, \"close\", None)\n" \
"        _model[\"close\"] = close if callable(close) and close is not obj else None\n" \
"    else:\n" \
"        raise TypeError(\"%s is neither a class nor a function\" % app)\n" \
"    _model[\"name\"] = app\n" \
"\n" \
"\n" \
"def _encode(result, req, model_name):\n" \
"    \"\"\"(status, content_type, bytes) of what infer() returned.\"\"\"\n" \
"    if isinstance(result, Response):\n" \
"        body = result.body\n" \
"        ct = result.content_type\n" \
"        if isinstance(body, str):\n" \
"            return result.status, ct or \"text/plain; charset=utf-8\", body.encode()\n" \
"        if isinstance(body, (dict, list)):\n" \
"            return result.status, ct or \"application/json\", _json.dumps(body).encode()\n" \
"        return result.status, ct or \"application/octet-stream\", bytes(body)\n" \
"    if result is None:\n" \
"        return 200, \"application/octet-stream\", b\"\"\n" \
"    if isinstance(result, (bytes, bytearray, memoryview)):\n" \
"        return 200, \"application/octet-stream\", bytes(result)\n" \
"    if isinstance(result, str):\n" \
"        return 200, \"text/plain; charset=utf-8\", result.encode()\n" \
"    v2 = req._v2 is not None and req._v2[0] or (req._v2 is None and req.is_v2)\n" \
"    if v2 and isinstance(result, dict) and not (\"outputs\" in result and isinstance(result[\"outputs\"], list)):\n" \
"        out = {\"model_name\": model_name, \"outputs\": [_encode_output(k, v) for k, v in result.items()]}\n" \
"        if req._v2[3] is not None:\n" \
"            out[\"id\"] = req._v2[3]\n" \
"        return 200, \"application/json\", _json.dumps(out).encode()\n" \
"    if isinstance(result, (dict, list, tuple, int, float, bool)):\n" \
"        return 200, \"application/json\", _json.dumps(result, default=_json_default).encode()\n" \
"    if _np is not None and isinstance(result, (_np.ndarray, _np.generic)):\n" \
"        return 200, \"application/json\", _json.dumps(result.tolist()).encode()\n" \
"    raise TypeError(\"infer() returned %s: return bytes, str, a dict or list, or ringmaster.Response\"\n" \
"                    % type(result).__name__)\n" \
"\n" \
"\n" \
"def _json_default(o):\n" \
"    if _np is not None and isinstance(o, (_np.ndarray, _np.generic)):\n" \
"        return o.tolist()\n" \
"    if isinstance(o, bytes):\n" \
"        return o.decode(\"utf-8\", \"replace\")\n" \
"    raise TypeError(\"%s is not JSON serializable\" % type(o).__name__)\n" \
"\n" \
"\n" \
"def _handle(body, content_type, attempt, deadline, pool):\n" \
"    \"\"\"Called by the worker for each request: (status, content_type, bytes).\"\"\"\n" \
"    req = Request(body, content_type, attempt, deadline)\n" \
"    try:\n" \
"        result = _model[\"infer\"](req)\n" \
"        return _encode(result, req, pool)\n" \
"    except BadRequest as e:\n" \
"        return 400, \"application/json\", _json.dumps({\"error\": str(e) or \"bad request\"}).encode()\n" \
"    except Exception as e:  # noqa: BLE001 - a model's error is the client's 500, the log's traceback\n" \
"        tb = _traceback.format_exc()\n" \
"        for line in tb.rstrip().split(\"\\n\"):\n" \
"            _ringmaster.log(3, line)\n" \
"        msg = \"%s: %s\" % (type(e).__name__, e) if str(e) else type(e).__name__\n" \
"        return 500, \"application/json\", _json.dumps({\"error\": msg}).encode()\n" \
"    finally:\n" \
"        _sys.stdout.flush()\n" \
"        _sys.stderr.flush()\n" \
"\n" \
"\n" \
"def _close():\n" \
"    close = _model.get(\"close\")\n" \
"    if close:\n" \
"        close()\n" \
""
