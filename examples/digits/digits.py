"""digits - a scikit-learn classifier of handwritten digits, served by
ringmaster's python handler with Open Inference Protocol v2 tensors.

Trained at start-up (a fraction of a second) on the 8x8 digits that
Debian's python3-sklearn ships (no download): a support vector classifier
on 80 % of the dataset; the other 20 % is held out for the accuracy test
(tests/integration/test_python.py, at least 0.95 through HTTP).

    [pool digits]
    handler = python
    python_path = ../examples/digits
    app = digits:Digits

Request: {"inputs":[{"name":"image","datatype":"FP32","shape":[N,64],"data":[...]}]}
(pixel values 0..16, as in the dataset); answer: outputs "label" (INT64,
[N]) and "probabilities" (FP32, [N,10]).
"""
import numpy as np
from sklearn.svm import SVC

import ringmaster
from digits_data import dataset


class Digits:
    def __init__(self, config):
        x, y, _, _ = dataset()
        self.model = SVC(gamma=float(config.get("gamma", "0.001")), probability=True, random_state=0)
        self.model.fit(x, y)
        ringmaster.log("digits: trained on %d images" % len(y))

    def infer(self, request):
        if not request.is_v2:
            raise ringmaster.BadRequest("send a v2 request: inputs [{name: image, datatype: FP32, shape: [N, 64]}]")
        if "image" not in request.inputs:
            raise ringmaster.BadRequest("input 'image' is missing")
        x = np.asarray(request.inputs["image"], dtype=np.float64)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != 64:
            raise ringmaster.BadRequest("input image: shape must be [N, 64], got %s" % list(x.shape))
        proba = self.model.predict_proba(x).astype(np.float32)
        return {"label": proba.argmax(axis=1).astype(np.int64), "probabilities": proba}
