#!/usr/bin/python3
"""gatewayd benchmark harness: gatewayd vs nginx vs HAProxy on one machine.

Method: see docs/performance.md (shared). In short:
  * proxy under test pinned to core 0 (one worker/thread), origin nginx + load
    generators pinned to core 1 (taskset); loopback only;
  * several short interleaved rounds, every target once per round;
  * PRIMARY figure: the proxy's own CPU time per request/connection
    (utime+stime deltas of its processes from /proc/PID/stat, divided by the
    completed requests); also req/s, p50/p99, RSS per idle connection.

Usage (as root, after `bench/setup.sh`):
  /usr/bin/python3 bench/run.py --targets nginx,haproxy [--cases h1_64,tls_64] [--rounds 3] [--secs 4]

Only Debian packages and the standard library are used. Every process this
script starts is tracked by PID and stopped on exit, on error and on Ctrl-C.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = "0"      # proxy under test
LOAD_CPU = "1"       # origin + load generators
# The name every client asks for: gatewayd routes by name, so it must be a
# workload's. bench_netns() gives the run a private /etc/hosts where it
# resolves to 127.0.0.1; it is also the peers' certificate name.
BENCH_DOMAIN = "bench.invalid"
SNI = "bench." + BENCH_DOMAIN
# The origin's address. zos (and so gatewayd) refuses loopback http://
# backends and a loopback public IP, so the whole run happens in a network
# namespace of its own (bench_netns()) where a veth pair, both ends inside,
# carries this TEST-NET-2 address; every proxy uses the same origin address.
ORIGIN_IP = "198.51.100.1"
CLONE_NEWNET = 0x40000000

# --------------------------------------------------------------------------
# cases (docs/performance.md "Cases and peer baselines")
# --------------------------------------------------------------------------
CASES = [
    # id, label, kind, options
    ("h1_64", "HTTP/1.1 keep-alive, 64 B (µs/req)", "wrk",
     dict(port="http", path="/64", conns=64)),
    ("h1_16k", "HTTP/1.1 keep-alive, 16 KiB (µs/req)", "wrk",
     dict(port="http", path="/16k", conns=64)),
    ("h1_newconn", "new TCP connection per request (µs/conn)", "wrk",
     dict(port="http", path="/64", conns=32, close=True)),
    ("tls_64", "TLS keep-alive, 64 B (µs/req)", "wrk",
     dict(port="https", path="/64", conns=64, tls=True)),
    ("tls_handshake", "TLS full handshake, no resumption (µs/conn)", "hs",
     dict(port="https", path="/64", conns=32)),
    ("sni_handshake", "SNI passthrough, full handshake through (µs/conn)", "hs",
     dict(port="passthrough", path="/64", conns=32)),
    ("sni_keepalive", "SNI passthrough, keep-alive (µs/req)", "wrk",
     dict(port="passthrough", path="/64", conns=64, tls=True)),
    ("h2_64", "HTTP/2 over TLS, 4 conns × 100 streams, 64 B (µs/req)", "h2load",
     dict(port="https", path="/64", conns=4, streams=100)),
    ("h2_16k", "HTTP/2 over TLS, 4 conns × 100 streams, 16 KiB (µs/req)", "h2load",
     dict(port="https", path="/16k", conns=4, streams=100)),
    ("idle_plain", "idle keep-alive connection, plain (bytes RSS)", "idle",
     dict(port="http", tls=False)),
    ("idle_tls", "idle keep-alive connection, TLS (bytes RSS)", "idle",
     dict(port="https", tls=True)),
    ("idle_h2", "idle HTTP/2 connection after one request (bytes RSS)", "idle",
     dict(port="https", tls=True, h2=True)),
    ("route_update", "bus call → route live, 100k routes loaded", "route",
     dict(what="update_latency")),
    ("route_memory", "memory per configured route", "route",
     dict(what="memory_per_route")),
]
CASE_IDS = [c[0] for c in CASES]
CASE_BY_ID = {c[0]: c for c in CASES}

# peer baselines and gatewayd targets from docs/performance.md, for the report
DOC_BASELINE = {
    "h1_64": ("15–16", "15.5", "≤ 11"),
    "h1_16k": ("21–27", "24–27", "≤ 15"),
    "h1_newconn": ("29–30", "31–32", "≤ 22"),
    "tls_64": ("20", "19.5–24", "≤ 17"),
    "tls_handshake": ("520–600", "560–620", "≤ 260"),
    "sni_handshake": ("–", "192", "≤ 150"),
    "sni_keepalive": ("–", "15", "≤ 12"),
    "h2_64": ("–", "–", "–"),
    "h2_16k": ("–", "–", "–"),
    "idle_plain": ("540–550", "~1000", "≤ 550"),
    "idle_tls": ("14.7 k", "15.3 k", "≤ 7 k"),
    "idle_h2": ("–", "–", "–"),
    "route_update": ("–", "–", "< 1 ms"),
    "route_memory": ("–", "–", "< 2 KiB"),
}

# --------------------------------------------------------------------------
# process bookkeeping: everything we start is tracked by PID and stopped
# --------------------------------------------------------------------------
_procs = []  # list of (name, Popen)


def spawn(name, argv, **kw):
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _procs.append((name, p))
    return p


def stop(p, grace=3.0):
    """Stop one process we started (and its process group, which it leads)."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    else:
        # leader gone; make sure no child of its group (e.g. nginx worker) is left
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for i, (_, q) in enumerate(_procs):
        if q is p:
            del _procs[i]
            break


_netns = []  # the namespace bench_netns() made, deleted by cleanup()


def bench_netns(wd):
    """Enter a private mount namespace (with an /etc/hosts that resolves SNI
    to 127.0.0.1) and in it a fresh network namespace (lo up, a veth pair
    with ORIGIN_IP on one end); everything started afterwards runs in them.
    Both die with this process, so nothing can leak."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    hosts = os.path.join(wd, "hosts")
    with open(hosts, "w") as f:
        f.write(f"127.0.0.1 localhost\n127.0.0.1 {SNI}\n")
    subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], check=True)
    name = "gwbench-%d" % os.getpid()
    ip = ["ip", "-n", name]
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    _netns.append(name)
    for argv in (ip + ["link", "set", "lo", "up"], ip + ["link", "add", "o0", "type", "veth", "peer", "name", "o1"],
                 ip + ["addr", "add", ORIGIN_IP + "/24", "dev", "o0"], ip + ["link", "set", "o1", "up"],
                 ip + ["link", "set", "o0", "up"]):
        subprocess.run(argv, check=True)
    fd = os.open("/run/netns/" + name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into " + name)
    finally:
        os.close(fd)


def cleanup():
    while _procs:
        _, p = _procs[-1]
        try:
            stop(p)
        except Exception:  # never leave the rest running because of one
            _procs.pop()
    while _netns:
        subprocess.run(["ip", "netns", "del", _netns.pop()], capture_output=True)


def run_bounded(name, argv, timeout):
    """Run a load generator to completion with a hard timeout; returns stdout."""
    p = spawn(name, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(p)
        raise RuntimeError(f"{name}: timed out after {timeout}s")
    stop(p)
    if p.returncode != 0:
        raise RuntimeError(f"{name} exited {p.returncode}: {err.strip()[-500:]}")
    return out


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------
# /proc helpers
# --------------------------------------------------------------------------
def children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return kids


def proc_tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except FileNotFoundError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def core_busy():
    """{cpu: (busy, total)} jiffies from /proc/stat."""
    res = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                vals = [int(x) for x in parts[1:]]
                idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
                res[parts[0][3:]] = (sum(vals) - idle, sum(vals))
    return res


def wait_port(port, timeout=10.0, proc=None, host="127.0.0.1"):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")


def tool_version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except Exception as e:
        return f"? ({e})"


# --------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------
def make_cert(wd):
    key, crt, pem = (os.path.join(wd, n) for n in ("key.pem", "cert.pem", "combined.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "30", "-subj", f"/CN={SNI}",
                    "-addext", f"subjectAltName=DNS:{SNI},IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    with open(pem, "w") as f:
        f.write(open(crt).read() + open(key).read())
    os.chmod(key, 0o644)
    os.chmod(pem, 0o644)
    return key, crt, pem


NGINX_COMMON = """
user root;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {wd}/{name}.pid;
error_log {wd}/{name}.error.log warn;
events {{ worker_connections {wconn}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {wd}/{name}.tmp/body;
    proxy_temp_path {wd}/{name}.tmp/proxy;
    fastcgi_temp_path {wd}/{name}.tmp/fastcgi;
    uwsgi_temp_path {wd}/{name}.tmp/uwsgi;
    scgi_temp_path {wd}/{name}.tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    server_tokens off;
    ssl_protocols TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1;
    ssl_session_cache off;
    ssl_session_tickets off;
    ssl_certificate {crt};
    ssl_certificate_key {key};
{body}
}}
"""


def nginx_conf(wd, name, key, crt, body):
    os.makedirs(f"{wd}/{name}.tmp", exist_ok=True)
    path = f"{wd}/{name}.conf"
    with open(path, "w") as f:
        f.write(NGINX_COMMON.format(wd=wd, name=name, key=key, crt=crt, body=body,
                                    nofile=nofile_limit(), wconn=max(1000, nofile_limit() - 200)))
    return path


def origin_conf(wd, ports, key, crt):
    www = f"{wd}/www"
    os.makedirs(www, exist_ok=True)
    with open(f"{www}/64", "wb") as f:
        f.write(b"x" * 63 + b"\n")
    with open(f"{www}/16k", "wb") as f:
        f.write((b"y" * 1023 + b"\n") * 16)
    for n in ("64", "16k"):
        os.chmod(f"{www}/{n}", 0o644)
    body = f"""
    server {{
        listen {ORIGIN_IP}:{ports['origin_http']} backlog=4096;
        listen {ORIGIN_IP}:{ports['origin_https']} ssl backlog=4096;
        root {www};
        default_type application/octet-stream;
        location / {{ }}
    }}"""
    return nginx_conf(wd, "origin", key, crt, body)


def nginx_proxy_conf(wd, ports, key, crt):
    body = f"""
    upstream origin {{
        server {ORIGIN_IP}:{ports['origin_http']};
        keepalive 512;  # as gatewayd's pool (HTTP/2: one backend connection per stream)
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{ports['nginx_http']} backlog=4096;
        listen 127.0.0.1:{ports['nginx_https']} ssl http2 backlog=4096;
        http2_max_concurrent_streams 100;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    return nginx_conf(wd, "nginx", key, crt, body)


def nofile_limit():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def haproxy_conf(wd, ports, pem):
    path = f"{wd}/haproxy.cfg"
    # haproxy needs ~2 fds per connection and refuses to start if it cannot get them
    maxconn = max(1000, min(20000, (nofile_limit() - 200) // 2))
    with open(path, "w") as f:
        f.write(f"""
global
    nbthread 1
    maxconn {maxconn}
    tune.ssl.cachesize 0
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
    ssl-default-bind-curves X25519:P-256

defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    timeout http-request 300s
    maxconn {maxconn}

frontend fe_http
    bind 127.0.0.1:{ports['haproxy_http']}
    bind 127.0.0.1:{ports['haproxy_https']} ssl crt {pem} alpn h2,http/1.1
    default_backend be_origin

backend be_origin
    http-reuse always
    server origin {ORIGIN_IP}:{ports['origin_http']}

frontend fe_passthrough
    mode tcp
    bind 127.0.0.1:{ports['haproxy_passthrough']}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend be_origin_tls if {{ req.ssl_sni -i {SNI} }}

backend be_origin_tls
    mode tcp
    server origin_tls {ORIGIN_IP}:{ports['origin_https']}
""")
    return path


# --------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------
class NotYet(Exception):
    """The target cannot run yet (e.g. gatewayd's proxy engine is not written)."""


class Target:
    name = "?"
    ports = {}       # "http" | "https" | "passthrough" -> port
    proc = None

    def start(self, env):
        raise NotImplementedError

    def pids(self):
        return proc_tree(self.proc.pid)

    def restart(self, env):
        """Fresh process, so memory freed by earlier cases does not hide new allocations."""
        stop(self.proc)
        self.start(env)

    def supports(self, case_id):
        kind = CASE_BY_ID[case_id][2]
        port = CASE_BY_ID[case_id][3].get("port")
        if kind == "route":
            return False
        return port in self.ports

    def version(self):
        return "?"


class Nginx(Target):
    name = "nginx"

    def start(self, env):
        p = env["ports"]
        conf = nginx_proxy_conf(env["wd"], p, env["key"], env["crt"])
        self.ports = {"http": p["nginx_http"], "https": p["nginx_https"]}
        # Debian's nginx (nginx-light/core) has no stream module: no passthrough peer.
        self.proc = spawn("nginx", ["taskset", "-c", PROXY_CPU, "nginx", "-p", env["wd"], "-c", conf],
                          stdout=env["log"], stderr=env["log"])
        for port in self.ports.values():
            wait_port(port, proc=self.proc)

    def version(self):
        return tool_version(["nginx", "-v"])


class HAProxy(Target):
    name = "haproxy"

    def start(self, env):
        p = env["ports"]
        conf = haproxy_conf(env["wd"], p, env["pem"])
        self.ports = {"http": p["haproxy_http"], "https": p["haproxy_https"],
                      "passthrough": p["haproxy_passthrough"]}
        self.proc = spawn("haproxy", ["taskset", "-c", PROXY_CPU, "haproxy", "-db", "-f", conf],
                          stdout=env["log"], stderr=env["log"])
        for port in self.ports.values():
            wait_port(port, proc=self.proc)

    def version(self):
        return tool_version(["haproxy", "-v"])


# ---- gatewayd -------------------------------------------------------------
# gatewayd is started the way a node runs it: the daemon, its own Redis (the
# bus), a name workload "bench" (-> SNI, the gateway domain BENCH_DOMAIN,
# name-contract validation off) deployed over the bus. One process serves
# :http/:https (terminated, http_plain = yes so plain HTTP is proxied as the
# peers do); a second instance serves the passthrough port (the same name,
# passthrough to the origin's TLS port), because gatewayd has one :443 per
# namespace and the peers use a separate port for this case. Both PIDs are
# measured; the idle one adds nothing.
GATEWAYD_BIN = os.environ.get("GATEWAYD") or os.path.join(REPO_DIR, "build", "daemon", "gatewayd")
# A second gatewayd build (e.g. the main branch) measured as target
# "gatewayd-base" in the same interleaved rounds: before/after comparisons.
GATEWAYD_BASE_BIN = os.environ.get("GATEWAYD_BASE")


def _redis(wd, name):
    sock = os.path.join(wd, name + ".sock")
    if os.path.exists(sock):
        os.unlink(sock)
    p = spawn("redis-" + name, ["taskset", "-c", LOAD_CPU, "redis-server", "--port", "0",
                                "--unixsocket", sock, "--save", "", "--appendonly", "no"],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if time.monotonic() > deadline or p.poll() is not None:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.02)
    return sock


# The benchmark's load comes from one address: the per-client limits
# ([limits], issue 11) are off for it. A binary older than [limits] refuses
# the section, so it is written only for one that accepts it.
BENCH_LIMITS = "[limits]\nconnections_per_client = 0\nnew_connections_per_second = 0\n"
_limits_known = {}


def _knows_limits(binary):
    if binary not in _limits_known:
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(BENCH_LIMITS)
            f.flush()
            p = subprocess.run([binary, "--check-config", "--config", f.name],
                               capture_output=True, text=True)
            _limits_known[binary] = p.returncode == 0
    return _limits_known[binary]


def _gatewayd_instance(env, name, https_port, http_port, backend, passthrough, reuse=False,
                       binary=None, access_log=False):
    wd = env["wd"]
    # The access log (target gatewayd-log): a file in the run's directory.
    alog = f"access = {os.path.join(wd, name + '-access.log')}\n" if access_log else ""
    sock = os.path.join(wd, name + ".sock") if reuse else _redis(wd, name)
    conf = os.path.join(wd, name + ".conf")
    with open(conf, "w") as f:
        f.write(f"[gateway]\nenabled = yes\ndomain = {BENCH_DOMAIN}\npublic_config = file\n"
                "public_ipv4 = 198.51.100.2/24\ngateway_ipv4 = 198.51.100.254\n"
                "[names]\nvalidation = off\n"
                f"[proxy]\naddress = 127.0.0.1\nhttps_port = {https_port}\nhttp_port = {http_port}\n"
                "workers = 1\nhttp_plain = yes\n"
                + (BENCH_LIMITS if _knows_limits(binary or GATEWAYD_BIN) else "") +
                "[metrics]\nlisten =\n[log]\nlevel = warning\n" + alog)
    state = os.path.join(wd, name + "-state")
    proc = spawn("gatewayd-" + name, ["taskset", "-c", PROXY_CPU, binary or GATEWAYD_BIN,
                                      "--broker", "unix://" + sock,
                                      "--root", state, "--config", conf, "--log-target", "stderr"],
                 stdout=env["log"], stderr=env["log"])
    sys.path.insert(0, os.path.join(REPO_DIR, "tests", "e2e"))
    import gobus  # noqa: E402  (tests/e2e: the Go-compatible zbus client)
    bus = gobus.GoBus(sock)
    deadline = time.monotonic() + 20
    while True:
        try:
            if bus.status(timeout=1).ok:
                break
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("gatewayd did not come up (see the log)")
    if reuse:
        bus.close()
        return proc
    r = bus.set_named_proxy("1-1-bench", SNI.split(".")[0], [backend], tls_passthrough=passthrough,
                            timeout=10)
    if not r.ok:
        raise RuntimeError("deploying the bench workload failed: %r" % (r,))
    bus.close()
    return proc


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _rss_kb(pid):
    time.sleep(0.5)
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gatewayd_route_bench(env, what, n_routes=100000):
    """gatewayd-only cases, with @n_routes name workloads loaded (written as
    state files and restored at start, which is what a node restart does):
      update_latency: SetNamedProxy over the bus for a new name, then at once
        a TLS request for it. Reports the bus round trip (p50/p99, ms) and how
        many of those first requests were already served (the route is
        published before the reply, so "live within 1 ms of the reply" means
        every first request succeeds).
      memory_per_route: (RSS with n_routes - RSS with one) / n_routes."""
    import glob
    import ssl as _ssl
    sys.path.insert(0, os.path.join(REPO_DIR, "tests", "e2e"))
    import gobus  # noqa: E402
    wd = tempfile.mkdtemp(prefix="routes.", dir=env["wd"])
    sub = dict(env, wd=wd)
    port = _free_port()
    origin = "http://%s:%d" % (ORIGIN_IP, env["ports"]["origin_http"])
    # A name workload's state file, to clone n_routes times.
    proc = _gatewayd_instance(sub, "seed", port, 0, origin, False)
    rss0 = _rss_kb(proc.pid)
    stop(proc)
    files = glob.glob(os.path.join(wd, "seed-state", "**", "wl-*.json"), recursive=True)
    if len(files) != 1:
        raise RuntimeError("expected one state file, found %r" % files)
    tmpl = json.load(open(files[0]))
    sdir = os.path.dirname(files[0])
    os.unlink(files[0])
    for i in range(n_routes):
        d = dict(tmpl, id="9-%d-r%d" % (i, i), name="r%d" % i)
        if tmpl.get("fqdn"):
            d["fqdn"] = "r%d.%s" % (i, BENCH_DOMAIN)
        with open(os.path.join(sdir, "wl-9-%d-r%d.json" % (i, i)), "w") as f:
            json.dump(d, f)
    t0 = time.monotonic()
    proc = _gatewayd_instance(sub, "seed", port, 0, origin, False, reuse=True)
    bus = gobus.GoBus(os.path.join(wd, "seed.sock"))
    last = "9-%d-r%d" % (n_routes - 1, n_routes - 1)
    while not bus.get_proxy(last, timeout=30).ok:
        if time.monotonic() - t0 > 300:
            raise RuntimeError("the %d workloads were not restored" % n_routes)
        time.sleep(0.05)
    bus.close()
    restore_s = time.monotonic() - t0
    rss1 = _rss_kb(proc.pid)
    try:
        if what == "memory_per_route":
            return dict(value=round((rss1 - rss0) * 1024 / n_routes, 1), unit="bytes",
                        rss0_kb=rss0, rss1_kb=rss1, n_routes=n_routes, start_s=round(restore_s, 2))
        bus = gobus.GoBus(os.path.join(wd, "seed.sock"))
        ctx = _ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = _ssl.CERT_NONE
        lat, served = [], 0
        n = 50
        for i in range(n):
            name = "new%d" % i
            t = time.perf_counter()
            r = bus.set_named_proxy("9-%d-new%d" % (n_routes + i, i), name, [origin], timeout=10)
            lat.append((time.perf_counter() - t) * 1000)
            if not r.ok:
                raise RuntimeError("SetNamedProxy failed: %r" % (r,))
            host = name + "." + BENCH_DOMAIN
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                server_hostname=host)
            s.sendall(b"GET /64 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host.encode())
            head = s.recv(64)
            s.close()
            served += head.startswith(b"HTTP/1.1 200")
        bus.close()
        lat.sort()
        return dict(value=round(lat[len(lat) // 2], 3), unit="ms", p99_ms=round(lat[-1], 3),
                    first_request_served=f"{served}/{n}", n_routes=n_routes, start_s=round(restore_s, 2))
    finally:
        stop(proc)


class Gatewayd(Target):
    name = "gatewayd"
    key = "gatewayd"  # port names in env["ports"]
    inst = "gw"       # instance (and Redis) names
    access_log = False

    def binary(self):
        if not os.access(GATEWAYD_BIN, os.X_OK):
            raise NotYet("gatewayd binary not found at %s (build it, or set GATEWAYD)" % GATEWAYD_BIN)
        return GATEWAYD_BIN

    def start(self, env):
        p, k, binary = env["ports"], self.key, self.binary()
        self.ports = {"http": p[k + "_http"], "https": p[k + "_https"],
                      "passthrough": p[k + "_passthrough"]}
        self.proc = _gatewayd_instance(env, self.inst, p[k + "_https"], p[k + "_http"],
                                       "http://%s:%d" % (ORIGIN_IP, p["origin_http"]), False,
                                       binary=binary, access_log=self.access_log)
        self.proc_pt = _gatewayd_instance(env, self.inst + "pt", p[k + "_passthrough"], 0,
                                          "%s:%d" % (ORIGIN_IP, p["origin_https"]), True,
                                          binary=binary, access_log=self.access_log)
        for port in self.ports.values():
            wait_port(port, proc=self.proc)

    def pids(self):
        return proc_tree(self.proc.pid) + proc_tree(self.proc_pt.pid)

    def restart(self, env):
        for p in (self.proc, self.proc_pt):
            stop(p)
        for name, p in list(_procs):
            if name in ("redis-" + self.inst, "redis-" + self.inst + "pt"):
                stop(p)
        self.start(env)

    def supports(self, case_id):
        return True

    def version(self):
        return tool_version(["git", "-C", REPO_DIR, "describe", "--always", "--dirty"])


class GatewaydBase(Gatewayd):
    """The binary in $GATEWAYD_BASE, for before/after runs in the same rounds."""
    name = "gatewayd-base"
    key = "gatewayd_base"
    inst = "gwb"

    def binary(self):
        if not GATEWAYD_BASE_BIN or not os.access(GATEWAYD_BASE_BIN, os.X_OK):
            raise NotYet("set GATEWAYD_BASE to a gatewayd binary for target gatewayd-base")
        return GATEWAYD_BASE_BIN

    def supports(self, case_id):
        return CASE_BY_ID[case_id][2] != "route"

    def version(self):
        return GATEWAYD_BASE_BIN


class GatewaydLog(Gatewayd):
    """The same build with [log] access = a file: the access log's cost."""
    name = "gatewayd-log"
    key = "gatewayd_log"
    inst = "gwl"
    access_log = True

    def supports(self, case_id):
        return CASE_BY_ID[case_id][2] != "route"


TARGETS = {"nginx": Nginx, "haproxy": HAProxy, "gatewayd": Gatewayd, "gatewayd-base": GatewaydBase,
           "gatewayd-log": GatewaydLog}
TARGET_ORDER = ["gatewayd", "gatewayd-base", "gatewayd-log", "nginx", "haproxy"]

# --------------------------------------------------------------------------
# load generators
# --------------------------------------------------------------------------
_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def _dur_us(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    res = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    res["ops"] = int(m.group(1))
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    res["p50_us"] = _dur_us(pct["50"]) if "50" in pct else None
    res["p99_us"] = _dur_us(pct["99"]) if "99" in pct else None
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rate"] = float(m.group(1))
    errs = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errs += int(m.group(1))
    res["errors"] = errs
    return res


def wrk_cmd(target, opts, secs):
    scheme = "https" if opts.get("tls") else "http"
    host = SNI if opts.get("tls") else "127.0.0.1"
    url = f"{scheme}://{host}:{target.ports[opts['port']]}{opts['path']}"
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c", str(opts["conns"]), "-d", f"{max(1, round(secs))}s",
            "--timeout", "2s", "--latency"]
    if not opts.get("tls"):
        # Name-based routing (gatewayd) needs the name; the peers route any Host.
        argv += ["-H", f"Host: {SNI}"]
    if opts.get("close"):
        argv += ["-H", "Connection: close"]
    return argv + [url]


def parse_hs(out):
    kv = dict(x.split("=", 1) for x in out.split())
    return {"ops": int(kv["conns"]), "rate": float(kv["rate"]), "p50_us": float(kv["p50_us"]),
            "p99_us": float(kv["p99_us"]), "errors": int(kv["errors"]),
            "tls": " ".join(f"{k}={kv[k]}" for k in ("proto", "cipher", "group", "sig") if k in kv)}


def hs_cmd(target, opts, secs, hsload):
    return ["taskset", "-c", LOAD_CPU, hsload, "-p", str(target.ports[opts["port"]]),
            "-c", str(opts["conns"]), "-d", str(secs), "-n", "2000000", "-s", SNI,
            "-P", opts["path"]]


# Requests per h2load connection: gatewayd and nginx end an HTTP/2 connection
# with GOAWAY after 1000 streams (nginx's keepalive_requests), and h2load -D
# does not reconnect. So each slice runs h2load -n conns*1000 back to back
# until the slice's time is up: every connection serves 1000 requests, and
# a new one (TLS handshake) follows, as a browser would.
H2_REQS_PER_CONN = 1000


def h2load_cmd(target, opts, secs):
    # TLS (ALPN h2); the name resolves to 127.0.0.1 in the run's /etc/hosts.
    return ["taskset", "-c", LOAD_CPU, "h2load", "-t", "1", "-c", str(opts["conns"]),
            "-m", str(opts["streams"]), "-n", str(opts["conns"] * H2_REQS_PER_CONN),
            f"https://{SNI}:{target.ports[opts['port']]}{opts['path']}"]


def run_h2load(argv, secs):
    """h2load runs back to back for @secs; their outputs' sums as one."""
    ops = errors = 0
    means, maxes = [], []
    end = time.monotonic() + secs
    t0 = time.monotonic()
    while time.monotonic() < end:
        r = parse_h2load(run_bounded("h2load", argv, timeout=secs + 20))
        ops += r["ops"]
        errors += r["errors"]
        if r["p50_us"] is not None:
            means.append(r["p50_us"])
            maxes.append(r["p99_us"])
    wall = time.monotonic() - t0
    return {"ops": ops, "errors": errors, "rate": ops / wall if wall else 0.0,
            "p50_us": statistics.median(means) if means else None,
            "p99_us": max(maxes) if maxes else None}


def parse_h2load(out):
    res = {}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    res["ops"] = int(m.group(4))
    res["errors"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    res["rate"] = float(m.group(1))
    # h2load reports min/max/mean per request, no percentiles.
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    res["p50_us"] = _dur_us(m.group(3)) if m else None  # the mean, in the p50 column
    res["p99_us"] = _dur_us(m.group(2)) if m else None  # the max, in the p99 column
    m = re.search(r"status codes: (\d+) 2xx", out)
    if m and int(m.group(1)) < res["ops"]:
        res["errors"] += res["ops"] - int(m.group(1))
    return res


def measure_load(target, case, secs, env):
    cid, _, kind, opts = case
    if kind == "wrk":
        argv, parse = wrk_cmd(target, opts, secs), parse_wrk
    elif kind == "h2load":
        argv, parse = h2load_cmd(target, opts, secs), None
    else:
        argv, parse = hs_cmd(target, opts, secs, env["hsload"]), parse_hs
    pids = target.pids()
    c0, b0, t0 = cpu_ticks(pids), core_busy(), time.monotonic()
    if kind == "h2load":
        res = run_h2load(argv, secs)
    else:
        out = run_bounded(argv[3], argv, timeout=secs + 20)
    c1, b1, t1 = cpu_ticks(pids), core_busy(), time.monotonic()
    if kind != "h2load":
        res = parse(out)
    cpu_s = (c1 - c0) / CLK_TCK
    res["proxy_cpu_s"] = round(cpu_s, 3)
    res["wall_s"] = round(t1 - t0, 3)
    res["proxy_cpu_util"] = round(cpu_s / (t1 - t0), 3)
    for core in (PROXY_CPU, LOAD_CPU):
        db = b1[core][0] - b0[core][0]
        dt = b1[core][1] - b0[core][1]
        res[f"core{core}_busy"] = round(db / dt, 3) if dt else None
    res["us_per_op"] = round(cpu_s * 1e6 / res["ops"], 2) if res["ops"] else None
    return res


def measure_idle(target, case, env, n, prime):
    _, _, _, opts = case
    argv = ["taskset", "-c", LOAD_CPU, sys.executable, os.path.join(BENCH_DIR, "idle.py"),
            "--port", str(target.ports[opts["port"]]), "--pids",
            ",".join(str(p) for p in target.pids()), "-n", str(n), "--prime", str(prime),
            "--deadline", "150", "--sni", SNI]  # the Host (and SNI) gatewayd routes by
    if opts.get("tls"):
        argv += ["--tls"]
    if opts.get("h2"):
        argv += ["--h2"]
    out = run_bounded("idle.py", argv, timeout=180)
    res = json.loads(out.strip().splitlines()[-1])
    res["value"] = res["bytes_per_conn"]
    return res


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def fmt_num(v, unit=""):
    if v is None:
        return "–"
    if abs(v) >= 10000:
        return f"{v/1000:.1f} k{unit}"
    if abs(v) >= 100:
        return f"{v:.0f}{unit}"
    return f"{v:.1f}{unit}"


def fmt_lat(us):
    if us is None:
        return "–"
    return f"{us/1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def summarize(results, targets, case_ids):
    """results[case][target] = {"status":..., "slices":[...]} -> adds "summary"."""
    for cid in case_ids:
        for t in targets:
            r = results.get(cid, {}).get(t)
            if not r or r.get("status") != "ok":
                continue
            sl = r["slices"]
            if not sl:
                r["status"] = "not run"
                r["error"] = "no completed slice (interrupted?)"
                continue
            kind = CASE_BY_ID[cid][2]
            if kind == "idle":
                vals = [s["value"] for s in sl]
                r["summary"] = {"value": statistics.median(vals), "min": min(vals),
                                "max": max(vals), "unit": "bytes/conn"}
            elif kind == "route":
                vals = [s["value"] for s in sl]
                r["summary"] = {"value": statistics.median(vals), "min": min(vals),
                                "max": max(vals), "unit": sl[0].get("unit")}
            else:
                def med(k):
                    v = [s[k] for s in sl if s.get(k) is not None]
                    return statistics.median(v) if v else None
                ups = [s["us_per_op"] for s in sl if s["us_per_op"] is not None]
                r["summary"] = {"value": med("us_per_op"), "min": min(ups) if ups else None,
                                "max": max(ups) if ups else None, "unit": "µs/op",
                                "rate": med("rate"), "p50_us": med("p50_us"),
                                "p99_us": med("p99_us"), "proxy_cpu_util": med("proxy_cpu_util"),
                                "core1_busy": med(f"core{LOAD_CPU}_busy"),
                                "errors": sum(s["errors"] for s in sl),
                                "ops": sum(s["ops"] for s in sl)}


def cell(results, cid, t):
    r = results.get(cid, {}).get(t)
    if r is None:
        return "not yet" if t == "gatewayd" else "–"
    if r["status"] == "ok":
        s = r["summary"]
        v = s["value"]
        if CASE_BY_ID[cid][2] == "idle":
            txt = fmt_num(v)
        else:
            txt = f"{v:.1f}" if v is not None else "–"
        if s.get("min") is not None and s["max"] != s["min"] and CASE_BY_ID[cid][2] != "idle":
            txt += f" ({s['min']:.1f}–{s['max']:.1f})"
        return txt
    if r["status"] == "not yet":
        return "not yet"
    if r["status"] == "n/a":
        return "–"
    return r["status"]


def ratio(results, cid, a, b):
    ra = results.get(cid, {}).get(a)
    rb = results.get(cid, {}).get(b)
    if not ra or not rb or ra.get("status") != "ok" or rb.get("status") != "ok":
        if a == "gatewayd" and (not ra or ra.get("status") == "not yet"):
            return "not yet"
        return "–"
    va, vb = ra["summary"]["value"], rb["summary"]["value"]
    if not va or not vb:
        return "–"
    return f"{va / vb:.2f}×"


def markdown(results, meta, case_ids):
    cols = ["nginx", "haproxy", "gatewayd", "gatewayd-base", "gatewayd-log"]
    lines = []
    lines.append("Primary figure: the proxy's own CPU per request/connection (median of rounds, "
                 "range in brackets); idle rows are RSS bytes per idle connection.")
    lines.append("")
    lines.append("| case | nginx | HAProxy | gatewayd | gatewayd/nginx | gatewayd/HAProxy "
                 "| HAProxy/nginx | doc: nginx | doc: HAProxy | gatewayd target |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cid in case_ids:
        label = CASE_BY_ID[cid][1]
        b = DOC_BASELINE.get(cid, ("", "", ""))
        lines.append(f"| {label} | {cell(results, cid, 'nginx')} | {cell(results, cid, 'haproxy')} "
                     f"| {cell(results, cid, 'gatewayd')} "
                     f"| {ratio(results, cid, 'gatewayd', 'nginx')} "
                     f"| {ratio(results, cid, 'gatewayd', 'haproxy')} "
                     f"| {ratio(results, cid, 'haproxy', 'nginx')} | {b[0]} | {b[1]} | {b[2]} |")
    lines.append("")
    lines.append("Throughput and latency (median of rounds; load generator + origin share core 1, "
                 "so req/s is a lower bound):")
    lines.append("")
    lines.append("| case | target | µs/op | req/s (conn/s) | p50 | p99 | proxy core use "
                 "| core 1 busy | errors / ops |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for cid in case_ids:
        if CASE_BY_ID[cid][2] not in ("wrk", "hs", "h2load"):
            continue
        for t in cols:
            r = results.get(cid, {}).get(t)
            if not r or r["status"] != "ok":
                continue
            s = r["summary"]
            lines.append(f"| {cid} | {t} | {s['value']:.1f} | {fmt_num(s['rate'])} "
                         f"| {fmt_lat(s['p50_us'])} | {fmt_lat(s['p99_us'])} "
                         f"| {s['proxy_cpu_util']*100:.0f} % "
                         f"| {(s['core1_busy'] or 0)*100:.0f} % | {s['errors']} / {s['ops']} |")
    idle_rows = [(cid, t) for cid in case_ids if CASE_BY_ID[cid][2] == "idle" for t in cols
                 if results.get(cid, {}).get(t, {}).get("status") == "ok"]
    if idle_rows:
        lines.append("")
        lines.append("| idle case | target | bytes/conn | RSS before → after (KiB) | conns | errors |")
        lines.append("|---|---|---:|---:|---:|---:|")
        for cid, t in idle_rows:
            for s in results[cid][t]["slices"]:
                lines.append(f"| {cid} | {t} | {s['bytes_per_conn']:.0f} | {s['rss_base_kib']} → "
                             f"{s['rss_after_kib']} | {s['conns']} (+{s['prime']} priming) "
                             f"| {s['errors']} |")
    if any(results.get(cid, {}).get("gatewayd-base", {}).get("status") == "ok" for cid in case_ids):
        lines.append("")
        lines.append("Before/after ($GATEWAYD_BASE as gatewayd-base, same rounds; for load cases the "
                     "median µs/op with the range of the rounds):")
        lines.append("")
        lines.append("| case | gatewayd-base | gatewayd | gatewayd/base |")
        lines.append("|---|---:|---:|---:|")
        for cid in case_ids:
            if results.get(cid, {}).get("gatewayd-base", {}).get("status") != "ok":
                continue
            lines.append(f"| {CASE_BY_ID[cid][1]} | {cell(results, cid, 'gatewayd-base')} "
                         f"| {cell(results, cid, 'gatewayd')} "
                         f"| {ratio(results, cid, 'gatewayd', 'gatewayd-base')} |")
    if any(results.get(cid, {}).get("gatewayd-log", {}).get("status") == "ok" for cid in case_ids):
        lines.append("")
        lines.append("Access log on vs off (gatewayd-log: the same build with [log] access = a file, "
                     "same rounds):")
        lines.append("")
        lines.append("| case | gatewayd | gatewayd-log | log/off |")
        lines.append("|---|---:|---:|---:|")
        for cid in case_ids:
            if results.get(cid, {}).get("gatewayd-log", {}).get("status") != "ok":
                continue
            lines.append(f"| {CASE_BY_ID[cid][1]} | {cell(results, cid, 'gatewayd')} "
                         f"| {cell(results, cid, 'gatewayd-log')} "
                         f"| {ratio(results, cid, 'gatewayd-log', 'gatewayd')} |")
    notes = []
    for cid in case_ids:
        for t, r in results.get(cid, {}).items():
            if r.get("status") in ("ok", "n/a"):
                continue
            if r.get("status") == "not yet" and t == "gatewayd":
                if "gatewayd" not in (n[:8] for n in notes):
                    notes.append(f"gatewayd: not yet: {r.get('error', '')}")
                continue
            notes.append(f"{cid} / {t}: {r['status']}: {r.get('error', '')}")
    if notes:
        lines.append("")
        lines.append("Notes:")
        lines += ["- " + n for n in dict.fromkeys(notes)]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def raise_nofile(n=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in ((n, max(n, hard)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, want)
            return
        except (ValueError, OSError):
            continue


def build_hsload():
    src = os.path.join(BENCH_DIR, "hsload.c")
    exe = os.path.join(BENCH_DIR, "hsload")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, src, "-lssl", "-lcrypto"],
                       check=True, timeout=120)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="nginx,haproxy,gatewayd",
                    help="comma list of: " + ",".join(TARGET_ORDER))
    ap.add_argument("--cases", default=",".join(CASE_IDS), help="comma list of: " + ",".join(CASE_IDS))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (1..10)")
    ap.add_argument("--secs", type=float, default=4.0, help="seconds per slice (1..30)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured warm-up per target/case (0..5 s)")
    ap.add_argument("--idle-conns", type=int, default=5000)
    ap.add_argument("--idle-prime", type=int, default=64)
    ap.add_argument("--idle-rounds", type=int, default=1)
    ap.add_argument("--base-port", type=int, default=18000)
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    ap.add_argument("--keep-tmp", action="store_true", help="keep the generated configs/logs")
    a = ap.parse_args()

    targets = [t for t in TARGET_ORDER if t in a.targets.split(",")]
    bad = set(a.targets.split(",")) - set(TARGET_ORDER)
    case_ids = [c for c in CASE_IDS if c in a.cases.split(",")]
    badc = set(a.cases.split(",")) - set(CASE_IDS)
    if bad or badc or not targets or not case_ids:
        ap.error(f"unknown targets {sorted(bad)} / cases {sorted(badc)}")
    if not (1 <= a.rounds <= 10 and 1 <= a.secs <= 30 and 0 <= a.warmup <= 5
            and 1 <= a.idle_conns <= 15000 and 1 <= a.idle_rounds <= 5):
        ap.error("rounds 1..10, secs 1..30, warmup 0..5, idle-conns 1..15000, idle-rounds 1..5")
    if os.cpu_count() < 2:
        sys.exit("need at least 2 CPUs (proxy on core 0, load on core 1)")
    for tool in ("taskset", "nginx", "wrk", "openssl", "gcc") + (("haproxy",) if "haproxy" in targets else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: run `sudo bench/setup.sh` first")

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    raise_nofile()

    wd = tempfile.mkdtemp(prefix="gw-bench-")
    os.chmod(wd, 0o755)
    bp = a.base_port
    ports = {"origin_http": bp + 80, "origin_https": bp + 443,
             "nginx_http": bp + 180, "nginx_https": bp + 543,
             "haproxy_http": bp + 280, "haproxy_https": bp + 643, "haproxy_passthrough": bp + 644,
             "gatewayd_http": bp + 380, "gatewayd_https": bp + 743, "gatewayd_passthrough": bp + 744,
             "gatewayd_base_http": bp + 390, "gatewayd_base_https": bp + 753,
             "gatewayd_base_passthrough": bp + 754,
             "gatewayd_log_http": bp + 395, "gatewayd_log_https": bp + 763,
             "gatewayd_log_passthrough": bp + 764}
    results = {cid: {} for cid in case_ids}
    started = datetime.datetime.now(datetime.timezone.utc)
    meta = {"started": started.isoformat(), "host": platform.node(), "kernel": platform.release(),
            "cpus": os.cpu_count(), "cpu_model": "", "rounds": a.rounds, "secs": a.secs,
            "warmup": a.warmup, "idle_conns": a.idle_conns, "idle_prime": a.idle_prime,
            "proxy_cpu": PROXY_CPU, "load_cpu": LOAD_CPU, "ports": ports, "targets": targets,
            "cases": case_ids, "versions": {}}
    try:
        with open("/proc/cpuinfo") as f:
            meta["cpu_model"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    log = open(os.path.join(wd, "processes.log"), "w")
    live = {}
    try:
        bench_netns(wd)
        hsload = build_hsload()
        key, crt, pem = make_cert(wd)
        env = {"wd": wd, "ports": ports, "key": key, "crt": crt, "pem": pem, "log": log,
               "hsload": hsload}
        meta["versions"] = {"wrk": tool_version(["wrk", "-v"]), "openssl": tool_version(["openssl", "version"])}

        # origin on the load core
        oconf = origin_conf(wd, ports, key, crt)
        origin = spawn("origin", ["taskset", "-c", LOAD_CPU, "nginx", "-p", wd, "-c", oconf],
                       stdout=log, stderr=log)
        wait_port(ports["origin_http"], proc=origin, host=ORIGIN_IP)
        wait_port(ports["origin_https"], proc=origin, host=ORIGIN_IP)

        for t in targets:
            tgt = TARGETS[t]()
            try:
                tgt.start(env)
            except NotYet as e:
                print(f"[{t}] not yet: {e}", file=sys.stderr)
                for cid in case_ids:
                    results[cid][t] = {"status": "not yet", "error": str(e)}
                continue
            meta["versions"][t] = tgt.version()
            live[t] = tgt
            print(f"[{t}] started, pids {tgt.pids()}, ports {tgt.ports}", file=sys.stderr)

        for cid in case_ids:
            case = CASE_BY_ID[cid]
            kind = case[2]
            runnable = []
            for t, tgt in live.items():
                if not tgt.supports(cid):
                    results[cid][t] = {"status": "n/a"}
                else:
                    results[cid][t] = {"status": "ok", "slices": []}
                    runnable.append(t)
            if kind == "route":
                for t in runnable:
                    try:
                        sl = gatewayd_route_bench(env, case[3]["what"])
                        results[cid][t]["slices"].append(sl)
                    except Exception as e:  # noqa: BLE001 - reported in the table
                        results[cid][t] = {"status": "error", "error": str(e)}
                        print(f"[{cid}] {t}: error: {e}", file=sys.stderr)
                continue
            n_rounds = a.idle_rounds if kind == "idle" else a.rounds
            if kind != "idle" and a.warmup > 0:
                for t in runnable:
                    try:
                        measure_load(live[t], case, a.warmup, env)
                    except Exception as e:
                        print(f"[{t}] {cid} warm-up failed: {e}", file=sys.stderr)
            for rnd in range(n_rounds):
                order = runnable[rnd % len(runnable):] + runnable[:rnd % len(runnable)] if runnable else []
                for t in order:
                    if results[cid][t]["status"] != "ok":
                        continue
                    try:
                        if kind == "idle":
                            live[t].restart(env)
                            time.sleep(0.5)
                            sl = measure_idle(live[t], case, env, a.idle_conns, a.idle_prime)
                            msg = f"{sl['bytes_per_conn']:.0f} B/conn (errors {sl['errors']})"
                        else:
                            sl = measure_load(live[t], case, a.secs, env)
                            msg = (f"{sl['us_per_op']} µs/op, {sl['rate']:.0f}/s, "
                                   f"p50 {fmt_lat(sl['p50_us'])}, p99 {fmt_lat(sl['p99_us'])}, "
                                   f"proxy {sl['proxy_cpu_util']*100:.0f}% core, errors {sl['errors']}")
                        sl["round"] = rnd
                        results[cid][t]["slices"].append(sl)
                        print(f"[{cid}] round {rnd+1}/{n_rounds} {t}: {msg}", file=sys.stderr)
                    except Exception as e:
                        print(f"[{cid}] {t}: error: {e}", file=sys.stderr)
                        results[cid][t] = {"status": "error", "error": str(e)}
                    if kind == "idle":
                        time.sleep(1.0)  # let the proxy reap the closed connections
                    if live[t].proc.poll() is not None:
                        raise RuntimeError(f"{t} died (exit {live[t].proc.returncode}); see logs in {wd}")
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything this run started", file=sys.stderr)
        meta["interrupted"] = True
    except Exception as e:
        print(f"\nerror: {e!r}: stopping everything this run started", file=sys.stderr)
        meta["error"] = repr(e)
    finally:
        cleanup()
        log.close()
        if a.keep_tmp:
            print(f"configs and logs kept in {wd}", file=sys.stderr)
        else:
            shutil.rmtree(wd, ignore_errors=True)

    summarize(results, targets, case_ids)
    meta["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
    md = markdown(results, meta, case_ids)
    os.makedirs(a.out, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    jpath = os.path.join(a.out, f"{stamp}.json")
    with open(jpath, "w") as f:
        json.dump({"meta": meta, "results": results, "markdown": md}, f, indent=1, ensure_ascii=False)
    with open(os.path.join(a.out, f"{stamp}.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    print(f"\nJSON: {jpath}", file=sys.stderr)
    return 1 if meta.get("interrupted") or meta.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
