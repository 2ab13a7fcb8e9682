"""
fleet.py - the multi-host rig: ringmaster hosts in network namespaces behind
a real HAProxy, watched by a real Prometheus (docs/fleet.md).

    rig = Rig(hosts=3, clients=6)      # namespaces, veth pairs, addresses
    rig.start_hosts()                  # one ringmaster per host namespace
    lb = rig.haproxy("roundrobin")     # /usr/sbin/haproxy -db with its own config
    load = Load(lb, threads=4).start() # keep-alive clients, X-Server recorded
    ...
    rig.close()                        # everything gone, also after a failure

Layout (N = this process's pid, so that parallel and stale runs never clash):

    root namespace                         netns rmflN-h0 .. rmflN-h2
      HAProxy 127.0.0.1:P, 10.A.B.65.. --- veth 10.A.B.4i+1/30 <-> 10.A.B.4i+2:8080 ringmaster
      Prometheus 127.0.0.1:Q  (scrapes 10.A.B.4i+2:8080/metrics)
                                           netns rmflN-c0 .. rmflN-c5 (clients)
                                      veth 10.A.B.64+4j+1/30 <-> 10.A.B.64+4j+2

A client namespace reaches HAProxy on the root end of its own veth pair
(10.A.B.64+4j+1), so HAProxy sees a distinct source address per client;
load threads enter a client namespace with setns(2) (the network namespace
is per thread). Hosts are told apart by HAProxy itself: every answer carries
`X-Server: hI`, the name of the server HAProxy chose (`%s`).

Cleanup: Rig.close() (called from tearDownModule and atexit) stops every
process the rig started, by pid, and deletes its namespaces and veths;
sweep_stale() deletes those of earlier runs whose pid is gone (the name
carries the pid), killing by pid what still runs inside their namespaces.

Needs root (ip netns), /usr/sbin/haproxy and /usr/bin/prometheus.
"""
import atexit
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pylib"))

from rmtest import RINGMASTER, RINGMASTERCTL, Daemon, alive, free_port, proc_stat, wait_for  # noqa: E402

HAPROXY = os.environ.get("HAPROXY", "/usr/sbin/haproxy")
PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
PREFIX = "rmfl"
HOST_PORT = 8080
CLONE_NEWNET = 0x40000000

# The health check: HAProxy marks a host down after FALL failed checks INTER
# apart (and up again after RISE good ones). drain_delay must outlast that.
CHECK_INTER_MS = 200
CHECK_FALL = 2
CHECK_RISE = 2
# 4 s: HAProxy's DOWN (FALL checks: 0.4-0.6 s) and at least two Prometheus
# scrapes (1 s apart) of ringmaster_draining 1 fit in it on a loaded machine.
DRAIN_DELAY = "4s"

_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args, check=True):
    """Run a command (no shell); raise with its stderr if check and it fails."""
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def enter_netns(name):
    """Move the calling thread into network namespace name (setns(2))."""
    fd = os.open("/run/netns/%s" % name, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns %s: %s" % (name, os.strerror(e)))
    finally:
        os.close(fd)


def die_with_parent():
    """preexec_fn: SIGKILL this child when the rig's process dies (even by
    SIGKILL, when no cleanup runs); the next run's sweep is the second net."""
    PR_SET_PDEATHSIG = 1
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_pid(pid, sig=signal.SIGKILL, starttime=None):
    """Signal pid if it is still that same live process."""
    if alive(pid, starttime):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _pid_of_name(name):
    m = re.match(r"^%s(\d+)" % PREFIX, name)
    return int(m.group(1)) if m else None


def sweep_stale():
    """Delete the namespaces and veths an earlier run of the rig left (their
    pid, in the name, is gone), after SIGKILLing by pid what runs in them.
    Returns what was removed."""
    removed = []
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        pid = _pid_of_name(name)
        if pid is None or pid == os.getpid() or alive(pid):
            continue
        for p in sh("ip", "netns", "pids", name, check=False).stdout.split():
            kill_pid(int(p))
        sh("ip", "netns", "del", name, check=False)
        removed.append(name)
    # HAProxy and Prometheus run in the root namespace: found by their
    # config's temp dir, which carries the tag (/tmp/rmflPID-haproxy-...).
    tagged = re.compile(r"/%s(\d+)-" % PREFIX)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        m = tagged.search(cmd)
        if m and int(m.group(1)) != os.getpid() and not alive(int(m.group(1))):
            st = proc_stat(int(name))
            if st is not None:
                kill_pid(int(name), signal.SIGKILL, st[2])
                removed.append("pid %s" % name)
    tmpdir = tempfile.gettempdir()
    for name in os.listdir(tmpdir):
        pid = _pid_of_name(name)
        if pid is not None and pid != os.getpid() and not alive(pid):
            shutil.rmtree(os.path.join(tmpdir, name), ignore_errors=True)
            removed.append(os.path.join(tmpdir, name))
    r = sh("ip", "-o", "link", "show", check=False)
    for line in r.stdout.splitlines():
        m = re.match(r"^\d+:\s+([^:@]+)", line)
        if not m:
            continue
        name = m.group(1)
        pid = _pid_of_name(name)
        if pid is None or pid == os.getpid() or alive(pid):
            continue
        sh("ip", "link", "del", name, check=False)
        removed.append(name)
    return removed


# ------------------------------------------------------------------ hosts

class Host(Daemon):
    """One ringmaster in its own network namespace, listening on its veth
    address (port 8080: the namespace has no other listener)."""

    def __init__(self, rig, index, **global_keys):
        self.rig, self.index = rig, index
        self.name = "h%d" % index
        self.netns = rig.host_ns[index]
        self.addr = rig.host_addr[index]
        pools = {
            "echo": {"handler": "echo", "workers": 2},
            # sleep N: a slow but healthy model (the leastconn test)
            "chaos": {"handler": "chaos", "workers": 2},
        }
        keys = {"listen": "%s:%d" % (self.addr, HOST_PORT), "shutdown_timeout": "5s",
                "heartbeat_interval": "50ms"}
        if rig.drain_delay_supported:
            keys["drain_delay"] = DRAIN_DELAY
        keys.update(global_keys)
        super().__init__(pools=pools, port=HOST_PORT, tmp_prefix="%s-%s-" % (rig.tag, self.name), **keys)
        self.host = self.addr   # readiness and metrics are asked on the namespace's address

    def start(self, **kw):
        # `ip netns exec NS CMD` setns()es and execs CMD: the pid stays the daemon's.
        return super().start(wrapper=("ip", "netns", "exec", self.netns), **kw)

    def ctl(self, *args, timeout=60):
        return subprocess.run([RINGMASTERCTL, "-c", self.ini] + list(args), capture_output=True,
                              text=True, timeout=timeout)

    def sigkill_tree(self):
        """SIGKILL the master and every process of its tree (its session),
        master first so that nothing is respawned; returns how many."""
        members = self.tree()
        kill_pid(self.pid, signal.SIGKILL)
        for pid, (start, _t) in members.items():
            kill_pid(pid, signal.SIGKILL, start)
        self.proc.wait(timeout=10)
        left = self.wait_tree_gone(5.0)
        if left:
            raise AssertionError("%s: processes survived SIGKILL: %r" % (self.name, left))
        return len(members)


# ------------------------------------------------------------------ HAProxy

HAPROXY_CFG = """\
global
    maxconn 2000
    stats socket {sock} mode 600 level admin
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 30s
    # Above ringmaster's request_timeout: ringmaster answers 504 itself.
    timeout server 60s
    timeout queue 5s
    timeout check 1s
    # Inference is idempotent (the same input gives the same answer, nothing
    # is stored): re-sending a request to another host is safe. Retry when
    # the request never reached a host (conn-failure), when the host died
    # under it (empty-response) and when it answered 503 (draining, queue
    # full, model not ready); not on 500/502/504, which the request itself
    # causes (a handler error, a request that crashed its workers twice, a
    # deadline): on another host it would fail the same way or do harm.
    retries 3
    retry-on conn-failure empty-response 503
    # Every retry goes to another host (the default is only the last one).
    option redispatch 1
    # Health check: ready, not merely alive (a draining host answers 503).
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server check inter {inter}ms fastinter {inter}ms downinter {inter}ms fall {fall} rise {rise}

frontend fe
{binds}
    default_backend be

backend be
    balance {balance}
{hash}
    # Which host answered (tests; also handy in a real deployment).
    http-response set-header X-Server %s
{extra}
{servers}
"""


class _Program:
    """A program of the rig (HAProxy, Prometheus) run with its own files in
    self.tmp and its output in self.log_path: stop, read its log, clean up."""
    stop_timeout = 5
    proc = None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class HAProxy(_Program):
    """/usr/sbin/haproxy -db (foreground) with a config in its own temp dir."""

    def __init__(self, rig, balance):
        self.rig, self.balance = rig, balance
        self.tmp = tempfile.mkdtemp(prefix="%s-haproxy-" % rig.tag)
        self.sock = os.path.join(self.tmp, "admin.sock")
        self.cfg = os.path.join(self.tmp, "haproxy.cfg")
        self.log_path = os.path.join(self.tmp, "haproxy.log")
        self.port = free_port()
        binds = ["    bind 127.0.0.1:%d" % self.port]
        binds += ["    bind %s:%d" % (a, self.port) for a in rig.client_gw]
        servers = ["    server h%d %s:%d" % (i, a, HOST_PORT) for i, a in enumerate(rig.host_addr)]
        with open(self.cfg, "w") as f:
            f.write(HAPROXY_CFG.format(sock=self.sock, inter=CHECK_INTER_MS, fall=CHECK_FALL, rise=CHECK_RISE,
                                       binds="\n".join(binds), balance=balance,
                                       hash="    hash-type consistent" if balance == "source" else "",
                                       extra=os.environ.get("FLEET_HAPROXY_EXTRA", "").replace(";", "\n"),
                                       servers="\n".join(servers)))
        self.proc = None

    def start(self):
        r = sh(HAPROXY, "-c", "-q", "-f", self.cfg, check=False)
        if r.returncode != 0:
            raise AssertionError("haproxy -c: %s%s" % (r.stdout, r.stderr))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=die_with_parent)
        self.rig.pids.append(self.proc)
        wait_for(lambda: self._alive() and os.path.exists(self.sock), 10, "haproxy to start")
        self.wait_all_up()
        return self

    def _alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("haproxy exited %s:\n%s" % (self.proc.returncode, self.log()))
        return True

    def command(self, cmd):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.sock)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
            return out.decode()
        finally:
            s.close()

    def stats(self):
        """{server name: row dict} from `show stat` (status, scur, stot, ...)."""
        text = self.command("show stat")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for ln in lines[1:]:
            row = dict(zip(head, ln.split(",")))
            if row.get("pxname") == "be" and row.get("svname") not in ("BACKEND", "FRONTEND"):
                out[row["svname"]] = row
        return out

    def status(self, name):
        return self.stats()[name]["status"]

    def wait_status(self, name, want, timeout=15):
        return wait_for(lambda: self.status(name).startswith(want), timeout,
                        "haproxy to see %s %s" % (name, want), interval=0.02)

    def wait_all_up(self, timeout=15):
        wait_for(lambda: all(r["status"] == "UP" for r in self.stats().values()), timeout,
                 "haproxy to see every host UP")



# ------------------------------------------------------------------ Prometheus

PROMETHEUS_CFG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: ringmaster
    static_configs:
      - targets: [{targets}]
"""


class Prometheus(_Program):
    """/usr/bin/prometheus with its own config, TSDB dir and port; never a service."""
    stop_timeout = 10

    def __init__(self, rig, rules):
        self.rig = rig
        self.tmp = tempfile.mkdtemp(prefix="%s-prometheus-" % rig.tag)
        self.port = free_port()
        self.cfg = os.path.join(self.tmp, "prometheus.yml")
        self.log_path = os.path.join(self.tmp, "prometheus.log")
        targets = ", ".join("'%s:%d'" % (a, HOST_PORT) for a in rig.host_addr)
        with open(self.cfg, "w") as f:
            f.write(PROMETHEUS_CFG.format(rules=rules, targets=targets))
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.cfg, "--storage.tsdb.path=" + os.path.join(self.tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn",
             "--storage.tsdb.retention.time=1h"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.tmp,
            start_new_session=True, preexec_fn=die_with_parent)
        self.rig.pids.append(self.proc)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(ready, 30, "prometheus to be ready", interval=0.1)
        return self

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s?%s" % (self.port, path, urllib.parse.urlencode(params))
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            raise AssertionError("prometheus %s %r: %d %s" % (path, params, e.code, e.read().decode()[:500])) from None
        if doc.get("status") != "success":
            raise AssertionError("prometheus %s %r: %r" % (path, params, doc))
        return doc["data"]

    def query(self, expr):
        """The instant vector (list of {metric, value}) of expr, now."""
        return self.api("query", query=expr)["result"]



# ------------------------------------------------------------------ load

class Load:
    """Threads sending echo requests through HAProxy on keep-alive
    connections (fresh: a new connection per request) until stopped. Each answer is recorded as (t, thread,
    X-Server, t_start: when its request was sent); a failure is anything but 200 with the body echoed (an
    exception, another status, a wrong body). With netns, thread i runs in
    client namespace netns[i % len(netns)] and talks to its gateway address."""

    def __init__(self, lb, threads=4, netns=None, pool="echo", fresh=False):
        self.lb, self.pool, self.fresh = lb, pool, fresh
        self.netns = netns or []
        self.n = threads
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.answers = []     # (t, thread, server, t_start)
        self.failures = []    # (t, thread, what)
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.n)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _target(self, i):
        if self.netns:
            j = i % len(self.netns)
            enter_netns(self.netns[j])
            return self.lb.rig.client_gw[j]
        return "127.0.0.1"

    def _run(self, i):
        try:
            host = self._target(i)
        except OSError as e:
            with self.lock:
                self.failures.append((time.monotonic(), i, "setns: %r" % e))
            return
        conn, n = None, 0
        while not self.stop_ev.is_set():
            n += 1
            body = b"fleet %d %d" % (i, n)
            t_start = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, self.lb.port, timeout=15)
                conn.request("POST", "/v2/models/%s/infer" % self.pool, body=body,
                             headers={"Content-Type": "text/plain"})
                r = conn.getresponse()
                data = r.read()
                srv = r.getheader("X-Server")
                t = time.monotonic()
                with self.lock:
                    if r.status == 200 and data == body:
                        self.answers.append((t, i, srv, t_start))
                    else:
                        self.failures.append((t, i, "%d %r from %s" % (r.status, data[:100], srv)))
                if self.fresh or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.failures.append((time.monotonic(), i, repr(e)))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    def served_by(self, server, since=0.0):
        with self.lock:
            return sum(1 for t, _i, s, _t0 in self.answers if s == server and t >= since)

    def served_started_after(self, server, since):
        """Answers from server to requests sent after since."""
        with self.lock:
            return [(t0, t) for t, _i, s, t0 in self.answers if s == server and t0 >= since]

    def wait_served(self, server, count, since=0.0, timeout=15):
        return wait_for(lambda: self.served_by(server, since) >= count, timeout,
                        "%d answers from %s" % (count, server))

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(timeout=20)

    def counts(self):
        with self.lock:
            per = {}
            for _t, _i, s, _t0 in self.answers:
                per[s] = per.get(s, 0) + 1
            return len(self.answers), list(self.failures), per


# ------------------------------------------------------------------ the rig

def _drain_delay_supported():
    """True if this ringmaster accepts the drain_delay key (ringmaster -t)."""
    tmp = tempfile.mkdtemp(prefix="rm-fleet-probe-")
    try:
        ini = os.path.join(tmp, "probe.ini")
        with open(ini, "w") as f:
            f.write("[ringmaster]\nlisten = 127.0.0.1:1\nruntime_dir = %s\ndrain_delay = 1s\n\n"
                    "[pool echo]\nhandler = echo\n" % tmp)
        r = subprocess.run([RINGMASTER, "-t", "-c", ini], capture_output=True, text=True, timeout=30)
        return r.returncode == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _interrupt(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


class Rig:
    def __init__(self, hosts=3, clients=6):
        pid = os.getpid()
        self.tag = "%s%d" % (PREFIX, pid)
        a, b = 200 + (pid >> 8) % 50, pid & 255
        # A /24 of 10.200-249 from the pid; skip one this machine already routes.
        routes = sh("ip", "-4", "route", "show", check=False).stdout
        while re.search(r"(^|\s)10\.%d\.%d\." % (a, b), routes, re.M):
            a, b = 200 + (a - 200 + (b + 1) // 256) % 50, (b + 1) % 256
        net = "10.%d.%d." % (a, b)
        self.host_ns = ["%s-h%d" % (self.tag, i) for i in range(hosts)]
        self.host_addr = [net + str(4 * i + 2) for i in range(hosts)]
        self.host_gw = [net + str(4 * i + 1) for i in range(hosts)]
        self.client_ns = ["%s-c%d" % (self.tag, j) for j in range(clients)]
        self.client_addr = [net + str(64 + 4 * j + 2) for j in range(clients)]
        self.client_gw = [net + str(64 + 4 * j + 1) for j in range(clients)]
        self.links = []       # root-side veth names
        self.namespaces = []
        self.pids = []        # Popen objects of haproxy / prometheus
        self.hosts = [None] * hosts
        self.retired = []     # Host objects replaced after a kill or a stop
        self.closed = False
        self.drain_delay_supported = _drain_delay_supported()
        atexit.register(self.close)
        # SIGTERM (run.sh's `timeout`, a CI runner giving up) ends the run
        # like Ctrl-C: unittest stops and the atexit cleanup runs.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _interrupt)

    def _pair(self, ns, i_name, gw, addr):
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "link", "add", i_name, "type", "veth", "peer", "name", i_name + "p")
        self.links.append(i_name)
        sh("ip", "link", "set", i_name + "p", "netns", ns)
        sh("ip", "addr", "add", gw + "/30", "dev", i_name)
        sh("ip", "link", "set", i_name, "up")
        sh("ip", "-n", ns, "addr", "add", addr + "/30", "dev", i_name + "p")
        sh("ip", "-n", ns, "link", "set", i_name + "p", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def setup_network(self):
        sweep_stale()
        for i, ns in enumerate(self.host_ns):
            self._pair(ns, "%sh%d" % (self.tag, i), self.host_gw[i], self.host_addr[i])
        for j, ns in enumerate(self.client_ns):
            self._pair(ns, "%sc%d" % (self.tag, j), self.client_gw[j], self.client_addr[j])
        return self

    def start_host(self, i, wait=True):
        h = Host(self, i)
        if self.hosts[i] is not None:
            self.retired.append(self.hosts[i])
        self.hosts[i] = h
        h.start(wait=wait)
        return h

    def start_hosts(self):
        for i in range(len(self.hosts)):
            self.start_host(i, wait=False)
        for h in self.hosts:
            h.wait_ready()
        return self

    def haproxy(self, balance):
        lb = HAProxy(self, balance)
        self._lbs = getattr(self, "_lbs", []) + [lb]
        return lb.start()

    def prometheus(self, rules):
        p = Prometheus(self, rules)
        self._proms = getattr(self, "_proms", []) + [p]
        return p.start()

    def close(self):
        """Stop every process the rig started (by pid), delete its namespaces
        and veths. Safe to call twice; never raises."""
        if self.closed:
            return
        self.closed = True
        for obj in getattr(self, "_lbs", []) + getattr(self, "_proms", []):
            try:
                obj.cleanup()
            except Exception as e:  # noqa: BLE001
                sys.stderr.write("fleet: cleanup of %r: %r\n" % (obj, e))
        for h in [h for h in self.hosts if h is not None] + self.retired:
            try:
                h.cleanup(check=False)
            except Exception as e:  # noqa: BLE001
                sys.stderr.write("fleet: cleanup of host %s: %r\n" % (h.name, e))
        for p in self.pids:
            if p.poll() is None:
                p.kill()
                p.wait()
        for ns in self.namespaces:
            # Anything still inside (it should not be) is ours: SIGKILL by pid.
            for p in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                kill_pid(int(p))
            sh("ip", "netns", "del", ns, check=False)
        for link in self.links:
            if os.path.exists("/sys/class/net/%s" % link):
                sh("ip", "link", "del", link, check=False)


def leftovers(tag):
    """Namespaces and links whose name starts with tag (for the cleanup check)."""
    ns = [ln.split()[0] for ln in sh("ip", "netns", "list", check=False).stdout.splitlines()
          if ln.startswith(tag)]
    links = [n for n in os.listdir("/sys/class/net") if n.startswith(tag)]
    return ns + links


__all__ = ["Rig", "Host", "HAProxy", "Prometheus", "Load", "sweep_stale", "leftovers", "enter_netns",
           "proc_stat", "wait_for", "CHECK_INTER_MS", "CHECK_FALL", "DRAIN_DELAY"]
