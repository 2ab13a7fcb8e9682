"""digits_wsgi - the digits model of examples/digits as a WSGI app, for
bench/python_bench.sh: the same training, the same v2 JSON in and out, so
that gunicorn and ringmaster serve exactly the same work."""
import json
import os
import sys

import numpy as np
from sklearn.svm import SVC

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "digits"))
from digits_data import dataset  # noqa: E402

_x, _y, _, _ = dataset()
MODEL = SVC(gamma=0.001, probability=True, random_state=0).fit(_x, _y)


def app(environ, start_response):
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
        doc = json.loads(environ["wsgi.input"].read(n))
        t = doc["inputs"][0]
        x = np.asarray(t["data"], dtype=np.float64).reshape(t["shape"])
        proba = MODEL.predict_proba(x).astype(np.float32)
        out = {"model_name": "digits", "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [len(proba)], "data": proba.argmax(axis=1).tolist()},
            {"name": "probabilities", "datatype": "FP32", "shape": list(proba.shape),
             "data": proba.reshape(-1).tolist()}]}
        body = json.dumps(out).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    except Exception as e:  # noqa: BLE001
        body = json.dumps({"error": str(e)}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(body)))])
        return [body]
