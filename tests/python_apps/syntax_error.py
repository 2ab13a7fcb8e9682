def infer(request)
    return b"never"
