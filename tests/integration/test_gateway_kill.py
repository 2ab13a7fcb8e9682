"""SIGKILL of one gateway under load: only its own open connections are
lost, the other gateway and new connections keep getting 200, and the
gateway is respawned."""
import http.client
import os
import signal
import threading
import time
import unittest

from harness import LoadLoop, ServerTestCase, alive, proc_stat, wait_for


def server_socket_inode(port, client_port):
    """Inode of the server side of the TCP connection 127.0.0.1:client_port ->
    127.0.0.1:port, from /proc/net/tcp."""
    local = "0100007F:%04X" % port
    remote = "0100007F:%04X" % client_port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == local and fields[2] == remote:
                return int(fields[9])
    return None


def owner(pids, inode):
    """Which of pids holds socket inode (None: none of them)."""
    target = "socket:[%d]" % inode
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return pid
            except OSError:
                pass
    return None


class KeepAliveClient:
    """One keep-alive connection looping on echo. On the first error it
    records it and reconnects (a new connection, maybe another gateway)."""

    def __init__(self, port, idx):
        self.port, self.idx = port, idx
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.connect()
        self.client_port = self.conn.sock.getsockname()[1]
        self.first_ok = 0          # successes on the original connection
        self.first_error = None    # (time, repr) that ended the original connection
        self.later_ok = 0          # successes on connections made afterwards
        self.later_errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def once(self, n):
        body = b"ka %d %d" % (self.idx, n)
        self.conn.request("POST", "/v2/models/echo/infer", body=body, headers={"Content-Type": "text/plain"})
        r = self.conn.getresponse()
        data = r.read()
        if (r.status, data) != (200, body):
            raise AssertionError("bad answer %d %r" % (r.status, data[:100]))

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                self.once(n)
                if self.first_error is None:
                    self.first_ok += 1
                else:
                    self.later_ok += 1
            except Exception as e:  # noqa: BLE001
                if self.first_error is None:
                    self.first_error = (time.monotonic(), repr(e))
                else:
                    self.later_errors.append((time.monotonic(), repr(e)))
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep(0.005)
        self.conn.close()


class GatewayKill(ServerTestCase):

    def test_sigkill_of_gateway_loses_only_its_connections_and_is_respawned(self):
        srv = self.server(pools={"echo": {"handler": "echo", "workers": 2}}, gateways=2)
        gws = wait_for(lambda: (lambda g: g if len(g) == 2 else None)(srv.gateways()), 5, what="2 gateways")

        # Keep-alive clients, and which gateway holds each connection.
        clients = []
        by_gw = {0: [], 1: []}
        for i in range(40):
            c = KeepAliveClient(srv.port, i)
            c.once(0)  # accepted and served: the gateway holds it now
            inode = server_socket_inode(srv.port, c.client_port)
            pid = owner(gws.values(), inode) if inode else None
            idx = next((k for k, v in gws.items() if v == pid), None)
            clients.append((c, idx))
            if idx is not None:
                by_gw[idx].append(c)
            if i >= 7 and by_gw[0] and by_gw[1]:
                break
        for c, idx in clients:
            if idx is None:
                self.fail("could not tell which gateway holds a connection")
        victim = 0 if by_gw[0] else 1
        survivor = 1 - victim
        victim_pid = gws[victim]
        victim_start = proc_stat(victim_pid)[2]

        fresh = LoadLoop(srv, threads=3, fresh=True).start()
        for c, _ in clients:
            c.thread.start()
        try:
            time.sleep(0.3)
            t_kill = time.monotonic()
            os.kill(victim_pid, signal.SIGKILL)
            wait_for(lambda: not alive(victim_pid, victim_start), 2, what="the gateway to die")
            # Respawned: a new process for the same gateway number.
            new_pid = wait_for(lambda: (lambda g: g.get(victim) if g.get(victim) not in (None, victim_pid)
                                        else None)(srv.gateways()), 5, what="gateway %d respawned" % victim)
            t_respawn = time.monotonic()
            ok_at_respawn = fresh.snapshot()[0]
            time.sleep(0.5)
        finally:
            fresh.stop()
            for c, _ in clients:
                c.stop.set()
            for c, _ in clients:
                c.thread.join(15)

        self.assertTrue(alive(new_pid))
        self.assertEqual(srv.gateways().get(survivor), gws[survivor], "the other gateway must not be touched")
        # Connections held by the other gateway never saw an error.
        for c in by_gw[survivor]:
            self.assertIsNone(c.first_error, "connection on the surviving gateway failed: %r" % (c.first_error,))
            self.assertGreater(c.first_ok, 1)
        # Connections held by the dead one failed once, then reconnected fine.
        for c in by_gw[victim]:
            self.assertIsNotNone(c.first_error, "a connection of the killed gateway survived it?")
            self.assertGreaterEqual(c.first_error[0], t_kill - 0.01, "failed before the kill: %r"
                                    % (c.first_error,))
            self.assertEqual(c.later_errors, [], "reconnected client failed again")
            self.assertGreater(c.later_ok, 0, "reconnected client never served")
        # Fresh connections: only those open when the gateway died may fail.
        ok, statuses, errors, bad = fresh.snapshot()
        late = [e for e in errors if e[0] > t_kill + 0.05]
        self.assertEqual(late, [], "new connections failed after the kill (t_kill=%.3f)" % t_kill)
        self.assertEqual(bad, [], "non-200 answers: %r" % statuses)
        self.assertGreater(ok, ok_at_respawn, "no fresh request served after the respawn")
        self.assertGreater(ok_at_respawn, 0)
        self.assertLess(t_respawn - t_kill, 3.0)
        # Every slot the dead gateway held is freed again.
        wait_for(lambda: srv.pool_status("echo")["queue"] == 0, 5, what="every slot freed (queue 0)")
        self.assertEqual(srv.http("GET", "/v2/health/ready")[0], 200)


if __name__ == "__main__":
    unittest.main()
