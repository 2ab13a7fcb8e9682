"""A streaming Python model for tests/integration/test_stream.py: infer()
is a generator. Body "N" yields N items alternating bytes, str and dict;
"fail K" raises after K items; "count PATH N" yields N items slowly and
writes how far it ran and whether it saw request.cancelled to PATH."""
import time


def infer(request):
    words = bytes(request.body).decode().split()
    if words[0] == "fail":
        return failing(int(words[1]))
    if words[0] == "count":
        return counting(request, words[1], int(words[2]))
    return items(int(words[0]))


def items(n):
    for i in range(n):
        if i % 3 == 0:
            yield b"b%d;" % i
        elif i % 3 == 1:
            yield "s%d;" % i
        else:
            yield {"d": i}


def failing(k):
    for i in range(k):
        yield "ok%d;" % i
    raise RuntimeError("broken model")


def counting(request, path, n):
    emitted, seen = 0, False
    try:
        for i in range(n):
            if request.cancelled:
                seen = True
                break
            yield "c%d\n" % i
            emitted += 1
            time.sleep(0.01)
    finally:
        # GeneratorExit (the client went away at a yield) counts as seen too.
        with open(path, "w") as f:
            f.write("emitted=%d cancelled=%d\n" % (emitted, 1 if (seen or request.cancelled) else 0))
