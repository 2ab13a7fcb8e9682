"""version 1 of the swapped app."""


def infer(request):
    return b"v1:" + bytes(request.body)
