"""version 2 of the swapped app."""


def infer(request):
    return b"v2:" + bytes(request.body)
