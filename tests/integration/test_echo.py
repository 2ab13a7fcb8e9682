"""Echo round trips: small and 1 MiB bodies, keep-alive, pipelining."""
import http.client
import os
import time
import unittest

from harness import Server, ServerTestCase, build_request


class EchoRoundTrip(ServerTestCase):
    class_servers = []

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(pools={"echo": {"handler": "echo", "workers": 2,
                                         "max_request_size": "2MiB", "max_response_size": "2MiB"}})
        cls.class_servers = [cls.srv]
        try:
            cls.srv.start()
        except BaseException:
            cls.srv.stop(check=False)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_small_body_echoed_with_its_content_type(self):
        st, h, body = self.srv.infer("echo", b"hello, ringmaster", ctype="text/plain; charset=utf-8")
        self.assertEqual(st, 200, body)
        self.assertEqual(body, b"hello, ringmaster")
        self.assertEqual(h.get("content-type"), "text/plain; charset=utf-8")

    def test_empty_body_echoed(self):
        st, _, body = self.srv.infer("echo", b"", ctype="text/plain")
        self.assertEqual(st, 200, body)
        self.assertEqual(body, b"")

    def test_1mib_body_echoed_intact(self):
        data = os.urandom(1 << 20)
        st, h, body = self.srv.infer("echo", data, ctype="application/octet-stream", timeout=20)
        self.assertEqual(st, 200, body[:200])
        self.assertEqual(len(body), len(data))
        self.assertTrue(body == data, "1 MiB body came back altered")
        self.assertEqual(h.get("content-length"), str(len(data)))

    def test_keepalive_connection_serves_many_requests(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        try:
            conn.connect()
            local = conn.sock.getsockname()
            for i in range(20):
                body = b"keep-alive %d" % i
                conn.request("POST", "/v2/models/echo/infer", body=body, headers={"Content-Type": "text/plain"})
                r = conn.getresponse()
                self.assertEqual((r.status, r.read()), (200, body))
                self.assertNotEqual((r.getheader("Connection") or "").lower(), "close")
                # http.client reconnects silently if the server closed: same
                # local address means one connection carried every request.
                self.assertIsNotNone(conn.sock, "server closed the keep-alive connection")
                self.assertEqual(conn.sock.getsockname(), local)
        finally:
            conn.close()

    def test_pipelined_requests_answered_in_order(self):
        n = 16
        bodies = [b"pipelined request %02d " % i + b"x" * (i * 997) for i in range(n)]
        data = b"".join(build_request("POST", "/v2/models/echo/infer", b, {"Content-Type": "text/plain"})
                        for b in bodies)
        # Interleave metadata requests (served by the gateway itself) so a
        # fast local answer cannot overtake a slower worker answer.
        data += build_request("GET", "/v2/health/live")
        data += build_request("POST", "/v2/models/echo/infer", b"last", {"Content-Type": "text/plain"})
        c = self.srv.raw()
        try:
            c.send(data)
            for i, b in enumerate(bodies):
                r = c.response()
                self.assertIsNotNone(r, "connection closed before answer %d" % i)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.body, b, "answer %d out of order or altered" % i)
            r = c.response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json().get("live"), True)
            r = c.response()
            self.assertEqual((r.status, r.body), (200, b"last"))
        finally:
            c.close()

    def test_pipelined_requests_split_across_writes(self):
        reqs = [build_request("POST", "/v2/models/echo/infer", b"split %d" % i, {"Content-Type": "text/plain"})
                for i in range(4)]
        data = b"".join(reqs)
        c = self.srv.raw()
        try:
            # Cut the stream at awkward places: inside a request line, inside
            # a header, between header and body.
            for a, b in ((0, 7), (7, 40), (40, len(reqs[0]) + 3), (len(reqs[0]) + 3, len(data))):
                c.send(data[a:b])
                time.sleep(0.02)
            for i in range(4):
                r = c.response()
                self.assertEqual((r.status, r.body), (200, b"split %d" % i))
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
