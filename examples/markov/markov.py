"""markov - a tiny text generator that streams its answer token by token.

A word-level Markov chain (order 2 by default), trained once per worker at
start-up on a text that Debian ships in every installation: the GNU GPL v3
in /usr/share/common-licenses (base-files). No download, no dependency
beyond the standard library.

Served by ringmaster's `python` handler (docs/streaming.md): `infer` is a
generator, so each word it yields goes to the client at once, through
ringmaster's shared memory, as one chunk:

    curl -N http://127.0.0.1:8080/v2/models/markov/generate_stream \
         -d '{"text_input": "the freedom", "parameters": {"max_tokens": 30}}'
    data: {"text_output": " to"}
    data: {"text_output": " share"}
    ...

Through /generate the same chunks come back merged into one JSON answer.
The request: a JSON object with "text_input" (the prompt; its last words
seed the chain) and optional "parameters": {"max_tokens": N (default 40,
at most 1000), "seed": S (the same seed, the same text), "delay_ms": D (a
pause per token, to watch it stream)}. Keys of the pool section: corpus
(the training text), order (words of context).
"""
import random
import re
import time

import ringmaster

DEFAULT_CORPUS = "/usr/share/common-licenses/GPL-3"
WORD = re.compile(r"[A-Za-z0-9'\-]+|[.,;:!?()]")


class Markov:
    def __init__(self, config):
        self.order = int(config.get("order", "2"))
        path = config.get("corpus", DEFAULT_CORPUS)
        with open(path, encoding="utf-8", errors="replace") as f:
            words = WORD.findall(f.read())
        if len(words) <= self.order:
            raise ValueError("corpus %s has too few words" % path)
        self.chain = {}
        for i in range(len(words) - self.order):
            key = tuple(w.lower() for w in words[i:i + self.order])
            self.chain.setdefault(key, []).append(words[i + self.order])
        self.starts = [k for k in self.chain if k[0][0].isalpha()]
        ringmaster.log("markov: %d words of %s, %d contexts of %d words"
                       % (len(words), path, len(self.chain), self.order))

    def infer(self, request):
        doc = request.json()
        if not isinstance(doc, dict):
            raise ringmaster.BadRequest("expected a JSON object with text_input")
        prompt = doc.get("text_input", "")
        params = doc.get("parameters") or {}
        if not isinstance(prompt, str) or not isinstance(params, dict):
            raise ringmaster.BadRequest("text_input must be a string and parameters an object")
        try:
            n = min(max(int(params.get("max_tokens", 40)), 0), 1000)
            delay = min(max(float(params.get("delay_ms", 0)), 0.0), 1000.0) / 1000.0
        except (TypeError, ValueError):
            raise ringmaster.BadRequest("max_tokens and delay_ms must be numbers") from None
        rng = random.Random(params.get("seed"))
        seed = tuple(w.lower() for w in WORD.findall(prompt)[-self.order:])
        if seed not in self.chain:
            seed = rng.choice(self.starts)
        state = list(seed)
        return self._generate(request, state, n, rng, delay)

    def _generate(self, request, state, n, rng, delay):
        for _ in range(n):
            if request.cancelled:
                return  # the client left: stop generating
            nxt = self.chain.get(tuple(state[-self.order:]))
            if not nxt:
                nxt = list(rng.choice(self.starts))[:1]
            word = rng.choice(nxt)
            state.append(word.lower())
            text = word if word in ".,;:!?)" else " " + word
            yield {"text_output": text}
            if delay:
                time.sleep(delay)
