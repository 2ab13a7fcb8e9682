"""tiny_torch - a PyTorch model served by ringmaster's python handler.

A small multilayer perceptron trained at start-up (a second, on the CPU) on
the digits dataset Debian's python3-sklearn ships, then served with v2
tensors like examples/digits. Needs python3-torch (not installed by
setup.sh: it pulls ~170 packages); tests/integration/test_python.py skips
its test when torch is absent, and says so.

    [pool torch]
    handler = python
    python_path = ../examples/torch, ../examples/digits
    app = tiny_torch:Model
    preload = no            ; never initialise torch before fork with CUDA (docs/handlers.md)
"""
import numpy as np
import torch

import ringmaster
from digits_data import dataset


class Model:
    def __init__(self, config):
        torch.manual_seed(0)
        torch.set_num_threads(1)  # the pool is the parallelism
        x, y, _, _ = dataset()
        xt = torch.tensor(x / 16.0, dtype=torch.float32)
        yt = torch.tensor(y, dtype=torch.int64)
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        opt = torch.optim.Adam(self.net.parameters(), lr=0.01)
        for _ in range(int(config.get("epochs", "200"))):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.net(xt), yt)
            loss.backward()
            opt.step()
        self.net.eval()
        ringmaster.log("tiny_torch: trained, loss %.3f" % float(loss))

    def infer(self, request):
        if "image" not in request.inputs:
            raise ringmaster.BadRequest("send a v2 request with an input named image, shape [N, 64]")
        x = np.asarray(request.inputs["image"], dtype=np.float32).reshape(-1, 64) / 16.0
        with torch.no_grad():
            p = torch.softmax(self.net(torch.from_numpy(x)), dim=1).numpy()
        return {"label": p.argmax(axis=1).astype(np.int64), "probabilities": p.astype(np.float32)}
