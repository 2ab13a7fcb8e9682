"""
rmtest.py - what the Python tests of ringmaster share (stdlib only).

    from rmtest import Daemon, free_port, wait_for

    d = Daemon(pools={"echo": {"handler": "echo", "workers": 2}}, heartbeat_interval="50ms")
    d.start()            # INI in its own temp dir (own runtime_dir), `ringmaster -c INI`,
                         # waits until GET /v2/health/ready answers 200
    ...
    d.stop()             # SIGTERM to its pid (SIGKILL after a timeout), then every
                         # process of its tree is gone; returns the exit status
    d.cleanup()          # stop if needed, remove the temp dir

Used by tests/integration/harness.py (Server is a Daemon),
tests/systemd/test_notify.py (custom environment, pass_fds, a wrapper command
that execs the daemon, readiness from the notify socket) and tests/fuzz_http.py.

Process hygiene: the daemon is started in a session of its own
(start_new_session), so its process tree is every process whose session id
is the daemon's pid, found through /proc even after the master died and its
children were re-parented. Processes are only ever signalled by pid, never by
name. The systemd variables of the caller's own environment (NOTIFY_SOCKET,
LISTEN_*, WATCHDOG_*) never leak into the daemon; a test that wants them
passes them in env.

Binaries: $RINGMASTER and $RINGMASTERCTL (default ./ringmaster and
./ringmasterctl, the build directory when run from there).

The run.sh scripts put this directory on PYTHONPATH ($srcdir/tests/pylib);
the test scripts also add it from their own location, so they run by hand.
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

RINGMASTER = os.path.abspath(os.environ.get("RINGMASTER", "./ringmaster"))
RINGMASTERCTL = os.path.abspath(os.environ.get("RINGMASTERCTL", "./ringmasterctl"))

READY_TIMEOUT = 15.0

# Never inherited from the test's own environment (see the module comment).
SYSTEMD_VARS = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID")


# ------------------------------------------------------------------ utilities

def free_port(host="127.0.0.1"):
    """A TCP port on host that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what="condition", interval=0.02):
    """Poll pred() until it returns something truthy; return that value.
    Raises AssertionError naming what (and pred's last value) after timeout
    seconds. pred may raise to give up early."""
    deadline = time.monotonic() + timeout
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def _stat(pid):
    """/proc/PID/stat fields after the command name (field 3 onwards), or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return data[data.rfind(")") + 2:].split()


def proc_stat(pid):
    """(ppid, state, starttime) of a process, or None."""
    rest = _stat(pid)
    if rest is None:
        return None
    return int(rest[1]), rest[0], int(rest[19])


def proc_title(pid):
    """What ps shows: /proc/PID/cmdline with NULs as spaces, trimmed."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return data.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def alive(pid, starttime=None):
    """True if pid runs (not a zombie) and, given starttime, is that same process."""
    st = proc_stat(pid)
    if st is None or st[1] in ("Z", "X"):
        return False
    return starttime is None or st[2] == starttime


def _live_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def children(ppid):
    """[(pid, title)] of the live children of ppid."""
    out = []
    for pid in _live_pids():
        st = proc_stat(pid)
        if st is None or st[0] != ppid or st[1] in ("Z", "X"):
            continue
        title = proc_title(pid)
        if title is not None:
            out.append((pid, title))
    return sorted(out)


def session_members(sid):
    """{pid: (starttime, title)} of the live processes of session sid."""
    out = {}
    for pid in _live_pids():
        rest = _stat(pid)
        if rest is None or rest[0] in ("Z", "X") or int(rest[3]) != sid:
            continue
        out[pid] = (int(rest[19]), proc_title(pid) or "")
    return out


def tcp_sockets(port, state):
    """How many IPv4 TCP sockets with local port `port` are in `state`
    ("LISTEN", "ESTABLISHED"), from /proc/net/tcp: a socket's state without
    touching it (connecting would change what is looked at)."""
    codes = {"ESTABLISHED": "01", "LISTEN": "0A"}
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == codes[state]:
                n += 1
    return n


def ini_text(global_keys, pools):
    """An INI: [ringmaster] with global_keys, then one [pool NAME] per pools item."""
    def value(v):
        if isinstance(v, bool):
            return "yes" if v else "no"
        return str(v)
    lines = ["[ringmaster]"] + ["%s = %s" % (k, value(v)) for k, v in global_keys.items()]
    for name, keys in pools.items():
        lines += ["", "[pool %s]" % name] + ["%s = %s" % (k, value(v)) for k, v in keys.items()]
    return "\n".join(lines) + "\n"


class ReportOnFailure(unittest.TestCase):
    """A test case that calls self.report_failure() (to print logs) when the
    test failed or raised, after its cleanups."""

    def report_failure(self):
        pass

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self.report_failure()
        return out


# ------------------------------------------------------------------ the daemon

class Daemon:
    """One real ringmaster master, with its own temp dir, INI and runtime_dir.

    pools: {name: {key: value}} (default: one echo pool); global_keys go to
    [ringmaster]; listen defaults to 127.0.0.1 on port (default: a free one).
    """

    def __init__(self, pools=None, port=None, binary=None, tmp_prefix="rm-test-", **global_keys):
        self.binary = binary or RINGMASTER
        if "/" in self.binary:  # it runs in its temp dir: a relative path would not resolve there
            self.binary = os.path.abspath(self.binary)
        self.port = port if port is not None else free_port()
        self.host = "127.0.0.1"   # where the test reaches it (tests/fleet: a namespace's address)
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        self.ini = os.path.join(self.tmp, "ringmaster.ini")
        self.log_path = os.path.join(self.tmp, "ringmaster.stderr")
        self.global_keys = {
            "listen": "127.0.0.1:%d" % self.port,
            "runtime_dir": os.path.join(self.tmp, "run"),
            "shutdown_timeout": "5s",
        }
        self.global_keys.update(global_keys)
        self.pools = pools if pools is not None else {"echo": {"handler": "echo"}}
        self.proc = None
        self.pid = None
        self.returncode = None
        self.seen = {}        # pid -> (starttime, title): every process of its tree seen
        self._seen_lock = threading.Lock()
        self.log_text = None  # the log, once the temp dir is gone
        self._logf = None
        self.write_ini()

    # ---- configuration

    def ini_text(self, pools=None, global_keys=None):
        return ini_text(self.global_keys if global_keys is None else global_keys,
                        self.pools if pools is None else pools)

    def write_ini(self, text=None):
        """Replace the INI atomically (a reload never reads half a file)."""
        with open(self.ini + ".tmp", "w") as f:
            f.write(self.ini_text() if text is None else text)
        os.rename(self.ini + ".tmp", self.ini)

    # ---- life cycle

    def start(self, env=None, pass_fds=(), wrapper=(), wait=True, ready=None, timeout=READY_TIMEOUT,
              log_path=None):
        """Run `[*wrapper] BINARY -c INI` in a session of its own, stdout and
        stderr to log_path (default: ringmaster.stderr in the temp dir).

        env: variables added to (or, with value None, removed from) the
        environment; pass_fds: descriptors the daemon inherits; wrapper: a
        command that ends by exec'ing the rest (sh -c '... exec "$0" "$@"',
        systemd-socket-activate), so its pid is the daemon's pid.
        With wait, return once ready() is true (default: GET
        /v2/health/ready answers 200); AssertionError with the log if the
        daemon exits first or timeout seconds pass."""
        if log_path:
            self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_VARS}
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        self._logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(list(wrapper) + [self.binary, "-c", self.ini], stdin=subprocess.DEVNULL,
                                         stdout=self._logf, stderr=subprocess.STDOUT, cwd=self.tmp,
                                         env=full_env, pass_fds=tuple(pass_fds), start_new_session=True)
        except OSError:
            self._logf.close()
            raise
        self.pid = self.proc.pid
        self.returncode = None
        if wait:
            self.wait_ready(ready, timeout)
        return self

    def http_ready(self):
        """GET /v2/health/ready answers 200 (False on any connection or HTTP error)."""
        try:
            return self.http_status("/v2/health/ready", 1.0) == 200
        except (OSError, http.client.HTTPException):
            return False

    def http_status(self, path, timeout=2.0):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def wait_ready(self, ready=None, timeout=READY_TIMEOUT):
        pred = ready or self.http_ready

        def check():
            if self.proc.poll() is not None:
                raise AssertionError("ringmaster exited with %s before it was ready:\n%s"
                                     % (self.proc.returncode, self.log()))
            return pred()
        try:
            return wait_for(check, timeout, what="ringmaster to be ready")
        except AssertionError as e:
            if self.proc.poll() is not None:
                raise
            raise AssertionError("%s\n%s" % (e, self.log())) from None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        """Send sig to the master (by pid)."""
        os.kill(self.pid, sig)

    def tree(self):
        """{pid: (starttime, title)} of the live processes of its session
        (the master and every descendant), also remembered in self.seen."""
        if self.pid is None:
            return {}
        members = session_members(self.pid)
        with self._seen_lock:
            for pid, v in members.items():
                self.seen.setdefault(pid, v)
                if v[1].startswith("ringmaster: "):
                    self.seen[pid] = v
        return members

    def survivors(self):
        """{pid: (starttime, title)} alive of its session, or seen in its tree before."""
        with self._seen_lock:
            seen = dict(self.seen)
        left = {p: v for p, v in seen.items() if alive(p, v[0])}
        if self.pid is not None:
            left.update(session_members(self.pid))
            if self.proc.poll() is not None:
                # Reaped: while any process stays in its session the kernel
                # keeps that pid unused; a process that has it now is new.
                left.pop(self.pid, None)
        return left

    def wait_tree_gone(self, timeout):
        """Poll until no process of its tree is alive; return the ones left."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.survivors()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.01)

    def stop(self, timeout=8.0, sig=None, check=True):
        """Stop the master by pid (sig, default SIGTERM, then SIGKILL after timeout seconds) and
        make sure its whole tree is gone: processes still alive 2 s after the
        master exited are SIGKILLed by pid. Returns the master's exit status
        (negative: killed by that signal). With check, raise AssertionError
        when it needed SIGKILL or left processes behind. Safe to call again."""
        problems = []
        if sig is None:
            sig = signal.SIGTERM
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.tree()
            except OSError:
                pass
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append("master did not exit within %.0f s of signal %d: SIGKILL" % (timeout, sig))
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        left = self.wait_tree_gone(2.0)
        if left:
            problems.append("processes of its tree survived the master: %r" % left)
            for pid, (start, _title) in left.items():
                if alive(pid, start):
                    try:
                        os.kill(pid, signal.SIGCONT)
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            still = self.wait_tree_gone(2.0)
            if still:
                problems.append("still alive after SIGKILL: %r" % still)
        self.returncode = self.proc.returncode
        if self._logf:
            self._logf.close()
            self._logf = None
        if check and problems:
            raise AssertionError("; ".join(problems) + "\n" + self.log())
        return self.returncode

    def cleanup(self, check=False):
        """Stop (see stop(): check raises about a dirty stop) and remove the
        temp dir; the log stays readable through log()."""
        try:
            Daemon.stop(self, check=check)  # not a subclass's stop, which may call cleanup
        finally:
            if self.log_text is None:
                self.log_text = self._read_log()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log(self):
        """Everything the daemon wrote to stdout and stderr so far."""
        return self.log_text if self.log_text is not None else self._read_log()
