import no_such_module_anywhere  # noqa: F401

def infer(request):
    return b"never"
