"""
nginx_check.py - by hand, not in make check: the nginx recipe of
docs/fleet.md on the fleet rig (tests/fleet/fleet.py). For round robin,
least_conn and hash $remote_addr consistent: a host SIGKILLed, drained
(SIGTERM, drain_delay) and all hosts reloaded under load; prints one JSON
line per scenario (failed = anything but a 200 with the body echoed).

Needs root and /usr/sbin/nginx (package nginx; its service is never used:
this runs the binary with its own configuration). From the build directory:

    RINGMASTER=$PWD/ringmaster RINGMASTERCTL=$PWD/ringmasterctl \
        PYTHONPATH=$PWD/tests/pylib python3 $srcdir/tests/fleet/nginx_check.py

nginx has no active health check: a host is skipped for fail_timeout after a
failed attempt, and a request that failed is re-sent to the next host
(proxy_next_upstream). Hosts are named by nginx's $upstream_addr.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fleet import Load, Rig, free_port  # noqa: E402

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
CFG = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream ringmaster {{
    {alg}
{servers}
    keepalive 32;
  }}
  server {{
{listens}
    location /v2/ {{
      proxy_pass http://ringmaster;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_connect_timeout 1s;
      proxy_read_timeout 60s;
      proxy_next_upstream error timeout http_503 non_idempotent;
      proxy_next_upstream_tries 3;
      add_header X-Server $upstream_addr always;
    }}
  }}
}}
"""
class Nginx:
    def __init__(self, rig, alg):
        self.rig = rig
        self.tmp = tempfile.mkdtemp(prefix="%s-nginx-" % rig.tag)
        self.port = free_port()
        listens = ["    listen 127.0.0.1:%d;" % self.port] + ["    listen %s:%d;" % (a, self.port) for a in rig.client_gw]
        servers = ["    server %s:8080 max_fails=1 fail_timeout=5s;" % a for a in rig.host_addr]
        self.cfg = os.path.join(self.tmp, "nginx.conf")
        open(self.cfg, "w").write(CFG.format(tmp=self.tmp, alg=alg, servers="\n".join(servers), listens="\n".join(listens)))
        self.proc = subprocess.Popen([NGINX, "-e", self.tmp + "/error.log", "-c", self.cfg, "-p", self.tmp, "-g", "daemon off;"],
                                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rig.pids.append(self.proc)
        time.sleep(0.5)   # nginx has no readiness signal; it binds at once
        assert self.proc.poll() is None, open(self.tmp + "/error.log").read()
    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.terminate(); self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


rig = Rig(hosts=3, clients=6)
out = []
lbs = []
try:
    rig.setup_network(); rig.start_hosts()
    names = {"%s:8080" % a: "h%d" % i for i, a in enumerate(rig.host_addr)}
    for alg in ("", "least_conn;", "hash $remote_addr consistent;"):
        lb = Nginx(rig, alg)
        lbs.append(lb)
        for scen in ("sigkill", "drain", "rolling_reload"):
            netns = rig.client_ns if alg.startswith("hash") else None
            load = Load(lb, threads=6 if netns else 4, netns=netns).start()
            addrs = ["%s:8080" % a for a in rig.host_addr]
            if netns:
                time.sleep(1.0)
                with load.lock:
                    seen = [s for _t, _i, s in load.answers]
                top = max(addrs, key=seen.count)
                v = rig.hosts[addrs.index(top)]
            else:
                for a in addrs:
                    load.wait_served(a, 10, timeout=20)
                v = rig.hosts[1]
            t_start = time.monotonic()
            if scen == "sigkill":
                v.sigkill_tree(); time.sleep(1.0); rig.start_host(v.index); time.sleep(1.0)
            elif scen == "drain":
                v.signal(signal.SIGTERM); v.proc.wait(timeout=30); v.stop(); time.sleep(0.5); rig.start_host(v.index); time.sleep(1.0)
            else:
                for h in rig.hosts:
                    r = h.ctl("reload"); assert r.returncode == 0, r.stderr
                time.sleep(0.5)
            load.stop()
            total, failures, per = load.counts()
            per2 = {}
            for k, n in per.items():
                last = (k or "").split(",")[-1].strip()
                per2[names.get(last, last)] = per2.get(names.get(last, last), 0) + n
            victim_after = sum(1 for t, _i, s2 in load.answers if t > t_start and (s2 or "").endswith(v.addr + ":8080"))
            rec = dict(lb="nginx", alg=alg or "round robin", scenario=scen, victim=v.name, victim_answers_after_start=victim_after, failed=len(failures), answered=total,
                       per_host=per2, kinds=sorted({f[2][:60] for f in failures}))
            print(json.dumps(rec)); out.append(rec)
        lb.cleanup()
finally:
    for lb in lbs:
        lb.cleanup()
    rig.close()
