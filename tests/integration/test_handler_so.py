"""An out-of-tree handler .so loaded by path (tests/handlers/example_upper.so)."""
import os
import unittest

from harness import EXAMPLE_UPPER_SO, ServerTestCase


class OutOfTreeHandler(ServerTestCase):

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(EXAMPLE_UPPER_SO),
                        "%s missing: build it with `make tests/handlers/example_upper.so`" % EXAMPLE_UPPER_SO)

    def test_so_handler_by_path_uppercases(self):
        srv = self.server(pools={"upper": {"handler": EXAMPLE_UPPER_SO, "workers": 2},
                                 "shout": {"handler": EXAMPLE_UPPER_SO, "workers": 1, "prefix": ">>"}})
        st, h, body = srv.infer("upper", b"hello", ctype="text/plain")
        self.assertEqual((st, body), (200, b"HELLO"))
        self.assertEqual(h.get("content-type"), "text/plain")
        # A pool key ringmaster does not know reaches the handler's init.
        st, _, body = srv.infer("shout", b"hello", ctype="text/plain")
        self.assertEqual((st, body), (200, b">>HELLO"))
        # The handler's own status passes through.
        st, _, body = srv.infer("upper", b"\x00\x01", ctype="application/octet-stream")
        self.assertEqual(st, 415, body)


if __name__ == "__main__":
    unittest.main()
