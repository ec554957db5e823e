# SPDX-License-Identifier: Apache-2.0
"""Backend health (issue 11, "Backends"; docs/internals/proxy.md, "Backend
health") on a grid node (node.py): gatewayd in the node namespace, HTTP
backends on the workload's Yggdrasil addresses, clients in the node
namespace through the gateway's public address.

- a backend killed under load: only the requests in flight on it may fail
  (a GET is retried on the other backend), a handful of connect failures in
  all instead of one per second request; it comes back through the active
  check (`HEAD /`) with no client request;
- a backend host that does not answer (its address blackholed inside the
  workload namespace, so a connect hangs): each client pays at most one
  connect timeout, and the backend comes back through the check once it
  answers;
- every backend down: 503 with a page that says so; `gatewayctl show` and
  the Prometheus series give each backend's state and the failures.
- passthrough: a refused backend goes down, all down closes the
  connection, and the check (a TCP connect) brings it back.

Needs root and yggdrasil; skipped otherwise."""

import json
import re
import ssl
import subprocess
import sys
import time

import pytest

import node as gridnode
from conftest import GATEWAYCTL, Deadline, needs_gatewayctl, scaled
from node import PYTHON, LineProc, in_ns, ip, nsenter_argv

_why_not = gridnode.have_prerequisites()
pytestmark = [pytest.mark.skipif(_why_not is not None, reason=_why_not or ""), needs_gatewayctl]

HTTP_PORT = 8080  # inside the gateway namespace, plain HTTP (http_plain)
PUBLIC_ADDR = gridnode.PUBLIC_V4.split("/")[0]

# An HTTP/1.1 keep-alive backend on @addr:@port (0: any), answering GET and
# HEAD with its token; every request is printed ("REQ <method> <path>").
BACKEND = r"""
import errno, socket, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
addr, port, token, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, body):
        print("REQ %s %s" % (self.command, self.path), flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body
    def do_GET(self):
        self.wfile.write(self.answer(("backend %s\n" % token).encode()))
    def do_HEAD(self):
        self.answer(("backend %s\n" % token).encode())
    def log_message(self, fmt, *a):
        pass

class S(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

end = time.monotonic() + wait
while True:  # the address may not be there yet
    try:
        srv = S((addr, port), H)
        break
    except OSError as e:
        if e.errno != errno.EADDRNOTAVAIL or time.monotonic() > end:
            raise
        time.sleep(0.05)
print("LISTENING %d" % srv.server_address[1], flush=True)
srv.serve_forever()
"""

# @conc keep-alive clients for @secs seconds: GET / with Host @host. Prints
# one JSON object: requests, statuses, exceptions, and each request slower
# than 1 s as [start offset, duration, client].
LOAD = r"""
import http.client, json, sys, threading, time
addr, port, host, secs, conc = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
t0 = time.monotonic()
lock = threading.Lock()
res = {"requests": 0, "status": {}, "exceptions": 0, "slow": [], "max": 0.0, "bodies": {}}

def run(i):
    c = None
    while time.monotonic() - t0 < secs:
        s = time.monotonic()
        try:
            if c is None:
                c = http.client.HTTPConnection(addr, port, timeout=30)
            c.request("GET", "/", headers={"Host": host})
            r = c.getresponse()
            body = r.read().decode(errors="replace").strip()
            st = str(r.status)
            if r.getheader("Connection", "").lower() == "close":
                c.close()
                c = None
        except Exception:
            st, body = "exc", ""
            if c is not None:
                c.close()
            c = None
        d = time.monotonic() - s
        with lock:
            res["requests"] += 1
            res["status"][st] = res["status"].get(st, 0) + 1
            if st == "200":
                res["bodies"][body] = res["bodies"].get(body, 0) + 1
            if st == "exc":
                res["exceptions"] += 1
            if d > 1.0:
                res["slow"].append([round(s - t0, 3), round(d, 3), i])
            res["max"] = max(res["max"], d)

ts = [threading.Thread(target=run, args=(i,)) for i in range(conc)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(res), flush=True)
"""


class Backends:
    """Our HTTP backends in the workload namespace, killed by PID at the end."""

    def __init__(self, grid):
        self.grid = grid
        self.procs = {}

    def start(self, token, addr=None, port=0, wait=10):
        addr = addr or self.grid.workload_addr
        p = LineProc("backend-" + token, nsenter_argv(self.grid.wl_ns, [PYTHON, "-u", "-c", BACKEND, addr,
                                                                        str(port), token, str(wait)]),
                     str(self.grid.workdir / ("backend-%s-%d.log" % (token, time.monotonic_ns()))))
        port = int(p.wait_line(r"^LISTENING (\d+)$", wait + 5).group(1))
        self.procs[token] = p
        return "http://[%s]:%d" % (addr, port), p

    def kill(self, token):
        self.procs.pop(token).kill()

    def close(self):
        for p in self.procs.values():
            p.kill()
        self.procs = {}


@pytest.fixture
def backends(grid):
    b = Backends(grid)
    try:
        yield b
    finally:
        b.close()


def start_gateway(env, grid, https_port=0):
    gw_name = grid.new_gateway_name()
    grid.make_daemon(env)
    cfg = grid.gateway_config(gw_name)
    cfg["proxy"] = {"address": "::", "https_port": str(https_port), "http_port": str(HTTP_PORT),
                    "http_plain": "yes"}
    env.start_daemon(cfg)
    grid.configure_uplinks(timeout=15)
    return gw_name


def curl(grid, host, timeout=5):
    """(status, body, seconds) of GET http://host/ through the gateway."""
    p = in_ns(grid.node_ns, ["curl", "-sS", "--max-time", str(timeout), "-w", "\n%{http_code} %{time_total}",
                             "--resolve", "%s:%d:%s" % (host, HTTP_PORT, PUBLIC_ADDR),
                             "http://%s:%d/" % (host, HTTP_PORT)], check=False, timeout=timeout + 5)
    body, _, tail = p.stdout.rpartition("\n")
    code, _, secs = tail.partition(" ")
    return int(code or 0), body, float(secs or 0)


def wait_served(grid, host, timeout=20):
    dl = Deadline(timeout, "GET http://%s/ through the gateway" % host)
    while True:
        st, body, _ = curl(grid, host)
        if st == 200:
            return body
        if dl.expired:
            raise AssertionError("not served: %r %r" % (st, body))
        time.sleep(0.1)


def load(grid, host, secs, conc):
    return subprocess.Popen(nsenter_argv(grid.node_ns, [PYTHON, "-c", LOAD, PUBLIC_ADDR, str(HTTP_PORT), host,
                                                        str(secs), str(conc)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load_result(p, secs):
    out, err = p.communicate(timeout=scaled(secs + 60))
    assert p.returncode == 0, err
    return json.loads(out)


def metrics(env, grid):
    p = in_ns(grid.node_ns, ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/metrics" % env.metrics_port])
    return p.stdout


def series(text, name, **labels):
    """The value of the one series @name with (at least) @labels, or None."""
    for m in re.finditer(r"^%s\{([^}]*)\} (\S+)$" % re.escape(name), text, re.M):
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if all(got.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


def wait_up(env, grid, wlid, backend, up, timeout):
    dl = Deadline(timeout, "gatewayd_backend_up{%s} == %d" % (backend, up))
    while True:
        v = series(metrics(env, grid), "gatewayd_backend_up", service=wlid, backend=backend)
        if v == up:
            return
        if dl.expired:
            raise AssertionError("gatewayd_backend_up{%s} is %r; log:\n%s" % (backend, v, env.daemon.log_tail(30)))
        time.sleep(0.2)


def ctl(env, *args):
    return subprocess.run([str(GATEWAYCTL), "--broker", env.redis.url] + list(args), capture_output=True,
                          text=True, timeout=scaled(15), stdin=subprocess.DEVNULL)


def report(what, res):
    # The figures for the record (pytest -s shows them).
    sys.stderr.write("%s: %s\n" % (what, json.dumps({k: res[k] for k in ("requests", "status", "exceptions",
                                                                          "max")} | {"slow": len(res["slow"])})))


@pytest.mark.timeout_s(150)
def test_killed_backend_under_load(env, grid, backends):
    gw_name = start_gateway(env, grid)
    wlid, name = "37-21-kill", "kill"
    host = name + ".gw1.example.net"
    try:
        url_a, proc_a = backends.start("A")
        url_b, _ = backends.start("B")
        env.deploy_name(wlid, name, [url_a, url_b])
        wait_served(grid, host)

        secs, conc = 8, 8
        lp = load(grid, host, secs, conc)
        time.sleep(2.5)
        backends.kill("A")
        res = load_result(lp, secs)
        report("killed backend", res)
        assert res["requests"] > 100, res
        # A GET in flight on A when it died is retried on B; a request is
        # lost only if it was past that point. Measured: 0.
        assert res["status"].get("200", 0) >= res["requests"] - 2, res
        assert res["bodies"].get("backend B", 0) > res["bodies"].get("backend A", 0), res

        m = metrics(env, grid)
        assert series(m, "gatewayd_backend_up", service=wlid, backend=url_a) == 0, m
        assert series(m, "gatewayd_backend_up", service=wlid, backend=url_b) == 1, m
        fails = sum(series(m, "gatewayd_backend_failures_total", service=wlid, reason=r) or 0
                    for r in ("connect", "timeout", "reset"))
        # Without health: one connect error per second request (thousands).
        assert 1 <= fails <= 10, m
        sys.stderr.write("killed backend: %d backend failures counted\n" % fails)
        show = ctl(env, "show", wlid)
        assert show.returncode == 0, show
        assert re.search(r"^  %s: down since \S+" % re.escape(url_a), show.stdout, re.M), show.stdout
        assert re.search(r"^  %s: up since" % re.escape(url_b), show.stdout, re.M), show.stdout

        # A comes back: the active check finds it, no client request needed.
        _, proc_a2 = backends.start("A", port=int(url_a.rsplit(":", 1)[1]))
        wait_up(env, grid, wlid, url_a, 1, timeout=20)
        first = proc_a2.wait_line(r"^REQ .*$", 5).group(0)
        assert first == "REQ HEAD /", first
        show = ctl(env, "show", wlid)
        assert re.search(r"^  %s: up since \S+, last error \S+: " % re.escape(url_a), show.stdout, re.M), \
            show.stdout
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)


@pytest.mark.timeout_s(180)
def test_unreachable_backend_host_under_load(env, grid, backends):
    """The host of backend C does not answer at all (its address is
    blackholed in the workload namespace: the SYN vanishes)."""
    gw_name = start_gateway(env, grid)
    wlid, name = "37-22-hang", "hang"
    host = name + ".gw1.example.net"
    addr_c = str(grid.ygg_b.subnet.network_address + 0x99)
    port_c = 8099
    blackhole = False
    try:
        ip("-6", "route", "add", "blackhole", addr_c + "/128", ns=grid.wl_ns)
        blackhole = True
        url_a, _ = backends.start("A")
        url_c = "http://[%s]:%d" % (addr_c, port_c)
        # A connect to C hangs (no answer, no ICMP).
        p = in_ns(grid.node_ns, ["curl", "-g", "-sS", "--max-time", "2", url_c + "/"], check=False, timeout=10)
        assert p.returncode == 28, (p.returncode, p.stderr)

        env.deploy_name(wlid, name, [url_a, url_c])
        wait_served(grid, host, timeout=30)

        secs, conc = 14, 8
        res = load_result(load(grid, host, secs, conc), secs)
        report("unreachable backend", res)
        slow = res["slow"]
        sys.stderr.write("unreachable backend: slow requests %s\n" % slow)
        assert res["status"].get("200", 0) == res["requests"], res
        # Each client pays at most one connect timeout (5 s), all of them in
        # the first connect timeout; without health every second request
        # of every client would (about 14 / 5 * 8 / 2).
        assert len(slow) <= conc, slow
        assert len({c for _, _, c in slow}) == len(slow), slow
        assert all(start < 6.0 for start, _, _ in slow), slow
        assert res["requests"] > 50, res

        m = metrics(env, grid)
        assert series(m, "gatewayd_backend_up", service=wlid, backend=url_c) == 0, m
        t = series(m, "gatewayd_backend_failures_total", service=wlid, reason="timeout")
        assert t is not None and 1 <= t <= conc, m

        # C answers again: the check brings it back with no client request.
        ip("-6", "route", "del", "blackhole", addr_c + "/128", ns=grid.wl_ns)
        blackhole = False
        ip("-6", "addr", "add", addr_c + "/128", "dev", "lo", "nodad", ns=grid.wl_ns)
        _, proc_c = backends.start("C", addr=addr_c, port=port_c)
        wait_up(env, grid, wlid, url_c, 1, timeout=40)
        assert proc_c.wait_line(r"^REQ .*$", 5).group(0) == "REQ HEAD /"
        bodies = set()
        for _ in range(6):
            st, body, _ = curl(grid, host)
            assert st == 200
            bodies.add(body.strip())
        assert bodies == {"backend A", "backend C"}, bodies
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)
        if blackhole:
            ip("-6", "route", "del", "blackhole", addr_c + "/128", ns=grid.wl_ns, check=False)
        ip("-6", "addr", "del", addr_c + "/128", "dev", "lo", ns=grid.wl_ns, check=False)


@pytest.mark.timeout_s(90)
def test_all_down_page_show_and_metrics(env, grid):
    gw_name = start_gateway(env, grid)
    wlid, name = "37-23-down", "down"
    host = name + ".gw1.example.net"
    urls = ["http://[%s]:%d" % (grid.workload_addr, port) for port in (1, 2)]
    try:
        env.deploy_name(wlid, name, urls)
        dl = Deadline(20, "the 503 page")
        while True:
            st, body, _ = curl(grid, host)
            if st == 503:
                break
            assert st == 0 and not dl.expired, (st, body)  # the namespace is not up yet
            time.sleep(0.1)
        assert "unreachable" in body, body
        # Again: answered at once, no connect attempt (both are down).
        st, body, secs = curl(grid, host)
        assert st == 503 and "unreachable" in body and secs < 1.0, (st, body, secs)

        m = metrics(env, grid)
        for u in urls:
            assert series(m, "gatewayd_backend_up", service=wlid, backend=u) == 0, m
        assert series(m, "gatewayd_backend_failures_total", service=wlid, reason="connect") == 2, m

        show = ctl(env, "show", wlid)
        assert show.returncode == 0, show
        sys.stderr.write(show.stdout)
        for u in urls:
            assert re.search(r"^  %s: down since \S+, last error \S+: connect: Connection refused$"
                             % re.escape(u), show.stdout, re.M), show.stdout
        js = ctl(env, "--json", "show", wlid)
        bh = json.loads(js.stdout)["BackendHealth"]
        assert [(h["Backend"], h["Up"], h["LastError"]) for h in bh] == \
            [(u, False, "connect: Connection refused") for u in urls], bh
        assert all(h["Since"] and h["LastErrorTime"] for h in bh), bh
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)


@pytest.mark.timeout_s(90)
def test_passthrough_backend_down_and_back(env, grid, backends):
    """Passthrough: a refused backend is skipped, all down closes the
    connection, and a TCP connect (the check) brings it back."""
    gw_name = start_gateway(env, grid, https_port=8443)
    wlid, name = "37-24-pass", "pass"
    host = name + ".gw1.example.net"
    port = 8098
    url = "[%s]:%d" % (grid.workload_addr, port)
    try:
        env.deploy_name(wlid, name, [url], tls_passthrough=True)
        probe = ("import socket,sys\n"
                 "s=socket.create_connection((sys.argv[1],8443),timeout=5)\n"
                 "s.sendall(bytes.fromhex(sys.argv[2]))\n"
                 "print('closed' if s.recv(100)==b'' else 'data')\n")
        # A ClientHello with SNI @host is all the gateway needs to route it.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname=host)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = out.read().hex()
        dl = Deadline(20, "backend %s marked down" % url)
        while True:
            p = in_ns(grid.node_ns, [PYTHON, "-c", probe, PUBLIC_ADDR, hello], check=False, timeout=10)
            v = series(metrics(env, grid), "gatewayd_backend_up", service=wlid, backend=url)
            if p.stdout.strip() == "closed" and v == 0:
                break
            assert not dl.expired, (p.stdout, p.stderr, v)
            time.sleep(0.2)
        m = metrics(env, grid)
        assert series(m, "gatewayd_backend_failures_total", service=wlid, reason="connect") >= 1, m
        show = ctl(env, "show", wlid)
        assert re.search(r"^  %s: down since \S+, last error \S+: connect: Connection refused$"
                         % re.escape(url), show.stdout, re.M), show.stdout
        # Something listens again: the check's TCP connect is enough.
        backends.start("P", port=port)
        wait_up(env, grid, wlid, url, 1, timeout=20)
    finally:
        env.daemon.stop()
        grid.remove_gateway(gw_name)
